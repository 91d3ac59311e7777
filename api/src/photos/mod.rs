//! Photos: uploaded straight to object storage through presigned URLs, checked on
//! confirmation (size, type, real image), then attached to a draft in order.
pub mod domain;
pub mod graphql;
pub mod service;
pub mod store;
pub mod tasks;
