// What an API error means for the person using the app, in French and English, and
// the action that resolves it. Kept apart from errors.ts so that pages that only parse
// errors (pricing) do not ship every message.
import { formatters, localizePath, type Locale } from '$lib/i18n/locale';
import type { ApiError, ErrorCode } from './errors';

/** What the UI shows for an error: a sentence, and what the person can do about it. */
export interface ErrorView {
  code: ErrorCode;
  title: string;
  message: string;
  /** A link that resolves it (upgrade, billing, sign in). */
  action?: { label: string; href: string };
  /** Whether trying again may work (a retry button is worth showing). */
  retryable: boolean;
  /** INTERNAL: quote this to support. */
  requestId?: string;
  /** BAD_USER_INPUT: the form field to attach the message to (last path segment). */
  field?: string;
}

const METRICS: Record<Locale, Record<string, string>> = {
  fr: {
    SCANS: 'analyses',
    PREPARATIONS: 'préparations',
    CONNECTED_ACCOUNTS: 'comptes connectés',
    STORAGE_BYTES: 'stockage',
    API_REQUESTS_PER_MINUTE: 'requêtes API par minute',
  },
  en: {
    SCANS: 'scans',
    PREPARATIONS: 'preparations',
    CONNECTED_ACCOUNTS: 'connected accounts',
    STORAGE_BYTES: 'storage',
    API_REQUESTS_PER_MINUTE: 'API requests per minute',
  },
};

/** A quota metric's name in `locale`. */
export function metricName(metric: string, locale: Locale): string {
  return METRICS[locale][metric.toUpperCase()] ?? metric.toLowerCase().replace(/_/g, ' ');
}

function limitText(err: ApiError, locale: Locale): string {
  const f = formatters(locale);
  if (err.limit === undefined) return '';
  return err.metric === 'STORAGE_BYTES' ? f.bytes(err.limit) : f.number(err.limit);
}

