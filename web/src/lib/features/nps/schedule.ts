// When the NPS question is asked. The experiment `nps-prompt` (experimentVariant) may
// decide: variant `ask-now` asks at once, `never` never asks; any other variant (the
// control) and no experiment at all follow the schedule: an account at least 14 days
// old, and not before the time this browser noted (the server's `nextAllowedAt` after
// an answer, 90 days; 30 days after "not now"; a RATE_LIMITED answer's wait).
export const EXPERIMENT = 'nps-prompt';
export const MIN_ACCOUNT_AGE_DAYS = 14;
export const SNOOZE_DAYS = 30;

export interface Exposure {
  variant: string;
}

export function shouldAsk(p: { exposure: Exposure | null; createdAt: string; now: Date; notBefore: string | null }): boolean {
  if (p.notBefore && p.now.getTime() < Date.parse(p.notBefore)) return false;
  if (p.exposure?.variant === 'never') return false;
  if (p.exposure?.variant === 'ask-now') return true;
  return p.now.getTime() - Date.parse(p.createdAt) >= MIN_ACCOUNT_AGE_DAYS * 86_400_000;
}

const key = (user: string) => `plinth.nps.${user}`;

export function notBefore(user: string): string | null {
  try {
    return globalThis.localStorage?.getItem(key(user)) ?? null;
  } catch {
    return null;
  }
}

export function postpone(user: string, until: Date | string): void {
  try {
    globalThis.localStorage?.setItem(key(user), typeof until === 'string' ? until : until.toISOString());
  } catch {
    // Private mode: asked again next time.
  }
}

/** Promoter, passive or detractor (Bain's bands), for the thanks message. */
export const band = (score: number) => (score >= 9 ? 'promoter' : score >= 7 ? 'passive' : 'detractor');
