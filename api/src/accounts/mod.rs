//! Accounts: registration, sign-in, sessions with rotating refresh tokens, e-mail
//! verification, password reset and change; GDPR data exports and account deletion.
pub mod domain;
pub mod export;
pub mod graphql;
pub mod privacy;
pub mod service;
pub mod store;
pub mod tasks;
