import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// In development the Rust server runs beside Vite (`cargo run`, 127.0.0.1:8080) and the
// API paths are proxied to it, so the app talks to one origin as in production.
const api = process.env.PLINTH_API ?? 'http://127.0.0.1:8080';

const proxy = {
  '/graphql/ws': { target: api.replace(/^http/, 'ws'), ws: true },
  '/graphql': api,
  '/auth': api,
  '/storage': api,
};

export default defineConfig({
  plugins: [sveltekit()],
  server: { proxy },
  // The browser tests mock the API in the page; they set PLINTH_E2E so that preview does
  // not try to reach a server that is not running.
  preview: { proxy: process.env.PLINTH_E2E ? {} : proxy },
  build: { target: 'es2022', reportCompressedSize: false },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
