//! The statements of `quota_usage` and `quota_notices`, and the gauges' counts.
use crate::{
    error::AppResult,
    model::{AccountState, BillingInterval, QuotaMetric},
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// What a paid account's periods are counted from: its subscription's billing anchor
/// and interval, and the current period Stripe last told (exact while it lasts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaidPeriods {
    /// Stripe's `billing_cycle_anchor`.
    pub anchor: DateTime<Utc>,
    /// Monthly or yearly.
    pub interval: BillingInterval,
    /// The current period as last stored, when known.
    pub stored: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The paid subscription's anchor and stored period, for any account that is not on
/// the Free plan (active, in grace, or suspended for debt); None for Free.
///
/// Errors: INTERNAL (database).
pub async fn paid_period(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<PaidPeriods>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT coalesce(billing_anchor, current_period_start) AS anchor, billing_interval,
                    current_period_start, current_period_end
             FROM billing_accounts WHERE user_id = $1 AND account_state <> $2",
            [user_id.into(), AccountState::Free.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let at = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
    };
    let (Some(anchor), Some(interval)) = (at("anchor")?, r.try_get::<Option<BillingInterval>>("", "billing_interval")?)
    else {
        return Ok(None);
    };
    let stored = at("current_period_start")?.zip(at("current_period_end")?);
    Ok(Some(PaidPeriods { anchor, interval, stored }))
}

/// Adds `n` to a counter of the period in one conditional statement: only while
/// `used + n <= limit + credit` (an admin's credit for the period, see
/// `priv.admin_credit_quota`). Returns the new total, or None when it would exceed the limit.
///
/// Errors: INTERNAL (database).
pub async fn consume(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    metric: QuotaMetric,
    period_start: DateTime<Utc>,
    n: i64,
    limit: i64,
) -> AppResult<Option<i64>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO quota_usage AS q (user_id, metric, period_start, used)
             SELECT $1, $2, $3, $4 WHERE $4 <= $5
             ON CONFLICT (user_id, metric, period_start)
               DO UPDATE SET used = q.used + EXCLUDED.used, updated_at = now()
               WHERE q.used + EXCLUDED.used <= $5 + q.credit
             RETURNING used",
            [user_id.into(), metric.into(), period_start.into(), n.into(), limit.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<i64>("", "used")).transpose()?)
}

/// Serialises the gauge checks of one user until the transaction ends: their own
/// `users` row, locked `FOR NO KEY UPDATE` (which blocks neither reads nor foreign keys
/// to it). Two concurrent checks of one user then count one after the other, each seeing
/// what the other inserted (issue 11, item 9).
///
/// Errors: INTERNAL (database).
pub async fn lock_gauges(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
        [user_id.into()],
    ))
    .await?;
    Ok(())
}

/// What a gauge measures now: connected marketplace accounts, or bytes of photos and of
/// the user's own ticket attachments (not staff's), confirmed and reserved (a pending
/// upload counts until it is confirmed or its reservation is swept); the dashboard
/// reads the same definition.
///
/// Errors: INTERNAL (database).
pub async fn gauge(db: &impl ConnectionTrait, user_id: Uuid, metric: QuotaMetric) -> AppResult<i64> {
    let sql = match metric {
        QuotaMetric::ConnectedAccounts => {
            "SELECT count(*)::bigint AS n FROM marketplace_accounts WHERE user_id = $1 AND status = 'connected'"
        }
        QuotaMetric::StorageBytes => {
            "SELECT ((SELECT coalesce(sum(byte_size), 0) FROM photos WHERE user_id = $1)
                   + (SELECT coalesce(sum(byte_size), 0) FROM ticket_attachments WHERE user_id = $1 AND NOT by_staff)
                    )::bigint AS n"
        }
        other => return Err(anyhow::anyhow!("{other} is not a gauge").into()),
    };
    let row = db.query_one(Statement::from_sql_and_values(DbBackend::Postgres, sql, [user_id.into()])).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

/// Records a threshold notice once per period; true the first time.
///
/// Errors: INTERNAL (database).
pub async fn record_notice(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    metric: QuotaMetric,
    period_start: DateTime<Utc>,
    threshold: i32,
) -> AppResult<bool> {
    let fresh = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO quota_notices (user_id, metric, period_start, threshold) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING RETURNING threshold",
            [user_id.into(), metric.into(), period_start.into(), threshold.into()],
        ))
        .await?;
    Ok(fresh.is_some())
}

/// The user's counters in the period starting at `period_start`: used, and credited.
///
/// Errors: INTERNAL (database).
pub async fn counters(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    period_start: DateTime<Utc>,
) -> AppResult<Vec<(QuotaMetric, i64, i64)>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT metric, used, credit FROM quota_usage WHERE user_id = $1 AND period_start = $2",
            [user_id.into(), period_start.into()],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "metric")?, r.try_get("", "used")?, r.try_get("", "credit")?))).collect()
}
