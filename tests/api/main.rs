//! The black-box suite, one binary: the real server (the same `Application::build` as
//! `main`) on a random port against a fresh database, spoken to over HTTP and WebSocket
//! like a client. One module per domain; the harness is in `helpers`.
mod helpers;

mod accounts;
mod api_tokens;
mod billing;
mod cli;
mod cookies;
mod demo;
mod drafts;
mod drain;
mod edge;
mod edge_strings;
mod email;
mod experiments;
mod exports;
mod faults;
mod gdpr;
mod identity;
mod import;
mod import_web;
mod isolation;
mod isolation_model;
mod isolation_sweep;
mod jobs;
mod marketplace;
mod metrics;
mod observability;
mod ops;
mod persisted;
mod photos;
mod quotas;
mod release;
mod serve;
mod support;
mod support_chatwoot;
mod traces;
mod webapp;
