//! sea-orm entities, one module per table. These are the database's shape only; the
//! GraphQL types live in the api crate's domain modules and map from these.
pub mod activity_log;
pub mod drafts;
pub mod email_outbox;
pub mod invoices;
pub mod job_logs;
pub mod jobs;
pub mod marketplace_accounts;
pub mod one_time_tokens;
pub mod photos;
pub mod refresh_tokens;
pub mod sessions;
pub mod users;
