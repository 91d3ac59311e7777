import { loadCatalog } from '$features/pricing/catalog.server';
import type { PageServerLoad } from './$types';

// Runs at build time only (the page is prerendered): the catalogue shipped in the HTML is
// the repository's plans.toml.
export const load: PageServerLoad = () => ({ plans: loadCatalog() });
