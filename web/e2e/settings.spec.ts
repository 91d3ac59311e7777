import { expect, test } from '@playwright/test';
import { mockApi, type Answer } from './mock-api';
import { screens } from './screens';

// Settings (e-mail language, preferences, address, password, data export, deletion) and
// the NPS prompt, against the mocked API.

const settings: Record<string, Answer> = {
  Settings: { data: { me: { id: 'u1', email: 'lea@example.com', locale: 'FR', emailVerified: true, deletionScheduledAt: null }, emailPreferences: { onboarding: true, productNews: false } } },
  DataExports: (_v, n) => ({
    data: {
      dataExports:
        n === 1
          ? []
          : [{ id: 'x1', status: 'READY', createdAt: '2026-11-20T10:00:00Z', completedAt: '2026-11-20T10:01:00Z', expiresAt: '2026-11-27T10:00:00Z', byteSize: 1048576, downloadUrl: '/storage/export.zip?sig=1' }],
    },
  }),
};

test('settings: e-mail language, preferences, address and password', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...settings,
      UpdateProfile: (v) => ({ data: { updateProfile: { id: 'u1', email: 'lea@example.com', locale: (v.input as { locale?: string }).locale ?? 'FR' } } }),
      UpdateEmailPreferences: (v) => ({ data: { updateEmailPreferences: v.input } }),
      ChangePassword: (_v, n) =>
        n === 1 ? { data: null, errors: [{ message: 'currentPassword: wrong password', extensions: { code: 'BAD_USER_INPUT', field: 'currentPassword' } }] } : { data: { changePassword: true } },
    },
  });
  await page.goto('/app/settings');
  const lang = page.getByRole('region', { name: 'Langue des e-mails' });
  await expect(lang.getByRole('radio', { name: 'Français' })).toBeChecked();
  await lang.getByRole('radio', { name: 'English' }).check();
  await lang.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(lang.getByText('Enregistré.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'UpdateProfile')?.variables).toEqual({ input: { locale: 'EN' } });

  const prefs = page.getByRole('region', { name: 'E-mails facultatifs' });
  await prefs.getByRole('checkbox', { name: 'Nouveautés du produit' }).check();
  await prefs.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(prefs.getByText('Enregistré.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'UpdateEmailPreferences')?.variables).toEqual({ input: { onboarding: true, productNews: true } });

  const email = page.getByRole('region', { name: 'Adresse e-mail' });
  await email.getByLabel('Nouvelle adresse').fill('lea@nouveau.example');
  await email.getByLabel('Mot de passe actuel').fill('pw');
  await email.getByRole('button', { name: 'Changer d’adresse' }).click();
  await expect(email.getByText('Lien envoyé à lea@nouveau.example.')).toBeVisible();
  expect(rec.graphql.filter((g) => g.operationName === 'UpdateProfile').at(-1)?.variables).toEqual({ input: { email: 'lea@nouveau.example', currentPassword: 'pw' } });

  const pw = page.getByRole('region', { name: 'Mot de passe' });
  await pw.getByLabel('Mot de passe actuel').fill('wrong');
  await pw.getByLabel('Nouveau mot de passe', { exact: true }).fill('a brand new one');
  await pw.getByLabel('Confirmez le nouveau mot de passe').fill('a brand new two');
  await pw.getByRole('button', { name: 'Changer le mot de passe' }).click();
  await expect(pw.getByText('Les deux mots de passe ne sont pas identiques.')).toBeVisible();
  await pw.getByLabel('Confirmez le nouveau mot de passe').fill('a brand new one');
  await pw.getByRole('button', { name: 'Changer le mot de passe' }).click();
  await expect(pw.getByText('currentPassword: wrong password')).toBeVisible();
  await pw.getByLabel('Mot de passe actuel').fill('right');
  await pw.getByRole('button', { name: 'Changer le mot de passe' }).click();
  await expect(pw.getByText('Mot de passe changé.')).toBeVisible();
  expect(rec.graphql.filter((g) => g.operationName === 'ChangePassword').at(-1)?.variables).toEqual({ currentPassword: 'right', newPassword: 'a brand new one' });
});

test('settings: export my data, then schedule the account deletion after a confirmation', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...settings,
      ExportMyData: { data: { exportMyData: { id: 'x1', status: 'PENDING', createdAt: '2026-11-20T10:00:00Z', completedAt: null, expiresAt: null, byteSize: null, downloadUrl: null } } },
      DeleteMyAccount: { data: { deleteMyAccount: { id: 'u1', deletionScheduledAt: '2026-12-20T10:00:00Z' } } },
    },
  });
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/settings');
  const data = page.getByRole('region', { name: 'Export my data' });
  await expect(data.getByText('No archive requested.')).toBeVisible();
  await data.getByRole('button', { name: 'Ask for an archive' }).click();
  await expect(data.getByRole('list', { name: 'Your archives' })).toContainText('Queued');
  await data.getByRole('button', { name: 'Refresh' }).click();
  await expect(data.getByRole('link', { name: 'Download (1 MB)' })).toHaveAttribute('href', '/storage/export.zip?sig=1');

  const del = page.getByRole('region', { name: 'Delete my account' });
  await del.getByLabel('Current password').fill('pw');
  await del.getByRole('button', { name: 'Delete my account…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete your account?' });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  expect(rec.graphql.filter((g) => g.operationName === 'DeleteMyAccount')).toHaveLength(0);
  await del.getByRole('button', { name: 'Delete my account…' }).click();
  await dialog.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(del.getByText(/Deletion scheduled for 20 Dec 2026/)).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'DeleteMyAccount')?.variables).toEqual({ input: { currentPassword: 'pw' } });
  await del.getByRole('button', { name: 'Sign out now' }).click();
  await expect(page).toHaveURL(/\/en\/login/);
});

