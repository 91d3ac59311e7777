//! Billing: plans, Stripe Checkout and portal, webhooks that activate and suspend
//! accounts, invoices, notifications, and reconciliation against Stripe.
pub mod catalog;
pub mod graphql;
pub mod service;
pub mod stripe;
pub mod webhook;
