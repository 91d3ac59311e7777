//! A/B experiments: administrators define them (variants with weights, an audience);
//! each signed-in user gets a variant by a hash of (experiment key, user id), recorded at
//! first exposure; conversions are tracked per (experiment, user, goal) or derived from
//! the data (verified, first job, paid); results per variant come from PostgreSQL as
//! counts and are compared with the control by a two-proportion z-test (`stats`).
pub mod graphql;
pub mod service;
pub mod stats;
pub mod store;
