// The admin dashboard's pure logic: date ranges, chart series from the metric buckets,
// the cohort grid and its colours, the confidence-interval scale, and the CSV export URL.
import type { Locale } from '$lib/i18n/locale';

/** A range of whole UTC days, as `YYYY-MM-DD`, both ends included. */
export interface DayRange {
  from: string;
  to: string;
}

const day = (d: Date) => d.toISOString().slice(0, 10);
const addDays = (iso: string, n: number) => {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return day(d);
};

export type Preset = '30d' | '90d' | '12m' | 'ytd';

/** The range a preset names, ending today (UTC). */
export function presetRange(p: Preset, now = new Date()): DayRange {
  const to = day(now);
  if (p === '30d') return { from: addDays(to, -29), to };
  if (p === '90d') return { from: addDays(to, -89), to };
  if (p === 'ytd') return { from: `${to.slice(0, 4)}-01-01`, to };
  const d = new Date(`${to.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() - 11);
  return { from: day(d), to };
}

/** The API's half-open [from, to) instants for a range of days. */
export function apiRange(r: DayRange): { from: string; to: string } {
  return { from: `${r.from}T00:00:00Z`, to: `${addDays(r.to, 1)}T00:00:00Z` };
}

export const rangeDays = (r: DayRange) => Math.round((Date.parse(r.to) - Date.parse(r.from)) / 86_400_000) + 1;

/** Whether the range is usable: from ≤ to, both dates. */
export const validRange = (r: DayRange) => /^\d{4}-\d{2}-\d{2}$/.test(r.from) && /^\d{4}-\d{2}-\d{2}$/.test(r.to) && r.from <= r.to;

/** A bucket width that gives a readable number of bars. */
export function suggestInterval(r: DayRange): 'DAY' | 'WEEK' | 'MONTH' {
  const n = rangeDays(r);
  return n <= 45 ? 'DAY' : n <= 200 ? 'WEEK' : 'MONTH';
}

export interface NpsMonthIn {
  start: string;
  respondents: number;
  nps: number | null;
}

/**
 * The NPS-over-time line from `npsSummary.months` (oldest first, every month of the
 * range): x in Unix seconds, y the month's NPS rounded to one decimal, null (a gap the
 * line spans) for a month without respondents.
 */
export function npsSeries(months: readonly NpsMonthIn[]): [number[], (number | null)[]] {
  const x = months.map((m) => Date.parse(m.start) / 1000);
  const y = months.map((m) => (m.respondents === 0 || m.nps === null ? null : Math.round(m.nps * 10) / 10));
  return [x, y];
}

export interface MrrBucketIn {
  start: string;
  newCents: number;
  expansionCents: number;
  reactivationCents: number;
  contractionCents: number;
  churnCents: number;
  closingCents: number;
}

/**
 * Series for the MRR movements chart, stacked: gains upwards (new, expansion,
 * reactivation), losses downwards (contraction, churn), in currency units. Each series
 * is the running total of the stack up to it, so that bars drawn from the outermost in
 * show each movement as its own segment; `raw` keeps the movement itself for labels.
 */
export function stackMrr(buckets: MrrBucketIn[]) {
  const x = buckets.map((b) => Date.parse(b.start) / 1000);
  const u = (c: number) => c / 100;
  const n = buckets.map((b) => u(b.newCents));
  const e = buckets.map((b, i) => n[i]! + u(b.expansionCents));
  const r = buckets.map((b, i) => e[i]! + u(b.reactivationCents));
  const c = buckets.map((b) => -u(b.contractionCents));
  const ch = buckets.map((b, i) => c[i]! - u(b.churnCents));
  const closing = buckets.map((b) => u(b.closingCents));
  return {
    x,
    stacked: { new: n, expansion: e, reactivation: r, contraction: c, churn: ch },
    raw: {
      new: buckets.map((b) => u(b.newCents)),
      expansion: buckets.map((b) => u(b.expansionCents)),
      reactivation: buckets.map((b) => u(b.reactivationCents)),
      contraction: buckets.map((b) => u(b.contractionCents)),
      churn: buckets.map((b) => u(b.churnCents)),
    },
    closing,
  };
}

export interface CohortCellIn {
  cohort: string;
  monthsSince: number;
  size: number;
  value: number;
  share: number | null;
}

/** The cohort table: one row per sign-up month, one column per month since. */
export function cohortGrid(cells: CohortCellIn[]) {
  const months = cells.reduce((m, c) => Math.max(m, c.monthsSince + 1), 0);
  const byCohort = new Map<string, { cohort: string; size: number; cells: (CohortCellIn | null)[] }>();
  for (const c of cells) {
    let row = byCohort.get(c.cohort);
    if (!row) {
      row = { cohort: c.cohort, size: c.size, cells: Array.from({ length: months }, () => null) };
      byCohort.set(c.cohort, row);
    }
    row.cells[c.monthsSince] = c;
  }
  return { months, rows: [...byCohort.values()].sort((a, b) => (a.cohort < b.cohort ? -1 : 1)) };
}

/**
 * A heat-map cell's colours for a share (0…1, capped): light to dark blue. The lightness
 * skips the middle band, where neither dark nor white text reaches 4.5:1: below half,
 * light cells (96 → 70 %) with dark text; from half, dark cells (46 → 28 %) with white.
 */
export function heatColor(share: number | null): { background: string; color: string } {
  if (share === null) return { background: 'transparent', color: 'inherit' };
  const s = Math.max(0, Math.min(1, share));
  const light = s < 0.5;
  const lightness = Math.round(light ? 96 - s * 2 * 26 : 46 - (s - 0.5) * 2 * 18);
  return { background: `hsl(226 64% ${lightness}%)`, color: light ? '#15171c' : '#fff' };
}

/** The x-scale of a confidence-interval plot: every interval and 0, with a margin. */
export function ciDomain(rows: { ciLow: number | null; ciHigh: number | null }[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const r of rows) {
    if (r.ciLow !== null) lo = Math.min(lo, r.ciLow);
    if (r.ciHigh !== null) hi = Math.max(hi, r.ciHigh);
  }
  const pad = (hi - lo || 0.1) * 0.1;
  return [lo - pad, hi + pad];
}

/** A duration in seconds, readably ("3 h 20 min", "45 s"), or "—". */
export function duration(seconds: number | null, locale: Locale): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.round(h / 24);
  return locale === 'fr' ? `${d} j` : `${d} d`;
}

/**
 * The CSV export of a metric (`GET /admin/metrics/<metric>.csv`, admin bearer token);
 * `metric` is the GraphQL field's name (`mrr`, `churn`, `cohorts` ...).
 */
export function csvUrl(metric: string, params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `/admin/metrics/${encodeURIComponent(metric)}.csv${s ? `?${s}` : ''}`;
}
