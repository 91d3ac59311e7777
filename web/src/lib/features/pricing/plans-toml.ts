// Parses the repository's plans.toml with the server's validation rules
// (api/src/billing/catalog.rs). Build-time only: imported by catalog.server.ts and tests,
// never by browser code.
import { parse } from 'smol-toml';
import type { QuotaMetric } from '$lib/gql/graphql';
import type { PricingPlan } from './catalog';

const CODES = ['free', 'starter', 'pro', 'scale'] as const;
const QUOTAS: [string, QuotaMetric][] = [
  ['scans', 'SCANS'],
  ['preparations', 'PREPARATIONS'],
  ['connected_accounts', 'CONNECTED_ACCOUNTS'],
  ['storage_bytes', 'STORAGE_BYTES'],
  ['api_requests_per_minute', 'API_REQUESTS_PER_MINUTE'],
];
const PLAN_KEYS = new Set([
  'code',
  'name',
  'monthly_price_cents',
  'yearly_price_cents',
  'trial_days',
  'stripe_price_monthly',
  'stripe_price_yearly',
  'quotas',
]);

function fail(msg: string): never {
  throw new Error(`plans.toml: ${msg}`);
}

function int(v: unknown, what: string): number {
  if (typeof v === 'bigint') v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${what} must be an integer`);
  return v;
}

/** Parses and validates a catalogue; throws with the first problem, like the server. */
export function parseCatalog(text: string): PricingPlan[] {
  const doc = parse(text) as Record<string, unknown>;
  for (const k of Object.keys(doc)) if (k !== 'currency' && k !== 'plans') fail(`unknown key ${k}`);
  const currency = doc.currency;
  if (typeof currency !== 'string' || currency.length !== 3) fail('currency must be a 3-letter ISO code');
  const plans = doc.plans;
  if (!Array.isArray(plans)) fail('plans must be an array of tables');
  const codes = plans.map((p) => (p as Record<string, unknown>).code);
  if (codes.join() !== CODES.join()) fail(`plans must be exactly ${CODES.join(', ')} in that order, found ${codes.join(', ')}`);
  const prices = new Set<string>();
  return plans.map((raw) => {
    const p = raw as Record<string, unknown>;
    const code = p.code as string;
    for (const k of Object.keys(p)) if (!PLAN_KEYS.has(k)) fail(`plan ${code}: unknown key ${k}`);
    if (typeof p.name !== 'string' || p.name.trim() === '') fail(`plan ${code}: empty name`);
    const monthly = int(p.monthly_price_cents, `plan ${code}: monthly_price_cents`);
    const yearly = int(p.yearly_price_cents, `plan ${code}: yearly_price_cents`);
    const trialDays = int(p.trial_days, `plan ${code}: trial_days`);
    if (trialDays < 0 || trialDays > 90) fail(`plan ${code}: trial_days must be between 0 and 90`);
    const q = (p.quotas ?? fail(`plan ${code}: missing quotas`)) as Record<string, unknown>;
    for (const k of Object.keys(q)) if (!QUOTAS.some(([n]) => n === k)) fail(`plan ${code}: unknown quota ${k}`);
    const quotas = QUOTAS.map(([key, metric]) => {
      const limit = int(q[key], `plan ${code}: quota ${key}`);
      if (limit < 0) fail(`plan ${code}: quota ${key} must not be negative`);
      return { metric, limit };
    });
    if (code === 'free') {
      if (monthly !== 0 || yearly !== 0) fail('the free plan costs nothing');
      if (p.stripe_price_monthly !== undefined || p.stripe_price_yearly !== undefined) fail('free has no prices');
    } else {
      if (monthly <= 0 || yearly <= 0) fail(`plan ${code}: prices must be positive`);
      for (const key of ['stripe_price_monthly', 'stripe_price_yearly']) {
        const id = p[key];
        if (typeof id !== 'string' || id.trim() === '') fail(`plan ${code}: missing ${key}`);
        if (prices.has(id)) fail(`Stripe price ${id} is used twice`);
        prices.add(id);
      }
    }
    return {
      code: code.toUpperCase() as PricingPlan['code'],
      name: p.name,
      monthlyPriceCents: monthly,
      yearlyPriceCents: yearly,
      currency: currency.toUpperCase(),
      trialDays,
      quotas,
    };
  });
}
