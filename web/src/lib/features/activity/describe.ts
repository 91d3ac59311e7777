import type { Locale } from '$lib/i18n/locale';

const ACTIONS: Record<string, [string, string]> = {
  'draft.create': ['Brouillon créé', 'Draft created'],
  'draft.update': ['Brouillon modifié', 'Draft edited'],
  'draft.delete': ['Brouillon supprimé', 'Draft deleted'],
  'draft.restore': ['Brouillon restauré', 'Draft restored'],
  'job.create': ['Tâche lancée', 'Job started'],
  'job.cancel': ['Tâche annulée', 'Job canceled'],
  'api_token.create': ['Jeton d’API créé', 'API token created'],
  'api_token.revoke': ['Jeton d’API révoqué', 'API token revoked'],
  'auth.login': ['Connexion', 'Signed in'],
  'auth.register': ['Compte créé', 'Account created'],
  'billing.checkout': ['Paiement commencé', 'Checkout started'],
};

/** A readable label for an activity verb; unknown verbs are shown as they are. */
export function describeAction(action: string, locale: Locale): string {
  const pair = ACTIONS[action];
  return pair ? pair[locale === 'fr' ? 0 : 1] : action;
}
