// Screens every page must pass at 390 and 1280 px: its heading, the CSP meta (or header),
// no horizontal overflow, no serious or critical axe violation, no CSP console error; a
// full-page screenshot goes to e2e/screenshots/.
import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { mockApi, type Answer, type user } from './mock-api';

mkdirSync('e2e/screenshots', { recursive: true });

export async function noSeriousViolations(page: Page) {
  const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  expect(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(', ')}`)).toEqual([]);
}

export interface Shot {
  path: string;
  name: string;
  signedIn: boolean;
  h1: RegExp;
  /** The app's language (`localStorage["plinth.locale"]`), for /app pages. */
  locale?: 'fr' | 'en';
  user?: Partial<typeof user>;
  answers?: Record<string, Answer>;
  /** Waits for what the page loads before the checks (a table, a chart). */
  ready?: (page: Page) => Promise<void>;
}

export function screens(shots: Shot[], answers: Record<string, Answer> = {}) {
  for (const s of shots) {
    for (const width of [390, 1280]) {
      test(`screen ${s.name} ${width}px`, async ({ page }) => {
        await page.setViewportSize({ width, height: 844 });
        if (s.locale) await page.addInitScript((l) => localStorage.setItem('plinth.locale', l), s.locale);
        await mockApi(page, { signedIn: s.signedIn, user: s.user, answers: { ...answers, ...s.answers } });
        const cspErrors: string[] = [];
        page.on('console', (m) => {
          if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
        });
        const res = await page.goto(s.path);
        // The built 200.html carries the policy in a <meta>; `vite preview` renders this shell
        // itself and sends the same policy as a header.
        const csp =
          res?.headers()['content-security-policy'] ??
          (await page.locator('meta[http-equiv="content-security-policy"]').getAttribute('content'));
        expect(csp).toMatch(/script-src 'self' 'sha256-[^']+'(;|$)/);
        await expect(page.getByRole('heading', { level: 1 })).toHaveText(s.h1);
        await page.waitForLoadState('networkidle');
        if (s.ready) await s.ready(page);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(0);
        await noSeriousViolations(page);
        expect(cspErrors).toEqual([]);
        await page.screenshot({ path: `e2e/screenshots/${s.name}-${width}.png`, fullPage: true });
      });
    }
  }
}
