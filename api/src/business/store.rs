//! The calls to the `metrics` schema's functions (see migration
//! `m20261202_000602_create_business_metrics` for their definitions).
use crate::error::AppResult;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn utc(r: &QueryResult, c: &str) -> AppResult<DateTime<Utc>> {
    Ok(r.try_get::<DateTime<FixedOffset>>("", c)?.with_timezone(&Utc))
}

/// One bucket of MRR (cents of the catalog currency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrrPoint {
    /// Bucket start.
    pub start: DateTime<Utc>,
    /// Bucket end (exclusive).
    pub end: DateTime<Utc>,
    /// MRR at the start.
    pub opening: i64,
    /// MRR at the end.
    pub closing: i64,
    /// New customers' MRR.
    pub new: i64,
    /// Increases of paying customers.
    pub expansion: i64,
    /// Decreases of customers still paying.
    pub contraction: i64,
    /// MRR of customers who stopped paying.
    pub churn: i64,
    /// MRR of customers who paid before and came back.
    pub reactivation: i64,
    /// Paying customers at the end.
    pub customers: i64,
}

/// MRR and its movements per bucket of `step` (`day`, `week`, `month`).
///
/// Errors: INTERNAL (database).
pub async fn mrr(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: &str,
) -> AppResult<Vec<MrrPoint>> {
    let rows =
        db.query_all(stmt("SELECT * FROM metrics.mrr($1, $2, $3)", [from.into(), to.into(), step.into()])).await?;
    rows.iter()
        .map(|r| {
            Ok(MrrPoint {
                start: utc(r, "bucket_start")?,
                end: utc(r, "bucket_end")?,
                opening: r.try_get("", "opening_cents")?,
                closing: r.try_get("", "closing_cents")?,
                new: r.try_get("", "new_cents")?,
                expansion: r.try_get("", "expansion_cents")?,
                contraction: r.try_get("", "contraction_cents")?,
                churn: r.try_get("", "churn_cents")?,
                reactivation: r.try_get("", "reactivation_cents")?,
                customers: r.try_get("", "customers")?,
            })
        })
        .collect()
}

/// Churn of one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnPoint {
    /// Bucket start.
    pub start: DateTime<Utc>,
    /// Bucket end (exclusive).
    pub end: DateTime<Utc>,
    /// Paying customers at the start.
    pub customers_start: i64,
    /// Of those, not paying at the end.
    pub customers_churned: i64,
    /// Their MRR at the start.
    pub opening: i64,
    /// MRR of the churned ones at the start.
    pub churned: i64,
    /// Decreases of those still paying.
    pub contraction: i64,
    /// Increases of those still paying.
    pub expansion: i64,
    /// customers_churned ÷ customers_start.
    pub logo_churn_rate: Option<f64>,
    /// (churned + contraction) ÷ opening.
    pub revenue_churn_rate: Option<f64>,
    /// Their MRR at the end ÷ opening.
    pub net_revenue_retention: Option<f64>,
}

/// Churn per bucket of `step`.
///
/// Errors: INTERNAL (database).
pub async fn churn(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: &str,
) -> AppResult<Vec<ChurnPoint>> {
    let rows =
        db.query_all(stmt("SELECT * FROM metrics.churn($1, $2, $3)", [from.into(), to.into(), step.into()])).await?;
    rows.iter()
        .map(|r| {
            Ok(ChurnPoint {
                start: utc(r, "bucket_start")?,
                end: utc(r, "bucket_end")?,
                customers_start: r.try_get("", "customers_start")?,
                customers_churned: r.try_get("", "customers_churned")?,
                opening: r.try_get("", "opening_cents")?,
                churned: r.try_get("", "churned_cents")?,
                contraction: r.try_get("", "contraction_cents")?,
                expansion: r.try_get("", "expansion_cents")?,
                logo_churn_rate: r.try_get("", "logo_churn_rate")?,
                revenue_churn_rate: r.try_get("", "revenue_churn_rate")?,
                net_revenue_retention: r.try_get("", "net_revenue_retention")?,
            })
        })
        .collect()
}

/// The sign-up funnel's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funnel {
    /// Customers who signed up.
    pub signups: i64,
    /// Of those, verified their address.
    pub verified: i64,
    /// Started a trial.
    pub trials: i64,
    /// Ever paid.
    pub paid: i64,
    /// Trialled and paid after the trial began.
    pub trials_paid: i64,
}

/// The funnel of the sign-ups of [from, to).
///
/// Errors: INTERNAL (database).
pub async fn conversion(db: &impl ConnectionTrait, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Funnel> {
    let r = db
        .query_one(stmt("SELECT * FROM metrics.conversion($1, $2)", [from.into(), to.into()]))
        .await?
        .ok_or_else(|| anyhow::anyhow!("metrics.conversion returned no row"))?;
    Ok(Funnel {
        signups: r.try_get("", "signups")?,
        verified: r.try_get("", "verified")?,
        trials: r.try_get("", "trials")?,
        paid: r.try_get("", "paid")?,
        trials_paid: r.try_get("", "trials_paid")?,
    })
}

/// Activation of the sign-ups of a range.
#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    /// Customers who signed up.
    pub signups: i64,
    /// With a first successful job within the window.
    pub activated: i64,
    /// With a successful job at all.
    pub with_first_job: i64,
    /// Median seconds from sign-up to the first successful job.
    pub median_seconds: Option<f64>,
    /// 90th percentile of the same.
    pub p90_seconds: Option<f64>,
}

