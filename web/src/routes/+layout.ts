import { browser } from '$app/environment';
import { localeFromPath, storedLocale, type Locale } from '$lib/i18n/locale';
import type { LayoutLoad } from './$types';

// Public and account pages carry their language in the path (`/en/...`); the app shell
// (/app) uses the language this browser chose last.
export const load: LayoutLoad = ({ url }) => {
  let locale: Locale = localeFromPath(url.pathname);
  if (browser && url.pathname.startsWith('/app')) locale = storedLocale() ?? 'fr';
  return { locale };
};
