import { describe, expect, it } from 'vitest';
import { describeAgent } from './agent';

describe('describeAgent', () => {
  it('names browser and system', () => {
    expect(describeAgent('Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0', 'en')).toBe('Firefox on Windows');
    expect(describeAgent('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1', 'fr')).toBe('Safari sur iOS');
    expect(describeAgent('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0', 'en')).toBe('Edge on Linux');
  });
  it('falls back on what it knows', () => {
    expect(describeAgent(null, 'fr')).toBe('Appareil inconnu');
    expect(describeAgent('curl/8.5.0', 'en')).toBe('curl/8.5.0');
  });
});
