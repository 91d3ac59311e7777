import { expect, test } from '@playwright/test';
import { Clock, PASSWORD, cspErrors, freshEmail, jpeg, shot, verificationLink } from './helpers';

// A visitor's first visit, against the real server that global-setup.ts started: the
// pricing page, sign-up, the verification mail's link (read from the .eml the file
// mailer wrote), then the onboarding wizard: connect a marketplace account, upload a
// real JPEG through the page (presigned PUT to the server's storage), run the scan and
// watch it live until the in-process worker finishes it (then the preparation), and see
// the prepared draft. Timings of each step are printed and saved to
// test-results/journey-timings-visitor.json; screenshots go to e2e/screenshots/server-*.png.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

test('a visitor signs up from pricing, verifies the address, and onboards: connect, upload, scan live, draft', async ({ page }) => {
  const clock = new Clock('visitor');
  const email = freshEmail('visitor');
  const csp = cspErrors(page);

  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await shot(page, 'landing');
  await page.goto('/pricing');
  await expect(page.getByRole('link', { name: 'Commencer gratuitement' })).toBeVisible();
  await shot(page, 'pricing');
  clock.lap('landing, then pricing');

  await page.getByRole('link', { name: 'Commencer gratuitement' }).click();
  await expect(page).toHaveURL(/\/signup\?plan=free/);
  await page.getByLabel('Adresse e-mail').fill(email);
  await page.getByLabel('Mot de passe').fill(PASSWORD);
  await page.getByRole('checkbox', { name: /J’accepte les/ }).check();
  await page.getByRole('button', { name: 'Créer mon compte' }).click();
  // A new account starts with the onboarding wizard, at its first step.
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  const step = page.getByRole('heading', { level: 2, name: /^\d\. / });
  await expect(step).toHaveText('1. Confirmer l’adresse');
  await shot(page, 'app-first-visit');
  clock.lap('sign-up form to signed-in onboarding');

  const link = await verificationLink(email);
  expect(new URL(link).origin).toBe(new URL(process.env.PLINTH_E2E_URL!).origin);
  clock.lap('verification mail written (.eml)');
  await page.goto(link);
  await expect(page.getByText('Adresse confirmée')).toBeVisible();
  await shot(page, 'verified');
  await page.getByRole('link', { name: 'Aller à mon espace' }).click();
  // The overview opens the wizard while the tour is not finished.
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  clock.lap('verification link opened, address confirmed');

  // A reload keeps the session: the access token was in memory only, the HttpOnly
  // refresh cookie brings a new one. The wizard resumes at the first step not done.
  await page.reload();
  await expect(page).toHaveURL(/\/app\/onboarding$/);
  await expect(step).toHaveText('2. Connecter une plateforme');
  expect((await page.context().cookies()).find((c) => c.name === 'plinth_refresh')?.httpOnly).toBe(true);
  clock.lap('reload restores the session (cookie)');

  await page.getByLabel('Plateforme', { exact: true }).selectOption('VINTED');
  await page.getByLabel('Nom du compte').fill('Ma boutique Vinted');
  await page.getByLabel('Identifiant sur la plateforme').fill('boutique-e2e');
  await page.getByLabel('Mot de passe ou jeton d’accès').fill('un jeton de test');
  await page.getByRole('button', { name: 'Connecter le compte' }).click();
  await expect(page.getByText('Ma boutique Vinted (Vinted) est connecté.')).toBeVisible();
  await shot(page, 'onboarding-connected');
  await page.getByRole('button', { name: 'Continuer' }).click();
  await expect(step).toHaveText('3. Ajouter des photos');
  clock.lap('marketplace account connected');

  await page.getByLabel('Nom de l’article').fill('Veste en jean');
  const photo = await jpeg(page, 64, 48);
  await page.getByLabel('Choisir des photos').setInputFiles({ name: 'veste.jpg', mimeType: 'image/jpeg', buffer: photo });
  await expect(page.getByRole('listitem').filter({ hasText: 'veste.jpg' })).toContainText('Envoyé', { timeout: 20_000 });
  await shot(page, 'onboarding-photo-uploaded');
  await page.getByRole('button', { name: 'Continuer' }).click();
  await expect(step).toHaveText('4. Analyser les photos');
  clock.lap('JPEG uploaded from the page (presigned PUT)');

  await page.getByRole('button', { name: 'Lancer l’analyse' }).click();
  // Progress arrives over the subscription while the in-process worker runs the scan,
  // then the preparation the page starts once the scan succeeded.
  await expect(page.getByRole('progressbar', { name: 'Progression : Analyse des photos' })).toBeVisible();
  await expect(page.getByRole('progressbar', { name: 'Progression : Préparation du brouillon' })).toBeVisible({ timeout: 30_000 });
  await expect(page.getByText('Votre brouillon est prêt.')).toBeVisible({ timeout: 30_000 });
  await expect(page.getByRole('progressbar', { name: 'Progression : Préparation du brouillon' })).toHaveAttribute('aria-valuenow', '100');
  await shot(page, 'onboarding-scan-done');
  clock.lap('scan and preparation followed live to done');

  await page.getByRole('button', { name: 'Voir le brouillon' }).click();
  await expect(step).toHaveText('5. Votre brouillon');
  const draft = page.getByRole('article', { name: 'Veste en jean' });
  await expect(draft).toBeVisible();
  const img = draft.getByRole('img', { name: 'Photo 1' });
  await expect(img).toBeVisible();
  await expect(img).toHaveAttribute('width', '64');
  // Visible is not loaded: wait until the browser has decoded the served JPEG.
  await expect.poll(() => img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)).toBe(64);
  await shot(page, 'onboarding-draft');
  clock.lap('prepared draft shown with its photo');

  clock.report();
  expect(csp, csp.join('\n')).toEqual([]);
});
