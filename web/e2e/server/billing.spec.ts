import { expect, test, type Page } from '@playwright/test';
import { Clock, cspErrors, freshEmail, register, shot, signIn } from './helpers';

// Billing against the real server and the Stripe stand-in (stripe-stand-in.ts): the user
// starts a checkout for Pro, pays on the stand-in's page and is sent back to the app;
// the stand-in then delivers the payment's events to POST /webhooks/stripe, signed with
// Stripe's scheme, and the open page shows Pro without being reloaded. A renewal then
// fails (invoice.payment_failed, the subscription past_due): the grace banner; Stripe
// gives up (the subscription unpaid): the suspended banner.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

const STRIPE = () => process.env.PLINTH_E2E_STRIPE_URL!;

/** Asks the stand-in to do something (`flush`, `payment-failed`, `unpaid`); every event must be accepted. */
async function standIn(page: Page, action: string, email?: string): Promise<string[]> {
  const url = new URL(`_control/${action}`, STRIPE());
  if (email) url.searchParams.set('email', email);
  const res = await page.request.post(url.href);
  expect(res.ok(), `${action}: ${res.status()} ${await res.text()}`).toBe(true);
  const { delivered } = (await res.json()) as { delivered: { type: string; status: number }[] };
  expect(delivered.filter((d) => d.status !== 200), JSON.stringify(delivered)).toEqual([]);
  return delivered.map((d) => d.type);
}

/** Marks the document, to tell later that it was never reloaded. */
const mark = (page: Page) => page.evaluate(() => ((window as unknown as { e2eMark: boolean }).e2eMark = true));
const stillMarked = (page: Page) => page.evaluate(() => (window as unknown as { e2eMark?: boolean }).e2eMark === true);

test('checkout on the Stripe stand-in, signed webhook, Pro shown live; then payment failure: grace, then suspension', async ({ page, request }) => {
  const clock = new Clock('billing');
  const email = freshEmail('billing');
  const csp = cspErrors(page);
  await register(request, email);
  await signIn(page, email);
  clock.lap('registered (API), signed in (form)');

  await page.goto('/app/billing');
  const current = page.getByRole('region', { name: 'Offre actuelle' });
  await expect(current).toContainText('Free');
  await expect(current).toContainText('Gratuite');
  await shot(page, 'billing-free');
  await page.getByRole('button', { name: 'Passer à Pro' }).click();
  await expect(page).toHaveURL(new RegExp(`^${STRIPE()}checkout/cs_test_\\d+$`));
  await expect(page.getByText('price_pro_monthly')).toBeVisible();
  await shot(page, 'stripe-stand-in-checkout', { axe: false });
  clock.lap('checkout started, on the stand-in’s page');

  await page.getByRole('button', { name: 'Pay' }).click();
  await expect(page).toHaveURL(/\/app\/billing\?session_id=cs_test_\d+$/);
  // Back before Stripe's webhooks: still Free, and the page says the plan is on its way.
  await expect(current).toContainText('Gratuite');
  await expect(page.getByRole('status').filter({ hasText: 'Paiement reçu. Activation de votre offre…' })).toBeVisible();
  await mark(page);
  clock.lap('paid, back on /app/billing (webhooks pending)');

  expect(await standIn(page, 'flush')).toEqual(['checkout.session.completed', 'customer.subscription.created', 'invoice.paid']);
  await expect(current.getByText('Pro', { exact: true })).toBeVisible({ timeout: 20_000 });
  await expect(current).toContainText('Active');
  await expect(page.getByRole('status').filter({ hasText: 'Votre offre Pro est active. Merci !' })).toBeVisible();
  await expect(current).toContainText(/Essai gratuit jusqu’au/);
  await expect(page.getByRole('button', { name: 'Gérer le paiement et les factures' })).toBeVisible();
  expect(await stillMarked(page), 'the page was reloaded').toBe(true);
  await shot(page, 'billing-pro-live');
  clock.lap('signed webhooks delivered, Pro shown without a reload');

  expect(await standIn(page, 'payment-failed', email)).toEqual(['invoice.payment_failed', 'customer.subscription.updated']);
  const grace = page.getByRole('status').filter({ hasText: 'Le dernier paiement a échoué. Les fonctions payantes restent actives jusqu’au' });
  await expect(grace).toBeVisible({ timeout: 20_000 });
  await expect(grace.getByRole('link', { name: 'Régler maintenant' })).toHaveAttribute('href', '/app/billing');
  await expect(current).toContainText('Paiement en échec');
  expect(await stillMarked(page), 'the page was reloaded').toBe(true);
  await shot(page, 'billing-grace');
  clock.lap('payment failed: grace banner, live');

  // The banner is on every app page: the dashboard shows it too.
  await page.goto('/app');
  await expect(grace).toBeVisible();
  await mark(page);
  expect(await standIn(page, 'unpaid', email)).toEqual(['customer.subscription.updated']);
  const suspended = page.getByRole('status').filter({ hasText: 'Votre abonnement est suspendu' });
  await expect(suspended).toBeVisible({ timeout: 20_000 });
  await expect(grace).toHaveCount(0);
  expect(await stillMarked(page), 'the page was reloaded').toBe(true);
  await shot(page, 'billing-suspended');
  await suspended.getByRole('link', { name: 'Régler maintenant' }).click();
  await expect(current).toContainText('Suspendue');
  clock.lap('subscription unpaid: suspended banner, live');

  clock.report();
  expect(csp, csp.join('\n')).toEqual([]);
});
