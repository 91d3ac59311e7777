import { expect, test, type Page } from '@playwright/test';
import { mockApi, pushNext, type Answer } from './mock-api';
import { screens } from './screens';
import { at, connection, message, ticket } from './support-fixtures';

// The staff console against the mocked API: the live inbox and its filters, a
// conversation with internal notes, canned replies, assignment and status, the account
// summary and the tools, each confirmed with what will be logged.

const staff = { id: 'st1', email: 'camille@plinth.example', role: 'SUPPORT' };
const admin = { id: 'ad1', email: 'alex@plinth.example', role: 'ADMIN' };
const supportUser = (over: Record<string, unknown> = {}) => ({ id: 'u1', email: 'lea@example.com', role: 'USER', displayName: null, createdAt: at(0), emailVerifiedAt: null, suspendedAt: null, suspensionReason: null, ...over });

const staffAnswers: Record<string, Answer> = {
  SupportInbox: {
    data: {
      supportInbox: connection([
        ticket({ userId: 'u1' }),
        ticket({ id: 'tk2', subject: 'Remboursement', category: 'BILLING', priority: 'URGENT', userId: 'u2', assigneeId: 'st9' }),
      ]),
    },
  },
  Ticket: {
    data: {
      ticket: {
        ...ticket({ userId: 'u1' }),
        messages: [
          message(),
          message({ id: 'm2', author: { kind: 'STAFF', name: 'Camille' }, internal: true, bodyHtml: '<p>Le worker a redémarré à 9 h.</p>', createdAt: at(2) }),
        ],
        csat: null,
      },
    },
  },
  CannedReplies: { data: { cannedReplies: [{ id: 'cr1', title: 'Analyse relancée', body: 'Nous avons relancé votre analyse.', updatedAt: at(0) }] } },
  SupportAccountSummary: {
    data: {
      supportAccountSummary: {
        user: supportUser(),
        plan: 'pro',
        accountState: 'active',
        trialEnd: null,
        usage: [
          { metric: 'SCANS', used: 18, credit: 5 },
          { metric: 'STORAGE_BYTES', used: 73400320, credit: 0 },
        ],
        storageBytes: 73400320,
        recentJobs: [{ id: 'j1', kind: 'scan', status: 'running', error: null, createdAt: at(0), logs: [{ level: 'info', message: 'scanned 1 of 4', createdAt: at(1) }] }],
        invoices: [{ number: 'PL-0001', status: 'paid', totalCents: 5880, currency: 'eur', createdAt: at(0) }],
        notifications: [],
        emailsSent: [{ template: 'verify_email', status: 'sent', createdAt: at(0), sentAt: at(0) }],
      },
    },
  },
};

