import { describe, expect, it } from 'vitest';
import { factsOf, nextStep, resumeStep, workingDraft, type Facts } from './steps';

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
