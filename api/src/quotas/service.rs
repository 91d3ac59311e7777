//! Consuming and reading quotas.
use super::store;
use crate::{
    db::RequestTx,
    email::templates,
    error::{AppError, AppResult},
    model::{MetricKind, QuotaMetric},
    notifications::service as notifications,
};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use uuid::Uuid;

/// One metric's use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The metric.
    pub metric: QuotaMetric,
    /// Used this period (counters) or now (gauges).
    pub used: i64,
    /// The plan's limit.
    pub limit: i64,
    /// When a counter resets; None for gauges.
    pub resets_at: Option<DateTime<Utc>>,
}

fn limit_of(tx: &RequestTx, metric: QuotaMetric) -> AppResult<(Uuid, i64)> {
    let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    let limit = claims.quota(metric).ok_or_else(|| anyhow::anyhow!("the access token carries no {metric} quota"))?;
    Ok((claims.user_id, limit))
}

/// The caller's current period: the subscription's while it is paid, else the calendar
/// month.
///
/// Errors: INTERNAL (database).
pub async fn period(tx: &RequestTx, user_id: Uuid) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    Ok(store::paid_period(tx, user_id).await?.unwrap_or_else(|| calendar_month(Utc::now())))
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
///
/// Errors: UNAUTHENTICATED; QUOTA_EXCEEDED (metric, limit, resetsAt); INTERNAL.
pub async fn consume(tx: &RequestTx, metric: QuotaMetric, n: i64) -> AppResult<()> {
    debug_assert_eq!(metric.kind(), MetricKind::Counter);
    let (user_id, limit) = limit_of(tx, metric)?;
    let (start, end) = period(tx, user_id).await?;
    let Some(used) = store::consume(tx, user_id, metric, start, n, limit).await? else {
        return Err(AppError::QuotaExceeded { metric, limit, resets_at: Some(end) });
    };
    notify_thresholds(tx, user_id, metric, used, limit, start).await
}

/// Checks a gauge (what exists now) before adding `add` to it.
///
/// Errors: UNAUTHENTICATED; QUOTA_EXCEEDED (metric, limit); INTERNAL.
pub async fn check_gauge(tx: &RequestTx, metric: QuotaMetric, add: i64) -> AppResult<()> {
    let (user_id, limit) = limit_of(tx, metric)?;
    let current = store::gauge(tx, user_id, metric).await?;
    if current + add > limit {
        return Err(AppError::QuotaExceeded { metric, limit, resets_at: None });
    }
    Ok(())
}

/// At 80% and at 100% of a counter, once per period: a notification and an e-mail.
async fn notify_thresholds(
    tx: &RequestTx,
    user_id: Uuid,
    metric: QuotaMetric,
    used: i64,
    limit: i64,
    period_start: DateTime<Utc>,
) -> AppResult<()> {
    for threshold in [80i64, 100] {
        if limit == 0 || used * 100 < limit * threshold {
            continue;
        }
        if store::record_notice(tx, user_id, metric, period_start, threshold as i32).await? {
            notifications::notify(tx, user_id, templates::quota(metric, threshold, used, limit)).await?;
        }
    }
    Ok(())
}

/// The caller's use of every limited metric: counters of the current period, then
/// gauges.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn usage(tx: &RequestTx) -> AppResult<Vec<Usage>> {
    let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    let (start, end) = period(tx, claims.user_id).await?;
    let counted = store::counters(tx, claims.user_id, start).await?;
    let mut out = Vec::new();
    for metric in QuotaMetric::ALL.iter().copied() {
        let limit = claims.quota(metric).unwrap_or(0);
        match metric.kind() {
            MetricKind::Counter => {
                let used = counted.iter().find(|(m, _)| *m == metric).map(|(_, u)| *u).unwrap_or(0);
                out.push(Usage { metric, used, limit, resets_at: Some(end) });
            }
            MetricKind::Gauge => {
                let used = store::gauge(tx, claims.user_id, metric).await?;
                out.push(Usage { metric, used, limit, resets_at: None });
            }
            MetricKind::Rate => {}
        }
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
