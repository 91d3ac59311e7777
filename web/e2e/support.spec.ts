import { expect, test } from '@playwright/test';
import { mockApi, pushNext } from './mock-api';
import { screens } from './screens';
import { at, message, supportAnswers, ticket } from './support-fixtures';

// Support on the user's side: tickets, the live conversation, attachments, access grants
// and the access log, against the mocked API.

test('tickets: filter by status, page on, open a new one about a draft', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: { ...supportAnswers, OpenTicket: { data: { openTicket: ticket({ id: 'tk9', draftId: 'd1', jobId: null, category: 'OTHER' }) } } },
  });
  await page.goto('/app/support');
  const list = page.getByRole('list', { name: 'Vos tickets' });
  await expect(list.getByRole('listitem')).toHaveCount(2);
  await expect(list.getByRole('listitem').filter({ hasText: 'Facture en double' })).toContainText('En attente de votre réponse');
  await page.getByRole('button', { name: 'Afficher plus' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(3);
  expect(rec.graphql.filter((g) => g.operationName === 'Tickets').at(-1)?.variables).toMatchObject({ after: 'c1' });
  await page.getByLabel('Statut').selectOption('RESOLVED');
  await expect(page.getByText('Aucun ticket avec ce statut.')).toBeVisible();

  await page.getByRole('link', { name: 'Nouveau ticket' }).click();
  await page.getByLabel('Sujet').selectOption('OTHER');
  await page.getByLabel('Objet').fill('Une question sur ma veste');
  await page.getByLabel('Lié à (facultatif)').selectOption({ label: 'Veste en jean Levi’s' });
  await page.getByLabel('Décrivez le problème').fill('La description est **vide**.');
  await page.getByRole('button', { name: 'Ouvrir le ticket' }).click();
  await expect(page).toHaveURL(/\/app\/support\/tickets\/tk9$/);
  expect(rec.graphql.find((g) => g.operationName === 'OpenTicket')?.variables).toEqual({
    input: { category: 'OTHER', priority: 'NORMAL', subject: 'Une question sur ma veste', body: 'La description est **vide**.', draftId: 'd1' },
  });
});

