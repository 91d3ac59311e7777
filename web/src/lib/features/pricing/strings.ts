import type { QuotaMetric } from '$lib/gql/graphql';
import { formatters, type Locale } from '$lib/i18n/locale';

export const pricingText = {
  fr: {
    title: 'Tarifs',
    description:
      "Offres Plinth : gratuite, Starter, Pro et Scale. Prix mensuels ou annuels, 14 jours d'essai, quotas d'analyses, de préparations et de stockage.",
    heading: 'Des offres simples, sans engagement',
    lead: 'Commencez gratuitement, passez à une offre payante quand votre volume augmente. Changez ou résiliez en ligne à tout moment.',
    interval: 'Facturation',
    monthly: 'Mensuelle',
    yearly: 'Annuelle',
    yearlyHint: 'jusqu’à 2 mois offerts',
    perMonth: '/ mois HT',
    perYear: '/ an HT',
    equivalent: (amount: string) => `soit ${amount} par mois`,
    save: (pct: string) => `${pct} d’économie`,
    free: 'Gratuit',
    freeNote: 'Pour toujours, sans carte bancaire',
    trial: (days: number) => `${days} jours d’essai gratuit`,
    choose: (name: string) => `Choisir ${name}`,
    startFree: 'Commencer gratuitement',
    popular: 'Le plus choisi',
    includes: 'Inclus',
    vat: 'Prix en euros hors taxes. La TVA applicable (20 % en France) est ajoutée au paiement selon votre pays et votre statut ; les entreprises de l’UE avec un numéro de TVA valide sont facturées en autoliquidation.',
    trialNote: 'L’essai gratuit s’applique au premier abonnement payant d’un compte ; vous pouvez résilier avant la fin de l’essai sans être débité.',
    questions: 'Des questions ? Consultez la FAQ.',
  },
  en: {
    title: 'Pricing',
    description:
      'Plinth plans: Free, Starter, Pro and Scale. Monthly or yearly prices, 14-day trial, quotas for scans, preparations and storage.',
    heading: 'Simple plans, no commitment',
    lead: 'Start for free, move to a paid plan when your volume grows. Change or cancel online at any time.',
    interval: 'Billing',
    monthly: 'Monthly',
    yearly: 'Yearly',
    yearlyHint: 'up to 2 months free',
    perMonth: '/ month excl. VAT',
    perYear: '/ year excl. VAT',
    equivalent: (amount: string) => `that is ${amount} a month`,
    save: (pct: string) => `save ${pct}`,
    free: 'Free',
    freeNote: 'Forever, no card needed',
    trial: (days: number) => `${days}-day free trial`,
    choose: (name: string) => `Choose ${name}`,
    startFree: 'Start for free',
    popular: 'Most popular',
    includes: 'Included',
    vat: 'Prices in euros, excluding tax. The applicable VAT (20% in France) is added at checkout from your country and status; EU businesses with a valid VAT number are invoiced under reverse charge.',
    trialNote: 'The free trial applies to an account’s first paid subscription; cancel before it ends and you are not charged.',
    questions: 'Questions? Read the FAQ.',
  },
};

/** One quota of a plan as a line of the pricing table ("500 analyses par mois"). */
export function quotaLine(metric: QuotaMetric, limit: number, locale: Locale): string {
  const f = formatters(locale);
  const n = f.number(limit);
  const fr = locale === 'fr';
  switch (metric) {
    case 'SCANS':
      return fr ? `${n} analyses de photos par mois` : `${n} photo scans a month`;
    case 'PREPARATIONS':
      return fr ? `${n} préparations d’annonces par mois` : `${n} listing preparations a month`;
    case 'CONNECTED_ACCOUNTS':
      return fr
        ? `${n} compte${limit > 1 ? 's' : ''} de place de marché connecté${limit > 1 ? 's' : ''}`
        : `${n} connected marketplace account${limit > 1 ? 's' : ''}`;
    case 'STORAGE_BYTES':
      return fr ? `${f.bytes(limit)} de stockage photo` : `${f.bytes(limit)} of photo storage`;
    case 'API_REQUESTS_PER_MINUTE':
      return fr ? `${n} requêtes API par minute` : `${n} API requests a minute`;
  }
}
