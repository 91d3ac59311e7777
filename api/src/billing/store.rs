//! The statements of `billing_accounts`, `billing_subscriptions`, `billing_checkouts`,
//! `billing_tax_ids`, `invoices` and `stripe_events`, the per-customer and per-user
//! locks, and the cross-tenant lookups billing needs (`priv.user_for_stripe_customer`,
//! `priv.billing_due`, `priv.billing_customers`, `priv.billing_admins`).
use super::events::{StripeInvoice, TaxId};
use crate::{
    error::AppResult,
    model::{AccountState, BillingInterval, PlanCode, SubscriptionStatus, TaxIdVerification},
};
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use uuid::Uuid;

/// A user's billing row, as stored: the account derived from its subscriptions
/// (`state::derive`), its customer, and what events other than subscriptions set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Stripe customer.
    pub customer: Option<String>,
    /// The customer forgotten last (deleted at Stripe): names the next one's key.
    pub previous_customer: Option<String>,
    /// Whether a trial was ever granted.
    pub trial_used: bool,
    /// The subscription that decides the account (the newest one when Free).
    pub subscription_id: Option<String>,
    /// Its Stripe status, as Stripe spelled it.
    pub subscription_status: Option<String>,
    /// The plan shown and carried by tokens (Free when the state is).
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
    /// The billing cycle anchor quota periods are counted from.
    pub anchor: Option<DateTime<Utc>>,
    /// Trial end.
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// When the deciding subscription ends (a cancellation scheduled).
    pub cancels_at: Option<DateTime<Utc>>,
    /// Newest applied snapshot time (unix seconds).
    pub version: i64,
    /// Country of the billing address.
    pub address_country: Option<String>,
    /// When the newest dispute was opened.
    pub disputed_at: Option<DateTime<Utc>>,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            customer: None,
            previous_customer: None,
            trial_used: false,
            subscription_id: None,
            subscription_status: None,
            plan: PlanCode::Free,
            interval: None,
            state: AccountState::Free,
            grace_until: None,
            current_period_start: None,
            current_period_end: None,
            anchor: None,
            trial_end: None,
            cancel_at_period_end: false,
            cancels_at: None,
            version: 0,
            address_country: None,
            disputed_at: None,
        }
    }
}

/// One Stripe subscription of a user, as last applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_...`.
    pub id: String,
    /// Its customer.
    pub customer: String,
    /// Its status, as Stripe spelled it.
    pub status_text: String,
    /// Deleted (an event, or its customer's deletion).
    pub ended: bool,
    /// Its catalog plan, the last known one; None if never known.
    pub plan: Option<PlanCode>,
    /// Its interval.
    pub interval: Option<BillingInterval>,
    /// Prices of its items not in the catalog.
    pub unknown_prices: Vec<String>,
    /// Current period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub period_end: Option<DateTime<Utc>>,
    /// Billing cycle anchor.
    pub anchor: Option<DateTime<Utc>>,
    /// Trial end.
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// Scheduled end.
    pub cancel_at: Option<DateTime<Utc>>,
    /// Stripe's time of the first past-due snapshot of this spell.
    pub past_due_since: Option<DateTime<Utc>>,
    /// Its snapshot's event time (unix seconds).
    pub version: i64,
    /// Its status's rank (`state::rank`).
    pub rank: i16,
    /// Quantity of its catalog item.
    pub quantity: i64,
    /// The catalog price of its plan and interval (cents, tax excluded).
    pub unit_amount_cents: Option<i64>,
    /// The catalog currency of that price.
    pub currency: Option<String>,
}

impl Subscription {
    /// Its status in the vocabulary; None for one Stripe added later.
    pub fn status(&self) -> Option<SubscriptionStatus> {
        SubscriptionStatus::parse(&self.status_text).ok()
    }

