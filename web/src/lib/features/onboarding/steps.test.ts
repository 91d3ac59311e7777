import { describe, expect, it } from 'vitest';
import { allDone, deferTour, factsOf, loadTour, nextStep, opensWizard, resumeStep, saveTour, tourDeferred, workingDraft, type Facts } from './steps';

const none: Facts = { verified: false, connected: false, photos: 0, scanned: false, prepared: false };

describe('where onboarding resumes', () => {
  it('walks the steps in order as the data fills in', () => {
    expect(resumeStep(none, new Set())).toBe('verify');
    expect(resumeStep({ ...none, verified: true }, new Set())).toBe('connect');
    expect(resumeStep({ ...none, verified: true, connected: true }, new Set())).toBe('photos');
    expect(resumeStep({ ...none, verified: true, connected: true, photos: 3 }, new Set())).toBe('scan');
    expect(resumeStep({ ...none, verified: true, connected: true, photos: 3, scanned: true }, new Set())).toBe('draft');
    expect(resumeStep({ verified: true, connected: true, photos: 3, scanned: true, prepared: true }, new Set())).toBe('draft');
  });

  it('passes over skipped steps, even ones not done', () => {
    expect(resumeStep(none, new Set(['verify', 'connect']))).toBe('photos');
    expect(resumeStep({ ...none, verified: true }, new Set(['connect', 'photos']))).toBe('scan');
  });

  it('reads the facts from the account: a connected account, a succeeded scan', () => {
    const f = factsOf({
      me: { id: 'u', email: 'a@b', emailVerified: true },
      marketplaceAccounts: [{ id: 'm', platform: 'VINTED', displayName: 'x', status: 'DISCONNECTED' }],
      dashboard: { photoCount: 2 },
      drafts: { nodes: [] },
      jobs: { nodes: [{ id: 'j', kind: 'SCAN', status: 'RUNNING', progress: 0.5, message: null, draftId: null, error: null, updatedAt: '' }] },
    });
    expect(f).toEqual({ verified: true, connected: false, photos: 2, scanned: false, prepared: false });
  });

  it('knows the next step and the draft to work on', () => {
    expect(nextStep('photos')).toBe('scan');
    expect(nextStep('draft')).toBe('draft');
    expect(workingDraft([{ id: 'a', photos: [] }, { id: 'b', photos: [1] }])?.id).toBe('b');
    expect(workingDraft([{ id: 'a', photos: [] }])?.id).toBe('a');
    expect(workingDraft([])).toBeUndefined();
  });
});

describe('sign-up lands on the wizard; returning users on the overview', () => {
  const nothing = { photoCount: 0, jobs: { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 } };
  it('sends a fresh account to the wizard until the tour is finished, skipped or put off', () => {
    expect(opensWizard(nothing, null, false)).toBe(true);
    expect(opensWizard(nothing, 'done', false)).toBe(false);
    expect(opensWizard(nothing, 'skipped', false)).toBe(false);
    expect(opensWizard(nothing, null, true)).toBe(false);
  });

  it('leaves an account that has photos or jobs on the overview', () => {
    expect(opensWizard({ ...nothing, photoCount: 1 }, null, false)).toBe(false);
    expect(opensWizard({ ...nothing, jobs: { ...nothing.jobs, failed: 1 } }, null, false)).toBe(false);
  });

  it('finishes the tour when every step is done', () => {
    expect(allDone({ ...none, verified: true, connected: true, photos: 1, scanned: true })).toBe(false);
    expect(allDone({ verified: true, connected: true, photos: 1, scanned: true, prepared: true })).toBe(true);
  });

  it('remembers the tour per user (browser) and "later" per tab; survives storage that throws', () => {
    const mem = () => {
      const m = new Map<string, string>();
      return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
    };
    const g = globalThis as unknown as Record<string, unknown>;
    const saved = [g.localStorage, g.sessionStorage];
    g.localStorage = mem();
    g.sessionStorage = mem();
    try {
      expect(loadTour('u1')).toBeNull();
      saveTour('u1', 'skipped');
      expect(loadTour('u1')).toBe('skipped');
      expect(loadTour('u2')).toBeNull();
      expect(tourDeferred('u1')).toBe(false);
      deferTour('u1');
      expect(tourDeferred('u1')).toBe(true);
      g.localStorage = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); } };
      expect(loadTour('u1')).toBeNull();
      expect(() => saveTour('u1', 'done')).not.toThrow();
    } finally {
      [g.localStorage, g.sessionStorage] = saved;
    }
  });
});
