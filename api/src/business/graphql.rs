//! GraphQL adapter for business metrics: administrators only (session tokens; support,
//! users and API tokens get FORBIDDEN). Amounts are integer cents of the catalog
//! currency, tax excluded; rates are fractions (0.05 = 5 %); times are UTC.
use super::{service, store};
use crate::{
    auth::guards::{NoApiTokens, Staff},
    catalog::Catalog,
    db::{data, RequestTx},
    model::Role,
};
use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Width of a metric bucket: calendar days, ISO weeks (from Monday) or calendar months,
/// in UTC; the first bucket is the one containing `from`, the last the one containing
/// the instant before `to`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MetricInterval {
    /// A calendar day.
    Day,
    /// An ISO week.
    Week,
    /// A calendar month.
    Month,
}

impl From<MetricInterval> for service::Step {
    fn from(i: MetricInterval) -> Self {
        match i {
            MetricInterval::Day => service::Step::Day,
            MetricInterval::Week => service::Step::Week,
            MetricInterval::Month => service::Step::Month,
        }
    }
}

/// What a cohort table counts.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CohortMetric {
    /// Customers of the cohort who created at least one job in the month.
    Active,
    /// The cohort's MRR at the end of the month (cents).
    Revenue,
}

/// MRR over one bucket and the movements that explain its change. For every bucket
/// `closingCents - openingCents = newCents + expansionCents + reactivationCents -
/// contractionCents - churnCents`.
///
/// MRR (monthly recurring revenue, the standard SaaS definition): the sum over
/// subscriptions that are active or past due of price × quantity, a yearly price
/// divided by 12, tax excluded, from the subscription history Stripe's webhooks write.
/// Trials, unpaid, paused and ended subscriptions count 0. Movements are per customer
/// (a user), at each instant the customer's MRR changes: new (from 0, first time),
/// reactivation (from 0, paid before), expansion (up), contraction (down, still paying),
/// churn (to 0).
#[derive(SimpleObject, Debug)]
pub struct MrrBucket {
    /// First instant of the bucket.
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
    /// MRR at `start` (cents).
    pub opening_cents: i64,
    /// MRR at `end` (cents).
    pub closing_cents: i64,
    /// MRR of customers paying for the first time (cents).
    pub new_cents: i64,
    /// MRR added by customers already paying (upgrades, more seats, monthly to a
    /// dearer interval) (cents).
    pub expansion_cents: i64,
    /// MRR lost by customers who still pay (downgrades) (cents, positive).
    pub contraction_cents: i64,
    /// MRR lost by customers who stopped paying (cents, positive).
    pub churn_cents: i64,
    /// MRR of customers who had paid before, stopped, and pay again (cents).
    pub reactivation_cents: i64,
    /// `closingCents - openingCents`.
    pub net_change_cents: i64,
    /// Paying customers at `end`.
    pub customers: i64,
}

impl From<store::MrrPoint> for MrrBucket {
    fn from(p: store::MrrPoint) -> Self {
        MrrBucket {
            start: p.start,
            end: p.end,
            opening_cents: p.opening,
            closing_cents: p.closing,
            new_cents: p.new,
            expansion_cents: p.expansion,
            contraction_cents: p.contraction,
            churn_cents: p.churn,
            reactivation_cents: p.reactivation,
            net_change_cents: p.net_change(),
            customers: p.customers,
        }
    }
}

/// MRR per bucket.
#[derive(SimpleObject, Debug)]
pub struct MrrReport {
    /// ISO currency of every amount (the catalog's, lower case).
    pub currency: String,
    /// The buckets, oldest first.
    pub buckets: Vec<MrrBucket>,
}

/// Churn over one bucket, measured on the customers paying at its start (the standard
/// SaaS definitions, as in the KeyBanc SaaS survey and ChartMogul):
/// - `logoChurnRate` = customers not paying at `end` ÷ customers paying at `start`;
/// - `revenueChurnRate` (gross) = (their MRR lost to churn + contraction) ÷ their MRR at
///   `start`;
/// - `netRevenueRetention` = their MRR at `end` ÷ their MRR at `start` (expansion
///   counted, new customers not).
///
/// Rates are fractions, null when nobody paid at `start`.
#[derive(SimpleObject, Debug)]
pub struct ChurnBucket {
    /// First instant of the bucket.
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
    /// Customers paying at `start`.
    pub customers_at_start: i64,
    /// Of those, not paying at `end`.
    pub customers_churned: i64,
    /// Their MRR at `start` (cents).
    pub opening_cents: i64,
    /// MRR at `start` of those who churned (cents).
    pub churned_cents: i64,
    /// Decrease of those still paying (cents).
    pub contraction_cents: i64,
    /// Increase of those still paying (cents).
    pub expansion_cents: i64,
    /// Logo churn (fraction).
    pub logo_churn_rate: Option<f64>,
    /// Gross revenue churn (fraction).
    pub revenue_churn_rate: Option<f64>,
    /// Net revenue retention (fraction; above 1 when expansion outweighs losses).
    pub net_revenue_retention: Option<f64>,
}

