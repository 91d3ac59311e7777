//! Plinth's server: everything `plinth serve` does, as a library the binary and the
//! black-box tests start the same way.
//!
//! Imports run downward: startup → http → graphql → domains → db → the ground floor
//! (config, telemetry, error, principal, ratelimit, entity).
pub mod accounts;
pub mod activity;
pub mod auth;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod graphql;
pub mod http;
pub mod principal;
pub mod ratelimit;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
