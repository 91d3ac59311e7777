import type { DraftStatus, ItemCondition } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';

export const DRAFT_STATUSES: DraftStatus[] = ['DRAFT', 'READY', 'PUBLISHED', 'ARCHIVED'];
export const CONDITIONS: ItemCondition[] = ['NEW_WITH_TAGS', 'NEW_WITHOUT_TAGS', 'VERY_GOOD', 'GOOD', 'SATISFACTORY'];

const STATUS: Record<DraftStatus, [string, string]> = {
  DRAFT: ['Brouillon', 'Draft'],
  READY: ['Prêt', 'Ready'],
  PUBLISHED: ['Publié', 'Published'],
  ARCHIVED: ['Archivé', 'Archived'],
};

const CONDITION: Record<ItemCondition, [string, string]> = {
  NEW_WITH_TAGS: ['Neuf avec étiquette', 'New with tags'],
  NEW_WITHOUT_TAGS: ['Neuf sans étiquette', 'New without tags'],
  VERY_GOOD: ['Très bon état', 'Very good'],
  GOOD: ['Bon état', 'Good'],
  SATISFACTORY: ['Satisfaisant', 'Satisfactory'],
};

export const statusLabel = (s: DraftStatus, l: Locale) => STATUS[s][l === 'fr' ? 0 : 1];
export const conditionLabel = (c: ItemCondition, l: Locale) => CONDITION[c][l === 'fr' ? 0 : 1];
export const statusTone = (s: DraftStatus) =>
  s === 'READY' ? 'badge-ok' : s === 'PUBLISHED' ? 'badge-ok' : s === 'ARCHIVED' ? '' : 'badge-warn';

/** "12,50" or "12.5" → 1250; empty → null; anything else → undefined (invalid). */
export function parsePrice(text: string): number | null | undefined {
  const t = text.trim().replace(/\s/g, '').replace(',', '.');
  if (t === '') return null;
  if (!/^\d+(\.\d{1,2})?$/.test(t)) return undefined;
  return Math.round(Number(t) * 100);
}

export function priceText(cents: number | null): string {
  return cents === null ? '' : (cents / 100).toFixed(2);
}
