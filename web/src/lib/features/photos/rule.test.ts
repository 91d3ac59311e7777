import { describe, expect, it } from 'vitest';
import { checkFile } from '$lib/api/upload';
import { PHOTO_RULE, withPhoto, withoutPhoto } from './rule';

describe('draft photos', () => {
  it('accepts the image types the server takes, up to 20 MiB', () => {
    const file = (type: string, size: number) => new File([new Uint8Array(size)], 'x', { type });
    expect(checkFile(file('image/png', 10), PHOTO_RULE)).toBeNull();
    expect(checkFile(file('image/gif', 10), PHOTO_RULE)?.kind).toBe('type');
    expect(checkFile(file('image/jpeg', 20 * 1024 * 1024 + 1), PHOTO_RULE)?.kind).toBe('size');
  });

  it('adds a confirmed photo once, removes a deleted one', () => {
    const a = { id: 'a' };
    const b = { id: 'b' };
    expect(withPhoto([a], b)).toEqual([a, b]);
    expect(withPhoto([a, b], b)).toEqual([a, b]);
    expect(withoutPhoto([a, b], 'a')).toEqual([b]);
    expect(withoutPhoto([a], 'zz')).toEqual([a]);
  });
});
