//! Transactional e-mail: messages are rows in `email_outbox`, written in the same
//! transaction as the change that needs them; delivery reads the outbox.
pub mod service;
pub mod templates;
