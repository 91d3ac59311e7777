import { describe, expect, it } from 'vitest';
import { mergeJob } from './labels';

describe('mergeJob (live job updates)', () => {
  const a = { id: 'a', updatedAt: '2026-01-01T10:00:00Z', progress: 0.1 };
  const b = { id: 'b', updatedAt: '2026-01-01T10:00:00Z', progress: 0 };

  it('replaces a known job and puts a new one first', () => {
    expect(mergeJob([a, b], { ...a, updatedAt: '2026-01-01T10:00:05Z', progress: 0.5 })).toEqual([
      { ...a, updatedAt: '2026-01-01T10:00:05Z', progress: 0.5 },
      b,
    ]);
    const c = { id: 'c', updatedAt: '2026-01-01T10:01:00Z', progress: 0 };
    expect(mergeJob([a, b], c).map((j) => j.id)).toEqual(['c', 'a', 'b']);
  });

  it('ignores an older event that arrives late', () => {
    const newer = { ...a, updatedAt: '2026-01-01T10:00:09Z', progress: 0.9 };
    expect(mergeJob([newer], a)).toEqual([newer]);
  });
});
