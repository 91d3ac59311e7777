import { defineConfig } from '@playwright/test';
import base from '../../playwright.config';

// Browser tests against the REAL server: `global-setup.ts` starts the debug `plinth serve`
// binary on a random port with nothing configured (its own embedded PostgreSQL in a
// temporary data dir, mail as .eml files there, the reference worker in-process), and
// stops it afterwards. Run with `npm run e2e:server` after `cargo build` (scripts/test
// does both); PLINTH_BIN names another binary.
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
  // Debian's Chromium with the flags of the main config; the base URL is the server's,
  // known once global-setup.ts has started it (the spec sets it).
  use: { ...base.use, baseURL: undefined },
});
