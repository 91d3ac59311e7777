//! GraphQL adapter for quota usage.
use super::service;
use crate::{
    auth::guards::{scope, SignedIn},
    db::{data, RequestTx},
    model::{ApiScope, QuotaMetric},
};
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// One metric's use.
#[derive(SimpleObject, Debug)]
pub struct QuotaUsage {
    /// The metric.
    pub metric: QuotaMetric,
    /// Used this period (or now, for gauges).
    pub used: i64,
    /// The plan's limit.
    pub limit: i64,
    /// When it resets (null for gauges).
    pub resets_at: Option<DateTime<Utc>>,
}

/// Quota queries.
#[derive(Default)]
pub struct QuotasQuery;

#[Object]
impl QuotasQuery {
    /// The caller's use of each limited metric, for the dashboard.
    #[graphql(guard = "scope(ApiScope::UsageRead).and(SignedIn)")]
    async fn usage(&self, ctx: &Context<'_>) -> Result<Vec<QuotaUsage>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::usage(tx)
            .await?
            .into_iter()
            .map(|u| QuotaUsage { metric: u.metric, used: u.used, limit: u.limit, resets_at: u.resets_at })
            .collect())
    }
}