impl From<store::ChurnPoint> for ChurnBucket {
    fn from(p: store::ChurnPoint) -> Self {
        ChurnBucket {
            start: p.start,
            end: p.end,
            customers_at_start: p.customers_start,
            customers_churned: p.customers_churned,
            opening_cents: p.opening,
            churned_cents: p.churned,
            contraction_cents: p.contraction,
            expansion_cents: p.expansion,
            logo_churn_rate: p.logo_churn_rate,
            revenue_churn_rate: p.revenue_churn_rate,
            net_revenue_retention: p.net_revenue_retention,
        }
    }
}

/// The sign-up funnel of the customers (role user) who signed up in [from, to): counts
/// at each step, and rates as fractions of the step before (null when it is 0).
#[derive(SimpleObject, Debug)]
pub struct Conversion {
    /// Sign-ups.
    pub signups: i64,
    /// Of those, with a verified e-mail address.
    pub verified: i64,
    /// Of those sign-ups, who started a trial (at any time).
    pub trials: i64,
    /// Of those sign-ups, who ever paid (an active or past-due subscription).
    pub paid: i64,
    /// Of the trials, who paid after the trial began.
    pub trials_paid: i64,
    /// verified ÷ signups.
    pub verified_rate: Option<f64>,
    /// trials ÷ signups.
    pub trial_rate: Option<f64>,
    /// paid ÷ signups.
    pub paid_rate: Option<f64>,
    /// Trial-to-paid conversion: trialsPaid ÷ trials.
    pub trial_to_paid_rate: Option<f64>,
}

/// Activation of the customers who signed up in [from, to): the share with a first
/// successful job within `withinDays` of signing up, and the time to the first
/// successful job (over those who had one, at any time; continuous percentiles).
#[derive(SimpleObject, Debug)]
pub struct Activation {
    /// Sign-ups.
    pub signups: i64,
    /// With a first successful job within the window.
    pub activated: i64,
    /// activated ÷ signups.
    pub rate: Option<f64>,
    /// With a successful job at all.
    pub with_first_job: i64,
    /// Median time to the first successful job, in seconds.
    pub median_seconds_to_first_job: Option<f64>,
    /// 90th percentile of it, in seconds.
    pub p90_seconds_to_first_job: Option<f64>,
}

/// Support figures of the tickets opened in [from, to), with their first staff
/// response and resolution before `to` (seconds from opening; continuous percentiles),
/// the backlog at `to` (tickets neither resolved nor closed by then), and the CSAT of
/// the ratings given in [from, to).
#[derive(SimpleObject, Debug)]
pub struct SupportMetrics {
    /// Tickets opened.
    pub opened: i64,
    /// Of them, with a first staff response before `to`.
    pub responded: i64,
    /// Median time to the first response, in seconds.
    pub first_response_median_seconds: Option<f64>,
    /// 90th percentile of it, in seconds.
    pub first_response_p90_seconds: Option<f64>,
    /// Of them, resolved before `to`.
    pub resolved: i64,
    /// Median time to resolution, in seconds.
    pub resolution_median_seconds: Option<f64>,
    /// Tickets open at `to`.
    pub backlog: i64,
    /// CSAT ratings (1–5, given by a ticket's owner once it is resolved or closed)
    /// given in [from, to), whenever their ticket was opened.
    pub csat_responses: i64,
    /// Their average score, 1 to 5 (null without ratings).
    pub csat_average: Option<f64>,
    /// Of them, ratings of 4 or 5 ("satisfied").
    pub csat_satisfied: i64,
    /// CSAT (customer satisfaction score), the standard definition: satisfied ratings
    /// (4 or 5 on the 1–5 scale) ÷ ratings, a fraction (null without ratings).
    pub csat: Option<f64>,
}

/// One cell of a cohort table: the customers who signed up in month `cohort` (UTC),
/// `monthsSince` months later.
#[derive(SimpleObject, Debug)]
pub struct CohortCell {
    /// The sign-up month's first instant.
    pub cohort: DateTime<Utc>,
    /// 0 for the sign-up month itself.
    pub months_since: i32,
    /// Customers in the cohort.
    pub size: i64,
    /// ACTIVE: customers who created a job that month; REVENUE: the cohort's MRR at the
    /// month's end (cents).
    pub value: i64,
    /// ACTIVE: value ÷ size; REVENUE: value ÷ the month-0 value (null when it is 0).
    pub share: Option<f64>,
}

