// The staff inbox's pure logic: which tickets a filter keeps, and how a live
// `supportInboxUpdated` event (ids and state only, no user content) changes the list.
import type { SupportInboxUpdatedSubscription, TicketCategory, TicketStatus, TicketSummaryFragment } from '$lib/gql/graphql';
import { compareInstants } from '$lib/api/datetime';

type InboxUpdate = SupportInboxUpdatedSubscription['supportInboxUpdated'];

/** The inbox filter as the page holds it. */
export interface InboxFilter {
  status: TicketStatus | '';
  /** '' anyone, 'me' the caller, 'none' unassigned. */
  assignee: '' | 'me' | 'none';
  category: TicketCategory | '';
  search: string;
}

export const emptyFilter = (): InboxFilter => ({ status: 'OPEN', assignee: '', category: '', search: '' });

/** The `SupportInboxFilter` input for the API. */
export function filterInput(f: InboxFilter, me: string) {
  return {
    ...(f.status ? { status: f.status } : {}),
    ...(f.category ? { category: f.category } : {}),
    ...(f.assignee === 'me' ? { assigneeId: me } : {}),
    ...(f.assignee === 'none' ? { unassigned: true } : {}),
    ...(f.search.trim() ? { search: f.search.trim() } : {}),
  };
}

type Row = Pick<TicketSummaryFragment, 'id' | 'status' | 'category' | 'priority' | 'assigneeId' | 'updatedAt'>;

/** Whether a ticket's state matches the filter (search is the server's to judge). */
export function matches(t: Row, f: InboxFilter, me: string): boolean {
  if (f.status && t.status !== f.status) return false;
  if (f.category && t.category !== f.category) return false;
  if (f.assignee === 'me' && t.assigneeId !== me) return false;
  if (f.assignee === 'none' && t.assigneeId) return false;
  return true;
}

export interface InboxChange<T> {
  items: T[];
  /** A ticket the list does not show may now match: the page offers to reload. */
  unseen: boolean;
  /** A message from the user arrived on this ticket (not a note). */
  replied?: string;
}

/** Applies one live event to the listed tickets. */
export function applyInboxUpdate<T extends Row>(
  items: T[],
  u: InboxUpdate,
  f: InboxFilter,
  me: string,
): InboxChange<T> {
  const i = items.findIndex((t) => t.id === u.ticketId);
  const replied = u.messageAdded && !u.internal ? u.ticketId : undefined;
  if (i === -1) {
    const probe = { id: u.ticketId, status: u.status, category: u.category, priority: u.priority, assigneeId: u.assigneeId ?? null, updatedAt: u.updatedAt };
    return { items, unseen: matches(probe, f, me), replied };
  }
  const current = items[i]!;
  if (compareInstants(current.updatedAt, u.updatedAt) > 0) return { items, unseen: false };
  const next = { ...current, status: u.status, category: u.category, priority: u.priority, assigneeId: u.assigneeId ?? null, updatedAt: u.updatedAt };
  if (!matches(next, f, me)) return { items: items.filter((t) => t.id !== u.ticketId), unseen: false, replied };
  const copy = items.slice();
  copy[i] = next;
  return { items: copy, unseen: false, replied };
}
