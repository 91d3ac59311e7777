//! Accounts: registration, sign-in, sessions with rotating refresh tokens, e-mail
//! verification, password reset and change.
pub mod domain;
pub mod graphql;
pub mod service;
pub mod store;
