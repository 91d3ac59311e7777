// Placeholder legal texts. They describe how the service works today, honestly, but they
// are NOT reviewed by a lawyer: every page says so in a banner, and the bracketed fields
// ([...]) must be filled in by the publisher before launch.
import type { Locale } from '$lib/i18n/locale';

export type LegalSlug = 'terms' | 'terms-of-sale' | 'privacy' | 'legal';

export interface LegalDoc {
  title: string;
  description: string;
  sections: { heading: string; paragraphs: string[] }[];
}

export const placeholderNotice: Record<Locale, { title: string; text: string; updated: string }> = {
  fr: {
    title: 'Texte provisoire',
    text: "Ce document est un modèle provisoire, non validé juridiquement. Les champs entre crochets seront complétés avant l'ouverture commerciale. Il ne constitue pas un engagement contractuel définitif.",
    updated: 'Version provisoire',
  },
  en: {
    title: 'Placeholder text',
    text: 'This document is a provisional template that has not been legally reviewed. Fields in brackets will be completed before commercial launch. It is not a final contractual commitment.',
    updated: 'Provisional version',
  },
};

export const legal: Record<LegalSlug, Record<Locale, LegalDoc>> = {
  terms: {
    fr: {
      title: "Conditions générales d'utilisation",
      description: "Conditions générales d'utilisation (CGU) du service Plinth : compte, usage autorisé, contenus, disponibilité, résiliation.",
      sections: [
        { heading: '1. Objet', paragraphs: ["Les présentes conditions régissent l'utilisation du service Plinth, édité par [Raison sociale], qui permet d'analyser des photos d'articles, de préparer des brouillons d'annonces et de les publier sur des places de marché tierces."] },
        { heading: '2. Compte', paragraphs: ["L'inscription requiert une adresse e-mail valide et un mot de passe d'au moins 8 caractères. Vous êtes responsable de la confidentialité de vos identifiants et des jetons d'API que vous créez.", "Vous devez confirmer votre adresse e-mail pour utiliser certaines fonctions."] },
        { heading: '3. Usage autorisé', paragraphs: ["Vous vous engagez à ne publier que des articles que vous avez le droit de vendre, à respecter les conditions des places de marché connectées et à ne pas contourner les limites techniques du service (quotas, limites de requêtes)."] },
        { heading: '4. Vos contenus', paragraphs: ["Vous restez propriétaire de vos photos et de vos annonces. Vous nous accordez le droit de les traiter dans le seul but de fournir le service."] },
        { heading: '5. Disponibilité', paragraphs: ["Nous faisons nos meilleurs efforts pour assurer la disponibilité du service, sans garantie de disponibilité continue. Les places de marché tierces peuvent modifier ou interrompre leurs interfaces indépendamment de nous."] },
        { heading: '6. Résiliation', paragraphs: ["Vous pouvez supprimer votre compte à tout moment. Nous pouvons suspendre un compte en cas de manquement grave aux présentes conditions, après notification sauf urgence."] },
        { heading: '7. Droit applicable', paragraphs: ['Droit français. [Juridiction compétente et médiateur de la consommation à compléter.]'] },
      ],
    },
    en: {
      title: 'Terms of service',
      description: 'Terms of service of Plinth: account, acceptable use, content, availability, termination.',
      sections: [
        { heading: '1. Purpose', paragraphs: ['These terms govern the use of Plinth, published by [Company name], a service that scans photos of items, prepares listing drafts and publishes them to third-party marketplaces.'] },
        { heading: '2. Account', paragraphs: ['Signing up requires a valid e-mail address and a password of at least 8 characters. You are responsible for keeping your credentials and the API tokens you create confidential.', 'You must confirm your e-mail address to use some features.'] },
        { heading: '3. Acceptable use', paragraphs: ['You agree to list only items you have the right to sell, to follow the terms of the connected marketplaces and not to circumvent the service’s technical limits (quotas, request rates).'] },
        { heading: '4. Your content', paragraphs: ['You keep ownership of your photos and listings. You grant us the right to process them for the sole purpose of providing the service.'] },
        { heading: '5. Availability', paragraphs: ['We do our best to keep the service available, without a guarantee of uninterrupted availability. Third-party marketplaces may change or stop their interfaces independently of us.'] },
        { heading: '6. Termination', paragraphs: ['You may delete your account at any time. We may suspend an account for a serious breach of these terms, after notice except in emergencies.'] },
        { heading: '7. Governing law', paragraphs: ['French law. [Competent court and consumer mediator to be completed.]'] },
      ],
    },
  },
  'terms-of-sale': {
    fr: {
      title: 'Conditions générales de vente',
      description: 'Conditions générales de vente (CGV) des abonnements Plinth : offres, prix, essai, paiement, rétractation, résiliation.',
      sections: [
        { heading: '1. Offres', paragraphs: ["Plinth propose une offre gratuite et des abonnements payants (Starter, Pro, Scale), mensuels ou annuels, dont le contenu et les quotas sont décrits sur la page Tarifs."] },
        { heading: '2. Prix et TVA', paragraphs: ['Les prix sont indiqués en euros hors taxes. La TVA applicable est ajoutée au moment du paiement selon votre pays et votre statut.'] },
        { heading: "3. Période d'essai", paragraphs: ["Le premier abonnement payant d'un compte commence par une période d'essai gratuite dont la durée est indiquée sur la page Tarifs. Sans résiliation avant la fin de l'essai, l'abonnement devient payant."] },
        { heading: '4. Paiement', paragraphs: ['Le paiement est traité par Stripe. En cas d’échec de paiement, le compte entre en période de grâce ; sans régularisation, les fonctions payantes sont suspendues et les données restent consultables.'] },
        { heading: '5. Droit de rétractation', paragraphs: ['[Conditions du droit de rétractation des consommateurs et de la renonciation expresse en cas d’exécution immédiate, à compléter.]'] },
        { heading: '6. Résiliation', paragraphs: ["Vous pouvez résilier depuis la page Facturation ; l'abonnement reste actif jusqu'à la fin de la période payée, sans remboursement au prorata sauf disposition contraire."] },
      ],
    },
    en: {
      title: 'Terms of sale',
      description: 'Terms of sale of Plinth subscriptions: plans, prices, trial, payment, withdrawal, cancellation.',
      sections: [
        { heading: '1. Plans', paragraphs: ['Plinth offers a free plan and paid subscriptions (Starter, Pro, Scale), monthly or yearly, whose content and quotas are described on the Pricing page.'] },
        { heading: '2. Prices and VAT', paragraphs: ['Prices are shown in euros excluding tax. The applicable VAT is added at checkout from your country and status.'] },
        { heading: '3. Trial period', paragraphs: ['An account’s first paid subscription starts with a free trial whose length is shown on the Pricing page. Unless cancelled before the trial ends, the subscription becomes paid.'] },
        { heading: '4. Payment', paragraphs: ['Payments are processed by Stripe. If a payment fails, the account enters a grace period; if it is not settled, paid features are suspended and data stays readable.'] },
        { heading: '5. Right of withdrawal', paragraphs: ['[Conditions of the consumer right of withdrawal and of its express waiver for immediate performance, to be completed.]'] },
        { heading: '6. Cancellation', paragraphs: ['You can cancel from the Billing page; the subscription stays active until the end of the paid period, without pro-rata refund unless stated otherwise.'] },
      ],
    },
  },
  privacy: {
    fr: {
      title: 'Politique de confidentialité',
      description: 'Comment Plinth traite vos données personnelles (RGPD) : données, finalités, bases légales, durées, sous-traitants, vos droits.',
      sections: [
        { heading: '1. Responsable du traitement', paragraphs: ['[Raison sociale], [adresse]. Contact pour les données personnelles : [adresse e-mail du DPO ou du référent].'] },
        { heading: '2. Données traitées', paragraphs: ["Compte (adresse e-mail, mot de passe haché, langue), photos et brouillons que vous déposez, identifiants chiffrés des places de marché connectées, historique d'activité, données de facturation (traitées par Stripe ; nous ne stockons pas vos numéros de carte)."] },
        { heading: '3. Finalités et bases légales', paragraphs: ['Fournir le service (exécution du contrat), facturer (obligation légale), sécuriser le service et prévenir les abus (intérêt légitime), vous envoyer des conseils de prise en main (consentement, désactivable à tout moment).'] },
        { heading: '4. Durées de conservation', paragraphs: ['Tant que le compte existe ; les brouillons supprimés sont récupérables 30 jours ; les factures sont conservées pendant la durée légale. [Durées précises à compléter.]'] },
        { heading: '5. Sous-traitants', paragraphs: ['Hébergement dans l’Union européenne [hébergeur à préciser], paiement (Stripe), envoi d’e-mails [prestataire à préciser], stockage des photos [prestataire à préciser].'] },
        { heading: '6. Vos droits', paragraphs: ["Accès, rectification, effacement, portabilité, opposition et limitation. L'export de vos données et la suppression du compte seront disponibles depuis votre espace ; vous pouvez aussi nous écrire. Réclamation possible auprès de la CNIL."] },
        { heading: '7. Cookies', paragraphs: ['Un seul cookie technique, HttpOnly, maintient votre session. Aucun cookie publicitaire ni traceur tiers.'] },
      ],
    },
    en: {
      title: 'Privacy policy',
      description: 'How Plinth processes your personal data (GDPR): data, purposes, legal bases, retention, processors, your rights.',
      sections: [
        { heading: '1. Controller', paragraphs: ['[Company name], [address]. Contact for personal data: [DPO or contact e-mail].'] },
        { heading: '2. Data processed', paragraphs: ['Account (e-mail address, hashed password, language), the photos and drafts you upload, encrypted credentials of connected marketplaces, activity history, billing data (processed by Stripe; we do not store card numbers).'] },
        { heading: '3. Purposes and legal bases', paragraphs: ['Providing the service (contract), invoicing (legal obligation), securing the service and preventing abuse (legitimate interest), sending onboarding tips (consent, which you can withdraw at any time).'] },
        { heading: '4. Retention', paragraphs: ['As long as the account exists; deleted drafts can be restored for 30 days; invoices are kept for the legal period. [Exact periods to be completed.]'] },
        { heading: '5. Processors', paragraphs: ['Hosting in the European Union [host to be named], payments (Stripe), e-mail delivery [provider to be named], photo storage [provider to be named].'] },
        { heading: '6. Your rights', paragraphs: ['Access, rectification, erasure, portability, objection and restriction. Exporting your data and deleting your account will be available from your account; you can also write to us. You may lodge a complaint with the CNIL.'] },
        { heading: '7. Cookies', paragraphs: ['A single technical, HttpOnly cookie keeps your session. No advertising cookies and no third-party trackers.'] },
      ],
    },
  },
  legal: {
    fr: {
      title: 'Mentions légales',
      description: 'Mentions légales du site Plinth : éditeur, directeur de la publication, hébergeur.',
      sections: [
        { heading: 'Éditeur', paragraphs: ['[Raison sociale], [forme juridique] au capital de [montant], immatriculée au RCS de [ville] sous le numéro [SIREN], siège social : [adresse]. TVA intracommunautaire : [numéro].'] },
        { heading: 'Directeur de la publication', paragraphs: ['[Nom et prénom].'] },
        { heading: 'Contact', paragraphs: ['[Adresse e-mail], [téléphone].'] },
        { heading: 'Hébergement', paragraphs: ['[Nom de l’hébergeur], [adresse], [téléphone].'] },
      ],
    },
    en: {
      title: 'Legal notice',
      description: 'Legal notice of the Plinth website: publisher, publication director, host.',
      sections: [
        { heading: 'Publisher', paragraphs: ['[Company name], [legal form] with a share capital of [amount], registered with the [city] trade register under number [SIREN], registered office: [address]. EU VAT number: [number].'] },
        { heading: 'Publication director', paragraphs: ['[Full name].'] },
        { heading: 'Contact', paragraphs: ['[E-mail address], [phone].'] },
        { heading: 'Hosting', paragraphs: ['[Host name], [address], [phone].'] },
      ],
    },
  },
};