    /// When it ends: its `cancel_at`, or its period's end under `cancel_at_period_end`.
    pub fn cancels_at(&self) -> Option<DateTime<Utc>> {
        self.cancel_at.or(if self.cancel_at_period_end { self.period_end } else { None })
    }

    /// Whether it is still a subscription (not ended, nor past its end): a live one
    /// forbids another checkout. A status Stripe adds later counts as live.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.ended
            && !matches!(self.status(), Some(SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired))
            && self.cancels_at().is_none_or(|c| c > now)
    }
}

/// A user's pending checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCheckout {
    /// Its plan.
    pub plan: PlanCode,
    /// Its interval.
    pub interval: BillingInterval,
    /// The idempotency key of its session's creation.
    pub key: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When its session stops being payable.
    pub expires_at: DateTime<Utc>,
    /// Its session, once created.
    pub session_id: Option<String>,
    /// The session's URL.
    pub url: Option<String>,
}

/// A tax id, as stored and shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxIdRow {
    /// e.g. `eu_vat`.
    pub kind: String,
    /// The number.
    pub value: String,
    /// Its country.
    pub country: Option<String>,
    /// Stripe's check.
    pub verification: TaxIdVerification,
}

fn utc(r: &QueryResult, c: &str) -> AppResult<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<DateTime<FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
}

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Serializes `key`'s billing work within the transaction (`pg_advisory_xact_lock`):
/// one customer's events apply one at a time, and one user's checkout claims run one at
/// a time. Never held across a call to Stripe.
///
/// Errors: INTERNAL (database).
pub async fn lock(db: &impl ConnectionTrait, key: &str) -> AppResult<()> {
    db.execute(stmt("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [key.into()])).await?;
    Ok(())
}

/// The lock key of a Stripe customer's events.
pub fn customer_lock(customer: &str) -> String {
    format!("stripe:{customer}")
}

/// The lock key of a user's billing set-up (customer, checkout).
pub fn user_lock(user_id: Uuid) -> String {
    format!("billing:{user_id}")
}

/// Records a webhook event once, with its payload's API version and a note; false when
/// its id was seen before.
///
/// Errors: INTERNAL (database).
pub async fn record_event(
    db: &impl ConnectionTrait,
    id: &str,
    kind: &str,
    customer: Option<&str>,
    created: i64,
    api_version: Option<&str>,
    note: Option<&str>,
) -> AppResult<bool> {
    let fresh = db
        .query_one(stmt(
            "INSERT INTO stripe_events (id, type, customer_id, created, api_version, note) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO NOTHING RETURNING id",
            [
                id.into(),
                kind.into(),
                customer.map(str::to_owned).into(),
                created.into(),
                api_version.map(str::to_owned).into(),
                note.map(str::to_owned).into(),
            ],
        ))
        .await?;
    Ok(fresh.is_some())
}

/// The user a Stripe customer belongs to (`priv.user_for_stripe_customer`).
///
/// Errors: INTERNAL (database).
pub async fn user_for_customer(db: &impl ConnectionTrait, customer: &str) -> AppResult<Option<Uuid>> {
    let row = db.query_one(stmt("SELECT priv.user_for_stripe_customer($1) AS user_id", [customer.into()])).await?;
    Ok(row.map(|r| r.try_get::<Option<Uuid>>("", "user_id")).transpose()?.flatten())
}

/// Users whose grace ended or whose cancellation came due (`priv.billing_due`).
///
/// Errors: INTERNAL (database).
pub async fn billing_due(db: &impl ConnectionTrait) -> AppResult<Vec<Uuid>> {
    let rows =
        db.query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id FROM priv.billing_due()")).await?;
    rows.iter().map(|r| Ok(r.try_get("", "user_id")?)).collect()
}

/// Every (user, Stripe customer) Plinth knows (`priv.billing_customers`).
///
/// Errors: INTERNAL (database).
pub async fn billing_customers(db: &impl ConnectionTrait) -> AppResult<Vec<(Uuid, String)>> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT user_id, customer_id FROM priv.billing_customers()",
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "user_id")?, r.try_get("", "customer_id")?))).collect()
}

