/** The two languages of the product; French is the default. */
export type Locale = 'fr' | 'en';

export const LOCALES: readonly Locale[] = ['fr', 'en'];
export const DEFAULT_LOCALE: Locale = 'fr';

const STORAGE_KEY = 'plinth.locale';

/** The locale a path is in: `/en` and `/en/...` are English, everything else French. */
export function localeFromPath(pathname: string): Locale {
  return pathname === '/en' || pathname.startsWith('/en/') ? 'en' : 'fr';
}

/** The path without its language prefix (`/en/pricing` → `/pricing`, `/en` → `/`). */
export function stripLocale(pathname: string): string {
  if (pathname === '/en') return '/';
  if (pathname.startsWith('/en/')) return pathname.slice(3);
  return pathname;
}

/** A prefixed public or account path for `locale` (`/pricing`, 'en' → `/en/pricing`). */
export function localizePath(path: string, locale: Locale): string {
  const bare = stripLocale(path);
  if (locale === 'fr') return bare;
  return bare === '/' ? '/en' : `/en${bare}`;
}

/** The preference remembered by this browser (a UI choice, not a secret). */
export function storedLocale(): Locale | null {
  try {
    const v = globalThis.localStorage?.getItem(STORAGE_KEY);
    return v === 'fr' || v === 'en' ? v : null;
  } catch {
    return null;
  }
}

export function rememberLocale(locale: Locale): void {
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, locale);
  } catch {
    // Private mode or storage disabled: the choice lasts for this page only.
  }
}

/** Formats helpers bound to a locale. */
export function formatters(locale: Locale) {
  const tag = locale === 'fr' ? 'fr-FR' : 'en-GB';
  return {
    money(cents: number, currency: string): string {
      const whole = cents % 100 === 0;
      return new Intl.NumberFormat(tag, {
        style: 'currency',
        currency: currency.toUpperCase(),
        minimumFractionDigits: whole ? 0 : 2,
        maximumFractionDigits: 2,
      }).format(cents / 100);
    },
    number(n: number): string {
      return new Intl.NumberFormat(tag).format(n);
    },
    bytes(n: number): string {
      const units = locale === 'fr' ? ['o', 'Ko', 'Mo', 'Go', 'To'] : ['B', 'KB', 'MB', 'GB', 'TB'];
      let v = n;
      let i = 0;
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      const digits = v >= 10 || i === 0 ? 0 : 1;
      return `${new Intl.NumberFormat(tag, { maximumFractionDigits: digits }).format(v)} ${units[i]}`;
    },
    date(iso: string): string {
      return new Intl.DateTimeFormat(tag, { dateStyle: 'medium' }).format(new Date(iso));
    },
    dateTime(iso: string): string {
      return new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
    },
    percent(ratio: number): string {
      return new Intl.NumberFormat(tag, { style: 'percent', maximumFractionDigits: 0 }).format(ratio);
    },
  };
}