/// Activation of the sign-ups of [from, to) within `days`.
///
/// Errors: INTERNAL (database).
pub async fn activation(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: i32,
) -> AppResult<Activation> {
    let r = db
        .query_one(stmt("SELECT * FROM metrics.activation($1, $2, $3)", [from.into(), to.into(), days.into()]))
        .await?
        .ok_or_else(|| anyhow::anyhow!("metrics.activation returned no row"))?;
    Ok(Activation {
        signups: r.try_get("", "signups")?,
        activated: r.try_get("", "activated")?,
        with_first_job: r.try_get("", "with_first_job")?,
        median_seconds: r.try_get("", "median_seconds")?,
        p90_seconds: r.try_get("", "p90_seconds")?,
    })
}

/// One cell of a cohort table.
#[derive(Clone, Debug, PartialEq)]
pub struct CohortCell {
    /// The sign-up month (its first instant, UTC).
    pub cohort: DateTime<Utc>,
    /// Months since sign-up (0: the sign-up month).
    pub months_since: i32,
    /// Customers in the cohort.
    pub size: i64,
    /// Active customers, or MRR cents.
    pub value: i64,
    /// value ÷ size (active) or ÷ month-0 MRR (revenue).
    pub share: Option<f64>,
}

/// The cohort table of the sign-ups of [from, to), up to the month of `until`;
/// `metric` is `active` or `revenue`.
///
/// Errors: INTERNAL (database).
pub async fn cohorts(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    metric: &str,
    until: DateTime<Utc>,
) -> AppResult<Vec<CohortCell>> {
    let rows = db
        .query_all(stmt(
            "SELECT * FROM metrics.cohorts($1, $2, $3, $4)",
            [from.into(), to.into(), metric.into(), until.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CohortCell {
                cohort: utc(r, "cohort")?,
                months_since: r.try_get("", "months_since")?,
                size: r.try_get("", "size")?,
                value: r.try_get("", "value")?,
                share: r.try_get("", "share")?,
            })
        })
        .collect()
}

/// Jobs of one day and plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// The UTC day.
    pub day: NaiveDate,
    /// The customers' plan (now).
    pub plan: String,
    /// Scan jobs.
    pub scans: i64,
    /// Preparation jobs.
    pub preparations: i64,
    /// Publish jobs.
    pub publishes: i64,
}

/// Jobs created per day and plan in [from, to).
///
/// Errors: INTERNAL (database).
pub async fn usage_totals(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<UsageRow>> {
    let rows = db.query_all(stmt("SELECT * FROM metrics.usage_totals($1, $2)", [from.into(), to.into()])).await?;
    rows.iter()
        .map(|r| {
            Ok(UsageRow {
                day: r.try_get("", "day")?,
                plan: r.try_get("", "plan")?,
                scans: r.try_get("", "scans")?,
                preparations: r.try_get("", "preparations")?,
                publishes: r.try_get("", "publishes")?,
            })
        })
        .collect()
}

/// The support figures of a range.
#[derive(Clone, Debug, PartialEq)]
pub struct SupportFigures {
    /// Tickets opened in the range.
    pub opened: i64,
    /// Of them, with a first staff response before its end.
    pub responded: i64,
    /// Median seconds from opening to the first response.
    pub first_response_median_seconds: Option<f64>,
    /// 90th percentile of the same.
    pub first_response_p90_seconds: Option<f64>,
    /// Of them, resolved before its end.
    pub resolved: i64,
    /// Median seconds from opening to resolution.
    pub resolution_median_seconds: Option<f64>,
    /// Tickets open at its end (neither resolved nor closed).
    pub backlog: i64,
    /// CSAT ratings given in the range.
    pub csat_responses: i64,
    /// Their average score, 1 to 5.
    pub csat_average: Option<f64>,
    /// Of them, ratings of 4 or 5.
    pub csat_satisfied: i64,
}

/// The support figures of [from, to): `metrics.support`, then `metrics.support_csat`.
///
/// Errors: INTERNAL (database).
pub async fn support(db: &impl ConnectionTrait, from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<SupportFigures> {
    let r = db
        .query_one(stmt("SELECT * FROM metrics.support($1, $2)", [from.into(), to.into()]))
        .await?
        .ok_or_else(|| anyhow::anyhow!("metrics.support returned no row"))?;
    let csat = db
        .query_one(stmt("SELECT * FROM metrics.support_csat($1, $2)", [from.into(), to.into()]))
        .await?
        .ok_or_else(|| anyhow::anyhow!("metrics.support_csat returned no row"))?;
    Ok(SupportFigures {
        csat_responses: csat.try_get("", "responses")?,
        csat_average: csat.try_get("", "average")?,
        csat_satisfied: csat.try_get("", "satisfied")?,
        opened: r.try_get("", "opened")?,
        responded: r.try_get("", "responded")?,
        first_response_median_seconds: r.try_get("", "first_response_median_seconds")?,
        first_response_p90_seconds: r.try_get("", "first_response_p90_seconds")?,
        resolved: r.try_get("", "resolved")?,
        resolution_median_seconds: r.try_get("", "resolution_median_seconds")?,
        backlog: r.try_get("", "backlog")?,
    })
}
