import type { Locale } from '$lib/i18n/locale';

/** The scopes createApiToken accepts (see CreateApiTokenInput in schema.graphql). */
export const SCOPES = [
  'drafts:read',
  'drafts:write',
  'jobs:read',
  'jobs:write',
  'accounts:read',
  'accounts:write',
  'usage:read',
  'billing:read',
  'activity:read',
] as const;

const LABELS: Record<(typeof SCOPES)[number], [string, string]> = {
  'drafts:read': ['Lire les brouillons', 'Read drafts'],
  'drafts:write': ['Modifier les brouillons', 'Edit drafts'],
  'jobs:read': ['Suivre les tâches', 'Follow jobs'],
  'jobs:write': ['Lancer et annuler des tâches', 'Start and cancel jobs'],
  'accounts:read': ['Lire les comptes connectés', 'Read connected accounts'],
  'accounts:write': ['Gérer les comptes connectés', 'Manage connected accounts'],
  'usage:read': ['Lire la consommation', 'Read usage'],
  'billing:read': ['Lire la facturation', 'Read billing'],
  'activity:read': ['Lire l’historique et le tableau de bord', 'Read activity and the dashboard'],
};

export function scopeLabel(scope: string, locale: Locale): string {
  const pair = LABELS[scope as (typeof SCOPES)[number]];
  return pair ? pair[locale === 'fr' ? 0 : 1] : scope;
}