test('a ticket: live reply from support, sanitized HTML, reply with a checked attachment, close and reopen', async ({ page }) => {
  let dialogs = 0;
  page.on('dialog', (d) => {
    dialogs++;
    void d.dismiss();
  });
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...supportAnswers,
      Ticket: {
        data: {
          ticket: {
            ...ticket(),
            messages: [message({ bodyHtml: '<p>Voici <img src="x" onerror="alert(1)" alt="capture"> et <a href="https://example.com/aide">l’aide</a></p><script>alert(2)</script>' })],
          },
        },
      },
      CreateTicketAttachmentUpload: {
        data: { createTicketAttachmentUpload: { attachment: { id: 'att1' }, uploadUrl: '/storage/u1/att1?sig=abc', method: 'PUT', headers: [{ name: 'Content-Type', value: 'image/png' }] } },
      },
      ConfirmTicketAttachment: { data: { confirmTicketAttachment: { id: 'att1', messageId: null, fileName: 'capture.png', contentType: 'image/png', byteSize: 68, status: 'READY', internal: false, url: null } } },
      ReplyTicket: (v) => ({ data: { replyTicket: message({ id: 'm3', bodyHtml: `<p>${String(v.body)}</p>`, createdAt: at(9), attachments: [{ id: 'att1', messageId: 'm3', fileName: 'capture.png', contentType: 'image/png', byteSize: 68, status: 'READY', internal: false, url: '/storage/att1' }] }) } }),
      CloseTicket: { data: { closeTicket: ticket({ status: 'CLOSED', updatedAt: at(20) }) } },
      ReopenTicket: { data: { reopenTicket: ticket({ status: 'OPEN', updatedAt: at(21) }) } },
    },
  });
  const uploads: { type: string | null; size: number }[] = [];
  await page.route('**/storage/**', (r) => {
    uploads.push({ type: r.request().headers()['content-type'] ?? null, size: r.request().postDataBuffer()?.length ?? 0 });
    return r.fulfill({ status: 200 });
  });
  await page.goto('/app/support/tickets/tk1');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Mon analyse reste bloquée');
  // The message's HTML is inserted without its handlers and scripts.
  const conv = page.getByRole('region', { name: 'Conversation' });
  await expect(conv.getByRole('img', { name: 'capture' })).toBeVisible();
  expect(await conv.locator('img').getAttribute('onerror')).toBeNull();
  await expect(conv.locator('script')).toHaveCount(0);
  await expect(conv.getByRole('link', { name: 'l’aide' })).toHaveAttribute('rel', 'noopener noreferrer nofollow');
  // An open ticket asks for no rating.
  await expect(page.getByRole('region', { name: 'Votre avis sur ce ticket' })).toHaveCount(0);

  await expect.poll(() => [...rec.subs.values()]).toContain('TicketUpdated');
  pushNext(rec, 'TicketUpdated', {
    ticketUpdated: { ticket: ticket({ status: 'PENDING', updatedAt: at(6) }), message: message({ id: 'm2', author: { kind: 'STAFF', name: 'Camille' }, bodyHtml: '<p>Pouvez-vous joindre une capture ?</p>', createdAt: at(6) }) },
  });
  await expect(conv.getByRole('article', { name: /Camille/ })).toContainText('Pouvez-vous joindre une capture ?');
  await expect(page.getByText('En attente de votre réponse')).toBeVisible();

  const picker = page.getByLabel('Joindre des fichiers');
  await picker.setInputFiles({ name: 'anim.gif', mimeType: 'image/gif', buffer: Buffer.from('GIF89a') });
  await expect(page.getByRole('listitem').filter({ hasText: 'anim.gif' })).toContainText('Type de fichier non accepté.');
  await picker.setInputFiles({ name: 'huge.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(10 * 1024 * 1024 + 1) });
  await expect(page.getByRole('listitem').filter({ hasText: 'huge.pdf' })).toContainText('Fichier trop volumineux (10 Mo au plus).');
  expect(rec.graphql.filter((g) => g.operationName === 'CreateTicketAttachmentUpload')).toHaveLength(0);
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6300010000050001' + '0d0a2db40000000049454e44ae426082', 'hex');
  await picker.setInputFiles({ name: 'capture.png', mimeType: 'image/png', buffer: png });
  await expect(page.getByRole('listitem').filter({ hasText: 'capture.png' })).toContainText('Envoyé');
  expect(uploads).toEqual([{ type: 'image/png', size: png.length }]);
  const reserve = rec.graphql.find((g) => g.operationName === 'CreateTicketAttachmentUpload')?.variables as { input: Record<string, unknown> };
  expect(reserve.input).toMatchObject({ ticketId: 'tk1', fileName: 'capture.png', contentType: 'image/png', byteSize: png.length, internal: false });
  expect(reserve.input.sha256).toMatch(/^[0-9a-f]{64}$/);
  await page.getByRole('button', { name: 'Retirer anim.gif' }).click();
  await page.getByRole('button', { name: 'Retirer huge.pdf' }).click();

  await page.getByLabel('Votre message').fill('Voici la capture.');
  await page.getByRole('button', { name: 'Envoyer' }).click();
  await expect(conv.getByRole('article', { name: /^Vous/ }).last()).toContainText('Voici la capture.');
  await expect(conv.getByRole('link', { name: 'capture.png' })).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'ReplyTicket')?.variables).toEqual({ ticketId: 'tk1', body: 'Voici la capture.', attachmentIds: ['att1'] });
  await expect(page.getByLabel('Votre message')).toHaveValue('');

  await page.getByRole('button', { name: 'Fermer le ticket' }).click();
  await expect(page.getByText('Ce ticket est fermé. Rouvrez-le pour écrire à nouveau.')).toBeVisible();
  await expect(page.getByLabel('Votre message')).toHaveCount(0);
  await page.getByRole('button', { name: 'Rouvrir le ticket' }).click();
  await expect(page.getByLabel('Votre message')).toBeVisible();
  expect(dialogs).toBe(0);
});

test('support access: grant for 7 days, see the log, withdraw', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...supportAnswers,
      GrantSupportAccess: { data: { grantSupportAccess: { id: 'g1', expiresAt: '2026-11-27T10:00:00Z' } } },
      RevokeSupportAccess: { data: { revokeSupportAccess: true } },
    },
  });
  await page.goto('/en/login');
  await page.evaluate(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/support/access');
  await expect(page.getByText('Support cannot read your account outside your tickets.')).toBeVisible();
  const rows = page.getByRole('table').getByRole('row');
  await expect(rows.filter({ hasText: 'Camille' })).toContainText('read the ticket');
  await expect(rows.filter({ hasText: 'Alex' })).toContainText('credited quota');
  await expect(rows.filter({ hasText: 'Alex' })).toContainText('geste commercial');
  await page.getByLabel('Duration').selectOption({ label: '7 days' });
  await page.getByRole('button', { name: 'Allow access' }).click();
  await expect(page.getByText('Access granted.')).toBeVisible();
  await expect(page.getByText(/Support may read your account until 27 Nov 2026/)).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'GrantSupportAccess')?.variables).toEqual({ hours: 168 });
  await page.getByRole('button', { name: 'Withdraw access now' }).click();
  await expect(page.getByText('Access withdrawn.')).toBeVisible();
  await expect(page.getByText('Support cannot read your account outside your tickets.')).toBeVisible();
});

