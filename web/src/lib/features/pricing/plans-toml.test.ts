import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { yearlySaving } from './catalog';
import { parseCatalog } from './plans-toml';

const repoCatalog = readFileSync(resolve(__dirname, '../../../../../plans.toml'), 'utf8');

describe('parseCatalog', () => {
  it("reads the repository's plans.toml into the `plans` query's shape", () => {
    const plans = parseCatalog(repoCatalog);
    expect(plans.map((p) => p.code)).toEqual(['FREE', 'STARTER', 'PRO', 'SCALE']);
    const pro = plans[2]!;
    expect(pro).toMatchObject({ name: 'Pro', currency: 'EUR', trialDays: 14 });
    expect(pro.monthlyPriceCents).toBeGreaterThan(0);
    expect(pro.quotas.map((q) => q.metric)).toEqual([
      'SCANS',
      'PREPARATIONS',
      'CONNECTED_ACCOUNTS',
      'STORAGE_BYTES',
      'API_REQUESTS_PER_MINUTE',
    ]);
  });

  it('refuses what the server refuses', () => {
    expect(() => parseCatalog(repoCatalog.replace('currency = "eur"', 'currency = "euro"'))).toThrow(/3-letter/);
    expect(() => parseCatalog(repoCatalog.replace('code = "pro"', 'code = "gold"'))).toThrow(/exactly free, starter, pro, scale/);
    expect(() => parseCatalog(repoCatalog.replace('trial_days = 14', 'trial_days = 120'))).toThrow(/trial_days/);
    expect(() => parseCatalog(repoCatalog.replace('scans = 20\n', 'scans = -1\n'))).toThrow(/negative/);
    expect(() => parseCatalog(repoCatalog.replace('"price_pro_yearly"', '"price_pro_monthly"'))).toThrow(/used twice/);
    expect(() => parseCatalog(repoCatalog.replace('trial_days = 0', 'trial_days = 0\ncolour = "red"'))).toThrow(/unknown key/);
  });

  it('computes the yearly saving', () => {
    const [, starter] = parseCatalog(repoCatalog);
    expect(yearlySaving(starter!)).toBeCloseTo(1 - 19000 / (1900 * 12));
  });
});
