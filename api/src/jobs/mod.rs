//! Jobs: scan, prepare and publish work that users pay for, queued in Postgres,
//! claimed by workers over the same GraphQL API, followed live over WebSocket. The
//! reference worker is the `plinth-worker` crate.
pub mod graphql;
pub mod service;
