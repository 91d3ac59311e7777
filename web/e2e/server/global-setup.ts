import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');

/** The debug binary cargo built: PLINTH_BIN, else the target dir's. */
function binary(): string {
  if (process.env.PLINTH_BIN) return process.env.PLINTH_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  return join(target, 'debug', 'plinth');
}

/**
 * Starts `plinth serve` as a user would with `cargo run`: nothing configured but a fresh
 * data dir and a random port. Its address and data dir reach the tests through
 * PLINTH_E2E_URL and PLINTH_E2E_DATA_DIR; the returned function stops it (SIGTERM: it
 * drains, stops its PostgreSQL) and removes the data dir.
 */
export default async function globalSetup(): Promise<() => Promise<void>> {
  const bin = binary();
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin}: run cargo build first (or set PLINTH_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), 'plinth-e2e-'));
  const logDir = resolve(here, '../../test-results');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'server.log');
  const log = createWriteStream(logFile);
  const started = Date.now();
  const server = spawn(bin, ['serve'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? dataDir,
      PLINTH_ADDR: '127.0.0.1:0',
      PLINTH_DATA_DIR: dataDir,
      PLINTH_LOG_FORMAT: 'json',
      PLINTH_IN_PROCESS_WORKER: 'true',
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.pipe(log);
  const exited = new Promise<number | null>((done) => server.once('exit', (code) => done(code)));
  const addr = await new Promise<string>((found, failed) => {
    const timer = setTimeout(() => failed(new Error(`plinth serve did not listen within 180 s; see ${logFile}`)), 180_000);
    void exited.then((code) => failed(new Error(`plinth serve exited (${code}) before listening; see ${logFile}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      log.write(line + '\n');
      try {
        const a = (JSON.parse(line) as { fields?: { addr?: string } }).fields?.addr;
        if (a) {
          clearTimeout(timer);
          found(a);
        }
      } catch {
        // Not a log line of ours.
      }
    });
  });
  process.env.PLINTH_E2E_URL = `http://${addr}`;
  process.env.PLINTH_E2E_DATA_DIR = dataDir;
  console.log(`plinth serve listening on ${addr} after ${((Date.now() - started) / 1000).toFixed(1)} s (log: ${logFile})`);
  return async () => {
    server.kill('SIGTERM');
    const stop = setTimeout(() => server.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(stop);
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
