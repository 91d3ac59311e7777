import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PricingPlan } from './catalog';
import { parseCatalog } from './plans-toml';

/**
 * Reads the repository's plans.toml (`../plans.toml` from web/, or PLINTH_PLANS_FILE
 * like the server), for prerendering the pricing page.
 */
export function loadCatalog(): PricingPlan[] {
  const path = process.env.PLINTH_PLANS_FILE ?? resolve(process.cwd(), '../plans.toml');
  return parseCatalog(readFileSync(path, 'utf8'));
}
