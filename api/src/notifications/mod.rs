//! In-app notifications: each comes with its e-mail (both rows written in the caller's
//! transaction, so a change that rolls back notifies nobody), is listed and marked read
//! by its owner, and is pushed live to the owner's `notificationAdded` subscriptions.
pub mod graphql;
pub mod service;
pub mod store;
