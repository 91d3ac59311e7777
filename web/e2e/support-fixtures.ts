// Tickets and messages the support and staff specs answer with.
import type { Answer } from './mock-api';

export const at = (m: number) => new Date(Date.UTC(2026, 10, 20, 9, m)).toISOString();
export const ticket = (over: Record<string, unknown> = {}) => ({
  id: 'tk1',
  subject: 'Mon analyse reste bloquée',
  category: 'JOBS',
  priority: 'NORMAL',
  status: 'OPEN',
  jobId: 'j1',
  draftId: null,
  createdAt: at(0),
  updatedAt: at(0),
  firstResponseAt: null,
  resolvedAt: null,
  closedAt: null,
  userId: null,
  assigneeId: null,
  ...over,
});
export const message = (over: Record<string, unknown> = {}) => ({
  id: 'm1',
  ticketId: 'tk1',
  author: { kind: 'USER', name: null },
  bodyHtml: '<p>Bonjour, mon analyse reste à <strong>25 %</strong> depuis une heure.</p>',
  internal: false,
  createdAt: at(0),
  attachments: [],
  ...over,
});
export const connection = (nodes: unknown[], hasNextPage = false) => ({
  edges: nodes.map((node, i) => ({ cursor: `c${i}`, node })),
  pageInfo: { hasNextPage, endCursor: nodes.length ? `c${nodes.length - 1}` : null },
});

export const supportAnswers: Record<string, Answer> = {
  Tickets: (v) =>
    v.after
      ? { data: { tickets: connection([ticket({ id: 'tk3', subject: 'Ancienne question', status: 'CLOSED' })]) } }
      : v.status === 'RESOLVED'
        ? { data: { tickets: connection([]) } }
        : { data: { tickets: connection([ticket(), ticket({ id: 'tk2', subject: 'Facture en double', category: 'BILLING', status: 'PENDING' })], true) } },
  Ticket: { data: { ticket: { ...ticket(), messages: [message(), message({ id: 'm2', author: { kind: 'STAFF', name: 'Camille' }, bodyHtml: '<p>Nous regardons cela. Pouvez-vous joindre une capture ?</p>', createdAt: at(5) })], csat: null } } },
  TicketSubjects: { data: { drafts: { nodes: [{ id: 'd1', title: 'Veste en jean Levi’s' }] }, jobs: { nodes: [{ id: 'j1', kind: 'SCAN', status: 'RUNNING', createdAt: at(0) }] } } },
  SupportAccess: {
    data: {
      supportAccessUntil: null,
      supportAccessLog: connection([
        { id: 'a1', staffName: 'Camille', staffRole: 'SUPPORT', action: 'ticket.view', ticketId: 'tk1', reason: null, createdAt: at(3) },
        { id: 'a2', staffName: 'Alex', staffRole: 'ADMIN', action: 'support.quota_credit', ticketId: null, reason: 'geste commercial', createdAt: at(4) },
      ]),
    },
  },
};