/// The admins' ids (`priv.billing_admins`).
///
/// Errors: INTERNAL (database).
pub async fn admins(db: &impl ConnectionTrait) -> AppResult<Vec<Uuid>> {
    let rows =
        db.query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id FROM priv.billing_admins()")).await?;
    rows.iter().map(|r| Ok(r.try_get("", "user_id")?)).collect()
}

/// The user's billing row, if any.
///
/// Errors: INTERNAL (database; a stored value outside the vocabulary).
pub async fn read_account(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<Account>> {
    let row = db
        .query_one(stmt(
            "SELECT stripe_customer_id, previous_customer_id, trial_used, subscription_id, subscription_status, plan,
                    billing_interval, account_state, grace_until, current_period_start, current_period_end,
                    billing_anchor, trial_end, cancel_at_period_end, cancels_at, state_version, address_country,
                    disputed_at
             FROM billing_accounts WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    row.as_ref().map(account).transpose()
}

fn account(r: &QueryResult) -> AppResult<Account> {
    Ok(Account {
        customer: r.try_get("", "stripe_customer_id")?,
        previous_customer: r.try_get("", "previous_customer_id")?,
        trial_used: r.try_get("", "trial_used")?,
        subscription_id: r.try_get("", "subscription_id")?,
        subscription_status: r.try_get("", "subscription_status")?,
        plan: r.try_get("", "plan")?,
        interval: r.try_get("", "billing_interval")?,
        state: r.try_get("", "account_state")?,
        grace_until: utc(r, "grace_until")?,
        current_period_start: utc(r, "current_period_start")?,
        current_period_end: utc(r, "current_period_end")?,
        anchor: utc(r, "billing_anchor")?,
        trial_end: utc(r, "trial_end")?,
        cancel_at_period_end: r.try_get("", "cancel_at_period_end")?,
        cancels_at: utc(r, "cancels_at")?,
        version: r.try_get("", "state_version")?,
        address_country: r.try_get("", "address_country")?,
        disputed_at: utc(r, "disputed_at")?,
    })
}

/// Records the user's Stripe customer (creating the billing row).
///
/// Errors: INTERNAL (database).
pub async fn save_customer(db: &impl ConnectionTrait, user_id: Uuid, customer: &str) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO billing_accounts (user_id, stripe_customer_id) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET stripe_customer_id = EXCLUDED.stripe_customer_id, updated_at = now()",
        [user_id.into(), customer.into()],
    ))
    .await?;
    Ok(())
}

