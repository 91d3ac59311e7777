// The signed-in app is rendered in the browser from the SPA shell (200.html).
export const ssr = false;
export const prerender = false;
