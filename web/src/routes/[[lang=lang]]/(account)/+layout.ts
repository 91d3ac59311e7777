// Account pages read the URL (tokens, ?plan=) and talk to the API: rendered in the
// browser from the SPA shell (200.html).
export const ssr = false;
export const prerender = false;
