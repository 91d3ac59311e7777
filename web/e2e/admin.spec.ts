import { expect, test } from '@playwright/test';
import { mockApi, type Answer } from './mock-api';
import { screens } from './screens';

// The admin console against the mocked API: the range picker drives every metric, the
// charts draw (uPlot, loaded with the route), tables carry the numbers, CSV exports go
// out with the admin's token, experiment results show their confidence intervals.

const admin = { id: 'ad1', email: 'alex@plinth.example', role: 'ADMIN' };
const month = (m: number) => new Date(Date.UTC(2026, m, 1)).toISOString();
const mrrBucket = (m: number, over: Record<string, number> = {}) => ({
  start: month(m),
  end: month(m + 1),
  openingCents: 400000 + m * 10000,
  closingCents: 410000 + m * 10000,
  newCents: 20000,
  expansionCents: 8000,
  contractionCents: 3000,
  churnCents: 9000,
  reactivationCents: 2000,
  netChangeCents: 18000,
  customers: 90 + m,
  ...over,
});

export const adminAnswers: Record<string, Answer> = {
  Mrr: { data: { mrr: { currency: 'eur', buckets: [mrrBucket(7), mrrBucket(8), mrrBucket(9), mrrBucket(10)] } } },
  Churn: {
    data: {
      churn: [7, 8, 9, 10].map((m) => ({ start: month(m), end: month(m + 1), customersAtStart: 90, customersChurned: 3, logoChurnRate: 0.033, revenueChurnRate: 0.028, netRevenueRetention: 1.04 })),
    },
  },
  Funnel: {
    data: {
      conversion: { signups: 240, verified: 180, trials: 60, paid: 24, trialsPaid: 18, verifiedRate: 0.75, trialRate: 0.25, paidRate: 0.1, trialToPaidRate: 0.3 },
      activation: { signups: 240, activated: 96, rate: 0.4, withFirstJob: 130, medianSecondsToFirstJob: 5400, p90SecondsToFirstJob: 86400 * 3 },
    },
  },
  SupportFigures: { data: { supportMetrics: { opened: 42, responded: 40, firstResponseMedianSeconds: 1800, firstResponseP90Seconds: 14400, resolved: 35, resolutionMedianSeconds: 86400, backlog: 6 } } },
  Cohorts: {
    data: {
      cohorts: [
        { cohort: month(8), monthsSince: 0, size: 50, value: 50, share: 1 },
        { cohort: month(8), monthsSince: 1, size: 50, value: 30, share: 0.6 },
        { cohort: month(8), monthsSince: 2, size: 50, value: 21, share: 0.42 },
        { cohort: month(9), monthsSince: 0, size: 64, value: 64, share: 1 },
        { cohort: month(9), monthsSince: 1, size: 64, value: 40, share: 0.625 },
        { cohort: month(10), monthsSince: 0, size: 70, value: 70, share: 1 },
      ],
    },
  },
  Nps: {
    data: {
      npsSummary: {
        respondents: 50,
        promoters: 25,
        passives: 15,
        detractors: 10,
        nps: 30,
        eligible: 400,
        responseRate: 0.125,
        distribution: Array.from({ length: 11 }, (_, score) => ({ score, respondents: score >= 9 ? 12 : score >= 7 ? 7 : 2 })),
        months: [
          { start: month(8), respondents: 20, promoters: 8, passives: 6, detractors: 6, nps: 10 },
          { start: month(9), respondents: 0, promoters: 0, passives: 0, detractors: 0, nps: null },
          { start: month(10), respondents: 30, promoters: 17, passives: 9, detractors: 4, nps: 43.3333 },
        ],
        recentComments: [{ score: 10, comment: 'Les analyses vont vite.', submittedAt: month(10) }],
      },
    },
  },
  ExperimentResults: {
    data: {
      experimentResults: {
        experiment: { key: 'pricing-page', description: 'Annual toggle first', status: 'RUNNING', winner: null, audience: 'NEW_USERS', startedAt: month(8), stoppedAt: null },
        goal: 'paid',
        variants: [
          { variant: 'control', weight: 50, exposed: 500, converted: 40, rate: 0.08, difference: null, ciLow: null, ciHigh: null, zScore: null, pValue: null },
          { variant: 'annual-first', weight: 50, exposed: 510, converted: 61, rate: 0.1196, difference: 0.0396, ciLow: 0.0027, ciHigh: 0.0771, zScore: 2.1, pValue: 0.036 },
        ],
      },
    },
  },
};