/// Forgets the user's customer `customer` (deleted at Stripe), keeping it as the
/// previous one, with its pending checkout (a session for that customer) unless it is
/// the one of key `keep` (the checkout that found the customer gone and carries on with
/// a new one); false when it was not the user's current customer (already forgotten).
///
/// Errors: INTERNAL (database).
pub async fn forget_customer(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    customer: &str,
    keep: Option<&str>,
) -> AppResult<bool> {
    db.execute(stmt(
        "DELETE FROM billing_checkouts WHERE user_id = $1 AND idempotency_key IS DISTINCT FROM $2",
        [user_id.into(), keep.map(str::to_owned).into()],
    ))
    .await?;
    let done = db
        .execute(stmt(
            "UPDATE billing_accounts SET previous_customer_id = stripe_customer_id, stripe_customer_id = NULL,
               updated_at = now()
             WHERE user_id = $1 AND stripe_customer_id = $2",
            [user_id.into(), customer.into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Writes the derived account (everything `state::derive` decides).
///
/// Errors: INTERNAL (database).
pub async fn write_account(db: &impl ConnectionTrait, user_id: Uuid, a: &Account) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO billing_accounts (user_id, subscription_id, subscription_status, plan, billing_interval,
           account_state, grace_until, current_period_start, current_period_end, trial_end, trial_used,
           cancel_at_period_end, state_version, billing_anchor, cancels_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (user_id) DO UPDATE SET subscription_id = $2, subscription_status = $3, plan = $4,
           billing_interval = $5, account_state = $6, grace_until = $7, current_period_start = $8,
           current_period_end = $9, trial_end = $10, trial_used = $11, cancel_at_period_end = $12,
           state_version = $13, billing_anchor = $14, cancels_at = $15, updated_at = now()",
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
            a.anchor.into(),
            a.cancels_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Sets the plan an account's users row shows (and its tokens carry).
///
/// Errors: INTERNAL (database).
pub async fn set_user_plan(db: &impl ConnectionTrait, user_id: Uuid, plan: PlanCode) -> AppResult<()> {
    db.execute(stmt(
        "UPDATE users SET plan = $2, updated_at = now() WHERE id = $1 AND plan <> $2",
        [user_id.into(), plan.into()],
    ))
    .await?;
    Ok(())
}

/// The user's subscriptions, every one ever seen.
///
/// Errors: INTERNAL (database; a stored value outside the vocabulary).
pub async fn read_subscriptions(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<Subscription>> {
    let rows = db
        .query_all(stmt(
            "SELECT subscription_id, customer_id, status, ended, plan, billing_interval, unknown_prices,
                    current_period_start, current_period_end, billing_anchor, trial_end, cancel_at_period_end,
                    cancel_at, past_due_since, version, status_rank, quantity, unit_amount_cents, currency
             FROM billing_subscriptions WHERE user_id = $1 ORDER BY subscription_id",
            [user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let prices: serde_json::Value = r.try_get("", "unknown_prices")?;
            Ok(Subscription {
                id: r.try_get("", "subscription_id")?,
                customer: r.try_get("", "customer_id")?,
                status_text: r.try_get("", "status")?,
                ended: r.try_get("", "ended")?,
                plan: r.try_get("", "plan")?,
                interval: r.try_get("", "billing_interval")?,
                unknown_prices: serde_json::from_value(prices).unwrap_or_default(),
                period_start: utc(r, "current_period_start")?,
                period_end: utc(r, "current_period_end")?,
                anchor: utc(r, "billing_anchor")?,
                trial_end: utc(r, "trial_end")?,
                cancel_at_period_end: r.try_get("", "cancel_at_period_end")?,
                cancel_at: utc(r, "cancel_at")?,
                past_due_since: utc(r, "past_due_since")?,
                version: r.try_get("", "version")?,
                rank: r.try_get("", "status_rank")?,
                quantity: r.try_get::<i32>("", "quantity")?.into(),
                unit_amount_cents: r.try_get("", "unit_amount_cents")?,
                currency: r.try_get("", "currency")?,
            })
        })
        .collect()
}

/// Inserts or replaces a subscription's row (the caller decided it is newer).
///
/// Errors: INTERNAL (database).
pub async fn write_subscription(db: &impl ConnectionTrait, user_id: Uuid, s: &Subscription) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO billing_subscriptions (user_id, subscription_id, customer_id, status, ended, plan,
           billing_interval, unknown_prices, current_period_start, current_period_end, billing_anchor, trial_end,
           cancel_at_period_end, cancel_at, past_due_since, version, status_rank, quantity, unit_amount_cents,
           currency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
         ON CONFLICT (user_id, subscription_id) DO UPDATE SET customer_id = $3, status = $4, ended = $5, plan = $6,
           billing_interval = $7, unknown_prices = $8, current_period_start = $9, current_period_end = $10,
           billing_anchor = $11, trial_end = $12, cancel_at_period_end = $13, cancel_at = $14,
           past_due_since = $15, version = $16, status_rank = $17, quantity = $18, unit_amount_cents = $19,
           currency = $20, updated_at = now()",
        [
            user_id.into(),
            s.id.clone().into(),
            s.customer.clone().into(),
            s.status_text.clone().into(),
            s.ended.into(),
            s.plan.into(),
            s.interval.into(),
            serde_json::json!(s.unknown_prices).into(),
            s.period_start.into(),
            s.period_end.into(),
            s.anchor.into(),
            s.trial_end.into(),
            s.cancel_at_period_end.into(),
            s.cancel_at.into(),
            s.past_due_since.into(),
            s.version.into(),
            s.rank.into(),
            i32::try_from(s.quantity).unwrap_or(i32::MAX).into(),
            s.unit_amount_cents.into(),
            s.currency.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Ends every subscription of `customer` (deleted at Stripe, which cancels them) at
/// `version`; returns how many changed.
///
/// Errors: INTERNAL (database).
pub async fn end_customer_subscriptions(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    customer: &str,
    version: i64,
) -> AppResult<u64> {
    let done = db
        .execute(stmt(
            "UPDATE billing_subscriptions SET ended = true, status_rank = 5, version = greatest(version, $3),
               status = CASE WHEN status IN ($4, $5) THEN status ELSE $4 END, past_due_since = NULL,
               updated_at = now()
             WHERE user_id = $1 AND customer_id = $2 AND NOT ended",
            [
                user_id.into(),
                customer.into(),
                version.into(),
                SubscriptionStatus::Canceled.into(),
                SubscriptionStatus::IncompleteExpired.into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// Where an invoice status sits: within one second, a mirror never goes back from a
/// higher rank (paid) to a lower one (open).
pub fn invoice_rank(status: &str) -> i16 {
    match status {
        "open" => 1,
        "uncollectible" => 2,
        "paid" | "void" => 3,
        _ => 0,
    }
}

/// Inserts or updates the mirror of a Stripe invoice unless a newer event wrote it
/// (a later `version`, or the same and a higher status rank). Returns the status
/// before (None for a new row) and after when it wrote, None when it did not.
///
/// Errors: INTERNAL (database).
pub async fn upsert_invoice(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    inv: &StripeInvoice,
    version: i64,
) -> AppResult<Option<(Option<String>, String)>> {
    let ts = |s: Option<i64>| s.and_then(|s| DateTime::from_timestamp(s, 0));
    let status = inv.status.clone().unwrap_or_else(|| "draft".into());
    let row = db
        .query_one(stmt(
            "WITH before AS (SELECT status FROM invoices WHERE user_id = $2 AND stripe_invoice_id = $3)
             INSERT INTO invoices (id, user_id, stripe_invoice_id, number, status, currency, subtotal_cents, tax_cents,
               total_cents, amount_paid_cents, amount_due_cents, hosted_invoice_url, invoice_pdf, period_start,
               period_end, stripe_created, state_version, status_rank)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (user_id, stripe_invoice_id) DO UPDATE SET
               number = EXCLUDED.number, status = EXCLUDED.status, subtotal_cents = EXCLUDED.subtotal_cents,
               tax_cents = EXCLUDED.tax_cents, total_cents = EXCLUDED.total_cents,
               amount_paid_cents = EXCLUDED.amount_paid_cents, amount_due_cents = EXCLUDED.amount_due_cents,
               hosted_invoice_url = EXCLUDED.hosted_invoice_url, invoice_pdf = EXCLUDED.invoice_pdf,
               state_version = EXCLUDED.state_version, status_rank = EXCLUDED.status_rank, updated_at = now()
             WHERE (invoices.state_version, invoices.status_rank) <= (EXCLUDED.state_version, EXCLUDED.status_rank)
             RETURNING (SELECT status FROM before) AS before, status",
            [
                Uuid::now_v7().into(),
                user_id.into(),
                inv.id.clone().into(),
                inv.number.clone().into(),
                status.clone().into(),
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
                invoice_rank(&status).into(),
            ],
        ))
        .await?;
    row.map(|r| Ok((r.try_get("", "before")?, r.try_get("", "status")?))).transpose()
}

/// Applies one tax id event at `version` (a deletion keeps a tombstone), unless a
/// newer event wrote it (a later version; within one, a deletion wins); true when what
/// is shown changed.
///
/// Errors: INTERNAL (database).
pub async fn upsert_tax_id(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    t: &TaxId,
    deleted: bool,
    version: i64,
) -> AppResult<bool> {
    let row = db
        .query_one(stmt(
            "WITH before AS (SELECT type, value, country, verification_status, deleted FROM billing_tax_ids
                             WHERE user_id = $1 AND tax_id = $2)
             INSERT INTO billing_tax_ids (user_id, tax_id, type, value, country, verification_status, deleted, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (user_id, tax_id) DO UPDATE SET type = $3, value = $4, country = $5,
               verification_status = $6, deleted = $7, version = $8, updated_at = now()
             WHERE (billing_tax_ids.version, billing_tax_ids.deleted) <= (EXCLUDED.version, EXCLUDED.deleted)
             RETURNING NOT EXISTS (SELECT 1 FROM before b WHERE (b.type, b.value, b.country, b.verification_status,
               b.deleted) IS NOT DISTINCT FROM (billing_tax_ids.type, billing_tax_ids.value, billing_tax_ids.country,
               billing_tax_ids.verification_status, billing_tax_ids.deleted)) AS changed",
            [
                user_id.into(),
                t.key().into(),
                t.kind.clone().into(),
                t.value.clone().into(),
                t.country.clone().into(),
                t.verification().into(),
                deleted.into(),
                version.into(),
            ],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<bool>("", "changed")).transpose()?.unwrap_or(false))
}

/// Makes the stored tax ids exactly `ids` (Stripe's list, in reconcile) at `version`:
/// each one written, every other one deleted. Returns how many rows changed.
///
/// Errors: INTERNAL (database).
pub async fn replace_tax_ids(db: &impl ConnectionTrait, user_id: Uuid, ids: &[TaxId], version: i64) -> AppResult<u64> {
    let mut changed = 0;
    for t in ids {
        changed += u64::from(upsert_tax_id(db, user_id, t, false, version).await?);
    }
    let keep: Vec<String> = ids.iter().map(TaxId::key).collect();
    let gone = db
        .execute(stmt(
            "UPDATE billing_tax_ids SET deleted = true, version = greatest(version, $3), updated_at = now()
             WHERE user_id = $1 AND NOT deleted AND NOT (tax_id = ANY (SELECT jsonb_array_elements_text($2)))",
            [user_id.into(), serde_json::json!(keep).into(), version.into()],
        ))
        .await?;
    Ok(changed + gone.rows_affected())
}

/// The user's tax ids (deleted ones left out), oldest first.
///
/// Errors: INTERNAL (database; a stored value outside the vocabulary).
pub async fn read_tax_ids(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<TaxIdRow>> {
    let rows = db
        .query_all(stmt(
            "SELECT type, value, country, verification_status FROM billing_tax_ids
             WHERE user_id = $1 AND NOT deleted ORDER BY created_at, tax_id",
            [user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TaxIdRow {
                kind: r.try_get("", "type")?,
                value: r.try_get("", "value")?,
                country: r.try_get("", "country")?,
                verification: r.try_get("", "verification_status")?,
            })
        })
        .collect()
}

/// Records the billing address's country; true when it changed.
///
/// Errors: INTERNAL (database).
pub async fn set_address_country(db: &impl ConnectionTrait, user_id: Uuid, country: Option<&str>) -> AppResult<bool> {
    let done = db
        .execute(stmt(
            "UPDATE billing_accounts SET address_country = $2, updated_at = now()
             WHERE user_id = $1 AND address_country IS DISTINCT FROM $2",
            [user_id.into(), country.map(str::to_owned).into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Flags the account as disputed (`dispute` opened at `at`), keeping the newest.
///
/// Errors: INTERNAL (database).
pub async fn flag_dispute(db: &impl ConnectionTrait, user_id: Uuid, dispute: &str, at: DateTime<Utc>) -> AppResult<()> {
    db.execute(stmt(
        "UPDATE billing_accounts SET disputed_at = $3, dispute_id = $2, updated_at = now()
         WHERE user_id = $1 AND (disputed_at IS NULL OR disputed_at <= $3)",
        [user_id.into(), dispute.into(), at.into()],
    ))
    .await?;
    Ok(())
}

/// The user's pending checkout, if any.
///
/// Errors: INTERNAL (database; a stored value outside the vocabulary).
pub async fn read_checkout(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<PendingCheckout>> {
    let row = db
        .query_one(stmt(
            "SELECT plan, billing_interval, idempotency_key, opened_at, expires_at, session_id, url
             FROM billing_checkouts WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(PendingCheckout {
            plan: r.try_get("", "plan")?,
            interval: r.try_get("", "billing_interval")?,
            key: r.try_get("", "idempotency_key")?,
            opened_at: utc(&r, "opened_at")?.unwrap_or_default(),
            expires_at: utc(&r, "expires_at")?.unwrap_or_default(),
            session_id: r.try_get("", "session_id")?,
            url: r.try_get("", "url")?,
        })
    })
    .transpose()
}

/// Makes `c` the user's pending checkout (replacing any other).
///
/// Errors: INTERNAL (database).
pub async fn open_checkout(db: &impl ConnectionTrait, user_id: Uuid, c: &PendingCheckout) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO billing_checkouts (user_id, plan, billing_interval, idempotency_key, opened_at, expires_at,
           session_id, url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (user_id) DO UPDATE SET plan = $2, billing_interval = $3, idempotency_key = $4, opened_at = $5,
           expires_at = $6, session_id = $7, url = $8, updated_at = now()",
        [
            user_id.into(),
            c.plan.into(),
            c.interval.into(),
            c.key.clone().into(),
            c.opened_at.into(),
            c.expires_at.into(),
            c.session_id.clone().into(),
            c.url.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Records the session created for the pending checkout of key `key`; false when the
/// pending checkout is no longer that one (another tab replaced it).
///
/// Errors: INTERNAL (database).
pub async fn record_checkout_session(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    key: &str,
    session_id: &str,
    url: &str,
) -> AppResult<bool> {
    let done = db
        .execute(stmt(
            "UPDATE billing_checkouts SET session_id = $3, url = $4, updated_at = now()
             WHERE user_id = $1 AND idempotency_key = $2",
            [user_id.into(), key.into(), session_id.into(), url.into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Drops the pending checkout of key `key` (its session was expired), if still there.
///
/// Errors: INTERNAL (database).
pub async fn drop_checkout(db: &impl ConnectionTrait, user_id: Uuid, key: &str) -> AppResult<()> {
    db.execute(stmt(
        "DELETE FROM billing_checkouts WHERE user_id = $1 AND idempotency_key = $2",
        [user_id.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// Drops the pending checkout whose session is `session_id` (completed or expired).
///
/// Errors: INTERNAL (database).
pub async fn drop_checkout_session(db: &impl ConnectionTrait, user_id: Uuid, session_id: &str) -> AppResult<()> {
    db.execute(stmt(
        "DELETE FROM billing_checkouts WHERE user_id = $1 AND session_id = $2",
        [user_id.into(), session_id.into()],
    ))
    .await?;
    Ok(())
}

/// Drops the pending checkout if it was opened by `at`: a subscription that appeared
/// since came from it (or made it moot).
///
/// Errors: INTERNAL (database).
pub async fn drop_checkout_opened_by(db: &impl ConnectionTrait, user_id: Uuid, at: DateTime<Utc>) -> AppResult<()> {
    db.execute(stmt(
        "DELETE FROM billing_checkouts WHERE user_id = $1 AND opened_at <= $2",
        [user_id.into(), at.into()],
    ))
    .await?;
    Ok(())
}
