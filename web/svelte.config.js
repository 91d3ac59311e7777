import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
  preprocess: vitePreprocess(),
  kit: {
    // Public pages are prerendered to `<path>.html` (trailingSlash 'never'); every other
    // path (the account pages, /app/...) is served the SPA shell `200.html`. It cannot be
    // called index.html: that name is the prerendered landing page.
    adapter: adapter({ pages: 'build', assets: 'build', fallback: '200.html', precompress: true, strict: true }),
    prerender: {
      // The crawl starts at '/' and follows links, which reaches every public page in
      // both languages (the language switch is a real link).
      entries: ['*', '/en', '/en/pricing', '/en/faq', '/en/terms', '/en/terms-of-sale', '/en/privacy', '/en/legal'],
      handleHttpError: 'fail',
      handleMissingId: 'fail',
    },
    // Hash mode: every page is a static file, so the inline bootstrap script is allowed by
    // its SHA-256 in a <meta http-equiv="content-security-policy"> that SvelteKit writes
    // into each page; no 'unsafe-inline' for scripts. Inline style attributes are allowed
    // (Svelte sets some), scripts are not.
    csp: {
      mode: 'hash',
      directives: {
        'default-src': ['self'],
        'script-src': ['self'],
        'style-src': ['self', 'unsafe-inline'],
        'img-src': ['self', 'data:', 'blob:', 'https:'],
        'font-src': ['self'],
        'connect-src': ['self', 'ws:', 'wss:'],
        'form-action': ['self'],
        'base-uri': ['self'],
        'object-src': ['none'],
      },
    },
    alias: {
      $features: 'src/lib/features',
      $ui: 'src/lib/ui',
    },
  },
};

export default config;
