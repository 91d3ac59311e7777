//! Jobs: scan, prepare and publish work that users pay for, queued in Postgres,
//! claimed by workers over the same GraphQL API (the reference worker is the
//! `plinth-worker` crate), followed live over WebSocket.
pub mod graphql;
pub mod service;
pub mod store;
pub mod tasks;
