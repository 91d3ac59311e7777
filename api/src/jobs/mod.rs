//! Jobs: scan, prepare and publish work that users pay for, queued in Postgres,
//! claimed by workers over the same GraphQL API, followed live over WebSocket.
pub mod graphql;
pub mod service;
pub mod worker;