test('support staff: the inbox filters and follows changes live; no admin entry, no admin tools', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, user: staff, answers: staffAnswers });
  await page.goto('/app/staff');
  await expect(page.getByRole('link', { name: 'Console support' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Administration' })).toHaveCount(0);
  await expect(page.getByRole('heading', { name: 'Trouver un compte' })).toHaveCount(0);
  const list = page.getByRole('list', { name: 'Tickets' });
  await expect(list.getByRole('listitem')).toHaveCount(2);
  await expect(list.getByRole('listitem').filter({ hasText: 'Remboursement' })).toContainText('Un collègue');
  await expect(list.getByRole('listitem').filter({ hasText: 'Remboursement' })).toContainText('Urgente');
  expect(rec.graphql.find((g) => g.operationName === 'SupportInbox')?.variables).toMatchObject({ filter: { status: 'OPEN' } });

  await page.getByLabel('Attribution').selectOption('me');
  await page.getByLabel('Catégorie').selectOption('BILLING');
  await page.getByLabel('Rechercher').fill('rembours');
  await page.getByRole('button', { name: 'Filtrer' }).click();
  await expect.poll(() => rec.graphql.filter((g) => g.operationName === 'SupportInbox').at(-1)?.variables).toMatchObject({
    filter: { status: 'OPEN', assigneeId: 'st1', category: 'BILLING', search: 'rembours' },
  });
  await page.getByLabel('Attribution').selectOption('');
  await page.getByLabel('Catégorie').selectOption('');

  await expect.poll(() => [...rec.subs.values()]).toContain('SupportInboxUpdated');
  const ev = (ticketId: string, over: Record<string, unknown> = {}) => ({
    supportInboxUpdated: { ticketId, status: 'OPEN', category: 'JOBS', priority: 'NORMAL', assigneeId: null, messageAdded: false, internal: false, updatedAt: at(30), ...over },
  });
  pushNext(rec, 'SupportInboxUpdated', ev('tk1', { messageAdded: true }));
  await expect(list.getByRole('listitem').filter({ hasText: 'Mon analyse reste bloquée' })).toContainText('Nouveau message');
  pushNext(rec, 'SupportInboxUpdated', ev('tk2', { status: 'RESOLVED', category: 'BILLING' }));
  await expect(list.getByRole('listitem')).toHaveCount(1);
  pushNext(rec, 'SupportInboxUpdated', ev('tk7'));
  await expect(page.getByText('Des tickets ont changé ou sont arrivés.')).toBeVisible();
  await page.getByRole('button', { name: 'Actualiser' }).click();
  await expect(list.getByRole('listitem')).toHaveCount(2);
});

test('support staff: a conversation with a distinct internal note, canned reply, note, assignment and status, each confirmed', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    user: staff,
    answers: {
      ...staffAnswers,
      ReplyTicket: (v) => ({ data: { replyTicket: message({ id: 'm5', author: { kind: 'STAFF', name: 'Camille' }, bodyHtml: `<p>${String(v.body)}</p>`, createdAt: at(10) }) } }),
      AddInternalNote: (v) => ({ data: { addInternalNote: message({ id: 'm6', author: { kind: 'STAFF', name: 'Camille' }, internal: true, bodyHtml: `<p>${String(v.body)}</p>`, createdAt: at(11) }) } }),
      AssignTicket: { data: { assignTicket: ticket({ userId: 'u1', assigneeId: 'st1', updatedAt: at(12) }) } },
      SetTicketStatus: { data: { setTicketStatus: ticket({ userId: 'u1', assigneeId: 'st1', status: 'RESOLVED', updatedAt: at(13) }) } },
      ResendVerificationEmail: { data: { resendVerificationEmail: true } },
    },
  });
  await page.goto('/app/staff/tickets/tk1');
  const conv = page.getByRole('region', { name: 'Conversation' });
  await expect(conv.getByRole('article', { name: /Utilisateur/ })).toContainText('25 %');
  const note = conv.getByRole('article', { name: /Camille/ });
  await expect(note).toContainText('Note interne — jamais montrée à l’utilisateur');
  const noteBg = await note.locator('..').evaluate((el) => getComputedStyle(el).borderStyle);
  expect(noteBg).toBe('dashed');

  await page.getByLabel('Réponse type').selectOption({ label: 'Analyse relancée' });
  await page.getByRole('button', { name: 'Insérer' }).click();
  await expect(page.getByLabel('Réponse à l’utilisateur', { exact: true }).last()).toHaveValue('Nous avons relancé votre analyse.');
  await expect(page.getByText('inscrite à son journal d’accès (ticket.reply)')).toBeVisible();
  await page.getByRole('button', { name: 'Envoyer la réponse' }).click();
  await expect(conv.getByRole('article').last()).toContainText('Nous avons relancé votre analyse.');
  expect(rec.graphql.find((g) => g.operationName === 'ReplyTicket')?.variables).toEqual({ ticketId: 'tk1', body: 'Nous avons relancé votre analyse.', attachmentIds: null });

  await page.getByRole('radio', { name: 'Note interne' }).check();
  await page.getByRole('textbox', { name: 'Note interne' }).fill('À surveiller demain.');
  await page.getByRole('button', { name: 'Ajouter la note' }).click();
  await expect(conv.getByRole('article').last()).toContainText('Note interne — jamais montrée');
  expect(rec.graphql.find((g) => g.operationName === 'AddInternalNote')?.variables).toEqual({ ticketId: 'tk1', body: 'À surveiller demain.', attachmentIds: null });

  await page.getByRole('button', { name: 'M’attribuer' }).click();
  const dialog = page.getByRole('dialog', { name: 'M’attribuer' });
  await expect(dialog).toContainText('« ticket.assign » sera inscrit dans le journal d’accès de l’utilisateur');
  await dialog.getByRole('button', { name: 'Confirmer' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByText('Attribué à Moi')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'AssignTicket')?.variables).toEqual({ ticketId: 'tk1', assigneeId: 'st1' });

  await page.getByLabel('Statut', { exact: true }).selectOption('RESOLVED');
  await page.getByRole('button', { name: 'Changer le statut' }).click();
  const statusDialog = page.getByRole('dialog', { name: 'Changer le statut' });
  await expect(statusDialog).toContainText('« ticket.status.resolved »');
  await page.keyboard.press('Escape');
  await expect(statusDialog).toBeHidden();
  expect(rec.graphql.filter((g) => g.operationName === 'SetTicketStatus')).toHaveLength(0);
  await page.getByRole('button', { name: 'Changer le statut' }).click();
  await statusDialog.getByRole('button', { name: 'Confirmer' }).click();
  await expect(page.locator('.meta').getByText('Résolu')).toBeVisible();

  // The account summary is read on demand (a logged read); support sees the resend tool only.
  await page.getByRole('button', { name: 'Afficher le résumé du compte' }).click();
  const panel = page.getByRole('region', { name: 'Compte de l’utilisateur' });
  await expect(panel).toContainText('lea@example.com');
  await expect(panel).toContainText('Adresse non vérifiée');
  expect(rec.graphql.find((g) => g.operationName === 'SupportAccountSummary')?.variables).toEqual({ userId: 'u1', ticketId: 'tk1' });
  await expect(panel.getByRole('button', { name: 'Suspendre le compte' })).toHaveCount(0);
  await expect(panel.getByRole('button', { name: 'Créditer du quota' })).toHaveCount(0);
  await panel.getByRole('button', { name: 'Renvoyer le lien de vérification' }).click();
  const resend = page.getByRole('dialog', { name: 'Renvoyer le lien de vérification' });
  await expect(resend).toContainText('« support.resend_verification » sera inscrit');
  await resend.getByRole('button', { name: 'Confirmer' }).click();
  await expect(panel.getByText('Lien envoyé.')).toBeVisible();
});

