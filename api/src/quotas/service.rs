//! Consuming and reading quotas, per period.
//!
//! A paid account's counters run per billing period, computed from its subscription's
//! billing anchor as Stripe computes them ([`paid_period`]: the anchor's day of month
//! and time of day, clamped to shorter months; yearly on the anchor's date), so the
//! period turns at the exact instant Stripe renews, whether or not the renewal webhook
//! has arrived: a late webhook neither opens a window between periods nor hands out a
//! second allowance (the counter row is keyed by the same period start before and
//! after it). Free accounts count per calendar month (UTC), not from their sign-up
//! date; an account returning to Free goes back to the calendar month.
use super::store::{self, PaidPeriods};
use crate::model::BillingInterval;
use crate::{
    db::RequestTx,
    email::templates,
    error::{AppError, AppResult},
    model::{MetricKind, QuotaMetric},
    notifications::service as notifications,
};
use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
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

/// The caller's current period: the subscription's billing period while the account is
/// paid (see the module docs), else the calendar month.
///
/// Errors: INTERNAL (database).
pub async fn period(tx: &RequestTx, user_id: Uuid) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let now = Utc::now();
    Ok(match store::paid_period(tx, user_id).await? {
        Some(p) => paid_period(&p, now),
        None => calendar_month(now),
    })
}

/// The billing period containing `now`: the stored one while it lasts (Stripe's own
/// instants, a trial included), else the one the anchor gives.
pub fn paid_period(p: &PaidPeriods, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    match p.stored {
        Some((start, end)) if start <= now && now < end => (start, end),
        _ => anchored_period(p.anchor, p.interval, now),
    }
}

/// The `n`th period start from `anchor` (n may be negative): `n` months (or years) on,
/// on the anchor's day (the month's last day when it is shorter) at the anchor's time.
fn nth_start(anchor: DateTime<Utc>, interval: BillingInterval, n: i64) -> DateTime<Utc> {
    let months = match interval {
        BillingInterval::Month => n,
        BillingInterval::Year => n * 12,
    };
    let shifted = if months >= 0 {
        anchor.checked_add_months(Months::new(months as u32))
    } else {
        anchor.checked_sub_months(Months::new(months.unsigned_abs() as u32))
    };
    // chrono clamps the day to the target month's length, as Stripe does.
    shifted.unwrap_or(anchor)
}

/// The period of a subscription anchored at `anchor` billed every `interval` that
/// contains `now` (Stripe's periods: every one starts on the anchor's day of month, not
/// on the previous period's clamped day).
pub fn anchored_period(
    anchor: DateTime<Utc>,
    interval: BillingInterval,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let months = i64::from(now.year() - anchor.year()) * 12 + i64::from(now.month()) - i64::from(anchor.month());
    let mut n = match interval {
        BillingInterval::Month => months,
        BillingInterval::Year => months.div_euclid(12),
    };
    while nth_start(anchor, interval, n) > now {
        n -= 1;
    }
    while nth_start(anchor, interval, n + 1) <= now {
        n += 1;
    }
    (nth_start(anchor, interval, n), nth_start(anchor, interval, n + 1))
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

/// Checks a gauge (what exists now) before adding `add` to it. The check holds the
/// user's gauge lock until the transaction ends, so the caller's insert that follows
/// is atomic with it: concurrent requests can never overspend a gauge.
///
/// Errors: UNAUTHENTICATED; QUOTA_EXCEEDED (metric, limit); INTERNAL.
pub async fn check_gauge(tx: &RequestTx, metric: QuotaMetric, add: i64) -> AppResult<()> {
    let (user_id, limit) = limit_of(tx, metric)?;
    store::lock_gauges(tx, user_id).await?;
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
                let (used, credit) =
                    counted.iter().find(|(m, _, _)| *m == metric).map(|(_, u, c)| (*u, *c)).unwrap_or((0, 0));
                // A credit for the period raises its limit.
                out.push(Usage { metric, used, limit: limit + credit, resets_at: Some(end) });
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

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 30, 0).unwrap()
    }

    /// Failure 6: the period turns at the anchor's instant, webhook or not; the 31st is
    /// clamped in short months and comes back after them.
    #[test]
    fn periods_follow_the_billing_anchor() {
        let anchor = at(2026, 1, 31, 9);
        let month = BillingInterval::Month;
        assert_eq!(anchored_period(anchor, month, at(2026, 2, 10, 0)), (anchor, at(2026, 2, 28, 9)));
        assert_eq!(anchored_period(anchor, month, at(2026, 2, 28, 9)), (at(2026, 2, 28, 9), at(2026, 3, 31, 9)));
        assert_eq!(anchored_period(anchor, month, at(2026, 4, 30, 8)), (at(2026, 3, 31, 9), at(2026, 4, 30, 9)));
        assert_eq!(anchored_period(anchor, month, at(2027, 1, 1, 0)), (at(2026, 12, 31, 9), at(2027, 1, 31, 9)));
        // Before the anchor (a trial's stored period is used then, but the arithmetic holds).
        assert_eq!(anchored_period(anchor, month, at(2026, 1, 15, 0)), (at(2025, 12, 31, 9), anchor));
        let leap = at(2028, 2, 29, 12);
        let year = BillingInterval::Year;
        assert_eq!(anchored_period(leap, year, at(2029, 6, 1, 0)), (at(2029, 2, 28, 12), at(2030, 2, 28, 12)));
        assert_eq!(anchored_period(leap, year, at(2032, 3, 1, 0)), (at(2032, 2, 29, 12), at(2033, 2, 28, 12)));
        // Every instant of two years lies in exactly the period that contains it.
        let mut t = at(2026, 1, 1, 0);
        while t < at(2028, 1, 1, 0) {
            let (s, e) = anchored_period(anchor, month, t);
            assert!(s <= t && t < e && e == anchored_period(anchor, month, e).0, "{t}");
            t += chrono::Duration::hours(7);
        }
    }

    #[test]
    fn the_stored_period_is_used_while_it_lasts_then_the_anchor_takes_over() {
        let anchor = at(2026, 3, 15, 10);
        let trial = (at(2026, 3, 1, 10), anchor);
        let p = PaidPeriods { anchor, interval: BillingInterval::Month, stored: Some(trial) };
        assert_eq!(paid_period(&p, at(2026, 3, 10, 0)), trial);
        // The renewal webhook is late: the next period started anyway, at the anchor.
        assert_eq!(paid_period(&p, at(2026, 3, 15, 11)), (anchor, at(2026, 4, 15, 10)));
    }

    #[test]
    fn calendar_months_wrap_the_year() {
        let (s, e) = calendar_month(Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap());
        assert_eq!((s.month(), e.year(), e.month()), (12, 2027, 1));
    }
}
