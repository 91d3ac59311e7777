//! User feedback: NPS responses (0–10 with an optional comment, at most one per user per
//! 90 days) and the administrators' summary, counted in PostgreSQL.
pub mod graphql;
pub mod service;
pub mod store;
