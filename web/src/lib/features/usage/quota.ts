/** How full a quota is: below 80 %, from 80 %, or at (or past) the limit. */
export type QuotaLevel = 'ok' | 'warning' | 'full';

export function quotaLevel(used: number, limit: number): QuotaLevel {
  if (limit <= 0) return used > 0 || limit === 0 ? 'full' : 'ok';
  const ratio = used / limit;
  if (ratio >= 1) return 'full';
  if (ratio >= 0.8) return 'warning';
  return 'ok';
}
