//! GraphQL adapter for quota usage.
use super::service;
use crate::db::{data, RequestScope};
use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// A metric a plan limits.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(name = "UsageMetric")]
pub enum Metric {
    /// SCAN jobs this period.
    Scans,
    /// PREPARE jobs this period.
    Preparations,
    /// Marketplace accounts connected now.
    ConnectedAccounts,
    /// Bytes of photos stored now.
    StorageBytes,
}

/// One metric's use.
#[derive(SimpleObject, Debug)]
pub struct QuotaUsage {
    /// The metric.
    pub metric: Metric,
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
    async fn usage(&self, ctx: &Context<'_>) -> Result<Vec<QuotaUsage>> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(service::usage(scope)
            .await?
            .into_iter()
            .map(|u| QuotaUsage {
                metric: match u.metric {
                    "scans" => Metric::Scans,
                    "preparations" => Metric::Preparations,
                    "connected_accounts" => Metric::ConnectedAccounts,
                    _ => Metric::StorageBytes,
                },
                used: u.used,
                limit: u.limit,
                resets_at: u.resets_at,
            })
            .collect())
    }
}
