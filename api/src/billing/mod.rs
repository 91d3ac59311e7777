//! Billing: Stripe Checkout and the portal (`checkout`), signed webhooks (`signature`,
//! `events`, `webhook`) applied through a pure subscription state machine (`state`),
//! invoices, reconciliation against Stripe's list (`reconcile`) and the grace sweeper
//! (`tasks`).
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
