import { expect, test } from '@playwright/test';
import { defaults, emptyDashboard, mockApi, pushNext, type Answer } from './mock-api';
import { screens } from './screens';

// The onboarding wizard against the mocked API: sign up → confirm the address → connect
// a marketplace → upload a photo (checked, presigned, with progress) → run the scan and
// watch it live → the prepared draft; resuming at the right step, skipping.

const now = '2026-11-20T10:00:00Z';
const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082', 'hex');
const job = (over: Record<string, unknown> = {}) => ({ id: 'j1', kind: 'SCAN', status: 'QUEUED', progress: 0, message: null, draftId: 'd1', error: null, updatedAt: now, ...over });
const draft = (photos: unknown[] = [], over: Record<string, unknown> = {}) => ({ id: 'd1', title: 'Veste en laine', description: '', brand: null, category: null, status: 'DRAFT', photos, ...over });
const photo = { id: 'p1', url: '/storage/p1.png', width: 1, height: 1 };

function world(start: { verified?: boolean; connected?: boolean; photos?: boolean; jobs?: unknown[] } = {}) {
  const w = { verified: start.verified ?? false, connected: start.connected ?? false, photos: start.photos ?? false, jobs: start.jobs ?? [] };
  const answers: Record<string, Answer> = {
    OnboardingState: () => ({
      data: {
        me: { id: 'u1', email: 'lea@example.com', emailVerified: w.verified },
        marketplaceAccounts: w.connected ? [{ id: 'm1', platform: 'VINTED', displayName: 'Ma boutique', status: 'CONNECTED' }] : [],
        dashboard: { photoCount: w.photos ? 1 : 0 },
        drafts: { nodes: w.photos ? [draft([photo])] : [] },
        jobs: { nodes: w.jobs },
      },
    }),
    Dashboard: { data: { dashboard: emptyDashboard } },
    RequestEmailVerification: { data: { requestEmailVerification: true } },
    ConnectMarketplace: { data: { connectMarketplaceAccount: { id: 'm1', platform: 'VINTED', displayName: 'Ma boutique', status: 'CONNECTED' } } },
    StartFirstDraft: (v) => ({ data: { createDraft: draft([], { title: (v.input as { title: string }).title }) } }),
    ReservePhoto: { data: { createUpload: { photo: { id: 'p1' }, uploadUrl: '/storage/u1/p1?sig=abc', method: 'PUT', headers: [{ name: 'Content-Type', value: 'image/png' }] } } },
    ConfirmPhoto: { data: { confirmUpload: photo } },
    StartOnboardingJob: (v) => ({ data: { createJob: job({ id: (v.input as { kind: string }).kind === 'SCAN' ? 'j1' : 'j2', kind: (v.input as { kind: string }).kind }) } }),
    PreparedDraft: { data: { draft: draft([photo], { description: '1 photo(s); the largest is 1×1 px.' }) } },
  };
  return { w, answers };
}

