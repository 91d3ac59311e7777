import type { Locale } from '$lib/i18n/locale';

interface Landing {
  title: string;
  description: string;
  eyebrow: string;
  headline: string;
  lead: string;
  cta: string;
  ctaSecondary: string;
  ctaNote: string;
  stepsTitle: string;
  steps: { title: string; text: string }[];
  audienceTitle: string;
  audience: { title: string; text: string }[];
  featuresTitle: string;
  features: { title: string; text: string }[];
  marketplacesTitle: string;
  finalTitle: string;
  finalText: string;
}

export const landing: Record<Locale, Landing> = {
  fr: {
    title: 'Vos photos deviennent des annonces',
    description:
      "Plinth analyse vos photos d'articles, prépare les brouillons d'annonces et les publie sur vos comptes Vinted, eBay, Leboncoin, Etsy et Depop.",
    eyebrow: 'Automatisation des annonces',
    headline: 'Vos photos deviennent des annonces prêtes à publier',
    lead:
      "Déposez vos photos : Plinth les analyse, prépare un brouillon d'annonce pour chaque article et le publie sur les places de marché que vous avez connectées. Vous relisez, il fait le reste.",
    cta: 'Commencer gratuitement',
    ctaSecondary: 'Voir les tarifs',
    ctaNote: 'Offre gratuite sans carte bancaire. 14 jours d’essai sur les offres payantes.',
    stepsTitle: 'Comment ça marche',
    steps: [
      { title: '1. Déposez vos photos', text: 'Depuis votre téléphone ou votre ordinateur, par lots. Les fichiers sont vérifiés avant l’envoi.' },
      { title: '2. Plinth prépare le brouillon', text: 'Chaque photo est analysée ; titre, description, catégorie et état sont proposés dans un brouillon modifiable.' },
      { title: '3. Publiez partout', text: 'Un clic publie l’annonce sur vos comptes connectés. Vous suivez chaque tâche en direct.' },
    ],
    audienceTitle: 'Pour qui',
    audience: [
      { title: 'Revendeurs et revendeuses', text: 'Vous mettez en vente des dizaines d’articles par semaine et la saisie vous prend plus de temps que la vente.' },
      { title: 'Boutiques de seconde main', text: 'Friperies, dépôts-ventes et ateliers qui veulent un catalogue en ligne sans y passer leurs soirées.' },
      { title: 'Intégrateurs', text: 'Une API GraphQL documentée et des jetons à portée limitée pour brancher vos propres outils.' },
    ],
    featuresTitle: 'Ce que vous obtenez',
    features: [
      { title: 'Suivi en direct', text: 'Analyses, préparations et publications s’affichent en temps réel, avec leur journal.' },
      { title: 'Quotas clairs', text: 'Votre consommation du mois, les dates de renouvellement, et une alerte avant la limite.' },
      { title: 'Vos données en Europe', text: 'Hébergement dans l’Union européenne, export de vos données et suppression du compte à tout moment.' },
      { title: 'Facturation simple', text: 'Paiement par carte via Stripe, factures avec TVA, changement ou résiliation en ligne.' },
    ],
    marketplacesTitle: 'Places de marché prises en charge',
    finalTitle: 'Essayez sur vos propres articles',
    finalText: 'Créez un compte en une minute, déposez quelques photos et regardez le premier brouillon se préparer.',
  },
  en: {
    title: 'Your photos become listings',
    description:
      'Plinth scans your item photos, prepares listing drafts and publishes them to your Vinted, eBay, Leboncoin, Etsy and Depop accounts.',
    eyebrow: 'Listing automation',
    headline: 'Your photos become listings, ready to publish',
    lead:
      'Upload your photos: Plinth scans them, prepares a listing draft for each item and publishes it to the marketplaces you connected. You review, it does the rest.',
    cta: 'Start for free',
    ctaSecondary: 'See pricing',
    ctaNote: 'Free plan, no card needed. 14-day trial on paid plans.',
    stepsTitle: 'How it works',
    steps: [
      { title: '1. Upload your photos', text: 'From your phone or computer, in batches. Files are checked before they are sent.' },
      { title: '2. Plinth prepares the draft', text: 'Each photo is scanned; title, description, category and condition are suggested in a draft you can edit.' },
      { title: '3. Publish everywhere', text: 'One click publishes the listing to your connected accounts. You follow every job live.' },
    ],
    audienceTitle: 'Who it is for',
    audience: [
      { title: 'Resellers', text: 'You list dozens of items a week and typing takes longer than selling.' },
      { title: 'Second-hand shops', text: 'Thrift stores, consignment shops and workshops that want an online catalogue without spending their evenings on it.' },
      { title: 'Integrators', text: 'A documented GraphQL API and narrowly scoped tokens to plug in your own tools.' },
    ],
    featuresTitle: 'What you get',
    features: [
      { title: 'Live tracking', text: 'Scans, preparations and publications show up in real time, with their log.' },
      { title: 'Clear quotas', text: 'This month’s usage, reset dates, and a warning before you reach a limit.' },
      { title: 'Your data in Europe', text: 'Hosted in the European Union; export your data and delete your account at any time.' },
      { title: 'Simple billing', text: 'Card payments through Stripe, invoices with VAT, change or cancel online.' },
    ],
    marketplacesTitle: 'Supported marketplaces',
    finalTitle: 'Try it on your own items',
    finalText: 'Create an account in a minute, upload a few photos and watch the first draft being prepared.',
  },
};

export const MARKETPLACES = ['Vinted', 'eBay', 'Leboncoin', 'Etsy', 'Depop'];
