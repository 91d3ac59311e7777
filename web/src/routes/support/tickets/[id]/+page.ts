// The link in support e-mails and notifications (`/support/tickets/<id>`, the server's
// `ticket_link`) opens the ticket in the app.
import { redirect } from '@sveltejs/kit';
import type { PageLoad } from './$types';

export const ssr = false;
export const prerender = false;

export const load: PageLoad = ({ params }) => {
  redirect(307, `/app/support/tickets/${encodeURIComponent(params.id)}`);
};
