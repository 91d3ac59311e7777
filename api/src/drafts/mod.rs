//! Listing drafts: a listing in preparation, its fields, status and photos.
pub mod domain;
pub mod graphql;
pub mod service;
