// Strings shared by the staff console's pages.
export const staffText = {
  fr: {
    console: 'Console support',
    inbox: 'File des tickets',
    forbidden: 'Réservé au support et aux administrateurs.',
    me: 'Moi',
    unassigned: 'Non attribué',
    someone: 'Un collègue',
    logged: 'Ce qui sera enregistré',
    cancel: 'Annuler',
  },
  en: {
    console: 'Support console',
    inbox: 'Ticket inbox',
    forbidden: 'For support staff and administrators.',
    me: 'Me',
    unassigned: 'Unassigned',
    someone: 'A colleague',
    logged: 'What will be logged',
    cancel: 'Cancel',
  },
};

/** Who a ticket is assigned to, as staff read it. */
export function assigneeText(assigneeId: string | null, me: string, locale: 'fr' | 'en'): string {
  const t = staffText[locale];
  return !assigneeId ? t.unassigned : assigneeId === me ? t.me : t.someone;
}