test('the link in support e-mails opens the ticket in the app', async ({ page }) => {
  await mockApi(page, { signedIn: true, answers: supportAnswers });
  await page.goto('/support/tickets/tk1');
  await expect(page).toHaveURL(/\/app\/support\/tickets\/tk1$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Mon analyse reste bloquée');
});

const resolved = {
  ...supportAnswers,
  Ticket: { data: { ticket: { ...ticket({ status: 'RESOLVED', resolvedAt: at(30) }), messages: [message(), message({ id: 'm2', author: { kind: 'STAFF', name: 'Camille' }, bodyHtml: '<p>C’est réparé : relancez l’analyse.</p>', createdAt: at(30) })] } } },
  TicketCsat: { data: { ticketCsat: null } },
};
const rated = { ...resolved, TicketCsat: { data: { ticketCsat: { ticketId: 'tk1', score: 4, comment: 'Rapide et clair.', submittedAt: at(40) } } } };

test('CSAT: a resolved ticket asks for 1 to 5 stars and a comment, then shows the rating given', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: { ...resolved, SubmitCsat: (v) => ({ data: { submitCsat: { ...(v.input as object), submittedAt: at(45) } } }) },
  });
  await page.goto('/app/support/tickets/tk1');
  const csat = page.getByRole('region', { name: 'Votre avis sur ce ticket' });
  await expect(csat.getByRole('group', { name: 'Êtes-vous satisfait de l’aide reçue ?' })).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'TicketCsat')?.variables).toEqual({ ticketId: 'tk1' });
  await csat.getByRole('button', { name: 'Envoyer ma note' }).click();
  await expect(csat.getByRole('alert')).toHaveText('Choisissez de 1 à 5 étoiles.');
  expect(rec.graphql.filter((g) => g.operationName === 'SubmitCsat')).toHaveLength(0);
  await csat.getByRole('radio', { name: '4 étoiles sur 5 : Satisfait' }).check();
  await expect(csat.getByText('4 étoiles sur 5 : Satisfait', { exact: true }).last()).toBeVisible();
  await csat.getByLabel('Un commentaire ? (facultatif)').fill('  Rapide et clair.  ');
  await csat.getByRole('button', { name: 'Envoyer ma note' }).click();
  await expect(csat.getByText('Merci pour votre note !')).toBeVisible();
  await expect(csat.getByRole('img', { name: '4 étoiles sur 5 : Satisfait' })).toBeVisible();
  await expect(csat.getByText('Rapide et clair.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'SubmitCsat')?.variables).toEqual({ input: { ticketId: 'tk1', score: 4, comment: 'Rapide et clair.' } });
  await expect(csat.getByRole('radio')).toHaveCount(0);
});

test('CSAT: an already rated ticket shows its rating, in English', async ({ page }) => {
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await mockApi(page, { signedIn: true, answers: rated });
  await page.goto('/app/support/tickets/tk1');
  const csat = page.getByRole('region', { name: 'Your opinion of this ticket' });
  await expect(csat.getByRole('img', { name: '4 stars out of 5: Satisfied' })).toBeVisible();
  await expect(csat.getByText('Rapide et clair.')).toBeVisible();
  await expect(csat.getByRole('radio')).toHaveCount(0);
});

test('CSAT: a refused rating says why and reads the rating again', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    answers: {
      ...resolved,
      SubmitCsat: { data: null, errors: [{ message: 'not resolved', extensions: { code: 'CONFLICT' } }] },
    },
  });
  await page.goto('/app/support/tickets/tk1');
  const csat = page.getByRole('region', { name: 'Votre avis sur ce ticket' });
  await csat.getByRole('radio', { name: '1 étoile sur 5 : Très insatisfait' }).check();
  await csat.getByRole('button', { name: 'Envoyer ma note' }).click();
  await expect(csat.getByRole('alert')).toBeVisible();
  // The rating was read again (another tab may have rated it).
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'TicketCsat').length).toBe(2);
});

screens(
  [
    { path: '/app/support', name: 'app-support', signedIn: true, h1: /Support/ },
    { path: '/app/support', name: 'app-support-en', signedIn: true, h1: /Support/, locale: 'en' },
    { path: '/app/support/new', name: 'app-support-new', signedIn: true, h1: /Nouveau ticket/ },
    { path: '/app/support/new', name: 'app-support-new-en', signedIn: true, h1: /New ticket/, locale: 'en' },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket', signedIn: true, h1: /Mon analyse/ },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket-en', signedIn: true, h1: /Mon analyse/, locale: 'en' },
    { path: '/app/support/access', name: 'app-support-access', signedIn: true, h1: /Accès du support/ },
    { path: '/app/support/access', name: 'app-support-access-en', signedIn: true, h1: /Support access/, locale: 'en' },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket-csat', signedIn: true, h1: /Mon analyse/, answers: resolved, ready: async (p) => void (await p.getByRole('radio').first().waitFor()) },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket-csat-en', signedIn: true, h1: /Mon analyse/, locale: 'en', answers: resolved, ready: async (p) => void (await p.getByRole('radio').first().waitFor()) },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket-rated', signedIn: true, h1: /Mon analyse/, answers: rated, ready: async (p) => void (await p.getByRole('img', { name: /4 étoiles/ }).waitFor()) },
    { path: '/app/support/tickets/tk1', name: 'app-support-ticket-rated-en', signedIn: true, h1: /Mon analyse/, locale: 'en', answers: rated, ready: async (p) => void (await p.getByRole('img', { name: /4 stars/ }).waitFor()) },
  ],
  supportAnswers,
);
