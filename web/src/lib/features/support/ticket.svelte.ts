// One ticket, kept live: read once, then every `ticketUpdated` event for it (status
// changes and new messages) is merged in. Users and staff use it alike; staff also see
// internal notes (the server routes those to staff only).
import { createSubscription, fetchOnce } from '$lib/api/app.svelte';
import type { ApiError } from '$lib/api/errors';
import { TicketDocument, TicketUpdatedDocument, type MessageFieldsFragment, type TicketQuery } from '$lib/gql/graphql';
import { addMessage, newerTicket } from './labels';

export type FullTicket = NonNullable<TicketQuery['ticket']>;

/** Reads ticket `id` and follows it while the calling component lives. */
export function followTicket(id: () => string) {
  let ticket = $state<FullTicket | null | undefined>(undefined);
  let error = $state<ApiError | undefined>(undefined);

  async function load() {
    const r = await fetchOnce(TicketDocument, { id: id() });
    if (r.error) error = r.error;
    else {
      error = undefined;
      ticket = r.data.ticket;
    }
  }

  $effect(() => {
    id();
    void load();
  });
  const sub = createSubscription(TicketUpdatedDocument, () => ({ id: id() }), (d) => {
    const u = d.ticketUpdated;
    if (!ticket || u.ticket.id !== ticket.id) return;
    ticket = { ...newerTicket(ticket, u.ticket), messages: ticket.messages };
    if (u.message) {
      ticket.messages = addMessage(ticket.messages, u.message);
      // Live messages carry no download URLs: read the ticket for them.
      if (u.message.attachments.length > 0) void load();
    }
  });

  return {
    get ticket() {
      return ticket;
    },
    get error() {
      return error;
    },
    get live() {
      return sub.live;
    },
    reload: load,
    /** A message this tab just sent (the event may come later, or first). */
    addMessage(m: MessageFieldsFragment) {
      if (ticket) ticket.messages = addMessage(ticket.messages, m);
    },
    /** The ticket's header after this tab changed it. */
    setSummary(t: Omit<FullTicket, 'messages' | 'csat'>) {
      if (ticket) ticket = { ...newerTicket(ticket, t), messages: ticket.messages };
    },
  };
}
