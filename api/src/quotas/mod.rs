//! Plan quotas: limits travel in the access token; usage lives in Postgres and is
//! consumed by one atomic statement inside the request's transaction, so concurrent
//! requests never overspend and a rolled-back action is never charged.
pub mod graphql;
pub mod service;
pub mod store;
