// Public pages are prerendered to HTML and ship no JavaScript unless a page opts in
// (pricing does, to refresh the catalogue from the API).
export const prerender = true;
export const csr = false;
