import { describe, expect, it } from 'vitest';
import { compareInstants } from './datetime';

describe('compareInstants', () => {
  it('orders fractions of any length as instants, not as text', () => {
    expect(compareInstants('2026-11-20T10:00:09.95Z', '2026-11-20T10:00:09.9Z')).toBeGreaterThan(0);
    expect(compareInstants('2026-11-20T10:00:09Z', '2026-11-20T10:00:09.1Z')).toBeLessThan(0);
    expect(compareInstants('2026-11-20T10:00:09.120Z', '2026-11-20T10:00:09.12Z')).toBe(0);
    expect(compareInstants('2026-11-20T10:00:09.123457Z', '2026-11-20T10:00:09.123456Z')).toBeGreaterThan(0);
    expect(compareInstants('2026-11-20T10:00:09.000000001Z', '2026-11-20T10:00:09Z')).toBeGreaterThan(0);
  });
  it('reads offsets', () => {
    expect(compareInstants('2026-11-20T11:00:00+01:00', '2026-11-20T10:00:00Z')).toBe(0);
    expect(compareInstants('2026-11-20T10:00:00.5+00:00', '2026-11-20T10:00:00.25Z')).toBeGreaterThan(0);
  });
  it('puts what is not RFC 3339 first', () => {
    expect(compareInstants('yesterday', '2026-11-20T10:00:00Z')).toBeLessThan(0);
    expect(compareInstants('2026-11-20T10:00:00Z', '')).toBeGreaterThan(0);
  });
});
