import { expect, test, type Page } from '@playwright/test';
import { Clock, cspErrors, freshEmail, register, shot, signIn } from './helpers';

// Quotas against the real server: the Free plan of the journeys' catalog
// (plans.e2e.toml) allows 2 scans a month. The usage bar moves after each job the
// in-process worker runs; at the limit the usage page says so, and the next scan is
// refused with QUOTA_EXCEEDED, shown with the metric, the limit, the reset date and an
// upgrade button that leads to billing.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

async function scansBar(page: Page) {
  await page.goto('/app/usage');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Consommation');
  return page.getByRole('progressbar', { name: 'analyses' });
}

async function runScan(page: Page, nth: number) {
  await page.goto('/app/jobs');
  await expect(page.getByText('En direct')).toBeVisible();
  await page.getByRole('button', { name: 'Lancer une analyse' }).click();
  const jobs = page.getByRole('list', { name: 'Liste des tâches' }).getByRole('listitem');
  await expect(jobs).toHaveCount(nth);
  // Finished by the worker, seen live (done or failed: a scan of no photo may fail;
  // either way it counted).
  await expect(jobs.getByText(/^(Terminée|Échouée)$/)).toHaveCount(nth, { timeout: 30_000 });
}

test('the quota bar moves after each job; at the limit QUOTA_EXCEEDED says what, how much, until when, and offers the upgrade', async ({ page, request }) => {
  const clock = new Clock('quota');
  const email = freshEmail('quota');
  const csp = cspErrors(page);
  await register(request, email);
  await signIn(page, email);
  clock.lap('registered (API), signed in (form)');

  const bar = await scansBar(page);
  await expect(bar).toHaveAttribute('aria-valuenow', '0');
  const card = page.getByRole('listitem').filter({ has: bar });
  await expect(card).toContainText('0 / 2');
  await shot(page, 'usage-empty');
  clock.lap('usage: 0 of 2 scans');

  await runScan(page, 1);
  clock.lap('first scan done (live)');
  await expect(await scansBar(page)).toHaveAttribute('aria-valuenow', '50');
  await expect(card).toContainText('1 / 2');
  await shot(page, 'usage-one-scan');
  clock.lap('usage: 1 of 2 scans');

  await runScan(page, 2);
  await expect(await scansBar(page)).toHaveAttribute('aria-valuenow', '100');
  await expect(card).toContainText('2 / 2');
  await expect(card.getByRole('status')).toContainText('Limite atteinte');
  await expect(card.getByRole('link', { name: 'Changer d’offre' })).toHaveAttribute('href', '/app/billing');
  await shot(page, 'usage-full');
  clock.lap('second scan done, usage full');

  await page.goto('/app/jobs');
  await expect(page.getByText('En direct')).toBeVisible();
  await page.getByRole('button', { name: 'Lancer une analyse' }).click();
  const resets = await page.evaluate(() => {
    const now = new Date();
    return new Intl.DateTimeFormat('fr-FR', { dateStyle: 'medium' }).format(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)));
  });
  await expect(page.getByText('Quota atteint')).toBeVisible();
  await expect(page.getByText(`Vous avez atteint la limite de votre offre : 2 analyses. Il se renouvelle le ${resets}.`)).toBeVisible();
  await expect(page.getByRole('list', { name: 'Liste des tâches' }).getByRole('listitem')).toHaveCount(2);
  await shot(page, 'quota-exceeded');
  await page.getByRole('link', { name: 'Changer d’offre' }).click();
  await expect(page).toHaveURL(/\/app\/billing$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Facturation');
  clock.lap('third scan refused: QUOTA_EXCEEDED, upgrade to billing');

  clock.report();
  expect(csp, csp.join('\n')).toEqual([]);
});
