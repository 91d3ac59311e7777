import { describe, expect, it } from 'vitest';
import { band, shouldAsk } from './schedule';

const now = new Date('2026-11-20T10:00:00Z');
const old = '2026-10-01T00:00:00Z';
const fresh = '2026-11-18T00:00:00Z';

describe('when the NPS question is asked', () => {
  it('follows the schedule without an experiment: accounts of 14 days and more', () => {
    expect(shouldAsk({ exposure: null, createdAt: old, now, notBefore: null })).toBe(true);
    expect(shouldAsk({ exposure: null, createdAt: fresh, now, notBefore: null })).toBe(false);
    expect(shouldAsk({ exposure: { variant: 'control' }, createdAt: fresh, now, notBefore: null })).toBe(false);
  });

  it('lets the experiment ask now or never', () => {
    expect(shouldAsk({ exposure: { variant: 'ask-now' }, createdAt: fresh, now, notBefore: null })).toBe(true);
    expect(shouldAsk({ exposure: { variant: 'never' }, createdAt: old, now, notBefore: null })).toBe(false);
  });

  it('waits until the noted time (after an answer, a "not now", a rate limit)', () => {
    expect(shouldAsk({ exposure: { variant: 'ask-now' }, createdAt: old, now, notBefore: '2027-02-18T10:00:00Z' })).toBe(false);
    expect(shouldAsk({ exposure: null, createdAt: old, now, notBefore: '2026-11-19T10:00:00Z' })).toBe(true);
  });

  it('bands scores as Bain does', () => {
    expect([band(10), band(9), band(8), band(7), band(6), band(0)]).toEqual(['promoter', 'promoter', 'passive', 'passive', 'detractor', 'detractor']);
  });
});