test('a new user is walked from sign-up to the prepared draft', async ({ page }) => {
  const { w, answers } = world();
  const rec = await mockApi(page, { answers });
  const puts: string[] = [];
  await page.route('**/storage/u1/**', (r) => {
    puts.push(r.request().method());
    return r.fulfill({ status: 200 });
  });
  await page.goto('/signup');
  await page.getByLabel('Adresse e-mail').fill('lea@example.com');
  await page.getByLabel('Mot de passe').fill('a long enough password');
  await page.getByRole('checkbox').check();
  await page.getByRole('button', { name: 'Créer mon compte' }).click();
  // Sign-up lands on the wizard.
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('1. Confirmer l’adresse');
  await expect(page.getByRole('button', { name: /Confirmer l’adresse/ })).toHaveAttribute('aria-current', 'step');
  await page.getByRole('button', { name: 'Renvoyer le lien' }).click();
  await expect(page.getByText('Un nouveau lien est parti.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Continuer' })).toBeDisabled();
  w.verified = true;
  await page.getByRole('button', { name: 'J’ai cliqué sur le lien' }).click();
  await expect(page.getByText('Votre adresse est confirmée.')).toBeVisible();
  await page.getByRole('button', { name: 'Continuer' }).click();

  await expect(page.getByRole('heading', { level: 2 })).toHaveText('2. Connecter une plateforme');
  await expect(page.getByRole('heading', { level: 2 })).toBeFocused();
  await page.getByLabel('Plateforme', { exact: true }).selectOption('VINTED');
  await page.getByLabel('Nom du compte').fill('Ma boutique');
  await page.getByLabel('Identifiant sur la plateforme').fill('lea_vend');
  await page.getByLabel('Mot de passe ou jeton d’accès').fill('s3cret');
  await page.getByRole('button', { name: 'Connecter le compte' }).click();
  await expect(page.getByText('Ma boutique (Vinted) est connecté.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'ConnectMarketplace')?.variables).toEqual({
    input: { platform: 'VINTED', displayName: 'Ma boutique', credentials: { login: 'lea_vend', secret: 's3cret' } },
  });
  await page.getByRole('button', { name: 'Continuer' }).click();

  await expect(page.getByRole('heading', { level: 2 })).toHaveText('3. Ajouter des photos');
  await page.getByLabel('Nom de l’article').fill('Veste en laine');
  const picker = page.getByLabel('Choisir des photos');
  await picker.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(page.getByRole('listitem').filter({ hasText: 'notes.txt' })).toContainText('Type de fichier non accepté.');
  await picker.setInputFiles({ name: 'veste.png', mimeType: 'image/png', buffer: png });
  await expect(page.getByRole('listitem').filter({ hasText: 'veste.png' })).toContainText('Envoyé');
  await expect(page.getByRole('list', { name: 'Photos de l’article' }).getByRole('img', { name: 'Photo 1' })).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'StartFirstDraft')?.variables).toEqual({ input: { title: 'Veste en laine' } });
  expect(rec.graphql.find((g) => g.operationName === 'ReservePhoto')?.variables).toEqual({ contentType: 'image/png', byteSize: png.length, draftId: 'd1' });
  expect(rec.graphql.find((g) => g.operationName === 'ConfirmPhoto')?.variables).toEqual({ photoId: 'p1', draftId: 'd1' });
  expect(puts).toEqual(['PUT']);
  await page.getByRole('button', { name: 'Continuer' }).click();

  await expect(page.getByRole('heading', { level: 2 })).toHaveText('4. Analyser les photos');
  await page.getByRole('button', { name: 'Lancer l’analyse' }).click();
  expect(rec.graphql.find((g) => g.operationName === 'StartOnboardingJob')?.variables).toEqual({ input: { kind: 'SCAN', draftId: 'd1' } });
  await expect.poll(() => [...rec.subs.values()]).toContain('FollowOnboardingJob');
  const log = (m: string) => ({ level: 'info', message: m, createdAt: now });
  pushNext(rec, 'FollowOnboardingJob', { jobUpdated: { ...job({ status: 'RUNNING', progress: 0.5, message: 'scanned 1 of 2', updatedAt: '2026-11-20T10:00:05Z' }), logs: [log('claimed by worker w1'), log('scanned 1 of 2')] } });
  await expect(page.getByRole('progressbar', { name: /Analyse des photos/ })).toHaveAttribute('aria-valuenow', '50');
  await expect(page.getByRole('list', { name: 'Journal en direct' })).toContainText('claimed by worker w1');
  // The server's timestamps carry as many fraction digits as they need: 09.95 is after 09.9.
  pushNext(rec, 'FollowOnboardingJob', { jobUpdated: { ...job({ status: 'RUNNING', progress: 1, message: 'scanned 2 of 2', updatedAt: '2026-11-20T10:00:09.9Z' }), logs: [log('scanned 2 of 2')] } });
  await expect(page.getByRole('progressbar', { name: /Analyse des photos/ })).toHaveAttribute('aria-valuenow', '100');
  // The update did not re-open the subscription (an event between the two would be lost).
  expect(rec.subscribed.filter((n) => n === 'FollowOnboardingJob')).toHaveLength(1);
  const succeeded = { jobUpdated: { ...job({ status: 'SUCCEEDED', progress: 1, message: 'scanned 2 of 2', updatedAt: '2026-11-20T10:00:09.95Z' }), logs: [log('scanned 2 of 2')] } };
  pushNext(rec, 'FollowOnboardingJob', succeeded);
  // The same state twice (the server's first answer, then the event) starts one preparation.
  pushNext(rec, 'FollowOnboardingJob', succeeded);
  // The scan done, the draft is prepared the same way.
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'StartOnboardingJob').at(-1)?.variables).toEqual({ input: { kind: 'PREPARE', draftId: 'd1' } });
  await expect(page.getByRole('progressbar', { name: /Préparation du brouillon/ })).toBeVisible();
  await expect.poll(() => [...rec.subs.values()].filter((n) => n === 'FollowOnboardingJob').length).toBe(1);
  expect(rec.graphql.filter((g) => g.operationName === 'StartOnboardingJob')).toHaveLength(2);
  expect(rec.subscribed.filter((n) => n === 'FollowOnboardingJob')).toHaveLength(2);
  pushNext(rec, 'FollowOnboardingJob', { jobUpdated: { ...job({ id: 'j2', kind: 'PREPARE', status: 'SUCCEEDED', progress: 1, message: 'writing the description', updatedAt: '2026-11-20T10:00:12Z' }), logs: [] } });
  await expect(page.getByText('Votre brouillon est prêt.')).toBeVisible();
  w.photos = true;
  w.jobs = [job({ id: 'j2', kind: 'PREPARE', status: 'SUCCEEDED', progress: 1 }), job({ status: 'SUCCEEDED', progress: 1 })];
  await page.getByRole('button', { name: 'Voir le brouillon' }).click();
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('5. Votre brouillon');
  await expect(page.getByRole('article', { name: 'Veste en laine' })).toContainText('1 photo(s); the largest is 1×1 px.');
  await expect(page.getByRole('link', { name: 'Ouvrir le brouillon' })).toHaveAttribute('href', '/app/drafts/d1');
});

