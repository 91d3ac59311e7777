import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';

// Every public page, in French and English, at a phone's and a laptop's width: it renders
// with its metadata, has no serious or critical accessibility violation, and is saved as
// a screenshot under e2e/screenshots/ (ignored by git) for a person to look at.
const PAGES = [
  { path: '/', name: 'landing', h1: { fr: /photos deviennent des annonces/, en: /photos become listings/ } },
  { path: '/pricing', name: 'pricing', h1: { fr: /offres simples/, en: /Simple plans/ } },
  { path: '/faq', name: 'faq', h1: { fr: /Questions fréquentes/, en: /Frequently asked/ } },
  { path: '/terms', name: 'terms', h1: { fr: /Conditions générales d'utilisation/, en: /Terms of service/ } },
  { path: '/terms-of-sale', name: 'terms-of-sale', h1: { fr: /Conditions générales de vente/, en: /Terms of sale/ } },
  { path: '/privacy', name: 'privacy', h1: { fr: /Politique de confidentialité/, en: /Privacy policy/ } },
  { path: '/legal', name: 'legal', h1: { fr: /Mentions légales/, en: /Legal notice/ } },
] as const;
const LOCALES = ['fr', 'en'] as const;
const WIDTHS = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'desktop', width: 1280, height: 800 },
];

mkdirSync('e2e/screenshots', { recursive: true });

function url(path: string, locale: 'fr' | 'en') {
  if (locale === 'fr') return path;
  return path === '/' ? '/en' : `/en${path}`;
}

async function seriousViolations(page: Page) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

for (const p of PAGES) {
  for (const locale of LOCALES) {
    for (const w of WIDTHS) {
      test(`${p.name} ${locale} ${w.width}px`, async ({ page }) => {
        await page.setViewportSize({ width: w.width, height: w.height });
        const cspErrors: string[] = [];
        page.on('console', (m) => {
          if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
        });
        const res = await page.goto(url(p.path, locale));
        expect(res?.status()).toBe(200);
        await expect(page.locator('html')).toHaveAttribute('lang', locale);
        await expect(page.getByRole('heading', { level: 1 })).toHaveText(p.h1[locale]);
        await expect(page).toHaveTitle(/· Plinth$/);
        await expect(page.locator('meta[name="description"]')).toHaveAttribute('content', /.{40,}/);
        await expect(page.locator('meta[property="og:title"]')).toHaveAttribute('content', /Plinth/);
        await expect(page.locator('meta[property="og:description"]')).toHaveAttribute('content', /.{40,}/);
        // The CSP allows scripts from 'self' and by hash only, and nothing was blocked.
        const csp = await page.locator('meta[http-equiv="content-security-policy"]').getAttribute('content');
        const scriptSrc = csp?.split(';').find((d) => d.trim().startsWith('script-src')) ?? '';
        expect(scriptSrc).toMatch(/^\s*script-src 'self'/);
        expect(scriptSrc).not.toContain('unsafe-inline');
        const inline = await page.locator('script:not([src])').count();
        if (inline > 0) expect(scriptSrc).toContain("'sha256-");
        // No horizontal scrolling at this width.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow).toBeLessThanOrEqual(0);
        expect(await seriousViolations(page)).toEqual([]);
        expect(cspErrors).toEqual([]);
        await page.screenshot({ path: `e2e/screenshots/${p.name}-${locale}-${w.width}.png`, fullPage: true });
      });
    }
  }
}

test('the language switch is a real link to the same page in the other language', async ({ page }) => {
  await page.goto('/pricing');
  await page.getByRole('link', { name: 'English' }).click();
  await expect(page).toHaveURL(/\/en\/pricing$/);
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await page.getByRole('link', { name: 'Français' }).click();
  await expect(page).toHaveURL(/\/pricing$/);
  await expect(page.locator('html')).toHaveAttribute('lang', 'fr');
});

test.describe('with JavaScript off', () => {
  test.use({ javaScriptEnabled: false });

  test('the landing page and the pricing toggle work', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
    await page.getByRole('navigation', { name: 'Navigation principale' }).getByRole('link', { name: 'Tarifs' }).click();
    await expect(page.getByRole('heading', { name: 'Pro' })).toBeVisible();
    await expect(page.getByText('49 €', { exact: true })).toBeVisible();
    await page.getByText('Annuelle').click();
    await expect(page.getByText('490 €', { exact: true })).toBeVisible();
    await expect(page.getByText('49 €', { exact: true })).toBeHidden();
  });
});

test('pricing: keyboard switches to yearly and the plan link carries plan and interval', async ({ page }) => {
  await page.goto('/en/pricing');
  await page.getByRole('radio', { name: 'Monthly' }).focus();
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('radio', { name: /Yearly/ })).toBeChecked();
  await expect(page.getByText('€490', { exact: true })).toBeVisible();
  const link = page.getByRole('link', { name: 'Choose Pro' });
  await expect(link).toHaveAttribute('href', '/en/signup?plan=pro&interval=year');
  // Trial days, quotas and the VAT note come from plans.toml.
  await expect(page.getByText('2,500 photo scans a month')).toBeVisible();
  await expect(page.getByText(/14-day free trial/).filter({ visible: true }).first()).toBeVisible();
  await expect(page.getByText(/excluding tax/).filter({ visible: true }).first()).toBeVisible();
});

test('pricing: with JavaScript the catalogue is refreshed from the `plans` query', async ({ page }) => {
  await page.route('**/graphql', async (route) => {
    const body = route.request().postDataJSON() as { query: string };
    expect(body.query).toContain('query Plans');
    await route.fulfill({
      json: {
        data: {
          plans: [
            { code: 'FREE', name: 'Free', monthlyPriceCents: 0, yearlyPriceCents: 0, currency: 'EUR', trialDays: 0, quotas: [{ metric: 'SCANS', limit: 20 }] },
            { code: 'PRO', name: 'Pro', monthlyPriceCents: 5900, yearlyPriceCents: 59000, currency: 'EUR', trialDays: 30, quotas: [{ metric: 'SCANS', limit: 3000 }] },
          ],
        },
      },
    });
  });
  await page.goto('/pricing');
  await expect(page.getByText('59 €', { exact: true })).toBeVisible();
  await expect(page.getByText('30 jours d’essai gratuit').first()).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Starter' })).toHaveCount(0);
});
