// The onboarding wizard's steps and where a returning user resumes, derived from the
// account's data (verified? a marketplace account? photos? a scan?), never stored on
// the server; the steps a person skipped are remembered in this browser.
import type { OnboardingStateQuery } from '$lib/gql/graphql';

export const STEPS = ['verify', 'connect', 'photos', 'scan', 'draft'] as const;
export type Step = (typeof STEPS)[number];

export interface Facts {
  verified: boolean;
  connected: boolean;
  photos: number;
  /** A SCAN job succeeded. */
  scanned: boolean;
  /** A PREPARE job succeeded. */
  prepared: boolean;
}

export function factsOf(s: OnboardingStateQuery): Facts {
  const jobs = s.jobs.nodes;
  return {
    verified: s.me?.emailVerified ?? false,
    connected: s.marketplaceAccounts.some((a) => a.status === 'CONNECTED'),
    photos: s.dashboard.photoCount,
    scanned: jobs.some((j) => j.kind === 'SCAN' && j.status === 'SUCCEEDED'),
    prepared: jobs.some((j) => j.kind === 'PREPARE' && j.status === 'SUCCEEDED'),
  };
}

export function isDone(step: Step, f: Facts): boolean {
  switch (step) {
    case 'verify':
      return f.verified;
    case 'connect':
      return f.connected;
    case 'photos':
      return f.photos > 0;
    case 'scan':
      return f.scanned;
    case 'draft':
      return f.prepared;
  }
}

/** Where to resume: the first step neither done nor skipped; the last when all are. */
export function resumeStep(f: Facts, skipped: ReadonlySet<Step>): Step {
  return STEPS.find((s) => !isDone(s, f) && !skipped.has(s)) ?? 'draft';
}

/** The step after `s` (the last stays). */
export function nextStep(s: Step): Step {
  return STEPS[Math.min(STEPS.length - 1, STEPS.indexOf(s) + 1)]!;
}

/** The draft the wizard works on: the newest with photos, else the newest. */
export function workingDraft<D extends { photos: unknown[] }>(drafts: D[]): D | undefined {
  return drafts.find((d) => d.photos.length > 0) ?? drafts[0];
}

const KEY = (user: string) => `plinth.onboarding.${user}`;

/** Steps skipped in this browser (a preference, not a secret). */
export function loadSkipped(user: string): Set<Step> {
  try {
    const raw = JSON.parse(globalThis.localStorage?.getItem(KEY(user)) ?? '[]') as unknown;
    return new Set(Array.isArray(raw) ? raw.filter((s): s is Step => (STEPS as readonly string[]).includes(s)) : []);
  } catch {
    return new Set();
  }
}

export function saveSkipped(user: string, skipped: ReadonlySet<Step>): void {
  try {
    globalThis.localStorage?.setItem(KEY(user), JSON.stringify([...skipped]));
  } catch {
    // Private mode: the choice lasts for this page.
  }
}

/** Photos the wizard takes: what the server accepts, 20 MiB by default (`PLINTH_MAX_UPLOAD_BYTES`). */
export const PHOTO_RULE = { types: ['image/jpeg', 'image/png', 'image/webp', 'image/heic'], maxBytes: 20 * 1024 * 1024 } as const;
