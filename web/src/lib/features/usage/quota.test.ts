import { describe, expect, it } from 'vitest';
import { quotaLevel } from './quota';

describe('quotaLevel', () => {
  it('warns from 80 % and is full at the limit', () => {
    expect(quotaLevel(0, 20)).toBe('ok');
    expect(quotaLevel(15, 20)).toBe('ok');
    expect(quotaLevel(16, 20)).toBe('warning');
    expect(quotaLevel(19, 20)).toBe('warning');
    expect(quotaLevel(20, 20)).toBe('full');
    expect(quotaLevel(25, 20)).toBe('full');
  });

  it('treats a zero limit as full', () => {
    expect(quotaLevel(0, 0)).toBe('full');
  });
});
