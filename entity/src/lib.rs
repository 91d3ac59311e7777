//! sea-orm entities, one module per table. These are the database's shape only; the
//! GraphQL types live in the api crate's domain modules and map from these. Statements
//! that sea-orm's builder does not say clearly (upserts, `priv.*` calls, aggregates)
//! live in each domain's `store.rs` instead.
pub mod activity_log;
pub mod api_tokens;
pub mod billing_accounts;
pub mod billing_checkouts;
pub mod billing_subscriptions;
pub mod billing_tax_ids;
pub mod drafts;
pub mod email_outbox;
pub mod invoices;
pub mod job_logs;
pub mod jobs;
pub mod marketplace_accounts;
pub mod notifications;
pub mod one_time_tokens;
pub mod photos;
pub mod quota_notices;
pub mod quota_usage;
pub mod refresh_tokens;
pub mod scheduled_tasks;
pub mod sessions;
pub mod stripe_events;
pub mod token_revocations;
pub mod users;
