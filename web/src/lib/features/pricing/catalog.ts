// The plan catalogue as the pricing page shows it. At build time it comes from the
// repository's plans.toml (the file the server embeds; see plans-toml.ts); in the browser
// it is refreshed from the `plans` query.
import type { PlansQuery } from '$lib/gql/graphql';

export type PricingPlan = PlansQuery['plans'][number];

/** The yearly saving against twelve monthly payments, as a fraction (0.17). */
export function yearlySaving(plan: PricingPlan): number {
  const twelve = plan.monthlyPriceCents * 12;
  return twelve > 0 ? Math.max(0, 1 - plan.yearlyPriceCents / twelve) : 0;
}
