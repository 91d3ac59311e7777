import { expect, test } from '@playwright/test';
import { billing, mockApi } from './mock-api';

// Whole journeys through the account pages and the app, keyboard and labels only, against
// the mocked API.

const now = new Date().toISOString();

test('sign up for Pro yearly from pricing, then continue to checkout', async ({ page }) => {
  const rec = await mockApi(page, {
    answers: {
      Billing: billing('FREE', 'FREE'),
      StartCheckout: { data: { startCheckout: { url: '/app?checkout=started' } } },
    },
  });
  await page.goto('/en/signup?plan=pro&interval=year');
  await page.getByLabel('E-mail address').fill('new@example.com');
  await page.getByLabel('Password').fill('a long enough password');
  await page.getByRole('button', { name: 'Create my account' }).click();
  await expect(page.getByRole('alert')).toHaveText('Accept the terms to continue.');
  await page.getByRole('checkbox', { name: /I accept the terms of service/ }).check();
  await page.getByRole('button', { name: 'Create my account' }).click();
  await expect(page).toHaveURL(/\/app\/billing\?checkout=pro&interval=year/);
  expect(rec.auth.find((a) => a.path === '/auth/register')?.csrf).toBe('1');
  await page.getByRole('button', { name: 'Continue to payment' }).click();
  await expect(page).toHaveURL(/\/app\?checkout=started$/);
  expect(rec.graphql.find((g) => g.operationName === 'StartCheckout')?.variables).toEqual({ input: { plan: 'PRO', interval: 'YEAR' } });
});

test('back from Checkout, the page says the plan is being activated until the webhooks make it so', async ({ page }) => {
  const active = billing('PRO', 'ACTIVE');
  const rec = await mockApi(page, { signedIn: true, answers: { Billing: (_v, n) => (n === 1 ? billing('FREE', 'FREE') : active) } });
  await page.goto('/app/billing?session_id=cs_test_1');
  const activating = page.getByRole('status').filter({ hasText: 'Paiement reçu. Activation de votre offre…' });
  await expect(activating).toBeVisible();
  // Asked again without a reload (every 5 s, or at once on a billing notification).
  await expect(page.getByRole('status').filter({ hasText: 'Votre offre Pro est active. Merci !' })).toBeVisible({ timeout: 15_000 });
  await expect(activating).toHaveCount(0);
  expect(rec.graphql.filter((g) => g.operationName === 'Billing')).toHaveLength(2);
});

test('the payment portal button opens the portal session the server returns', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers: { OpenBillingPortal: { data: { openBillingPortal: { url: 'https://billing.stripe.com/p/session/test_portal' } } } } });
  await page.route('https://billing.stripe.com/**', (r) => r.fulfill({ contentType: 'text/html', body: '<title>Stripe portal</title>' }));
  await page.goto('/app/billing');
  await page.getByRole('button', { name: 'Gérer le paiement et les factures' }).click();
  await expect(page).toHaveURL('https://billing.stripe.com/p/session/test_portal');
  expect(rec.graphql.find((g) => g.operationName === 'OpenBillingPortal')?.variables).toEqual({});
});

test('an address already taken offers to sign in', async ({ page }) => {
  await page.route('**/auth/register', (r) => r.fulfill({ status: 409, json: { error: { code: 'CONFLICT', message: 'an account with this e-mail already exists' } } }));
  await page.goto('/signup');
  await page.getByLabel('Adresse e-mail').fill('taken@example.com');
  await page.getByLabel('Mot de passe').fill('a long enough password');
  await page.getByRole('checkbox').check();
  await page.getByRole('button', { name: 'Créer mon compte' }).click();
  await expect(page.getByRole('alert')).toContainText('Un compte existe déjà avec cette adresse.');
  await expect(page.getByRole('alert').getByRole('link', { name: 'Se connecter' })).toHaveAttribute('href', '/login');
});

test('reset a password from the e-mailed link', async ({ page }) => {
  const rec = await mockApi(page, { answers: { ResetPassword: { data: { resetPassword: true } } } });
  await page.goto('/reset-password?token=tok-123');
  await page.getByLabel('Nouveau mot de passe').fill('new password 1');
  await page.getByLabel('Confirmez le mot de passe').fill('new password 2');
  await page.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(page.getByText('Les deux mots de passe ne sont pas identiques.')).toBeVisible();
  await page.getByLabel('Confirmez le mot de passe').fill('new password 1');
  await page.getByRole('button', { name: 'Enregistrer' }).click();
  await expect(page.getByText('Mot de passe modifié')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'ResetPassword')?.variables).toEqual({ token: 'tok-123', newPassword: 'new password 1' });
});

