import type { Locale } from '$lib/i18n/locale';

// Every action the server writes to an activity log (its literals in api/src, checked by
// describe.test.ts), in French and English.
const ACTIONS: Record<string, [string, string]> = {
  'account.register': ['Compte créé', 'Account created'],
  'account.create_admin': ['Compte administrateur créé', 'Admin account created'],
  'account.verify_email': ['Adresse e-mail confirmée', 'E-mail address verified'],
  'account.request_email_change': ['Changement d’adresse demandé', 'E-mail change requested'],
  'account.email_changed': ['Adresse e-mail changée', 'E-mail address changed'],
  'account.request_password_reset': ['Réinitialisation du mot de passe demandée', 'Password reset requested'],
  'account.password_changed': ['Mot de passe changé', 'Password changed'],
  'account.update_profile': ['Profil modifié', 'Profile updated'],
  'account.deletion_scheduled': ['Suppression du compte programmée', 'Account deletion scheduled'],
  'account.deletion_canceled': ['Suppression du compte annulée', 'Account deletion canceled'],
  'account.find': ['Compte recherché par le support', 'Account looked up by support'],
  'account.summary': ['Compte consulté par le support', 'Account viewed by support'],
  'session.login': ['Connexion', 'Signed in'],
  'session.logout': ['Déconnexion', 'Signed out'],
  'session.revoke': ['Session révoquée', 'Session revoked'],
  'api_token.create': ['Jeton d’API créé', 'API token created'],
  'api_token.revoke': ['Jeton d’API révoqué', 'API token revoked'],
  'draft.create': ['Brouillon créé', 'Draft created'],
  'draft.update': ['Brouillon modifié', 'Draft edited'],
  'draft.delete': ['Brouillon supprimé', 'Draft deleted'],
  'draft.restore': ['Brouillon restauré', 'Draft restored'],
  'photo.reserve': ['Envoi de photo préparé', 'Photo upload prepared'],
  'photo.confirm': ['Photo ajoutée', 'Photo added'],
  'photo.delete': ['Photo supprimée', 'Photo deleted'],
  'job.create': ['Tâche lancée', 'Job started'],
  'job.cancel': ['Tâche annulée', 'Job canceled'],
  'job.succeeded': ['Tâche terminée', 'Job finished'],
  'marketplace_account.connect': ['Compte de plateforme connecté', 'Marketplace account connected'],
  'marketplace_account.rename': ['Compte de plateforme renommé', 'Marketplace account renamed'],
  'marketplace_account.disconnect': ['Compte de plateforme déconnecté', 'Marketplace account disconnected'],
  'billing.checkout_started': ['Paiement commencé', 'Checkout started'],
  'billing.checkout_completed': ['Paiement terminé', 'Checkout completed'],
  'billing.state_changed': ['Abonnement mis à jour', 'Subscription updated'],
  'billing.dispute_created': ['Litige de paiement ouvert', 'Payment dispute opened'],
  'billing.customer_deleted': ['Client de facturation supprimé', 'Billing customer deleted'],
  'billing.customer_forgotten': ['Données de facturation effacées', 'Billing data erased'],
  'import.batch': ['Données importées', 'Data imported'],
  'support.grant': ['Accès accordé au support', 'Support access granted'],
  'support.revoke': ['Accès du support retiré', 'Support access revoked'],
  'support.resend_verification': ['E-mail de confirmation renvoyé par le support', 'Verification e-mail resent by support'],
  'support.revoke_sessions': ['Sessions fermées par le support', 'Sessions ended by support'],
  'support.suspend': ['Compte suspendu par le support', 'Account suspended by support'],
  'support.unsuspend': ['Suspension levée par le support', 'Suspension lifted by support'],
  'support.quota_credit': ['Crédit de quota accordé', 'Quota credit granted'],
  'support.set_role': ['Rôle modifié par le support', 'Role changed by support'],
  'support.extend_trial': ['Essai prolongé', 'Trial extended'],
  'ticket.open': ['Demande de support ouverte', 'Support ticket opened'],
  'ticket.reply': ['Réponse à une demande', 'Ticket replied to'],
  'ticket.note': ['Note interne ajoutée', 'Internal note added'],
  'ticket.assign': ['Demande attribuée', 'Ticket assigned'],
  'ticket.view': ['Demande consultée par le support', 'Ticket viewed by support'],
  'ticket.close': ['Demande fermée', 'Ticket closed'],
  'ticket.reopen': ['Demande rouverte', 'Ticket reopened'],
};

/** The actions with a label (for the test that the server writes no other). */
export const LABELLED_ACTIONS: readonly string[] = Object.keys(ACTIONS);

/** A readable label for an activity verb; unknown verbs are shown as they are. */
export function describeAction(action: string, locale: Locale): string {
  return label(ACTIONS, action, locale);
}

function label(table: Record<string, [string, string]>, key: string, locale: Locale): string {
  const pair = table[key];
  return pair ? pair[locale === 'fr' ? 0 : 1] : key;
}

// The kinds of object an entry names (its `subjectType`).
const SUBJECTS: Record<string, [string, string]> = {
  draft: ['Brouillon', 'Draft'],
  job: ['Tâche', 'Job'],
  photo: ['Photo', 'Photo'],
  ticket: ['Demande de support', 'Support ticket'],
  session: ['Session', 'Session'],
  api_token: ['Jeton d’API', 'API token'],
  marketplace_account: ['Compte de plateforme', 'Marketplace account'],
  import: ['Import', 'Import'],
  data_export: ['Export de données', 'Data export'],
  user: ['Compte', 'Account'],
};

/** A readable name for the kind of object acted on; unknown kinds are shown as they are. */
export function describeSubject(subjectType: string, locale: Locale): string {
  return label(SUBJECTS, subjectType, locale);
}
