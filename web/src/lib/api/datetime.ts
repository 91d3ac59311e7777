// The API's DateTime scalar: RFC 3339 text whose fraction has as many digits as it needs
// (none, 3, 6 or 9: chrono's `to_rfc3339`, `SecondsFormat::AutoSi`). Text order is not
// instant order in general: with a `Z` suffix "…:09.95Z" sorts before "…:09.9Z", and
// offsets other than UTC break it too; so instants are compared as numbers.

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i;

/** An instant as [whole seconds since the epoch, nanoseconds]; NaN seconds when `s` is not RFC 3339. */
function parts(s: string): [number, number] {
  const m = RFC3339.exec(s);
  if (!m) return [NaN, 0];
  const seconds = Date.parse(`${m[1]}${m[3]}`) / 1000;
  return [seconds, Number((m[2] ?? '').padEnd(9, '0'))];
}

/**
 * Compares two DateTime values as instants, to the nanosecond: negative when `a` is
 * earlier, 0 when equal, positive when later. A value that is not RFC 3339 sorts first.
 */
export function compareInstants(a: string, b: string): number {
  const [as, an] = parts(a);
  const [bs, bn] = parts(b);
  if (Number.isNaN(as) || Number.isNaN(bs)) return Number.isNaN(as) ? (Number.isNaN(bs) ? 0 : -1) : 1;
  return as !== bs ? as - bs : an - bn;
}
