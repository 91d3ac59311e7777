import { describe, expect, it } from 'vitest';
import { accessActionLabel, addMessage, canReopen, canReply, mergeTicket, newerTicket } from './labels';

const tk = (id: string, updatedAt: string, status = 'OPEN') => ({ id, updatedAt, status });

describe('live ticket merging', () => {
  it('keeps the newer version of a ticket', () => {
    const a = tk('a', '2026-11-20T10:00:00Z');
    expect(newerTicket(a, tk('a', '2026-11-20T10:00:05Z', 'PENDING')).status).toBe('PENDING');
    expect(newerTicket(tk('a', '2026-11-20T10:00:05Z', 'PENDING'), a).status).toBe('PENDING');
  });

  it('puts a new ticket first, replaces a known one, drops one that leaves the filter', () => {
    const list = [tk('a', '2026-11-20T10:00:00Z'), tk('b', '2026-11-20T10:00:00Z')];
    expect(mergeTicket(list, tk('c', '2026-11-20T11:00:00Z')).map((t) => t.id)).toEqual(['c', 'a', 'b']);
    expect(mergeTicket(list, tk('b', '2026-11-20T11:00:00Z', 'PENDING'))[1]?.status).toBe('PENDING');
    const onlyOpen = (t: { status: string }) => t.status === 'OPEN';
    expect(mergeTicket(list, tk('b', '2026-11-20T11:00:00Z', 'CLOSED'), onlyOpen).map((t) => t.id)).toEqual(['a']);
    expect(mergeTicket(list, tk('z', '2026-11-20T11:00:00Z', 'CLOSED'), onlyOpen)).toBe(list);
  });

  it('adds a message once, in time order', () => {
    const m1 = { id: 'm1', createdAt: '2026-11-20T10:00:00Z' };
    const m3 = { id: 'm3', createdAt: '2026-11-20T10:03:00Z' };
    const m2 = { id: 'm2', createdAt: '2026-11-20T10:02:00Z' };
    expect(addMessage([m1, m3], m2).map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
    expect(addMessage([m1, m2], m2)).toHaveLength(2);
  });
});

describe('ticket rules and access-log labels', () => {
  it('a closed ticket takes no reply until reopened', () => {
    expect(canReply('CLOSED')).toBe(false);
    expect(canReply('RESOLVED')).toBe(true);
    expect(canReopen('RESOLVED')).toBe(true);
    expect(canReopen('PENDING')).toBe(false);
  });

  it('names every logged staff action, status changes included', () => {
    expect(accessActionLabel('ticket.view', 'en')).toBe('read the ticket');
    expect(accessActionLabel('support.suspend', 'fr')).toBe('a suspendu le compte');
    expect(accessActionLabel('ticket.status.resolved', 'en')).toBe('set the ticket to “resolved”');
    expect(accessActionLabel('something.new', 'en')).toBe('something.new');
  });
});
