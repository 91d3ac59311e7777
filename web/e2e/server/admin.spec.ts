import { expect, test, type Page } from '@playwright/test';
import { Clock, cspErrors, freshEmail, register, shot, signIn, verificationLink } from './helpers';

// The admin console against the real server: the admin (made by `plinth admin create` in
// global-setup.ts) reads the conversion funnel; a visitor signs up, then verifies the
// address; the funnel counts one more sign-up, then one more verified address.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

/** The funnel's count for the step called `label`. */
async function funnelCount(page: Page, label: string): Promise<number> {
  const step = page.getByRole('list', { name: 'Étapes de l’entonnoir' }).getByRole('listitem').filter({ hasText: label });
  await expect(step).toBeVisible();
  const text = (await step.locator('.row span').first().textContent()) ?? '';
  const n = Number(text.split('·')[0]!.replace(/\D/g, ''));
  expect(Number.isInteger(n), `${label}: ${text}`).toBe(true);
  return n;
}

test('the admin sees the new sign-up in the conversion funnel', async ({ browser, page, request }) => {
  const clock = new Clock('admin');
  const csp = cspErrors(page);
  await signIn(page, process.env.PLINTH_E2E_ADMIN_EMAIL!, process.env.PLINTH_E2E_ADMIN_PASSWORD!);
  await page.goto('/app/admin');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Tableau de bord');
  const signups = await funnelCount(page, 'Inscriptions');
  const verified = await funnelCount(page, 'Adresse vérifiée');
  clock.lap('admin signed in, funnel read');

  const email = freshEmail('funnel');
  await register(request, email);
  await page.reload();
  await expect.poll(() => funnelCount(page, 'Inscriptions')).toBe(signups + 1);
  expect(await funnelCount(page, 'Adresse vérifiée')).toBe(verified);
  clock.lap('a visitor signed up: one more sign-up');

  const visitor = await browser.newContext({ baseURL: process.env.PLINTH_E2E_URL });
  const v = await visitor.newPage();
  await v.goto(await verificationLink(email));
  await expect(v.getByText('Adresse confirmée')).toBeVisible();
  await visitor.close();
  await page.reload();
  await expect.poll(() => funnelCount(page, 'Adresse vérifiée')).toBe(verified + 1);
  expect(await funnelCount(page, 'Inscriptions')).toBe(signups + 1);
  await page.locator('#p-funnel').scrollIntoViewIfNeeded();
  await shot(page, 'admin-funnel');
  clock.lap('the visitor verified: one more verified address');

  clock.report();
  expect(csp, csp.join('\n')).toEqual([]);
});
