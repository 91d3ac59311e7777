//! Transactional e-mail, queued: each message is a row in `email_outbox`, written in the
//! same transaction as the change that needs it, so nothing is queued for a change that
//! rolled back. Nothing reads the outbox yet: no message is delivered (delivery is
//! issue 13's worker).
pub mod service;
pub mod store;
pub mod templates;
