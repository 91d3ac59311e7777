import { defineConfig } from '@playwright/test';
import base from '../../playwright.config';

// Browser journeys against the REAL server: `global-setup.ts` starts the debug `plinth
// serve` binary on a random port with nothing configured (its own embedded PostgreSQL in
// a temporary data dir, mail as .eml files there, the reference worker in-process) but
// the local Stripe stand-in and a small plan catalog, makes an admin with `plinth admin
// create`, and stops everything afterwards. One server for all journeys; each journey
// has its own users. Run with `npm run e2e:server` after `cargo build` (scripts/test does
// both); PLINTH_BIN names another binary. Each test's duration is in
// test-results/server-report.json, each step's in test-results/journey-timings-*.json.
export default defineConfig({
  testDir: '.',
  outputDir: '../../test-results/server',
  globalSetup: './global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list'], ['json', { outputFile: '../../test-results/server-report.json' }]],
  timeout: 120_000,
  expect: { timeout: 15_000 },
  // Debian's Chromium with the flags of the main config; the base URL is the server's,
  // known once global-setup.ts has started it (the spec sets it).
  use: { ...base.use, baseURL: undefined },
});
