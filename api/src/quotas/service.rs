//! Consuming and reading quotas.
use crate::{
    billing::catalog::Quotas,
    db::RequestScope,
    email::templates,
    error::{AppError, AppResult},
};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Counted per period.
pub const COUNTERS: &[&str] = &["scans", "preparations"];

/// The limits of a plan, as token facts.
pub fn limits(q: &Quotas) -> [(&'static str, i64); 5] {
    [
        ("scans", q.scans),
        ("preparations", q.preparations),
        ("connected_accounts", q.connected_accounts),
        ("storage_bytes", q.storage_bytes),
        ("api_requests_per_minute", q.api_requests_per_minute),
    ]
}

/// One metric's use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The metric.
    pub metric: &'static str,
    /// Used this period (counters) or now (gauges).
    pub used: i64,
    /// The plan's limit.
    pub limit: i64,
    /// When a counter resets; None for gauges.
    pub resets_at: Option<DateTime<Utc>>,
}

fn limit_of(scope: &RequestScope, metric: &str) -> AppResult<(Uuid, i64)> {
    let claims = scope.principal.claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    let limit = claims.quota(metric).ok_or_else(|| anyhow::anyhow!("the access token carries no {metric} quota"))?;
    Ok((claims.user_id, limit))
}

/// The caller's current period: the subscription's while it is paid, else the calendar
/// month.
pub async fn period(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT current_period_start, current_period_end FROM billing_accounts
             WHERE user_id = $1 AND account_state IN ('active', 'grace')
               AND current_period_start <= now() AND current_period_end > now()",
            [user_id.into()],
        ))
        .await?;
    if let Some(r) = row {
        let start: DateTime<chrono::FixedOffset> = r.try_get("", "current_period_start")?;
        let end: DateTime<chrono::FixedOffset> = r.try_get("", "current_period_end")?;
        return Ok((start.with_timezone(&Utc), end.with_timezone(&Utc)));
    }
    Ok(calendar_month(Utc::now()))
}

/// The calendar month around `now`.
pub fn calendar_month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().expect("first of month");
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    let end = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("first of next month");
    (start, end)
}

/// Consumes `n` of a counter in one conditional statement: it succeeds only while
/// `used + n <= limit`, so concurrent requests can never overspend; it is part of the
/// request's transaction, so a request that fails later gives it back.
pub async fn consume(scope: &RequestScope, metric: &'static str, n: i64) -> AppResult<()> {
    let (user_id, limit) = limit_of(scope, metric)?;
    let tx = scope.tx.as_ref();
    let (start, end) = period(tx, user_id).await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO quota_usage AS q (user_id, metric, period_start, used)
             SELECT $1, $2, $3, $4 WHERE $4 <= $5
             ON CONFLICT (user_id, metric, period_start)
               DO UPDATE SET used = q.used + EXCLUDED.used, updated_at = now() WHERE q.used + EXCLUDED.used <= $5
             RETURNING used",
            [user_id.into(), metric.into(), start.into(), n.into(), limit.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Err(AppError::QuotaExceeded { metric: metric.into(), limit, resets_at: Some(end) });
    };
    let used: i64 = row.try_get("", "used")?;
    notify_thresholds(scope, user_id, metric, used, limit, start).await
}

/// Checks a gauge (what exists now) before adding `add` to it.
pub async fn check_gauge(scope: &RequestScope, metric: &'static str, add: i64) -> AppResult<()> {
    let (user_id, limit) = limit_of(scope, metric)?;
    let current = gauge(scope.tx.as_ref(), user_id, metric).await?;
    if current + add > limit {
        return Err(AppError::QuotaExceeded { metric: metric.into(), limit, resets_at: None });
    }
    Ok(())
}

async fn gauge(db: &impl ConnectionTrait, user_id: Uuid, metric: &str) -> AppResult<i64> {
    let sql = match metric {
        "connected_accounts" => {
            "SELECT count(*)::bigint AS n FROM marketplace_accounts WHERE user_id = $1 AND status = 'connected'"
        }
        "storage_bytes" => "SELECT coalesce(sum(byte_size), 0)::bigint AS n FROM photos WHERE user_id = $1",
        other => return Err(anyhow::anyhow!("{other} is not a gauge").into()),
    };
    let row = db.query_one(Statement::from_sql_and_values(DbBackend::Postgres, sql, [user_id.into()])).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

/// At 80% and at 100% of a counter, once per period: a notification and an e-mail.
async fn notify_thresholds(
    scope: &RequestScope,
    user_id: Uuid,
    metric: &str,
    used: i64,
    limit: i64,
    period_start: DateTime<Utc>,
) -> AppResult<()> {
    for threshold in [80i64, 100] {
        if limit == 0 || used * 100 < limit * threshold {
            continue;
        }
        let fresh = scope
            .tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO quota_notices (user_id, metric, period_start, threshold) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING RETURNING threshold",
                [user_id.into(), metric.into(), period_start.into(), (threshold as i32).into()],
            ))
            .await?;
        if fresh.is_none() {
            continue;
        }
        let event =
            crate::notifications::notify(scope.tx.as_ref(), user_id, templates::quota(metric, threshold, used, limit))
                .await?;
        scope.emit(event);
    }
    Ok(())
}

/// The caller's use of every metric.
pub async fn usage(scope: &RequestScope) -> AppResult<Vec<Usage>> {
    let claims = scope.principal.claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    let tx = scope.tx.as_ref();
    let (start, end) = period(tx, claims.user_id).await?;
    let rows = tx
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT metric, used FROM quota_usage WHERE user_id = $1 AND period_start = $2",
            [claims.user_id.into(), start.into()],
        ))
        .await?;
    let mut out = Vec::new();
    for metric in COUNTERS {
        let used = rows
            .iter()
            .find(|r| r.try_get::<String>("", "metric").is_ok_and(|m| m == *metric))
            .map(|r| r.try_get::<i64>("", "used"))
            .transpose()?
            .unwrap_or(0);
        out.push(Usage { metric, used, limit: claims.quota(metric).unwrap_or(0), resets_at: Some(end) });
    }
    for metric in ["connected_accounts", "storage_bytes"] {
        let used = gauge(tx, claims.user_id, metric).await?;
        out.push(Usage { metric, used, limit: claims.quota(metric).unwrap_or(0), resets_at: None });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months_wrap_the_year() {
        let (s, e) = calendar_month(Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap());
        assert_eq!((s.month(), e.year(), e.month()), (12, 2027, 1));
    }
}
