//! Admin-only business metrics: the range is checked, the caller must be an
//! administrator signed in with a session (never an API token), and each metric runs
//! as `plinth_metrics` for that administrator, switched back afterwards.
use super::store;
use crate::{
    db::RequestTx,
    error::{AppError, AppResult},
    model::{DbRole, Role},
    principal::Principal,
};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Width of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Calendar day, UTC.
    Day,
    /// ISO week (Monday), UTC.
    Week,
    /// Calendar month, UTC.
    Month,
}

impl Step {
    fn sql(self) -> &'static str {
        match self {
            Step::Day => "day",
            Step::Week => "week",
            Step::Month => "month",
        }
    }

    fn approx(self) -> Duration {
        match self {
            Step::Day => Duration::days(1),
            Step::Week => Duration::weeks(1),
            Step::Month => Duration::days(28),
        }
    }
}

/// What a cohort table counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CohortMetric {
    /// Customers who created a job in the month.
    Active,
    /// The cohort's MRR at the month's end.
    Revenue,
}

/// `a ÷ b`, `None` when `b` is 0: every rate of the metrics (GraphQL and CSV alike).
#[allow(clippy::cast_precision_loss)]
pub fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

impl store::MrrPoint {
    /// `closing − opening`, which the movements add up to.
    pub fn net_change(&self) -> i64 {
        self.closing - self.opening
    }
}

impl store::Funnel {
    /// verified ÷ signups.
    pub fn verified_rate(&self) -> Option<f64> {
        ratio(self.verified, self.signups)
    }

    /// trials ÷ signups.
    pub fn trial_rate(&self) -> Option<f64> {
        ratio(self.trials, self.signups)
    }

    /// paid ÷ signups.
    pub fn paid_rate(&self) -> Option<f64> {
        ratio(self.paid, self.signups)
    }

    /// Trial-to-paid conversion: trials_paid ÷ trials.
    pub fn trial_to_paid_rate(&self) -> Option<f64> {
        ratio(self.trials_paid, self.trials)
    }
}

impl store::Activation {
    /// activated ÷ signups.
    pub fn rate(&self) -> Option<f64> {
        ratio(self.activated, self.signups)
    }
}

impl store::SupportFigures {
    /// CSAT, the standard definition: ratings of 4 or 5 ÷ ratings (a fraction; `None`
    /// without ratings).
    pub fn csat_satisfied_share(&self) -> Option<f64> {
        ratio(self.csat_satisfied, self.csat_responses)
    }
}

/// Most buckets one call may ask for.
pub const MAX_BUCKETS: i64 = 1_000;
/// Longest range of sign-ups or usage, in days.
pub const MAX_RANGE_DAYS: i64 = 3_660;

/// The administrator calling, with a session (never an API token), or FORBIDDEN
/// (UNAUTHENTICATED when anonymous): who may read business metrics.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN.
pub fn admin(tx: &RequestTx) -> AppResult<Uuid> {
    match tx.principal() {
        Principal::User(c) if c.api.is_none() && c.role == Role::Admin => Ok(c.user_id),
        Principal::User(_) => Err(AppError::Forbidden("only administrators may read business metrics".into())),
        _ => Err(AppError::Unauthenticated("sign in to do this".into())),
    }
}

fn range(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if from >= to {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::bad_input("to", format!("the range may cover at most {MAX_RANGE_DAYS} days")));
    }
    Ok(())
}

fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, step: Step) -> AppResult<()> {
    range(from, to)?;
    if (to - from).num_seconds() / step.approx().num_seconds() > MAX_BUCKETS {
        return Err(AppError::bad_input("interval", format!("at most {MAX_BUCKETS} buckets; choose a wider interval")));
    }
    Ok(())
}

/// Runs `work` as `plinth_metrics` for the administrator.
async fn as_metrics<T, Fut>(tx: &RequestTx, admin: Uuid, work: Fut) -> AppResult<T>
where
    Fut: std::future::Future<Output = AppResult<T>>,
{
    tx.acting_as(DbRole::Metrics, Some(admin), work).await
}

/// MRR and its movements per bucket.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn mrr(
    tx: &RequestTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
) -> AppResult<Vec<store::MrrPoint>> {
    let admin = admin(tx)?;
    buckets(from, to, step)?;
    as_metrics(tx, admin, store::mrr(tx, from, to, step.sql())).await
}

/// Churn per bucket.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn churn(
    tx: &RequestTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Step,
) -> AppResult<Vec<store::ChurnPoint>> {
    let admin = admin(tx)?;
    buckets(from, to, step)?;
    as_metrics(tx, admin, store::churn(tx, from, to, step.sql())).await
}

/// The sign-up funnel.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn conversion(tx: &RequestTx, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<store::Funnel> {
    let admin = admin(tx)?;
    range(from, to)?;
    as_metrics(tx, admin, store::conversion(tx, from, to)).await
}

/// Activation within `days` (1 to 365).
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, INTERNAL.
pub async fn activation(
    tx: &RequestTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: i32,
) -> AppResult<store::Activation> {
    let admin = admin(tx)?;
    range(from, to)?;
    if !(1..=365).contains(&days) {
        return Err(AppError::bad_input("withinDays", "must be between 1 and 365"));
    }
    as_metrics(tx, admin, store::activation(tx, from, to, days)).await
}

/// The support figures: tickets opened, first response, resolution, backlog at `to`,
/// and the CSAT of the ratings given in the range.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn support(tx: &RequestTx, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<store::SupportFigures> {
    let admin = admin(tx)?;
    range(from, to)?;
    as_metrics(tx, admin, store::support(tx, from, to)).await
}

/// The cohort table, up to now.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn cohorts(
    tx: &RequestTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    metric: CohortMetric,
) -> AppResult<Vec<store::CohortCell>> {
    let admin = admin(tx)?;
    range(from, to)?;
    let metric = match metric {
        CohortMetric::Active => "active",
        CohortMetric::Revenue => "revenue",
    };
    // Cells reach the current month, never past it.
    let until = Utc::now().max(to).min(to + Duration::days(MAX_RANGE_DAYS));
    as_metrics(tx, admin, store::cohorts(tx, from, to, metric, until)).await
}

/// Jobs per day and plan.
///
/// Errors: UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT (range), INTERNAL.
pub async fn usage_totals(tx: &RequestTx, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Vec<store::UsageRow>> {
    let admin = admin(tx)?;
    range(from, to)?;
    as_metrics(tx, admin, store::usage_totals(tx, from, to)).await
}
