//! The dashboard: what a user sees first, in one round trip to the database.
pub mod graphql;
pub mod service;
pub mod store;
