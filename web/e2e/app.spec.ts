import { expect, test } from '@playwright/test';
import { mockApi, pushNext, sampleJob } from './mock-api';
import { screens, type Shot } from './screens';

// The app shell and the account pages against a mocked API (see mock-api.ts): the
// journeys and the error states people see. Screenshots go to e2e/screenshots/.
test('signed out, /app sends to the sign-in page, which signs in and comes back', async ({ page }) => {
  const rec = await mockApi(page);
  await page.goto('/app/usage');
  await expect(page).toHaveURL(/\/login\?next=%2Fapp%2Fusage$/);
  await expect(page.getByText('Votre session a expiré')).toHaveCount(0);
  await page.getByLabel('Adresse e-mail').fill('lea@example.com');
  await page.getByLabel('Mot de passe').fill('correct horse battery');
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await expect(page).toHaveURL(/\/app\/usage$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Consommation' })).toBeVisible();
  // Every cookie call carries the CSRF header; GraphQL carries the in-memory token.
  expect(rec.auth.map((a) => a.path)).toEqual(['/auth/refresh', '/auth/login']);
  expect(rec.auth.every((a) => a.csrf === '1')).toBe(true);
  expect(rec.graphql.find((g) => g.operationName === 'Usage')?.authorization).toBe('Bearer token-1');
  // Nothing about the session is written to storage that scripts can read.
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + document.cookie);
  expect(stored).not.toContain('token-1');
});

test('usage shows the 80 % and 100 % states with reset dates and an upgrade action', async ({ page }) => {
  await mockApi(page, { signedIn: true });
  await page.goto('/app/usage');
  const scans = page.getByRole('listitem').filter({ hasText: 'Analyses' });
  await expect(scans.getByText('Limite atteinte')).toBeVisible();
  await expect(scans.getByText('Renouvellement le 1 déc. 2026')).toBeVisible();
  await expect(scans.getByRole('link', { name: 'Changer d’offre' })).toHaveAttribute('href', '/app/billing');
  await expect(page.getByRole('listitem').filter({ hasText: 'Préparations' }).getByText('Plus de 80 % utilisés.')).toBeVisible();
  await expect(page.getByRole('progressbar', { name: 'analyses' })).toHaveAttribute('aria-valuenow', '100');
});

test('jobs: the socket carries the token and progress arrives live; QUOTA_EXCEEDED says what to do', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      CreateJob: {
        data: null,
        errors: [{ message: 'quota', extensions: { code: 'QUOTA_EXCEEDED', metric: 'SCANS', limit: 20, resetsAt: '2026-12-01T00:00:00Z' } }],
      },
    },
  });
  await page.goto('/app/jobs');
  await expect(page.getByRole('progressbar', { name: /Analyse/ })).toHaveAttribute('aria-valuenow', '25');
  await expect.poll(() => [...rec.subs.values()]).toContain('JobUpdated');
  expect(rec.wsInit[0]).toEqual({ authorization: 'Bearer token-1' });
  pushNext(rec, 'JobUpdated', { jobUpdated: sampleJob({ progress: 0.8, message: 'almost there', updatedAt: new Date().toISOString() }) });
  await expect(page.getByRole('progressbar', { name: /Analyse/ })).toHaveAttribute('aria-valuenow', '80');
  await expect(page.getByText('almost there')).toBeVisible();
  pushNext(rec, 'JobUpdated', { jobUpdated: sampleJob({ status: 'SUCCEEDED', progress: 1, message: 'done', updatedAt: new Date(Date.now() + 1000).toISOString() }) });
  await expect(page.getByText('Terminée')).toBeVisible();

  await page.getByRole('button', { name: 'Lancer une analyse' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('Quota atteint');
  await expect(alert).toContainText('20 analyses');
  await expect(alert).toContainText('1 déc. 2026');
  await expect(alert.getByRole('link', { name: 'Changer d’offre' })).toHaveAttribute('href', '/app/billing');
});

test('jobs: cancelling a running job asks the server and shows the request until the job stops', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers: { CancelJob: (v) => ({ data: { cancelJob: sampleJob({ id: v.id, cancelRequested: true, updatedAt: new Date().toISOString() }) } }) } });
  await page.goto('/app/jobs');
  const job = page.getByRole('list', { name: 'Liste des tâches' }).getByRole('listitem');
  await job.getByRole('button', { name: 'Annuler' }).click();
  await expect(job.getByText('(annulation demandée)')).toBeVisible();
  await expect(job.getByRole('button', { name: 'Annuler' })).toHaveCount(0);
  expect(rec.graphql.find((g) => g.operationName === 'CancelJob')?.variables).toEqual({ id: 'j1' });
  await expect.poll(() => [...rec.subs.values()]).toContain('JobUpdated');
  pushNext(rec, 'JobUpdated', { jobUpdated: sampleJob({ status: 'CANCELED', cancelRequested: true, finishedAt: new Date().toISOString(), updatedAt: new Date(Date.now() + 1000).toISOString() }) });
  await expect(job.getByText('Annulée')).toBeVisible();
  await expect(job.getByText('(annulation demandée)')).toHaveCount(0);
});