/** The message for an error, in French or English, with what to do about it. */
export function describeError(err: ApiError, locale: Locale): ErrorView {
  const fr = locale === 'fr';
  const f = formatters(locale);
  const base = { code: err.code, retryable: false } as const;
  switch (err.code) {
    case 'UNAUTHENTICATED':
      return {
        ...base,
        title: fr ? 'Session expirée' : 'Session expired',
        message: fr ? 'Reconnectez-vous pour continuer.' : 'Sign in again to continue.',
        action: { label: fr ? 'Se connecter' : 'Sign in', href: localizePath('/login', locale) },
      };
    case 'FORBIDDEN':
      return {
        ...base,
        title: fr ? 'Accès refusé' : 'Not allowed',
        message: fr
          ? "Votre compte n'a pas le droit de faire cela. Si vous pensez que c'est une erreur, contactez le support."
          : "Your account is not allowed to do this. If you think it's a mistake, contact support.",
      };
    case 'NOT_FOUND':
      return {
        ...base,
        title: fr ? 'Introuvable' : 'Not found',
        message: fr
          ? "Cet élément n'existe pas ou plus, ou il ne vous appartient pas."
          : 'This item does not exist any more, or it is not yours.',
      };
    case 'BAD_USER_INPUT': {
      const field = err.field?.split('.').pop();
      return {
        ...base,
        title: fr ? 'Saisie à corriger' : 'Please check your input',
        message: fr
          ? `Le champ « ${field ?? '?'} » n'est pas valide${detail(err)}.`
          : `The field “${field ?? '?'}” is not valid${detail(err)}.`,
        ...(field ? { field } : {}),
      };
    }
    case 'QUOTA_EXCEEDED': {
      const what = metricName(err.metric ?? '', locale);
      const limit = limitText(err, locale);
      const reset = err.resetsAt
        ? fr
          ? ` Il se renouvelle le ${f.date(err.resetsAt)}.`
          : ` It resets on ${f.date(err.resetsAt)}.`
        : fr
          ? ' Supprimez-en ou passez à une offre supérieure.'
          : ' Remove some or move to a bigger plan.';
      return {
        ...base,
        title: fr ? 'Quota atteint' : 'Quota reached',
        message: fr
          ? `Vous avez atteint la limite de votre offre : ${limit} ${what}.${reset}`
          : `You have reached your plan's limit of ${limit} ${what}.${reset}`,
        action: { label: fr ? 'Changer d’offre' : 'Upgrade', href: '/app/billing' },
      };
    }
    case 'SUBSCRIPTION_INACTIVE':
      return {
        ...base,
        title: fr ? 'Abonnement suspendu' : 'Subscription suspended',
        message: fr
          ? 'Les fonctions payantes sont suspendues ; vos données restent lisibles. Réglez la facture en attente pour reprendre.'
          : 'Paid features are suspended; your data stays readable. Pay the open invoice to resume.',
        action: { label: fr ? 'Aller à la facturation' : 'Go to billing', href: '/app/billing' },
      };
    case 'ACCOUNT_SUSPENDED':
      return {
        ...base,
        title: fr ? 'Compte suspendu' : 'Account suspended',
        message: fr
          ? `Un administrateur a suspendu ce compte${reason(err, locale)}. Contactez le support ; la connexion reste refusée tant que la suspension n’est pas levée.`
          : `An administrator suspended this account${reason(err, locale)}. Contact support; signing in stays refused until the suspension is lifted.`,
      };
    case 'RATE_LIMITED': {
      const secs = Math.max(1, Math.ceil(err.retryAfter ?? 1));
      return {
        ...base,
        retryable: true,
        title: fr ? 'Trop de requêtes' : 'Too many requests',
        message: fr
          ? `Patientez ${secs} s puis réessayez.`
          : `Wait ${secs} s and try again.`,
      };
    }
    case 'CONFLICT':
      return {
        ...base,
        title: fr ? 'Conflit' : 'Conflict',
        message: fr
          ? 'Cela existe déjà ou a changé entre-temps. Rechargez puis réessayez.'
          : 'This already exists or changed in the meantime. Reload and try again.',
      };
    case 'INTERNAL':
      return {
        ...base,
        retryable: true,
        title: fr ? 'Erreur du serveur' : 'Server error',
        message: fr
          ? `Une erreur inattendue s'est produite. Réessayez ; si elle persiste, donnez au support la référence ${err.requestId ?? '—'}.`
          : `Something unexpected went wrong. Try again; if it persists, give support the reference ${err.requestId ?? '—'}.`,
        ...(err.requestId ? { requestId: err.requestId } : {}),
      };
    case 'QUERY_TOO_COMPLEX':
      return {
        ...base,
        title: fr ? 'Demande trop lourde' : 'Request too large',
        message: fr
          ? 'Cette demande dépasse les limites du serveur. Affichez moins d’éléments à la fois.'
          : 'This request exceeds the server’s limits. Show fewer items at a time.',
      };
    case 'RESPONSE_TOO_LARGE':
      return {
        ...base,
        title: fr ? 'Réponse trop volumineuse' : 'Answer too large',
        message: fr
          ? 'La réponse dépasserait la taille permise. Affichez moins d’éléments à la fois ou réduisez la période.'
          : 'The answer would exceed the allowed size. Show fewer items at a time or shorten the period.',
      };
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'GRAPHQL_PARSE_FAILED':
    case 'GRAPHQL_VALIDATION_FAILED':
      return {
        ...base,
        title: fr ? 'Application à mettre à jour' : 'App out of date',
        message: fr
          ? "Cette version de l'application ne correspond plus au serveur. Rechargez la page."
          : 'This version of the app no longer matches the server. Reload the page.',
      };
    case 'SERVICE_UNAVAILABLE':
      return {
        ...base,
        retryable: true,
        title: fr ? 'Service indisponible' : 'Service unavailable',
        message: fr
          ? 'Le service est momentanément indisponible. Réessayez dans un instant.'
          : 'The service is briefly unavailable. Try again in a moment.',
      };
    case 'NETWORK':
      return {
        ...base,
        retryable: true,
        title: fr ? 'Pas de connexion' : 'No connection',
        message: fr
          ? 'Le serveur ne répond pas. Vérifiez votre connexion puis réessayez.'
          : 'The server does not answer. Check your connection and try again.',
      };
    case 'UNKNOWN':
    default:
      return {
        ...base,
        retryable: true,
        title: fr ? 'Erreur' : 'Error',
        message: fr ? "Quelque chose n'a pas fonctionné. Réessayez." : 'Something did not work. Try again.',
      };
  }
}

/** ACCOUNT_SUSPENDED: the server's message carries the admin's reason in parentheses. */
export function suspensionReason(serverMessage: string): string | undefined {
  const m = /suspended \((.+)\)/.exec(serverMessage);
  return m?.[1]?.trim() || undefined;
}

function reason(err: ApiError, locale: Locale): string {
  const r = suspensionReason(err.serverMessage);
  if (!r) return '';
  return locale === 'fr' ? ` (motif : « ${r} »)` : ` (reason: “${r}”)`;
}

/** The server's reason after the field name, for BAD_USER_INPUT (`title: too long`). */
function detail(err: ApiError): string {
  const m = err.serverMessage;
  const i = m.indexOf(': ');
  return i > 0 && i < m.length - 2 ? ` (${m.slice(i + 2)})` : '';
}
