//! Connected marketplace accounts ("comptes"): where drafts get published. The
//! credentials are sealed at rest and never leave through the API.
pub mod domain;
pub mod graphql;
pub mod service;
