// Marketplaces and their accounts: names, states, the order of the list and the
// connected-accounts gauge. Onboarding's connect step uses the same form.
import type { MarketplaceAccountStatus, MarketplacePlatform } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';

export const PLATFORMS: [MarketplacePlatform, string][] = [
  ['VINTED', 'Vinted'],
  ['LEBONCOIN', 'Leboncoin'],
  ['EBAY', 'eBay'],
  ['ETSY', 'Etsy'],
  ['DEPOP', 'Depop'],
];

export const platformLabel = (p: MarketplacePlatform) => PLATFORMS.find(([k]) => k === p)?.[1] ?? p;

const STATUS: Record<MarketplaceAccountStatus, [string, string]> = {
  CONNECTED: ['Connecté', 'Connected'],
  DISCONNECTED: ['Déconnecté', 'Disconnected'],
  ERROR: ['Identifiants refusés', 'Credentials refused'],
};
export const accountStatusLabel = (s: MarketplaceAccountStatus, locale: Locale) => STATUS[s][locale === 'fr' ? 0 : 1];
export const accountStatusTone = (s: MarketplaceAccountStatus) => (s === 'CONNECTED' ? 'badge-ok' : s === 'ERROR' ? 'badge-danger' : 'badge-info');

/** Usable accounts first, then refused ones, then disconnected ones; newest first within each. */
export function sortAccounts<A extends { status: MarketplaceAccountStatus; createdAt: string }>(list: readonly A[]): A[] {
  const rank = (s: MarketplaceAccountStatus) => (s === 'CONNECTED' ? 0 : s === 'ERROR' ? 1 : 2);
  return [...list].sort((a, b) => rank(a.status) - rank(b.status) || b.createdAt.localeCompare(a.createdAt));
}

/** The CONNECTED_ACCOUNTS gauge of `usage`, if the plan has one. */
export function accountsGauge<U extends { metric: string; used: number; limit: number }>(usage: readonly U[]): U | undefined {
  return usage.find((u) => u.metric === 'CONNECTED_ACCOUNTS');
}

/** Whether the form can connect one more (the server refuses past the limit with QUOTA_EXCEEDED). */
export const roomForOneMore = (g: { used: number; limit: number } | undefined) => !g || g.used < g.limit;
