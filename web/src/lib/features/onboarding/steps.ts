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

/**
 * The tour as a whole, in this browser: finished (every step done) or skipped ("skip the
 * tour"). Either way the app opens on the overview again; otherwise a new account's
 * overview sends it to the wizard (sign-up lands there directly).
 */
export type Tour = 'done' | 'skipped';
const TOUR = (user: string) => `plinth.onboarding.${user}.tour`;
const LATER = (user: string) => `plinth.onboarding.${user}.later`;

export function loadTour(user: string): Tour | null {
  try {
    const v = globalThis.localStorage?.getItem(TOUR(user));
    return v === 'done' || v === 'skipped' ? v : null;
  } catch {
    return null;
  }
}

export function saveTour(user: string, tour: Tour): void {
  try {
    globalThis.localStorage?.setItem(TOUR(user), tour);
  } catch {
    // Private mode: asked again next time.
  }
}

/** "Finish later": the overview stays put for the rest of this tab's life. */
export function deferTour(user: string): void {
  try {
    globalThis.sessionStorage?.setItem(LATER(user), '1');
  } catch {
    // Private mode.
  }
}

export function tourDeferred(user: string): boolean {
  try {
    return globalThis.sessionStorage?.getItem(LATER(user)) === '1';
  } catch {
    return false;
  }
}

/** Every step done: the tour is finished. */
export const allDone = (f: Facts) => STEPS.every((s) => isDone(s, f));

/**
 * Whether the overview sends this person to the wizard: an account that has done nothing
 * yet (no photo, no job), whose tour is neither finished nor skipped in this browser nor
 * put off in this tab.
 */
export function opensWizard(
  d: { photoCount: number; jobs: { queued: number; running: number; succeeded: number; failed: number; canceled: number } },
  tour: Tour | null,
  deferred: boolean,
): boolean {
  const fresh = d.photoCount === 0 && d.jobs.queued + d.jobs.running + d.jobs.succeeded + d.jobs.failed + d.jobs.canceled === 0;
  return fresh && tour === null && !deferred;
}