test('an expired token is refreshed once and the request retried; a second refusal signs out', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      Dashboard: (_v, n) =>
        n === 1
          ? { data: null, errors: [{ message: 'expired', extensions: { code: 'UNAUTHENTICATED' } }] }
          : // Photos: not a fresh account, so the overview stays (a fresh one opens the wizard).
            { data: { dashboard: { drafts: { draft: 0, ready: 0, published: 0, archived: 0, total: 7 }, jobs: { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 }, photoCount: 3, storageBytes: 0, connectedAccounts: 0, recentActivity: [] } } },
      Drafts: { data: null, errors: [{ message: 'revoked', extensions: { code: 'UNAUTHENTICATED' } }] },
    },
  });
  await page.goto('/app');
  await expect(page.getByRole('listitem').filter({ hasText: 'Brouillons' }).getByText('7')).toBeVisible();
  const dash = rec.graphql.filter((g) => g.operationName === 'Dashboard');
  expect(dash.map((d) => d.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);

  await page.getByRole('link', { name: 'Brouillons' }).click();
  await expect(page).toHaveURL(/\/login\?next=%2Fapp%2Fdrafts&reason=expired/);
  await expect(page.getByText('Votre session a expiré')).toBeVisible();
});

test('the bell counts notifications arriving live', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true });
  await page.goto('/app');
  await expect(page.getByRole('link', { name: 'Notifications, aucune non lue' })).toBeVisible();
  await expect.poll(() => [...rec.subs.values()]).toContain('NotificationAdded');
  pushNext(rec, 'NotificationAdded', {
    notificationAdded: { id: 'n1', kind: 'quota_80', title: 'Quota à 80 %', body: 'Vous avez utilisé 16 analyses sur 20.', readAt: null, createdAt: new Date().toISOString() },
  });
  await expect(page.getByRole('link', { name: 'Notifications, 1 non lue' })).toBeVisible();
  await page.getByRole('link', { name: 'Notifications, 1 non lue' }).click();
  await expect(page.getByRole('heading', { name: 'Quota à 80 %' })).toBeVisible();
});

test('grace and suspension banners say what to do', async ({ page }) => {
  await mockApi(page, { signedIn: true, answers: { BillingState: { data: { billing: { plan: 'PRO', state: 'GRACE', graceUntil: '2026-12-05T00:00:00Z' } } } } });
  await page.goto('/app');
  await expect(page.getByText('Le dernier paiement a échoué')).toContainText('5 déc. 2026');
  await expect(page.getByRole('link', { name: 'Régler maintenant' })).toHaveAttribute('href', '/app/billing');
});

test('signup pre-selects the plan chosen on the pricing page', async ({ page }) => {
  await mockApi(page);
  await page.goto('/en/pricing');
  await page.getByRole('link', { name: 'Choose Pro' }).first().click();
  await expect(page).toHaveURL(/\/en\/signup\?plan=pro&interval=month/);
  await expect(page.getByRole('radio', { name: 'Pro' })).toBeChecked();
  await expect(page.getByRole('radio', { name: 'monthly' })).toBeChecked();
});

const SHOTS: Shot[] = [
  { path: '/login', name: 'login', signedIn: false, h1: /Se connecter/ },
  { path: '/en/login', name: 'login-en', signedIn: false, h1: /Sign in/ },
  { path: '/signup?plan=pro&interval=year', name: 'signup', signedIn: false, h1: /Créer un compte/ },
  { path: '/en/signup', name: 'signup-en', signedIn: false, h1: /Create an account/ },
  { path: '/forgot-password', name: 'forgot-password', signedIn: false, h1: /Mot de passe oublié/ },
  { path: '/en/forgot-password', name: 'forgot-password-en', signedIn: false, h1: /Forgot password/ },
  { path: '/reset-password?token=abc', name: 'reset-password', signedIn: false, h1: /Nouveau mot de passe/ },
  { path: '/en/reset-password', name: 'reset-password-no-token-en', signedIn: false, h1: /New password/ },
  { path: '/verify-email?token=abc', name: 'verify-email', signedIn: false, h1: /Confirmation/ },
  { path: '/en/verify-email?token=abc', name: 'verify-email-en', signedIn: false, h1: /Address confirmation/ },
  { path: '/app', name: 'app-overview', signedIn: true, h1: /Vue d’ensemble/ },
  { path: '/app', name: 'app-overview-en', signedIn: true, h1: /Overview/, locale: 'en' },
  { path: '/app/drafts', name: 'app-drafts', signedIn: true, h1: /Brouillons/ },
  { path: '/app/drafts', name: 'app-drafts-en', signedIn: true, h1: /Drafts/, locale: 'en' },
  { path: '/app/jobs', name: 'app-jobs', signedIn: true, h1: /Tâches/ },
  { path: '/app/jobs', name: 'app-jobs-en', signedIn: true, h1: /Jobs/, locale: 'en' },
  { path: '/app/usage', name: 'app-usage', signedIn: true, h1: /Consommation/ },
  { path: '/app/usage', name: 'app-usage-en', signedIn: true, h1: /Usage/, locale: 'en' },
];

screens(SHOTS, { VerifyEmail: { data: { verifyEmail: true } } });
