//! The harness: a [`TestApp`] builder that starts the real server on a fresh database,
//! a GraphQL client and its fixtures (users, drafts, photos), a WebSocket client,
//! Stripe, SendGrid and Chatwoot stand-ins, an OpenTelemetry collector, and the machine's services the suite needs
//! (PostgreSQL, Redis, an S3-compatible server), each failing with a line that says how
//! to get it.
mod app;
pub mod chatwoot;
mod fixtures;
mod graphql;
pub mod otlp;
pub mod proxy;
pub mod sendgrid;
mod services;
pub mod smtp;
pub mod stripe;
mod ws;

pub use app::{decoded_mail, token_in, TestApp, TestAppBuilder};
pub use fixtures::{png, TestUser};
pub use graphql::{code, redacted};
pub use services::{admin_url, redis_url, s3_endpoint};
pub use ws::{connect_ws, RawSocket, WsClient, WsEvent};
