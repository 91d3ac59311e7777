import { describe, expect, it } from 'vitest';
import { canRate, csatInput, csatLabel } from './csat';

describe('CSAT', () => {
  it('is offered for resolved and closed tickets only', () => {
    expect(canRate('RESOLVED')).toBe(true);
    expect(canRate('CLOSED')).toBe(true);
    expect(canRate('OPEN')).toBe(false);
    expect(canRate('PENDING')).toBe(false);
  });

  it('names each score in both languages', () => {
    expect(csatLabel(1, 'fr')).toBe('1 étoile sur 5 : Très insatisfait');
    expect(csatLabel(4, 'fr')).toBe('4 étoiles sur 5 : Satisfait');
    expect(csatLabel(5, 'en')).toBe('5 stars out of 5: Very satisfied');
    expect(csatLabel(1, 'en')).toBe('1 star out of 5: Very unsatisfied');
  });

  it('builds the input: a score is required, the comment is trimmed, optional and bounded', () => {
    expect(csatInput('tk1', null, '')).toEqual({ problem: 'score' });
    expect(csatInput('tk1', 0, '')).toEqual({ problem: 'score' });
    expect(csatInput('tk1', 6, '')).toEqual({ problem: 'score' });
    expect(csatInput('tk1', 4, '  ')).toEqual({ input: { ticketId: 'tk1', score: 4, comment: null } });
    expect(csatInput('tk1', 2, ' trop lent ')).toEqual({ input: { ticketId: 'tk1', score: 2, comment: 'trop lent' } });
    expect(csatInput('tk1', 5, 'é'.repeat(1000))).toMatchObject({ input: { score: 5 } });
    expect(csatInput('tk1', 5, 'x'.repeat(1001))).toEqual({ problem: 'comment' });
  });
});