const sessions: Answer = {
  data: {
    sessions: [
      { id: 's1', createdAt: '2026-11-20T09:00:00Z', lastUsedAt: '2026-11-20T10:00:00Z', expiresAt: '2026-12-20T10:00:00Z', userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36', ip: '127.0.0.1', current: true },
      { id: 's2', createdAt: '2026-11-01T09:00:00Z', lastUsedAt: '2026-11-15T10:00:00Z', expiresAt: '2026-12-15T10:00:00Z', userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1', ip: '203.0.113.9', current: false },
    ],
  },
};

test('sessions: end another device, then this one (which signs out here)', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers: { ...settings, Sessions: sessions, RevokeSession: { data: { revokeSession: true } } } });
  await page.goto('/app/settings');
  await page.getByRole('link', { name: 'Voir et fermer vos sessions' }).click();
  const list = page.getByRole('list', { name: 'Sessions' });
  await expect(list.getByRole('listitem').filter({ hasText: 'Chrome sur Linux' })).toContainText('Cet appareil');
  await page.getByRole('button', { name: 'Fermer la session : Safari sur iOS' }).click();
  const dialog = page.getByRole('dialog', { name: 'Fermer cette session ?' });
  await expect(dialog).toContainText('L’appareil devra se reconnecter.');
  await dialog.getByRole('button', { name: 'Fermer la session' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(1);
  expect(rec.graphql.find((g) => g.operationName === 'RevokeSession')?.variables).toEqual({ id: 's2' });
  await page.getByRole('button', { name: 'Fermer la session : Chrome sur Linux' }).click();
  await expect(dialog).toContainText('vous serez déconnecté ici');
  await dialog.getByRole('button', { name: 'Fermer la session' }).click();
  await expect(page).toHaveURL(/\/login/);
});

const prompt = (variant: string | null, createdAt = '2026-01-01T00:00:00Z'): Answer => ({
  data: { me: { id: 'u1', createdAt }, experimentVariant: variant ? { variant, inExperiment: true, status: 'RUNNING' } : null },
});

test('NPS: asked when the experiment says so, answered with the keyboard, not asked again', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      NpsPrompt: prompt('ask-now', new Date().toISOString()),
      SubmitNps: { data: { submitNps: { score: 9, submittedAt: '2026-11-20T10:00:00Z', nextAllowedAt: '2099-01-01T00:00:00Z' } } },
      TrackNpsShown: { data: { trackConversion: true } },
    },
  });
  await page.goto('/app');
  const nps = page.getByRole('complementary', { name: 'Votre avis' });
  await expect(nps.getByRole('group', { name: /recommandiez Plinth/ })).toBeVisible();
  await nps.getByRole('button', { name: 'Envoyer' }).click();
  await expect(nps.getByRole('alert')).toHaveText('Choisissez une note de 0 à 10.');
  await nps.getByRole('radio', { name: '8' }).focus();
  await page.keyboard.press('ArrowRight');
  await expect(nps.getByRole('radio', { name: '9' })).toBeChecked();
  await nps.getByLabel('Pourquoi cette note ? (facultatif)').fill('Rapide.');
  await nps.getByRole('button', { name: 'Envoyer' }).click();
  await expect(nps.getByText('Merci ! Ravi que Plinth vous plaise.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'SubmitNps')?.variables).toEqual({ input: { score: 9, comment: 'Rapide.' } });
  await page.reload();
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'NpsPrompt').length).toBe(2);
  await expect(page.getByRole('complementary', { name: 'Votre avis' })).toHaveCount(0);
});

test('NPS: a new account is not asked', async ({ page }) => {
  await mockApi(page, { signedIn: true, answers: { NpsPrompt: prompt(null, new Date().toISOString()) } });
  await page.goto('/app');
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.waitForLoadState('networkidle');
  await expect(page.getByRole('complementary', { name: 'Votre avis' })).toHaveCount(0);
});

test('NPS: staff are never asked (the score counts customers)', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, user: { role: 'SUPPORT' }, answers: { NpsPrompt: prompt('ask-now') } });
  await page.goto('/app');
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await page.waitForLoadState('networkidle');
  await expect(page.getByRole('complementary', { name: 'Votre avis' })).toHaveCount(0);
  expect(rec.graphql.filter((g) => g.operationName === 'NpsPrompt')).toHaveLength(0);
});

test('NPS: the schedule asks an older account, and "not now" postpones it', async ({ page }) => {
  await mockApi(page, { signedIn: true, answers: { NpsPrompt: prompt('control') } });
  await page.goto('/app');
  const nps = page.getByRole('complementary', { name: 'Votre avis' });
  await nps.getByRole('button', { name: 'Plus tard' }).click();
  await expect(nps).toHaveCount(0);
  await page.reload();
  await page.waitForLoadState('networkidle');
  await expect(page.getByRole('complementary', { name: 'Votre avis' })).toHaveCount(0);
});

screens(
  [
    { path: '/app/settings', name: 'app-settings', signedIn: true, h1: /Paramètres/ },
    { path: '/app/settings', name: 'app-settings-en', signedIn: true, h1: /Settings/, locale: 'en' },
    { path: '/app/sessions', name: 'app-sessions', signedIn: true, h1: /Appareils connectés/, answers: { Sessions: sessions } },
    { path: '/app/sessions', name: 'app-sessions-en', signedIn: true, h1: /Signed-in devices/, locale: 'en', answers: { Sessions: sessions } },
    { path: '/app', name: 'app-overview-nps', signedIn: true, h1: /Vue d’ensemble/, answers: { NpsPrompt: prompt('ask-now') } },
  ],
  settings,
);
