import { expect, test, type Page } from '@playwright/test';
import { activityEntries, mockApi, type Answer } from './mock-api';
import { screens } from './screens';
import { connection } from './support-fixtures';

// The account's records against the mocked API: invoices and their Stripe documents,
// activity paging, the notifications page; their screens and the API tokens' and billing's.

const note = (id: string, title: string, readAt: string | null) => ({ id, kind: 'quota_80', title, body: 'Vous avez utilisé 16 analyses sur 20 ce mois-ci.', readAt, createdAt: '2026-11-20T09:00:00Z' });
const notes = [note('n1', 'Quota à 80 %', null), note('n2', 'Brouillon prêt', null), note('n3', 'Bienvenue sur Plinth', '2026-11-19T09:00:00Z')];
const notifications: Answer = (v) => ({ data: { notifications: v.unreadOnly ? notes.filter((n) => !n.readAt) : notes } });

test('invoices: each opens its Stripe page or PDF in a new tab; an open one says what is due', async ({ page }) => {
  await mockApi(page, { signedIn: true });
  await page.context().route(/^https:\/\/(invoice|pay)\.stripe\.com\//, (r) => r.fulfill({ contentType: 'text/html', body: '<title>Stripe</title>' }));
  await page.goto('/app/invoices');
  const open = page.getByRole('row').filter({ hasText: 'PL-0002' });
  await expect(open).toContainText('À payer');
  await expect(open).toContainText('58,80 € à payer');
  const view = open.getByRole('link', { name: 'Voir PL-0002' });
  await expect(view).toHaveAttribute('target', '_blank');
  await expect(view).toHaveAttribute('rel', /noopener/);
  const [hosted] = await Promise.all([page.waitForEvent('popup'), view.click()]);
  await expect(hosted).toHaveURL('https://invoice.stripe.com/i/acct_test/in2');
  await hosted.close();
  // The paid one has no hosted page, only its PDF.
  const paid = page.getByRole('row').filter({ hasText: 'PL-0001' });
  await expect(paid.getByRole('link', { name: /Voir/ })).toHaveCount(0);
  const [pdf] = await Promise.all([page.waitForEvent('popup'), paid.getByRole('link', { name: 'PDF PL-0001' }).click()]);
  await expect(pdf).toHaveURL('https://pay.stripe.com/invoice/acct_test/in1/pdf');
});

test('activity: the first 50 entries, then the rest after the last cursor', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true });
  await page.goto('/app/activity');
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows).toHaveCount(51);
  await expect(rows.nth(1)).toContainText('Brouillon créé');
  await page.getByRole('button', { name: 'Afficher plus' }).click();
  await expect(rows).toHaveCount(activityEntries.length + 1);
  await expect(rows.last()).toContainText('Brouillon créé');
  await expect(page.getByRole('button', { name: 'Afficher plus' })).toHaveCount(0);
  expect(rec.graphql.filter((g) => g.operationName === 'Activity').map((g) => g.variables)).toEqual([{ first: 50, after: null }, { first: 50, after: 'c49' }]);
});

test('notifications: the page lists them, unread first marked, and marks them all read', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers: { Notifications: notifications, MarkNotificationsRead: { data: { markNotificationsRead: 2 } } } });
  await page.goto('/app/notifications');
  const list = page.getByRole('list', { name: 'Notifications' });
  await expect(list.getByRole('listitem')).toHaveCount(3);
  await expect(list.getByText('Non lue')).toHaveCount(2);
  await expect(page.getByRole('link', { name: 'Notifications, 2 non lues' })).toBeVisible();
  await page.getByRole('button', { name: 'Tout marquer comme lu' }).click();
  await expect(list.getByText('Non lue')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Tout marquer comme lu' })).toBeDisabled();
  await expect(page.getByRole('link', { name: 'Notifications, aucune non lue' })).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'MarkNotificationsRead')?.variables).toEqual({});
});

// Screens show a first page of a few entries (the paging test reads 53).
const someActivity: Answer = { data: { activity: connection(activityEntries.slice(0, 6), true) } };
const tableReady = async (p: Page) => void (await p.getByRole('table').waitFor());
screens([
  { path: '/app/invoices', name: 'app-invoices', signedIn: true, h1: /Factures/, ready: tableReady },
  { path: '/app/invoices', name: 'app-invoices-en', signedIn: true, h1: /Invoices/, locale: 'en', ready: tableReady },
  { path: '/app/activity', name: 'app-activity', signedIn: true, h1: /Activité/, answers: { Activity: someActivity }, ready: tableReady },
  { path: '/app/activity', name: 'app-activity-en', signedIn: true, h1: /Activity/, locale: 'en', answers: { Activity: someActivity }, ready: tableReady },
  { path: '/app/notifications', name: 'app-notifications', signedIn: true, h1: /Notifications/, answers: { Notifications: notifications } },
  { path: '/app/notifications', name: 'app-notifications-en', signedIn: true, h1: /Notifications/, locale: 'en', answers: { Notifications: notifications } },
  { path: '/app/tokens', name: 'app-tokens', signedIn: true, h1: /Jetons d’API/ },
  { path: '/app/tokens', name: 'app-tokens-en', signedIn: true, h1: /API tokens/, locale: 'en' },
  { path: '/app/billing', name: 'app-billing', signedIn: true, h1: /Facturation/ },
  { path: '/app/billing', name: 'app-billing-en', signedIn: true, h1: /Billing/, locale: 'en' },
]);
