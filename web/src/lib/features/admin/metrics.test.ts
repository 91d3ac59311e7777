import { describe, expect, it } from 'vitest';
import { apiRange, ciDomain, cohortGrid, csvUrl, duration, heatColor, npsSeries, presetRange, stackMrr, suggestInterval, validRange } from './metrics';

describe('date ranges', () => {
  const now = new Date('2026-11-20T15:00:00Z');
  it('presets end today and cover whole days', () => {
    expect(presetRange('30d', now)).toEqual({ from: '2026-10-22', to: '2026-11-20' });
    expect(presetRange('12m', now)).toEqual({ from: '2025-12-01', to: '2026-11-20' });
    expect(presetRange('ytd', now)).toEqual({ from: '2026-01-01', to: '2026-11-20' });
  });
  it('the API range is half-open, ending the day after', () => {
    expect(apiRange({ from: '2026-11-01', to: '2026-11-30' })).toEqual({ from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' });
  });
  it('checks and suggests', () => {
    expect(validRange({ from: '2026-11-02', to: '2026-11-01' })).toBe(false);
    expect(validRange({ from: '2026-11-01', to: '2026-11-01' })).toBe(true);
    expect(suggestInterval({ from: '2026-11-01', to: '2026-11-30' })).toBe('DAY');
    expect(suggestInterval({ from: '2026-08-01', to: '2026-11-30' })).toBe('WEEK');
    expect(suggestInterval({ from: '2025-12-01', to: '2026-11-30' })).toBe('MONTH');
  });
  it('draws NPS over time from the summary’s months, with gaps for empty months', () => {
    const [x, y] = npsSeries([
      { start: '2026-09-01T00:00:00Z', respondents: 4, nps: 25 },
      { start: '2026-10-01T00:00:00Z', respondents: 0, nps: null },
      { start: '2026-11-01T00:00:00Z', respondents: 3, nps: 33.33333 },
    ]);
    expect(x).toEqual([Date.UTC(2026, 8, 1) / 1000, Date.UTC(2026, 9, 1) / 1000, Date.UTC(2026, 10, 1) / 1000]);
    expect(y).toEqual([25, null, 33.3]);
    expect(npsSeries([])).toEqual([[], []]);
  });
});

describe('MRR stacking', () => {
  it('stacks gains up and losses down, keeping each movement for labels', () => {
    const s = stackMrr([
      { start: '2026-10-01T00:00:00Z', newCents: 10000, expansionCents: 5000, reactivationCents: 1000, contractionCents: 2000, churnCents: 3000, closingCents: 90000 },
    ]);
    expect(s.x).toEqual([Date.parse('2026-10-01T00:00:00Z') / 1000]);
    expect(s.stacked).toEqual({ new: [100], expansion: [150], reactivation: [160], contraction: [-20], churn: [-50] });
    expect(s.raw.churn).toEqual([30]);
    expect(s.closing).toEqual([900]);
  });
});

describe('cohorts', () => {
  it('lays cells out by cohort and month, gaps as null', () => {
    const g = cohortGrid([
      { cohort: '2026-10-01T00:00:00Z', monthsSince: 0, size: 10, value: 10, share: 1 },
      { cohort: '2026-09-01T00:00:00Z', monthsSince: 1, size: 4, value: 2, share: 0.5 },
      { cohort: '2026-09-01T00:00:00Z', monthsSince: 0, size: 4, value: 4, share: 1 },
    ]);
    expect(g.months).toBe(2);
    expect(g.rows.map((r) => r.cohort)).toEqual(['2026-09-01T00:00:00Z', '2026-10-01T00:00:00Z']);
    expect(g.rows[1]?.cells[1]).toBeNull();
    expect(g.rows[0]?.cells[1]?.share).toBe(0.5);
  });
  it('darkens with the share and keeps text readable', () => {
    expect(heatColor(0).color).toBe('#15171c');
    expect(heatColor(1)).toEqual({ background: 'hsl(226 64% 28%)', color: '#fff' });
    expect(heatColor(0.49).color).toBe('#15171c');
    expect(heatColor(0.5)).toEqual({ background: 'hsl(226 64% 46%)', color: '#fff' });
    expect(heatColor(null).background).toBe('transparent');
  });
});

describe('experiments, durations, CSV', () => {
  it('the CI scale includes zero and every interval', () => {
    const [lo, hi] = ciDomain([{ ciLow: null, ciHigh: null }, { ciLow: 0.02, ciHigh: 0.08 }]);
    expect(lo).toBeLessThan(0);
    expect(hi).toBeGreaterThan(0.08);
  });
  it('durations read as people say them', () => {
    expect(duration(42, 'fr')).toBe('42 s');
    expect(duration(3 * 3600 + 20 * 60, 'en')).toBe('3 h 20 min');
    expect(duration(5 * 86400, 'fr')).toBe('5 j');
    expect(duration(null, 'en')).toBe('—');
  });
  it('builds the export URL from the GraphQL field name', () => {
    expect(csvUrl('mrr', { from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z', interval: 'DAY' })).toBe(
      '/admin/metrics/mrr.csv?from=2026-11-01T00%3A00%3A00Z&to=2026-12-01T00%3A00%3A00Z&interval=DAY',
    );
    expect(csvUrl('conversion', { from: 'a', to: 'b', interval: undefined })).toBe('/admin/metrics/conversion.csv?from=a&to=b');
  });
});
