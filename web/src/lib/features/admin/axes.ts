// The time axis every chart shares: a tick at each bucket, at most eight labelled.
import type uPlot from 'uplot';

export function timeAxis(tag: string, opts: Intl.DateTimeFormatOptions): uPlot.Axis {
  const fmt = new Intl.DateTimeFormat(tag, { ...opts, timeZone: 'UTC' });
  return {
    splits: (u) => [...(u.data[0] as number[])],
    values: (_u, ticks) => {
      const every = Math.max(1, Math.ceil(ticks.length / 8));
      return ticks.map((s, i) => (i % every === 0 ? fmt.format(new Date(s * 1000)) : ''));
    },
  };
}
