//! The statements of `billing_accounts`, `invoices` and `stripe_events`, the
//! per-customer and per-user locks, and the cross-tenant lookups billing needs
//! (`priv.user_for_stripe_customer`, `priv.grace_expired`).
use super::events::StripeInvoice;
use crate::{
    error::AppResult,
    model::{AccountState, BillingInterval, PlanCode},
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde_json::Value;
use uuid::Uuid;

/// A user's billing row, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Stripe customer.
    pub customer: Option<String>,
    /// Whether a trial was ever granted.
    pub trial_used: bool,
    /// The subscription.
    pub subscription_id: Option<String>,
    /// Its Stripe status, as Stripe spelled it.
    pub subscription_status: Option<String>,
    /// The plan of the subscription (kept through a suspension).
    pub plan: PlanCode,
    /// Its interval.
    pub interval: Option<BillingInterval>,
    /// The account state.
    pub state: AccountState,
    /// End of grace.
    pub grace_until: Option<DateTime<Utc>>,
    /// Current period start.
    pub current_period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Trial end.
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// Newest applied event time (`created`, unix seconds).
    pub version: i64,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            customer: None,
            trial_used: false,
            subscription_id: None,
            subscription_status: None,
            plan: PlanCode::Free,
            interval: None,
            state: AccountState::Free,
            grace_until: None,
            current_period_start: None,
            current_period_end: None,
            trial_end: None,
            cancel_at_period_end: false,
            version: 0,
        }
    }
}

/// Serializes `key`'s billing work within the transaction (`pg_advisory_xact_lock`):
/// one customer's events apply one at a time, and one user's checkout set-up runs once.
///
/// Errors: INTERNAL (database).
pub async fn lock(db: &impl ConnectionTrait, key: &str) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [key.into()],
    ))
    .await?;
    Ok(())
}

/// The lock key of a Stripe customer's events.
///
/// Errors: INTERNAL (database).
pub fn customer_lock(customer: &str) -> String {
    format!("stripe:{customer}")
}

/// The lock key of a user's checkout set-up.
///
/// Errors: INTERNAL (database).
pub fn user_lock(user_id: Uuid) -> String {
    format!("billing:{user_id}")
}

/// Records a webhook event once; false when its id was seen before.
///
/// Errors: INTERNAL (database).
pub async fn record_event(
    db: &impl ConnectionTrait,
    id: &str,
    kind: &str,
    customer: Option<&str>,
    created: i64,
) -> AppResult<bool> {
    let fresh = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO stripe_events (id, type, customer_id, created) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING RETURNING id",
            [id.into(), kind.into(), customer.map(str::to_owned).into(), created.into()],
        ))
        .await?;
    Ok(fresh.is_some())
}

/// The user a Stripe customer belongs to (`priv.user_for_stripe_customer`).
///
/// Errors: INTERNAL (database).
pub async fn user_for_customer(db: &impl ConnectionTrait, customer: &str) -> AppResult<Option<Uuid>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.user_for_stripe_customer($1) AS user_id",
            [customer.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Option<Uuid>>("", "user_id")).transpose()?.flatten())
}

/// Users whose grace period ended (`priv.grace_expired`).
///
/// Errors: INTERNAL (database).
pub async fn grace_expired(db: &impl ConnectionTrait) -> AppResult<Vec<Uuid>> {
    let rows =
        db.query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id FROM priv.grace_expired()")).await?;
    rows.iter().map(|r| Ok(r.try_get("", "user_id")?)).collect()
}

/// The user's billing row, if any.
///
/// Errors: INTERNAL (database).
pub async fn read_account(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<Account>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT stripe_customer_id, trial_used, subscription_id, subscription_status, plan, billing_interval,
                    account_state, grace_until, current_period_start, current_period_end, trial_end,
                    cancel_at_period_end, state_version
             FROM billing_accounts WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    row.as_ref().map(account).transpose()
}

fn account(r: &QueryResult) -> AppResult<Account> {
    let utc = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
    };
    Ok(Account {
        customer: r.try_get("", "stripe_customer_id")?,
        trial_used: r.try_get("", "trial_used")?,
        subscription_id: r.try_get("", "subscription_id")?,
        subscription_status: r.try_get("", "subscription_status")?,
        plan: r.try_get("", "plan")?,
        interval: r.try_get("", "billing_interval")?,
        state: r.try_get("", "account_state")?,
        grace_until: utc("grace_until")?,
        current_period_start: utc("current_period_start")?,
        current_period_end: utc("current_period_end")?,
        trial_end: utc("trial_end")?,
        cancel_at_period_end: r.try_get("", "cancel_at_period_end")?,
        version: r.try_get("", "state_version")?,
    })
}

