// Names and small pure helpers of the support feature (users' side; the staff console
// uses the same labels and live-update merging by name).
import type {
  MessageFieldsFragment,
  TicketCategory,
  TicketPriority,
  TicketStatus,
  TicketSummaryFragment,
} from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';
import { compareInstants } from '$lib/api/datetime';

export const TICKET_STATUSES: TicketStatus[] = ['OPEN', 'PENDING', 'RESOLVED', 'CLOSED'];
export const TICKET_CATEGORIES: TicketCategory[] = ['JOBS', 'BILLING', 'ACCOUNT', 'MARKETPLACE', 'OTHER'];
export const TICKET_PRIORITIES: TicketPriority[] = ['LOW', 'NORMAL', 'HIGH', 'URGENT'];

const STATUS: Record<TicketStatus, [string, string]> = {
  OPEN: ['Ouvert', 'Open'],
  PENDING: ['En attente de votre réponse', 'Waiting for you'],
  RESOLVED: ['Résolu', 'Resolved'],
  CLOSED: ['Fermé', 'Closed'],
};
// Staff read the same states from the other side of the desk.
const STAFF_STATUS: Record<TicketStatus, [string, string]> = {
  OPEN: ['Ouvert', 'Open'],
  PENDING: ['En attente de l’utilisateur', 'Waiting for the user'],
  RESOLVED: ['Résolu', 'Resolved'],
  CLOSED: ['Fermé', 'Closed'],
};
const CATEGORY: Record<TicketCategory, [string, string]> = {
  BILLING: ['Facturation', 'Billing'],
  JOBS: ['Tâches (analyses, préparations…)', 'Jobs (scans, preparations…)'],
  ACCOUNT: ['Compte et données', 'Account and data'],
  MARKETPLACE: ['Comptes de plateformes', 'Marketplace accounts'],
  OTHER: ['Autre', 'Other'],
};
const PRIORITY: Record<TicketPriority, [string, string]> = {
  LOW: ['Basse', 'Low'],
  NORMAL: ['Normale', 'Normal'],
  HIGH: ['Haute', 'High'],
  URGENT: ['Urgente', 'Urgent'],
};

const i = (l: Locale) => (l === 'fr' ? 0 : 1);
export const ticketStatusLabel = (s: TicketStatus, l: Locale, staff = false) => (staff ? STAFF_STATUS : STATUS)[s][i(l)];
export const categoryLabel = (c: TicketCategory, l: Locale) => CATEGORY[c][i(l)];
export const priorityLabel = (p: TicketPriority, l: Locale) => PRIORITY[p][i(l)];
export const ticketTone = (s: TicketStatus) =>
  s === 'OPEN' ? 'badge-warn' : s === 'PENDING' ? 'badge-info' : s === 'RESOLVED' ? 'badge-ok' : '';
export const priorityTone = (p: TicketPriority) => (p === 'URGENT' ? 'badge-danger' : p === 'HIGH' ? 'badge-warn' : '');

/** Whether the owner may still write (a closed ticket must be reopened first). */
export const canReply = (s: TicketStatus) => s !== 'CLOSED';
/** Whether the owner may reopen it. */
export const canReopen = (s: TicketStatus) => s === 'RESOLVED' || s === 'CLOSED';

/** Files a ticket takes: images and PDF, 10 MiB by default (`PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES`). */
export const ATTACHMENT_RULE = {
  types: ['image/png', 'image/jpeg', 'image/webp', 'application/pdf'],
  maxBytes: 10 * 1024 * 1024,
} as const;

const ACTIONS: Record<string, [string, string]> = {
  'ticket.view': ['a lu le ticket', 'read the ticket'],
  'ticket.reply': ['a répondu', 'replied'],
  'ticket.note': ['a ajouté une note interne', 'added an internal note'],
  'ticket.follow': ['a suivi le ticket en direct', 'followed the ticket live'],
  'ticket.assign': ['a attribué le ticket', 'assigned the ticket'],
  'inbox.list': ['a vu le ticket dans la file', 'saw the ticket in the inbox'],
  'attachment.upload': ['a joint un fichier', 'attached a file'],
  'attachment.download': ['a ouvert un fichier joint', 'opened an attachment'],
  'account.find': ['a recherché votre compte', 'looked your account up'],
  'account.summary': ['a consulté le résumé de votre compte', 'read your account summary'],
  'support.resend_verification': ['a renvoyé le lien de vérification', 'resent the verification link'],
  'support.revoke_sessions': ['a fermé toutes vos sessions', 'signed you out everywhere'],
  'support.suspend': ['a suspendu le compte', 'suspended the account'],
  'support.unsuspend': ['a levé la suspension', 'lifted the suspension'],
  'support.quota_credit': ['a crédité du quota', 'credited quota'],
};

/** An access-log action as a phrase ("replied"), `ticket.status.resolved` included. */
export function accessActionLabel(action: string, l: Locale): string {
  const known = ACTIONS[action];
  if (known) return known[i(l)];
  const status = /^ticket\.status\.(\w+)$/.exec(action)?.[1]?.toUpperCase() as TicketStatus | undefined;
  if (status && status in STATUS) {
    const label = STAFF_STATUS[status][i(l)].toLowerCase();
    return l === 'fr' ? `a passé le ticket en « ${label} »` : `set the ticket to “${label}”`;
  }
  return action;
}

type Live = Pick<TicketSummaryFragment, 'id' | 'updatedAt'>;

/** A ticket's header after a live update: the newer of the two versions. */
export function newerTicket<T extends Live>(current: T, incoming: Partial<T> & Live): T {
  return compareInstants(incoming.updatedAt, current.updatedAt) >= 0 ? { ...current, ...incoming } : current;
}

/** Messages after a live one arrives: appended once, in time order. */
export function addMessage<M extends Pick<MessageFieldsFragment, 'id' | 'createdAt'>>(list: M[], m: M): M[] {
  const i = list.findIndex((x) => x.id === m.id);
  if (i !== -1) {
    const copy = list.slice();
    copy[i] = m;
    return copy;
  }
  return [...list, m].sort((a, b) => compareInstants(a.createdAt, b.createdAt));
}

/**
 * A ticket list after a live change: replaced in place, put first when new, dropped when
 * it no longer matches the list's filter (`keep`).
 */
export function mergeTicket<T extends Live>(list: T[], t: T, keep: (t: T) => boolean = () => true): T[] {
  const i = list.findIndex((x) => x.id === t.id);
  if (i === -1) return keep(t) ? [t, ...list] : list;
  const merged = newerTicket(list[i]!, t);
  if (!keep(merged)) return list.filter((x) => x.id !== t.id);
  const copy = list.slice();
  copy[i] = merged;
  return copy;
}
