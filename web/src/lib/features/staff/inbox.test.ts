import { describe, expect, it } from 'vitest';
import { applyInboxUpdate, emptyFilter, filterInput, matches, type InboxFilter } from './inbox';

const row = (id: string, over: Record<string, unknown> = {}) => ({
  id,
  status: 'OPEN' as const,
  category: 'JOBS' as const,
  priority: 'NORMAL' as const,
  assigneeId: null as string | null,
  updatedAt: '2026-11-20T10:00:00Z',
  subject: `subject ${id}`,
  ...over,
});
const update = (ticketId: string, over: Record<string, unknown> = {}) => ({
  ticketId,
  status: 'OPEN' as const,
  category: 'JOBS' as const,
  priority: 'NORMAL' as const,
  assigneeId: null as string | null,
  messageAdded: false,
  internal: false,
  updatedAt: '2026-11-20T10:05:00Z',
  ...over,
});

describe('inbox filter', () => {
  it('builds the API input', () => {
    expect(filterInput(emptyFilter(), 'me1')).toEqual({ status: 'OPEN' });
    const f: InboxFilter = { status: '', assignee: 'me', category: 'BILLING', search: '  refund ' };
    expect(filterInput(f, 'me1')).toEqual({ category: 'BILLING', assigneeId: 'me1', search: 'refund' });
    expect(filterInput({ ...f, assignee: 'none', search: '' }, 'me1')).toEqual({ category: 'BILLING', unassigned: true });
  });

  it('judges state, leaving search to the server', () => {
    const f: InboxFilter = { status: 'OPEN', assignee: 'none', category: '', search: 'x' };
    expect(matches(row('a'), f, 'me1')).toBe(true);
    expect(matches(row('a', { assigneeId: 'me1' }), f, 'me1')).toBe(false);
    expect(matches(row('a', { assigneeId: 'me1' }), { ...f, assignee: 'me' }, 'me1')).toBe(true);
  });
});

describe('applyInboxUpdate', () => {
  const f = emptyFilter();

  it('updates a listed ticket and says when the user wrote', () => {
    const r = applyInboxUpdate([row('a'), row('b')], update('b', { priority: 'URGENT', messageAdded: true }), f, 'me1');
    expect(r.items[1]).toMatchObject({ id: 'b', priority: 'URGENT', subject: 'subject b' });
    expect(r.replied).toBe('b');
    expect(applyInboxUpdate([row('a')], update('a', { messageAdded: true, internal: true }), f, 'me1').replied).toBeUndefined();
  });

  it('drops a ticket that leaves the filter; offers a reload for one that enters it', () => {
    expect(applyInboxUpdate([row('a'), row('b')], update('a', { status: 'RESOLVED' }), f, 'me1').items.map((t) => t.id)).toEqual(['b']);
    expect(applyInboxUpdate([row('a')], update('new'), f, 'me1')).toMatchObject({ unseen: true });
    expect(applyInboxUpdate([row('a')], update('new', { status: 'CLOSED' }), f, 'me1')).toMatchObject({ unseen: false });
  });

  it('ignores an event older than what the list shows', () => {
    const items = [row('a', { updatedAt: '2026-11-20T11:00:00Z' })];
    expect(applyInboxUpdate(items, update('a', { status: 'PENDING' }), f, 'me1').items).toBe(items);
  });
});