/// Records the user's Stripe customer (creating the billing row).
///
/// Errors: INTERNAL (database).
pub async fn save_customer(db: &impl ConnectionTrait, user_id: Uuid, customer: &str) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO billing_accounts (user_id, stripe_customer_id) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET stripe_customer_id = EXCLUDED.stripe_customer_id, updated_at = now()",
        [user_id.into(), customer.into()],
    ))
    .await?;
    Ok(())
}

/// Writes the subscription fields of the user's billing row.
///
/// Errors: INTERNAL (database).
pub async fn write_subscription(db: &impl ConnectionTrait, user_id: Uuid, a: &Account) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE billing_accounts SET subscription_id = $2, subscription_status = $3, plan = $4,
           billing_interval = $5, account_state = $6, grace_until = $7, current_period_start = $8,
           current_period_end = $9, trial_end = $10, trial_used = $11, cancel_at_period_end = $12,
           state_version = $13, updated_at = now()
         WHERE user_id = $1",
        [
            user_id.into(),
            a.subscription_id.clone().into(),
            a.subscription_status.clone().into(),
            a.plan.into(),
            a.interval.into(),
            a.state.into(),
            a.grace_until.into(),
            a.current_period_start.into(),
            a.current_period_end.into(),
            a.trial_end.into(),
            a.trial_used.into(),
            a.cancel_at_period_end.into(),
            a.version.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Moves an account whose grace ended to SUSPENDED.
///
/// Errors: INTERNAL (database).
pub async fn suspend_after_grace(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE billing_accounts SET account_state = $2, grace_until = NULL, updated_at = now() WHERE user_id = $1",
        [user_id.into(), AccountState::Suspended.into()],
    ))
    .await?;
    Ok(())
}

/// Sets the plan an account's users row shows (and its tokens carry).
///
/// Errors: INTERNAL (database).
pub async fn set_user_plan(db: &impl ConnectionTrait, user_id: Uuid, plan: PlanCode) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET plan = $2, updated_at = now() WHERE id = $1 AND plan <> $2",
        [user_id.into(), plan.into()],
    ))
    .await?;
    Ok(())
}

/// Stores the customer's tax ids (`[{type, value}]`).
///
/// Errors: INTERNAL (database).
pub async fn save_tax_ids(db: &impl ConnectionTrait, user_id: Uuid, tax_ids: Value) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE billing_accounts SET tax_ids = $2, updated_at = now() WHERE user_id = $1",
        [user_id.into(), tax_ids.into()],
    ))
    .await?;
    Ok(())
}

/// Inserts or updates the mirror of a Stripe invoice, unless a newer event already
/// wrote it.
///
/// Errors: INTERNAL (database).
pub async fn upsert_invoice(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    inv: &StripeInvoice,
    version: i64,
) -> AppResult<()> {
    let ts = |s: Option<i64>| s.and_then(|s| DateTime::from_timestamp(s, 0));
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO invoices (id, user_id, stripe_invoice_id, number, status, currency, subtotal_cents, tax_cents,
           total_cents, amount_paid_cents, amount_due_cents, hosted_invoice_url, invoice_pdf, period_start,
           period_end, stripe_created, state_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (user_id, stripe_invoice_id) DO UPDATE SET
           number = EXCLUDED.number, status = EXCLUDED.status, subtotal_cents = EXCLUDED.subtotal_cents,
           tax_cents = EXCLUDED.tax_cents, total_cents = EXCLUDED.total_cents,
           amount_paid_cents = EXCLUDED.amount_paid_cents, amount_due_cents = EXCLUDED.amount_due_cents,
           hosted_invoice_url = EXCLUDED.hosted_invoice_url, invoice_pdf = EXCLUDED.invoice_pdf,
           state_version = EXCLUDED.state_version, updated_at = now()
         WHERE invoices.state_version <= EXCLUDED.state_version",
        [
            Uuid::now_v7().into(),
            user_id.into(),
            inv.id.clone().into(),
            inv.number.clone().into(),
            inv.status.clone().unwrap_or_else(|| "draft".into()).into(),
            inv.currency.clone().unwrap_or_else(|| "eur".into()).into(),
            inv.subtotal.unwrap_or(0).into(),
            inv.tax_cents().into(),
            inv.total.unwrap_or(0).into(),
            inv.amount_paid.unwrap_or(0).into(),
            inv.amount_due.unwrap_or(0).into(),
            inv.hosted_invoice_url.clone().into(),
            inv.invoice_pdf.clone().into(),
            ts(inv.period_start).into(),
            ts(inv.period_end).into(),
            ts(inv.created).unwrap_or_else(Utc::now).into(),
            version.into(),
        ],
    ))
    .await?;
    Ok(())
}
