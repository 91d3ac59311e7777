//! The optional Chatwoot bridge (issue 14, item 6), on when `PLINTH_CHATWOOT_URL` is set.
//!
//! Out: every ticket message (the user's as incoming messages, staff's as outgoing ones,
//! internal notes as private notes) and status change is queued in `chatwoot_outbox` by
//! the request that made it, in its transaction (`service`), and copied to Chatwoot by a
//! background loop (`delivery`) through its Application API (`client`): a ticket is a
//! conversation of the configured API inbox, its user a contact. Chatwoot being slow,
//! down or a black hole never slows a request: the rows wait and are retried.
//!
//! In: Chatwoot's signed `message_created` webhook (`webhook`) brings agents' replies and
//! private notes back into the ticket, once per Chatwoot message, as the system role
//! through narrow `priv` functions (a conversation id names another user's ticket).
pub mod client;
pub mod delivery;
pub mod webhook;
