//! Transactional e-mail, queued and delivered: each message is a row in
//! `email_outbox`, written in the same transaction as the change that needs it (so
//! nothing is queued for a change that rolled back), then written out in the user's
//! locale and sent by the delivery worker ([`delivery`]) through the configured
//! provider ([`provider`]).
pub mod delivery;
pub mod events;
pub mod graphql;
pub mod preferences;
pub mod provider;
pub mod reminders;
pub mod render;
pub mod sequences;
pub mod service;
pub mod store;
pub mod templates;