test('a dead reset link says so and offers a new one', async ({ page }) => {
  await mockApi(page, { answers: { ResetPassword: { data: null, errors: [{ message: 'invalid or expired token', extensions: { code: 'BAD_USER_INPUT', field: 'token' } }] } } });
  await page.goto('/en/reset-password?token=old');
  await page.getByLabel('New password').fill('new password 1');
  await page.getByLabel('Confirm the password').fill('new password 1');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByText('This link is no longer valid')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Ask for a new link' })).toHaveAttribute('href', '/en/forgot-password');
});

test('forgot password always answers the same way', async ({ page }) => {
  await mockApi(page, { answers: { RequestPasswordReset: { data: { requestPasswordReset: true } } } });
  await page.goto('/forgot-password');
  await page.getByLabel('Adresse e-mail').fill('who@example.com');
  await page.getByRole('button', { name: 'Envoyer le lien' }).click();
  await expect(page.getByText('Si un compte existe avec cette adresse')).toBeVisible();
});

test('drafts: create, delete and undo', async ({ page }) => {
  const created = { id: 'd9', title: 'Sac cabas en cuir', description: 'Très peu porté', priceCents: 4550, currency: 'EUR', brand: null, size: null, condition: null, category: null, status: 'DRAFT', createdAt: now, updatedAt: now };
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      CreateDraft: { data: { createDraft: created } },
      DeleteDraft: { data: { deleteDraft: true } },
      RestoreDraft: { data: { restoreDraft: created } },
    },
  });
  await page.goto('/app/drafts#new');
  await page.getByLabel('Titre').fill('Sac cabas en cuir');
  await page.getByLabel('Description').fill('Très peu porté');
  await page.getByLabel('Prix (€)').fill('45,5');
  await page.getByRole('button', { name: 'Créer le brouillon' }).click();
  await expect(page.getByText('Brouillon créé.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'CreateDraft')?.variables).toEqual({
    input: { title: 'Sac cabas en cuir', description: 'Très peu porté', priceCents: 4550 },
  });
  const list = page.getByRole('list', { name: 'Liste des brouillons' });
  await expect(list.getByRole('listitem')).toHaveCount(3);
  await page.getByRole('button', { name: 'Supprimer : Sac cabas en cuir' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(2);
  await page.getByRole('button', { name: 'Annuler la suppression' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(3);
  await expect(page.getByText('Brouillon restauré.')).toBeVisible();
});

test('API tokens: the secret is shown once, then the token is listed and can be revoked', async ({ page }) => {
  const row = { id: 't1', name: 'Export', scopes: ['drafts:read', 'jobs:read'], createdAt: now, lastUsedAt: null, expiresAt: new Date(Date.now() + 90 * 86400000).toISOString(), revokedAt: null };
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ApiTokens: { data: { apiTokens: [] } },
      CreateApiToken: { data: { createApiToken: { token: 'En0KEwoE-secret-biscuit', apiToken: row } } },
      RevokeApiToken: { data: { revokeApiToken: true } },
    },
  });
  await page.goto('/app/tokens');
  await expect(page.getByText('Aucun jeton pour l’instant.')).toBeVisible();
  await page.getByLabel('Nom').fill('Export');
  await page.getByRole('checkbox', { name: /Suivre les tâches/ }).check();
  await page.getByRole('button', { name: 'Créer le jeton' }).click();
  await expect(page.getByLabel('Votre nouveau jeton')).toHaveValue('En0KEwoE-secret-biscuit');
  const vars = rec.graphql.find((g) => g.operationName === 'CreateApiToken')?.variables as { input: { scopes: string[] } };
  expect(vars.input.scopes).toEqual(['drafts:read', 'jobs:read']);
  await page.getByRole('button', { name: 'J’ai copié le jeton' }).click();
  await expect(page.getByLabel('Votre nouveau jeton')).toHaveCount(0);
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Révoquer : Export' }).click();
  await expect(page.getByText('Révoqué', { exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Révoquer : Export' })).toHaveCount(0);
});

test('the app switches language in place and remembers it', async ({ page }) => {
  await mockApi(page, { signedIn: true });
  await page.goto('/app/usage');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Consommation');
  await page.getByRole('button', { name: 'English' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Usage');
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await page.reload();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Usage');
});