test('admin dashboard: the range drives every metric; charts, funnel, cohorts, NPS; CSV export with the token', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, user: admin, answers: adminAnswers });
  const csv: { url: string; auth: string | null }[] = [];
  await page.route('**/admin/metrics/**', (r) => {
    csv.push({ url: new URL(r.request().url()).pathname + new URL(r.request().url()).search, auth: r.request().headers()['authorization'] ?? null });
    return r.fulfill({ status: 200, headers: { 'Content-Type': 'text/csv' }, body: 'start,new\n2026-08-01,200\n' });
  });
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/admin');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Dashboard');

  // Charts are drawn into canvases (uPlot, its own chunk).
  const mrr = page.getByRole('region', { name: 'MRR by movement' });
  await expect(mrr.getByRole('img', { name: /Stacked bars of the MRR movements/ }).locator('canvas')).toHaveCount(1);
  await mrr.getByText('Show the data').click();
  await expect(mrr.getByRole('row').filter({ hasText: '1 Aug 2026' })).toContainText('−€90');
  await expect(page.getByRole('region', { name: /Churn and net revenue retention/ }).locator('canvas')).toHaveCount(1);

  const funnel = page.getByRole('list', { name: 'Funnel steps' });
  await expect(funnel.getByRole('listitem').filter({ hasText: 'Paying' })).toContainText('24');
  await expect(funnel.getByRole('listitem').filter({ hasText: 'Paying' })).toContainText('10%');
  await expect(page.getByRole('region', { name: 'Activation' })).toContainText('1 h 30 min');
  await expect(page.getByRole('region', { name: 'Support' })).toContainText('30 min');

  const heat = page.getByRole('region', { name: 'Cohort retention' }).getByRole('table');
  await expect(heat.getByRole('row').filter({ hasText: 'Sept 2026' })).toContainText('60%');
  await expect(page.getByRole('region', { name: 'NPS' })).toContainText('30');
  await expect(page.getByRole('listitem', { name: 'Score 10: 12 respondents' })).toBeVisible();
  // NPS over time: the summary's own months, one request for the whole range.
  const nps = page.getByRole('region', { name: 'NPS' });
  await expect(nps.getByRole('img', { name: 'Line of the NPS per month' }).locator('canvas')).toHaveCount(1);
  await nps.getByText('Show the data').click();
  await expect(nps.getByRole('row').filter({ hasText: 'November 2026' })).toContainText('43');
  await expect(nps.getByRole('row').filter({ hasText: 'November 2026' })).toContainText('17 / 9 / 4');
  await expect(nps.getByRole('row').filter({ hasText: 'October 2026' })).toContainText('—');
  expect(rec.graphql.filter((g) => g.operationName === 'Nps')).toHaveLength(1);

  // The preset and the dates drive every query.
  await page.getByRole('button', { name: '30 days' }).click();
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'Mrr').at(-1)?.variables.interval).toBe('DAY');
  await page.getByLabel('From').fill('2026-09-01');
  await page.getByLabel('To').fill('2026-09-30');
  await page.getByLabel('Group by').selectOption('WEEK');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'Mrr').at(-1)?.variables).toEqual({ from: '2026-09-01T00:00:00Z', to: '2026-10-01T00:00:00Z', interval: 'WEEK' });
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'Funnel').at(-1)?.variables).toEqual({ from: '2026-09-01T00:00:00Z', to: '2026-10-01T00:00:00Z', withinDays: 7 });
  await page.getByLabel('From').fill('2026-10-05');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByRole('alert')).toHaveText('The start date must come before the end date.');

  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Export CSV: MRR by movement' }).click();
  expect((await download).suggestedFilename()).toBe('plinth-mrr-2026-09-01.csv');
  expect(csv[0]).toEqual({ url: '/admin/metrics/mrr.csv?from=2026-09-01T00%3A00%3A00Z&to=2026-10-01T00%3A00%3A00Z&interval=WEEK', auth: 'Bearer token-1' });
});

test('admin: experiment results with confidence intervals; a refused export says why', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, user: admin, answers: adminAnswers });
  await page.route('**/admin/metrics/**', (r) => r.fulfill({ status: 403, json: { error: { code: 'FORBIDDEN', message: 'admins only' } } }));
  await page.goto('/app/admin');
  const exp = page.getByRole('region', { name: 'Résultats d’expérience' });
  await exp.getByLabel('Clé de l’expérience').fill('pricing-page');
  await exp.getByLabel('Objectif').selectOption('paid');
  await exp.getByRole('button', { name: 'Afficher' }).click();
  await expect(exp.getByRole('row').filter({ hasText: 'annual-first' })).toContainText('+4,0 pts [+0,3 pts ; +7,7 pts]');
  await expect(exp.getByRole('img', { name: /annual-first : écart \+4,0 pts/ })).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'ExperimentResults')?.variables).toEqual({ key: 'pricing-page', goal: 'paid' });
  await exp.getByRole('button', { name: /Exporter en CSV/ }).click();
  await expect(exp.getByRole('alert')).toContainText('Accès refusé');
});

test('support staff get no admin console', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, user: { ...admin, role: 'SUPPORT' }, answers: adminAnswers });
  await page.goto('/app/admin');
  await expect(page.getByRole('alert')).toContainText('Accès refusé');
  expect(rec.graphql.filter((g) => g.operationName === 'Mrr')).toHaveLength(0);
});

screens(
  [
    { path: '/app/admin', name: 'app-admin', signedIn: true, h1: /Tableau de bord/, user: admin, ready: async (p) => void (await p.locator('canvas').first().waitFor()) },
    { path: '/app/admin', name: 'app-admin-en', signedIn: true, h1: /Dashboard/, user: admin, locale: 'en', ready: async (p) => void (await p.locator('canvas').first().waitFor()) },
  ],
  adminAnswers,
);