test('support staff: a ticket shows its CSAT rating once the user rated it, or that it is not rated yet', async ({ page }) => {
  const resolved = { ...ticket({ userId: 'u1', status: 'RESOLVED', resolvedAt: at(20), updatedAt: at(20) }), messages: [message()] };
  const rating = { ticketId: 'tk1', score: 2, comment: 'Réponse lente,\nmais résolu.', submittedAt: at(25) };
  let shown: Record<string, unknown> = { ...resolved, csat: rating };
  const rec = await mockApi(page, { signedIn: true, user: staff, answers: { ...staffAnswers, Ticket: () => ({ data: { ticket: shown } }) } });
  await page.goto('/app/staff/tickets/tk1');
  const csat = page.getByRole('region', { name: 'Satisfaction (CSAT)' });
  await expect(csat).toContainText('2 étoiles sur 5 : Insatisfait');
  await expect(csat.locator('blockquote')).toHaveText('Réponse lente,\nmais résolu.');
  await expect(csat.locator('time')).toHaveAttribute('datetime', at(25));
  expect(rec.graphql.find((g) => g.operationName === 'Ticket')?.variables).toEqual({ id: 'tk1' });

  // An open ticket cannot be rated yet; a resolved one not rated says so (in English here).
  shown = { ...resolved, status: 'OPEN', resolvedAt: null, csat: null };
  await page.reload();
  await expect(csat).toContainText('L’utilisateur pourra évaluer ce ticket une fois résolu ou fermé.');
  await expect(csat.locator('blockquote')).toHaveCount(0);
  shown = { ...resolved, csat: null };
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.reload();
  await expect(csat).toContainText('The user has not rated this ticket yet.');
});

