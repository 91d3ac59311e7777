import type { Step } from './steps';

export const onboardingText = {
  fr: {
    title: 'Bien démarrer',
    lead: 'Cinq étapes pour préparer votre première annonce. Vous pouvez en passer et revenir plus tard : vous reprendrez là où vous en étiez.',
    steps: { verify: 'Confirmer l’adresse', connect: 'Connecter une plateforme', photos: 'Ajouter des photos', scan: 'Analyser les photos', draft: 'Votre brouillon' } as Record<Step, string>,
    progress: 'Étapes',
    done: 'fait',
    skipped: 'passée',
    skip: 'Passer cette étape',
    later: 'Terminer plus tard',
    skipTour: 'Passer la prise en main',
    finished: 'Prise en main terminée : votre espace est prêt.',
    toOverview: 'Aller à la vue d’ensemble',
    next: 'Continuer',
    back: 'Étape précédente',
  },
  en: {
    title: 'Get started',
    lead: 'Five steps to prepare your first listing. You may skip some and come back later: you will pick up where you left off.',
    steps: { verify: 'Confirm your address', connect: 'Connect a marketplace', photos: 'Add photos', scan: 'Scan the photos', draft: 'Your draft' } as Record<Step, string>,
    progress: 'Steps',
    done: 'done',
    skipped: 'skipped',
    skip: 'Skip this step',
    later: 'Finish later',
    skipTour: 'Skip the tour',
    finished: 'Tour finished: your workspace is ready.',
    toOverview: 'Go to the overview',
    next: 'Continue',
    back: 'Previous step',
  },
};
