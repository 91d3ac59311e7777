// CSAT after a ticket is resolved or closed: "How satisfied are you with the support you
// received?", 1 to 5 stars and an optional comment, once per ticket.
import type { TicketStatus } from '$lib/gql/graphql';
import type { Locale } from '$lib/i18n/locale';

export const CSAT_SCORES = [1, 2, 3, 4, 5] as const;
/** The server's limit on the comment. */
export const CSAT_COMMENT_MAX = 1000;

const SCORE: Record<number, [string, string]> = {
  1: ['Très insatisfait', 'Very unsatisfied'],
  2: ['Insatisfait', 'Unsatisfied'],
  3: ['Neutre', 'Neutral'],
  4: ['Satisfait', 'Satisfied'],
  5: ['Très satisfait', 'Very satisfied'],
};

/** "4 étoiles sur 5 : Satisfait". */
export function csatLabel(score: number, locale: Locale): string {
  const word = SCORE[score]?.[locale === 'fr' ? 0 : 1] ?? '';
  return locale === 'fr' ? `${score} étoile${score > 1 ? 's' : ''} sur 5 : ${word}` : `${score} star${score > 1 ? 's' : ''} out of 5: ${word}`;
}

/** Rating is offered once support considers the ticket done. */
export const canRate = (s: TicketStatus) => s === 'RESOLVED' || s === 'CLOSED';

/** The mutation's input, or why not: no score picked, or a comment over the limit. */
export function csatInput(
  ticketId: string,
  score: number | null,
  comment: string,
): { input: { ticketId: string; score: number; comment: string | null } } | { problem: 'score' | 'comment' } {
  if (score === null || !(CSAT_SCORES as readonly number[]).includes(score)) return { problem: 'score' };
  const c = comment.trim();
  if ([...c].length > CSAT_COMMENT_MAX) return { problem: 'comment' };
  return { input: { ticketId, score, comment: c || null } };
}