test('a returning user resumes at the first open step; a skipped step stays skipped', async ({ page }) => {
  const { w, answers } = world({ verified: true, connected: true, photos: true });
  await mockApi(page, { signedIn: true, answers });
  await page.goto('/app/onboarding');
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('4. Analyser les photos');
  await expect(page.getByRole('button', { name: /Ajouter des photos \(fait\)/ })).toBeVisible();

  w.verified = false;
  w.connected = false;
  await page.reload();
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('1. Confirmer l’adresse');
  await page.getByRole('button', { name: 'Passer cette étape' }).click();
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('2. Connecter une plateforme');
  await page.reload();
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('2. Connecter une plateforme');
  await expect(page.getByRole('button', { name: /Confirmer l’adresse \(passée\)/ })).toBeVisible();
  await page.getByRole('button', { name: /Confirmer l’adresse/ }).click();
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('1. Confirmer l’adresse');
});

test('a new account’s overview opens the wizard until the tour is skipped; "finish later" keeps the overview for this tab', async ({ page }) => {
  const { answers } = world();
  await mockApi(page, { signedIn: true, answers });
  await page.goto('/app');
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  await expect(page.getByRole('heading', { level: 2 })).toHaveText('1. Confirmer l’adresse');
  await page.getByRole('link', { name: 'Terminer plus tard' }).click();
  await expect(page).toHaveURL(/\/app$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Vue d’ensemble');
  // The overview still offers the wizard, which resumes where it was.
  await page.getByRole('main').getByRole('link', { name: 'Bien démarrer' }).click();
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  await page.getByRole('button', { name: 'Passer la prise en main' }).click();
  await expect(page).toHaveURL(/\/app$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Vue d’ensemble');
  // Skipped: a new tab (no "later" in it) opens on the overview too.
  const other = await page.context().newPage();
  await mockApi(other, { signedIn: true, answers });
  await other.goto('/app');
  await expect(other.getByRole('heading', { level: 1 })).toHaveText('Vue d’ensemble');
  await expect(other).toHaveURL(/\/app$/);
});

test('a returning user with data, or whose tour is finished, stays on the overview', async ({ page }) => {
  const { answers } = world({ verified: true, connected: true, photos: true, jobs: [job({ id: 'j2', kind: 'PREPARE', status: 'SUCCEEDED', progress: 1 }), job({ status: 'SUCCEEDED', progress: 1 })] });
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await mockApi(page, { signedIn: true, answers: { ...answers, Dashboard: defaults.Dashboard! } });
  await page.goto('/app');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Overview');
  await expect(page).toHaveURL(/\/app$/);
  // Every step done: the wizard says so and offers no skipping.
  await page.goto('/app/onboarding');
  await expect(page.getByText('Tour finished: your workspace is ready.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Skip the tour' })).toHaveCount(0);
  expect(await page.evaluate(() => localStorage.getItem('plinth.onboarding.u1.tour'))).toBe('done');
});

test('a scan already running is followed, not started again', async ({ page }) => {
  const { answers } = world({ verified: true, connected: true, photos: true, jobs: [job({ status: 'RUNNING', progress: 0.3 })] });
  const rec = await mockApi(page, { signedIn: true, answers });
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/onboarding');
  await expect(page.getByRole('progressbar', { name: /Scanning the photos/ })).toHaveAttribute('aria-valuenow', '30');
  await expect(page.getByRole('button', { name: 'Run the scan' })).toHaveCount(0);
  expect(rec.graphql.filter((g) => g.operationName === 'StartOnboardingJob')).toHaveLength(0);
});

const shotWorld = world({ verified: true, connected: true });
screens(
  [
    { path: '/app/onboarding', name: 'app-onboarding', signedIn: true, h1: /Bien démarrer/ },
    { path: '/app/onboarding', name: 'app-onboarding-en', signedIn: true, h1: /Get started/, locale: 'en' },
  ],
  shotWorld.answers,
);
