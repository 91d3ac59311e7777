import type { Locale } from '$lib/i18n/locale';

interface Faq {
  title: string;
  description: string;
  heading: string;
  items: { q: string; a: string }[];
  more: string;
}

export const faq: Record<Locale, Faq> = {
  fr: {
    title: 'Questions fréquentes',
    description: 'Réponses aux questions sur Plinth : fonctionnement, places de marché, quotas, facturation, données personnelles.',
    heading: 'Questions fréquentes',
    items: [
      { q: 'Que fait Plinth exactement ?', a: 'Plinth analyse les photos de vos articles, prépare un brouillon d’annonce pour chacun (titre, description, catégorie, état, prix suggéré) et le publie sur les comptes de places de marché que vous avez connectés.' },
      { q: 'Quelles places de marché sont prises en charge ?', a: 'Vinted, eBay, Leboncoin, Etsy et Depop. Le nombre de comptes connectés en même temps dépend de votre offre.' },
      { q: 'Ai-je besoin d’une carte bancaire pour commencer ?', a: 'Non. L’offre gratuite ne demande aucun moyen de paiement. Les offres payantes commencent par 14 jours d’essai lors du premier abonnement.' },
      { q: 'Que se passe-t-il quand j’atteins un quota ?', a: 'L’action concernée est refusée avec un message qui indique la limite et la date de renouvellement. Vous pouvez attendre la période suivante ou changer d’offre ; rien n’est facturé en plus sans votre accord.' },
      { q: 'Et si un paiement échoue ?', a: 'Vous gardez l’accès pendant une période de grâce et nous vous prévenons. Sans régularisation, les fonctions payantes sont suspendues mais vos données restent consultables.' },
      { q: 'Les prix incluent-ils la TVA ?', a: 'Les prix affichés sont hors taxes. La TVA applicable est calculée au paiement selon votre pays et votre statut (particulier ou entreprise).' },
      { q: 'Puis-je résilier à tout moment ?', a: 'Oui, depuis la page Facturation de votre espace. L’abonnement reste actif jusqu’à la fin de la période payée.' },
      { q: 'Où sont stockées mes données ?', a: 'Dans l’Union européenne. Vous pouvez exporter vos données ou supprimer votre compte à tout moment ; voir la politique de confidentialité.' },
      { q: 'Puis-je utiliser Plinth depuis mes propres outils ?', a: 'Oui : créez un jeton d’API avec uniquement les droits nécessaires (lecture des brouillons, suivi des tâches…) depuis votre espace, et utilisez l’API GraphQL.' },
    ],
    more: 'Une autre question ? Écrivez-nous depuis votre espace, rubrique Support.',
  },
  en: {
    title: 'Frequently asked questions',
    description: 'Answers about Plinth: how it works, marketplaces, quotas, billing and personal data.',
    heading: 'Frequently asked questions',
    items: [
      { q: 'What does Plinth do exactly?', a: 'Plinth scans the photos of your items, prepares a listing draft for each one (title, description, category, condition, suggested price) and publishes it to the marketplace accounts you connected.' },
      { q: 'Which marketplaces are supported?', a: 'Vinted, eBay, Leboncoin, Etsy and Depop. How many accounts you can connect at once depends on your plan.' },
      { q: 'Do I need a card to start?', a: 'No. The Free plan asks for no payment method. Paid plans start with a 14-day trial on your first subscription.' },
      { q: 'What happens when I reach a quota?', a: 'The action is refused with a message giving the limit and the date it resets. You can wait for the next period or change plans; nothing extra is charged without your consent.' },
      { q: 'What if a payment fails?', a: 'You keep access during a grace period and we let you know. If it is not settled, paid features are suspended but your data stays readable.' },
      { q: 'Do prices include VAT?', a: 'Prices shown exclude tax. The applicable VAT is computed at checkout from your country and status (individual or business).' },
      { q: 'Can I cancel at any time?', a: 'Yes, from the Billing page of your account. The subscription stays active until the end of the paid period.' },
      { q: 'Where is my data stored?', a: 'In the European Union. You can export your data or delete your account at any time; see the privacy policy.' },
      { q: 'Can I use Plinth from my own tools?', a: 'Yes: create an API token with only the rights it needs (read drafts, follow jobs…) from your account, and use the GraphQL API.' },
    ],
    more: 'Another question? Write to us from your account, in Support.',
  },
};
