import { expect, test } from '@playwright/test';
import { Clock, cspErrors, freshEmail, register, shot, signIn } from './helpers';

// Support against the real server, two people at once: a user opens a ticket; staff (the
// admin `plinth admin create` made in global-setup.ts: the CLI makes admins only, and
// admins work the staff console) answers in a second browser context, and the user's
// open page shows the answer live; an internal note staff adds never reaches the user,
// neither live nor on a fresh load.

test.use({ baseURL: process.env.PLINTH_E2E_URL });

test('a ticket: the user writes, staff in a second browser answers live, the internal note never shows on the user’s side', async ({ browser, page, request }) => {
  const clock = new Clock('support');
  const email = freshEmail('support');
  const csp = cspErrors(page);
  const subject = `Mon analyse ne démarre pas ${Date.now()}`;
  const note = 'Note interne : vérifier le worker demain.';
  await register(request, email);
  await signIn(page, email);
  clock.lap('registered (API), signed in (form)');

  await page.goto('/app/support/new');
  await page.getByLabel('Sujet').selectOption('OTHER');
  await page.getByLabel('Objet').fill(subject);
  await page.getByLabel('Décrivez le problème').fill('Je clique sur « Lancer une analyse » et rien ne se passe.');
  await page.getByRole('button', { name: 'Ouvrir le ticket' }).click();
  await expect(page).toHaveURL(/\/app\/support\/tickets\/[0-9a-f-]{36}$/);
  const ticketId = page.url().split('/').pop()!;
  const conv = page.getByRole('region', { name: 'Conversation' });
  await expect(conv.getByRole('article', { name: /^Vous/ })).toContainText('rien ne se passe');
  await shot(page, 'support-ticket-opened');
  await page.evaluate(() => ((window as unknown as { e2eMark: boolean }).e2eMark = true));
  clock.lap('ticket opened by the user');

  const staffContext = await browser.newContext({ baseURL: process.env.PLINTH_E2E_URL });
  const staff = await staffContext.newPage();
  await signIn(staff, process.env.PLINTH_E2E_ADMIN_EMAIL!, process.env.PLINTH_E2E_ADMIN_PASSWORD!);
  await staff.goto('/app/staff');
  const inbox = staff.getByRole('list', { name: 'Tickets' });
  await inbox.getByRole('link', { name: subject }).click();
  await expect(staff).toHaveURL(new RegExp(`/app/staff/tickets/${ticketId}$`));
  const staffConv = staff.getByRole('region', { name: 'Conversation' });
  await expect(staffConv.getByRole('article', { name: /^Utilisateur/ })).toContainText('rien ne se passe');
  clock.lap('staff (second browser) signed in, ticket found in the inbox');

  await staff.getByRole('textbox', { name: 'Réponse à l’utilisateur' }).fill('Bonjour, nous regardons votre analyse.');
  await staff.getByRole('button', { name: 'Envoyer la réponse' }).click();
  await expect(staffConv.getByRole('article').last()).toContainText('Bonjour, nous regardons votre analyse.');
  // The user's page, open all along, shows it.
  await expect(conv.getByRole('article').last()).toContainText('Bonjour, nous regardons votre analyse.', { timeout: 20_000 });
  await shot(page, 'support-answer-live');
  clock.lap('staff reply seen live by the user');

  await staff.getByRole('radio', { name: 'Note interne' }).check();
  await staff.getByRole('textbox', { name: 'Note interne' }).fill(note);
  await staff.getByRole('button', { name: 'Ajouter la note' }).click();
  await expect(staffConv.getByRole('article').last()).toContainText(note);
  await expect(staffConv.getByRole('article').last()).toContainText('Note interne — jamais montrée à l’utilisateur');
  await shot(staff, 'staff-ticket-with-note');
  // A reply after the note: once the user sees it, the note would have arrived before it.
  await staff.getByRole('radio', { name: 'Réponse à l’utilisateur' }).check();
  await staff.getByRole('textbox', { name: 'Réponse à l’utilisateur' }).fill('Pouvez-vous réessayer maintenant ?');
  await staff.getByRole('button', { name: 'Envoyer la réponse' }).click();
  await expect(conv.getByRole('article').last()).toContainText('Pouvez-vous réessayer maintenant ?', { timeout: 20_000 });
  await expect(conv.getByRole('article')).toHaveCount(3);
  await expect(page.getByText(note)).toHaveCount(0);
  expect(await page.evaluate(() => (window as unknown as { e2eMark?: boolean }).e2eMark === true), 'the page was reloaded').toBe(true);
  clock.lap('internal note added; the next reply arrives live, the note does not');

  await page.reload();
  await expect(conv.getByRole('article')).toHaveCount(3);
  await expect(page.getByText(note)).toHaveCount(0);
  await expect(page.getByText('Note interne')).toHaveCount(0);
  await shot(page, 'support-user-side');
  clock.lap('a fresh load shows no note either');

  // And the user's answer reaches staff live.
  await page.getByLabel('Votre message').fill('Ça marche maintenant, merci !');
  await page.getByRole('button', { name: 'Envoyer' }).click();
  await expect(staffConv.getByRole('article').last()).toContainText('Ça marche maintenant, merci !', { timeout: 20_000 });
  clock.lap('the user’s answer seen live by staff');

  await staffContext.close();
  clock.report();
  expect(csp, csp.join('\n')).toEqual([]);
});
