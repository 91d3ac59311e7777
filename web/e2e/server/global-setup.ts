import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SECRET_KEY, StripeStandIn, WEBHOOK_SECRET } from './stripe-stand-in';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');

/** The debug binary cargo built: PLINTH_BIN, else the target dir's. */
function binary(): string {
  if (process.env.PLINTH_BIN) return process.env.PLINTH_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  return join(target, 'debug', 'plinth');
}

/** The operator's `plinth admin create`: the admin's password, printed once and alone on
 * standard output (the sentence naming the admin goes to standard error). */
function createAdmin(bin: string, env: NodeJS.ProcessEnv, email: string, log: NodeJS.WritableStream): Promise<string> {
  return new Promise((done, failed) => {
    const cli = spawn(bin, ['admin', 'create', '--email', email], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (b: Buffer) => (out += b.toString()));
    cli.stderr.pipe(log, { end: false });
    cli.once('exit', (code) => {
      const lines = out.split('\n').filter((l) => l.trim() !== '');
      const password = lines.length === 1 ? lines[0].trim() : undefined;
      if (code === 0 && password) done(password);
      else failed(new Error(`plinth admin create exited (${code}) without a password`));
    });
  });
}

/**
 * Starts `plinth serve` as a user would with `cargo run`: nothing configured but a fresh
 * data dir and a random port, plus what the journeys need around it: the local Stripe
 * stand-in (stripe-stand-in.ts) as its Stripe, a small plan catalog (plans.e2e.toml),
 * and an admin made by `plinth admin create`. The server's address, its data dir, the
 * stand-in's address and the admin's credentials reach the tests through PLINTH_E2E_URL,
 * PLINTH_E2E_DATA_DIR, PLINTH_E2E_STRIPE_URL, PLINTH_E2E_ADMIN_EMAIL and
 * PLINTH_E2E_ADMIN_PASSWORD; the returned function stops the server (SIGTERM: it drains,
 * stops its PostgreSQL) and the stand-in, and removes the data dir.
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
  const stripe = new StripeStandIn();
  await stripe.start();
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dataDir,
    PLINTH_ADDR: '127.0.0.1:0',
    PLINTH_DATA_DIR: dataDir,
    PLINTH_LOG_FORMAT: 'json',
    PLINTH_IN_PROCESS_WORKER: 'true',
    PLINTH_STRIPE_API_BASE: stripe.url,
    PLINTH_STRIPE_SECRET_KEY: SECRET_KEY,
    PLINTH_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    PLINTH_PLANS_FILE: join(here, 'plans.e2e.toml'),
    // Every journey signs up from 127.0.0.1.
    PLINTH_SIGNUP_LIMIT_PER_IP: '100',
    RUST_LOG: 'info',
  };
  // Every plinth command logs to standard error; `serve` prints nothing on standard output.
  const server = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.pipe(log, { end: false });
  const exited = new Promise<number | null>((done) => server.once('exit', (code) => done(code)));
  const addr = await new Promise<string>((found, failed) => {
    const timer = setTimeout(() => failed(new Error(`plinth serve did not listen within 180 s; see ${logFile}`)), 180_000);
    void exited.then((code) => failed(new Error(`plinth serve exited (${code}) before listening; see ${logFile}`)));
    createInterface({ input: server.stderr }).on('line', (line) => {
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
  process.env.PLINTH_E2E_STRIPE_URL = stripe.url;
  stripe.appUrl = `http://${addr}`;
  console.log(`plinth serve listening on ${addr} after ${((Date.now() - started) / 1000).toFixed(1)} s (log: ${logFile})`);
  const adminEmail = 'admin@example.com';
  process.env.PLINTH_E2E_ADMIN_EMAIL = adminEmail;
  try {
    process.env.PLINTH_E2E_ADMIN_PASSWORD = await createAdmin(bin, env, adminEmail, log);
  } catch (e) {
    server.kill('SIGTERM');
    await exited;
    await stripe.stop();
    throw e;
  }
  console.log(`admin ${adminEmail} created after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return async () => {
    server.kill('SIGTERM');
    const stop = setTimeout(() => server.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(stop);
    await stripe.stop();
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
