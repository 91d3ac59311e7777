//! Plinth's server: everything `plinth serve` does, as a library the binary and the
//! black-box tests start the same way.
//!
//! Imports run downward, floor by floor (the architecture test in `tests/` holds the
//! table): startup → http → graphql → domains (in a declared order) → tasks → auth →
//! db → the ground floor (config, telemetry, error, principal, events, storage, model,
//! catalog, metrics, pagination, secretbox, fsutil, shared_redis).
pub mod accounts;
pub mod activity;
pub mod api_tokens;
pub mod auth;
pub mod billing;
pub mod business;
pub mod catalog;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod doctor;
pub mod drafts;
pub mod email;
pub mod error;
pub mod events;
pub mod experiments;
pub mod feedback;
pub mod fsutil;
pub mod graphql;
pub mod http;
pub mod imports;
pub mod jobs;
pub mod marketplace;
pub mod metrics;
pub mod model;
pub mod notifications;
pub mod pagination;
pub mod photos;
pub mod plans;
pub mod principal;
pub mod quotas;
pub mod reports;
pub mod secretbox;
pub mod shared_redis;
pub mod startup;
pub mod storage;
pub mod support;
pub mod tasks;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
