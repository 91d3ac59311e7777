import { describe, expect, it } from 'vitest';
import { parsePrice, priceText } from './labels';

describe('prices typed by people', () => {
  it('accepts a comma or a dot and at most two decimals', () => {
    expect(parsePrice('12,50')).toBe(1250);
    expect(parsePrice('12.5')).toBe(1250);
    expect(parsePrice(' 1 200 ')).toBe(120000);
    expect(parsePrice('')).toBeNull();
    expect(parsePrice('12.505')).toBeUndefined();
    expect(parsePrice('abc')).toBeUndefined();
    expect(parsePrice('-3')).toBeUndefined();
  });

  it('prints cents back for editing', () => {
    expect(priceText(1250)).toBe('12.50');
    expect(priceText(null)).toBe('');
  });
});
