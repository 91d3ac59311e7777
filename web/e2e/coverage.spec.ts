import { expect, test } from '@playwright/test';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

// Keeps "every app and account page passes e2e/screens.ts in French and English" true: each
// +page.svelte under src/routes/app and the account pages has a shot of each language in
// some spec (screens() then runs it at 390 and 1280 px). The public pages have their own
// loop over both languages (public.spec.ts). No browser is started.

function pages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? pages(join(dir, e.name)) : e.name === '+page.svelte' ? [relative('src/routes', dir)] : [],
  );
}

/** Every shot in the specs: its path (without query) and whether the app is in English. */
function shots(): { path: string; en: boolean }[] {
  return readdirSync('e2e')
    .filter((f) => f.endsWith('.spec.ts'))
    .flatMap((f) => {
      const text = readFileSync(join('e2e', f), 'utf8');
      const starts = [...text.matchAll(/\{\s*path: '([^']+)',\s*name: '[^']+'/g)];
      return starts.map((m, i) => {
        const body = text.slice(m.index, starts[i + 1]?.index ?? text.length);
        const path = m[1]!.split('?')[0]!;
        return { path, en: path.startsWith('/en/') || /^[^\]]*?locale: 'en'/.test(body) };
      });
    });
}

test('every app and account page has a screen in French and in English', () => {
  const routes = pages('src/routes').filter((r) => r.startsWith('app') || r.includes('(account)'));
  expect(routes.length).toBeGreaterThan(25);
  const all = shots();
  const missing: string[] = [];
  for (const route of routes) {
    const pattern = `/${route}`.replace('/[[lang=lang]]/(account)', '').replace(/\[[^\]]+\]/g, '[^/]+');
    const fr = new RegExp(`^${pattern}$`);
    const en = new RegExp(`^(/en)?${pattern}$`);
    if (!all.some((s) => !s.en && fr.test(s.path))) missing.push(`${route} (fr)`);
    if (!all.some((s) => s.en && en.test(s.path))) missing.push(`${route} (en)`);
  }
  expect(missing).toEqual([]);
});
