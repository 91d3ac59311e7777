// The one public page with JavaScript: it refreshes the catalogue from the `plans` query.
export const csr = true;
