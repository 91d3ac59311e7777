//! Database migrations: roles, tables, grants and row-level security policies.
//!
//! Tables are written in SQL on purpose: row-level security, grants and roles have no
//! sea-query builder, and one readable SQL file per step is what a reviewer checks.
pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_roles;
mod m20261125_000002_create_accounts;
mod m20261125_000003_create_tenant_data;
mod m20261125_000004_create_jobs;
mod m20261125_000005_create_billing;
mod m20261125_000006_create_quotas;
mod m20261125_000007_create_api_tokens;
mod m20261129_000008_create_scheduled_tasks;
mod m20261130_000009_create_billing_subscriptions;
mod m20261130_000010_create_billing_checkouts;
mod m20261130_000011_create_billing_tax_ids;
mod m20261130_000012_record_billing_disputes;
mod m20261130_000013_seal_confirmed_photos;
mod m20261201_000101_share_session_revocations;
mod m20261201_000102_seal_refresh_successors;
mod m20261201_000103_normalize_email_addresses;
mod m20261201_000104_record_worker_tokens;
mod m20261201_000201_deliver_email;
mod m20261201_000202_create_email_sequences;
mod m20261201_000203_record_mail_events;
mod m20261202_000301_create_data_exports;
mod m20261202_000302_schedule_account_deletion;
mod m20261202_000303_begin_erasure;
mod m20261202_000401_schedule_email_reminders;
mod m20261202_000402_change_email_address;
mod m20261202_000501_create_support;
mod m20261202_000502_seal_ticket_attachments;
mod m20261202_000503_create_support_tools;
mod m20261202_000504_notify_ticket_replies;
mod m20261202_000601_record_subscription_history;
mod m20261202_000602_create_business_metrics;
mod m20261202_000701_create_experiments;
mod m20261202_000801_schedule_support_reply_mail;
mod m20261202_000802_create_support_metrics;
mod m20261202_000901_bounce_lookup_by_index;
mod m20261203_000101_create_chatwoot_bridge;
mod m20261203_000102_queue_trial_extensions;
mod m20261203_000201_create_ticket_csat;
mod m20261203_000202_summarise_feedback_by_month;
mod m20261203_000203_pseudonymize_subscription_history;
mod m20261203_000204_speed_up_business_metrics;
mod m20261204_000101_observe_job_queue;
mod m20261204_000201_read_migration_history;
mod m20261204_000301_create_import_records;
mod m20261204_000401_staff_read_ticket_csat;
mod m20261205_000100_audit_operator_commands;
mod m20261205_000200_create_imports;
mod m20261206_000100_create_import_uploads;
pub mod normalize;
pub mod rls;

/// A short hash of every migration source file; changes whenever a migration does.
pub const FINGERPRINT: &str = include!(concat!(env!("OUT_DIR"), "/fingerprint.rs"));

/// The application's migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_roles::Migration),
            Box::new(m20261125_000002_create_accounts::Migration),
            Box::new(m20261125_000003_create_tenant_data::Migration),
            Box::new(m20261125_000004_create_jobs::Migration),
            Box::new(m20261125_000005_create_billing::Migration),
            Box::new(m20261125_000006_create_quotas::Migration),
            Box::new(m20261125_000007_create_api_tokens::Migration),
            Box::new(m20261129_000008_create_scheduled_tasks::Migration),
            Box::new(m20261130_000009_create_billing_subscriptions::Migration),
            Box::new(m20261130_000010_create_billing_checkouts::Migration),
            Box::new(m20261130_000011_create_billing_tax_ids::Migration),
            Box::new(m20261130_000012_record_billing_disputes::Migration),
            Box::new(m20261130_000013_seal_confirmed_photos::Migration),
            Box::new(m20261201_000101_share_session_revocations::Migration),
            Box::new(m20261201_000102_seal_refresh_successors::Migration),
            Box::new(m20261201_000103_normalize_email_addresses::Migration),
            Box::new(m20261201_000104_record_worker_tokens::Migration),
            Box::new(m20261201_000201_deliver_email::Migration),
            Box::new(m20261201_000202_create_email_sequences::Migration),
            Box::new(m20261201_000203_record_mail_events::Migration),
            Box::new(m20261202_000301_create_data_exports::Migration),
            Box::new(m20261202_000302_schedule_account_deletion::Migration),
            Box::new(m20261202_000303_begin_erasure::Migration),
            Box::new(m20261202_000401_schedule_email_reminders::Migration),
            Box::new(m20261202_000402_change_email_address::Migration),
            Box::new(m20261202_000501_create_support::Migration),
            Box::new(m20261202_000502_seal_ticket_attachments::Migration),
            Box::new(m20261202_000503_create_support_tools::Migration),
            Box::new(m20261202_000504_notify_ticket_replies::Migration),
            Box::new(m20261202_000601_record_subscription_history::Migration),
            Box::new(m20261202_000602_create_business_metrics::Migration),
            Box::new(m20261202_000701_create_experiments::Migration),
            Box::new(m20261202_000801_schedule_support_reply_mail::Migration),
            Box::new(m20261202_000802_create_support_metrics::Migration),
            Box::new(m20261202_000901_bounce_lookup_by_index::Migration),
            Box::new(m20261203_000101_create_chatwoot_bridge::Migration),
            Box::new(m20261203_000102_queue_trial_extensions::Migration),
            Box::new(m20261203_000201_create_ticket_csat::Migration),
            Box::new(m20261203_000202_summarise_feedback_by_month::Migration),
            Box::new(m20261203_000203_pseudonymize_subscription_history::Migration),
            Box::new(m20261203_000204_speed_up_business_metrics::Migration),
            Box::new(m20261204_000101_observe_job_queue::Migration),
            Box::new(m20261204_000201_read_migration_history::Migration),
            Box::new(m20261204_000301_create_import_records::Migration),
            Box::new(m20261204_000401_staff_read_ticket_csat::Migration),
            Box::new(m20261205_000100_audit_operator_commands::Migration),
            Box::new(m20261205_000200_create_imports::Migration),
            Box::new(m20261206_000100_create_import_uploads::Migration),
        ]
    }
}
