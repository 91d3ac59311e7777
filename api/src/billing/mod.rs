//! Billing: Stripe Checkout and the portal (`checkout`), signed webhooks (`signature`,
//! `events`, `webhook`) applied through a pure state machine (`state`: each
//! subscription's row from its snapshots, the account from the set of a customer's
//! subscriptions), invoices and tax ids, reconciliation against Stripe (`reconcile`),
//! the sweeper of graces and cancellations that come due (`tasks`), and the Stripe
//! client with its pinned API version, idempotency keys, retries and timeout (`stripe`).
pub mod checkout;
pub mod events;
pub mod graphql;
pub mod reconcile;
pub mod service;
pub mod signature;
pub mod state;
pub mod store;
pub mod stripe;
pub mod tasks;
pub mod webhook;
