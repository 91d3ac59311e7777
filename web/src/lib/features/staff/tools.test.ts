import { describe, expect, it } from 'vitest';
import { loggedText, mayUse, needsReason } from './tools';

describe('staff tools', () => {
  it('support may only resend the verification link; admins may use every tool', () => {
    expect(mayUse('resend', 'SUPPORT')).toBe(true);
    for (const tool of ['revoke', 'credit', 'suspend', 'unsuspend'] as const) {
      expect(mayUse(tool, 'SUPPORT')).toBe(false);
      expect(mayUse(tool, 'ADMIN')).toBe(true);
      expect(mayUse(tool, 'USER')).toBe(false);
    }
  });

  it('the confirmation names the logged action, and the reason where one is asked', () => {
    expect(loggedText('suspend', 'en')).toContain('“support.suspend”');
    expect(loggedText('suspend', 'en')).toContain('and the reason');
    expect(needsReason('resend')).toBe(false);
    expect(loggedText('resend', 'fr')).toContain('« support.resend_verification »');
    expect(loggedText('resend', 'fr')).not.toContain('motif');
  });
});