test('admin: find an account by e-mail, credit quota and suspend with a reason', async ({ page }) => {
  const rec = await mockApi(page, {
    signedIn: true,
    user: admin,
    answers: {
      ...staffAnswers,
      SupportUserByEmail: { data: { supportUserByEmail: supportUser() } },
      CreditQuota: { data: { creditQuota: 15 } },
      SuspendUser: (v) => ({ data: { suspendUser: supportUser({ suspendedAt: at(40), suspensionReason: v.reason }) } }),
    },
  });
  await page.addInitScript(() => localStorage.setItem('plinth.locale', 'en'));
  await page.goto('/app/staff');
  await expect(page.getByRole('link', { name: 'Admin console' })).toBeVisible();
  await page.getByLabel('E-mail address').fill('lea@example.com');
  await page.getByRole('button', { name: 'Find', exact: true }).click();
  await expect(page).toHaveURL(/\/app\/staff\/accounts\/u1$/);
  const panel = page.getByRole('region', { name: 'The user’s account' });
  await expect(panel).toContainText('of which 5 credited');

  await panel.getByRole('button', { name: 'Credit quota' }).click();
  const credit = page.getByRole('dialog', { name: 'Credit quota' });
  await credit.getByLabel('Counter').selectOption('PREPARATIONS');
  await credit.getByLabel('Amount').fill('10');
  await credit.getByRole('button', { name: 'Confirm' }).click();
  // The reason is required: the browser keeps the dialog open.
  await expect(credit).toBeVisible();
  await credit.getByLabel(/Reason/).fill('outage on 20 November');
  await expect(credit).toContainText('“support.quota_credit” will be recorded');
  await credit.getByRole('button', { name: 'Confirm' }).click();
  await expect(panel.getByText('Credit this period: 15.')).toBeVisible();
  expect(rec.graphql.find((g) => g.operationName === 'CreditQuota')?.variables).toEqual({ userId: 'u1', metric: 'PREPARATIONS', amount: 10, reason: 'outage on 20 November' });

  await panel.getByRole('button', { name: 'Suspend the account' }).click();
  const suspend = page.getByRole('dialog', { name: 'Suspend the account' });
  await expect(suspend).toContainText('with your name and the reason');
  await suspend.getByLabel(/Reason/).fill('chargeback fraud');
  await suspend.getByRole('button', { name: 'Confirm' }).click();
  await expect(panel.getByText(/Suspended since/)).toBeVisible();
  await expect(panel.getByRole('button', { name: 'Lift the suspension' })).toBeVisible();
});

test('a customer sees no staff entry and the console says it is not theirs', async ({ page }) => {
  const rec = await mockApi(page, { signedIn: true, answers: staffAnswers });
  await page.goto('/app/staff');
  await expect(page.getByRole('link', { name: 'Console support' })).toHaveCount(0);
  await expect(page.getByRole('alert')).toContainText('Accès refusé');
  expect(rec.graphql.filter((g) => g.operationName === 'SupportInbox')).toHaveLength(0);
});

const accountReady = async (p: Page) => void (await p.getByText('lea@example.com').first().waitFor());
screens(
  [
    { path: '/app/staff', name: 'app-staff-inbox', signedIn: true, h1: /File des tickets/, user: staff },
    { path: '/app/staff', name: 'app-staff-inbox-en', signedIn: true, h1: /Ticket inbox/, user: admin, locale: 'en' },
    { path: '/app/staff/tickets/tk1', name: 'app-staff-ticket', signedIn: true, h1: /Mon analyse/, user: staff },
    { path: '/app/staff/tickets/tk1', name: 'app-staff-ticket-en', signedIn: true, h1: /Mon analyse/, user: admin, locale: 'en' },
    { path: '/app/staff/canned', name: 'app-staff-canned', signedIn: true, h1: /Réponses types/, user: admin },
    { path: '/app/staff/canned', name: 'app-staff-canned-en', signedIn: true, h1: /Canned replies/, user: admin, locale: 'en' },
    { path: '/app/staff/accounts/u1', name: 'app-staff-account', signedIn: true, h1: /Compte/, user: admin, ready: accountReady },
    { path: '/app/staff/accounts/u1', name: 'app-staff-account-en', signedIn: true, h1: /Account/, user: admin, locale: 'en', ready: accountReady },
  ],
  staffAnswers,
);
