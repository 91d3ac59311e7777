//! GraphQL adapter for the plan catalog.
use crate::{
    auth::guards::scope,
    catalog::Catalog,
    db::data,
    model::{ApiScope, PlanCode, QuotaMetric},
};
use async_graphql::{Context, Object, Result, SimpleObject};
use std::sync::Arc;

/// One limit of a plan.
#[derive(SimpleObject, Debug)]
pub struct PlanQuota {
    /// What it counts.
    pub metric: QuotaMetric,
    /// The limit.
    pub limit: i64,
}

/// A plan of the pricing page.
#[derive(SimpleObject, Debug)]
pub struct Plan {
    /// Its code.
    pub code: PlanCode,
    /// Display name.
    pub name: String,
    /// Monthly price in cents of `currency`.
    pub monthly_price_cents: i64,
    /// Yearly price in cents of `currency`.
    pub yearly_price_cents: i64,
    /// ISO currency.
    pub currency: String,
    /// Free trial days of a first subscription.
    pub trial_days: i32,
    /// Its limits.
    pub quotas: Vec<PlanQuota>,
}

/// Plan queries.
#[derive(Default)]
pub struct PlansQuery;

#[Object]
impl PlansQuery {
    /// The plans, for a pricing page; public.
    #[graphql(guard = "scope(ApiScope::UsageRead)")]
    async fn plans(&self, ctx: &Context<'_>) -> Result<Vec<Plan>> {
        let catalog = data::<Arc<Catalog>>(ctx)?;
        Ok(catalog
            .plans
            .iter()
            .map(|p| Plan {
                code: p.code,
                name: p.name.clone(),
                monthly_price_cents: p.monthly_price_cents,
                yearly_price_cents: p.yearly_price_cents,
                currency: catalog.currency.to_uppercase(),
                trial_days: p.trial_days as i32,
                quotas: p.quotas.limits().0.into_iter().map(|(metric, limit)| PlanQuota { metric, limit }).collect(),
            })
            .collect())
    }
}
