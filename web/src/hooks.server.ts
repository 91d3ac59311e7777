import type { Handle } from '@sveltejs/kit';
import { localeFromPath } from '$lib/i18n/locale';

// Runs while prerendering (and in `vite dev`): the page's language goes into <html lang>.
export const handle: Handle = ({ event, resolve }) =>
  resolve(event, { transformPageChunk: ({ html }) => html.replace('%lang%', localeFromPath(event.url.pathname)) });