/// Jobs created on one UTC day by customers of one plan (their plan now).
#[derive(SimpleObject, Debug)]
pub struct UsageTotal {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The plan (free, starter, pro, scale).
    pub plan: String,
    /// Scan jobs.
    pub scans: i64,
    /// Preparation jobs.
    pub preparations: i64,
    /// Publish jobs.
    pub publishes: i64,
}

/// Business metrics.
#[derive(Default)]
pub struct BusinessQuery;

#[Object]
impl BusinessQuery {
    /// MRR and its movements per bucket of `interval` over [from, to). Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn mrr(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: MetricInterval,
    ) -> Result<MrrReport> {
        let tx = data::<RequestTx>(ctx)?;
        let points = service::mrr(tx, from, to, interval.into()).await?;
        let currency = data::<Arc<Catalog>>(ctx)?.currency.clone();
        Ok(MrrReport { currency, buckets: points.into_iter().map(Into::into).collect() })
    }

    /// Logo churn, gross revenue churn and net revenue retention per bucket. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn churn(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: MetricInterval,
    ) -> Result<Vec<ChurnBucket>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::churn(tx, from, to, interval.into()).await?.into_iter().map(Into::into).collect())
    }

    /// Sign-up → verified → trial → paid for the sign-ups of [from, to). Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn conversion(&self, ctx: &Context<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Conversion> {
        let tx = data::<RequestTx>(ctx)?;
        let f = service::conversion(tx, from, to).await?;
        Ok(Conversion {
            verified_rate: f.verified_rate(),
            trial_rate: f.trial_rate(),
            paid_rate: f.paid_rate(),
            trial_to_paid_rate: f.trial_to_paid_rate(),
            signups: f.signups,
            verified: f.verified,
            trials: f.trials,
            paid: f.paid,
            trials_paid: f.trials_paid,
        })
    }

    /// Share of the sign-ups of [from, to) with a first successful job within
    /// `withinDays` (1 to 365), and the time to it. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn activation(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default = 7)] within_days: i32,
    ) -> Result<Activation> {
        let tx = data::<RequestTx>(ctx)?;
        let a = service::activation(tx, from, to, within_days).await?;
        Ok(Activation {
            signups: a.signups,
            activated: a.activated,
            rate: a.rate(),
            with_first_job: a.with_first_job,
            median_seconds_to_first_job: a.median_seconds,
            p90_seconds_to_first_job: a.p90_seconds,
        })
    }

    /// Support figures of [from, to): tickets opened, first-response median and p90,
    /// resolution median, backlog at `to`, CSAT. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn support_metrics(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<SupportMetrics> {
        let tx = data::<RequestTx>(ctx)?;
        let f = service::support(tx, from, to).await?;
        Ok(SupportMetrics {
            opened: f.opened,
            responded: f.responded,
            first_response_median_seconds: f.first_response_median_seconds,
            first_response_p90_seconds: f.first_response_p90_seconds,
            resolved: f.resolved,
            resolution_median_seconds: f.resolution_median_seconds,
            backlog: f.backlog,
            csat: f.csat_satisfied_share(),
            csat_responses: f.csat_responses,
            csat_average: f.csat_average,
            csat_satisfied: f.csat_satisfied,
        })
    }

    /// Retention table of the sign-up months of [from, to), up to the current month.
    /// Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn cohorts(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        metric: CohortMetric,
    ) -> Result<Vec<CohortCell>> {
        let tx = data::<RequestTx>(ctx)?;
        let metric = match metric {
            CohortMetric::Active => service::CohortMetric::Active,
            CohortMetric::Revenue => service::CohortMetric::Revenue,
        };
        Ok(service::cohorts(tx, from, to, metric)
            .await?
            .into_iter()
            .map(|c| CohortCell {
                cohort: c.cohort,
                months_since: c.months_since,
                size: c.size,
                value: c.value,
                share: c.share,
            })
            .collect())
    }

    /// Jobs created per UTC day and plan over [from, to), by kind. Admin only.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn usage_totals(&self, ctx: &Context<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<UsageTotal>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::usage_totals(tx, from, to)
            .await?
            .into_iter()
            .map(|u| UsageTotal {
                day: u.day.format("%Y-%m-%d").to_string(),
                plan: u.plan,
                scans: u.scans,
                preparations: u.preparations,
                publishes: u.publishes,
            })
            .collect())
    }
}
