import { defineConfig } from '@playwright/test';

// Browser tests against the REAL server: `global-setup.ts` starts the debug `plinth serve`
// binary on a random port with nothing configured (its own embedded PostgreSQL in a
// temporary data dir, mail as .eml files there, the reference worker in-process), and
// stops it afterwards. Run with `npm run e2e:server` after `cargo build` (scripts/test
// does both); PLINTH_BIN names another binary.
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: '.',
  outputDir: '../../test-results/server',
  globalSetup: './global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  timeout: 120_000,
  expect: { timeout: 15_000 },
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'off',
  },
});
