//! GraphQL adapters for marketplace accounts. Credentials go in, never out.
use super::{
    domain::{MarketplaceAccountStatus, MarketplacePlatform},
    service,
};
use crate::{
    auth::guards::{scope, ActiveSubscription, SignedIn},
    db::{data, RequestTx},
    error::{parse_id, AppError},
    model::ApiScope,
    secretbox::SecretBox,
};
use async_graphql::{Context, InputObject, Json, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::marketplace_accounts as accounts;
use std::sync::Arc;

/// A connected marketplace account.
pub struct MarketplaceAccount(pub accounts::Model);

#[Object]
impl MarketplaceAccount {
    /// The account's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The marketplace.
    async fn platform(&self) -> Result<MarketplacePlatform> {
        Ok(MarketplacePlatform::parse(&self.0.platform).map_err(|e| AppError::Internal(e.into()))?)
    }
    /// The name the user gave it.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// Whether it can be used.
    async fn status(&self) -> MarketplaceAccountStatus {
        MarketplaceAccountStatus::parse(&self.0.status).unwrap_or(MarketplaceAccountStatus::Error)
    }
    /// Whether credentials are stored (they are never returned).
    async fn has_credentials(&self) -> bool {
        self.0.credentials.is_some()
    }
    /// When it was connected.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.with_timezone(&Utc)
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at.with_timezone(&Utc)
    }
}

/// Input of `connectMarketplaceAccount`.
#[derive(InputObject)]
pub struct ConnectMarketplaceAccountInput {
    /// The marketplace.
    pub platform: MarketplacePlatform,
    /// 1 to 100 characters.
    pub display_name: String,
    /// The marketplace credentials (a JSON object, at most 16 KiB); sealed at rest.
    pub credentials: Json<serde_json::Value>,
}

/// Marketplace account queries.
#[derive(Default)]
pub struct MarketplaceQuery;

#[Object]
impl MarketplaceQuery {
    /// The caller's marketplace accounts.
    #[graphql(guard = "scope(ApiScope::AccountsRead).and(SignedIn)")]
    async fn marketplace_accounts(&self, ctx: &Context<'_>) -> Result<Vec<MarketplaceAccount>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::list(tx).await?.into_iter().map(MarketplaceAccount).collect())
    }

    /// One of the caller's marketplace accounts; null when absent or not yours.
    #[graphql(guard = "scope(ApiScope::AccountsRead).on(&id).and(SignedIn)")]
    async fn marketplace_account(&self, ctx: &Context<'_>, id: ID) -> Result<Option<MarketplaceAccount>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::get(tx, parse_id("id", &id)?).await?.map(MarketplaceAccount))
    }
}

/// Marketplace account mutations.
#[derive(Default)]
pub struct MarketplaceMutation;

#[Object]
impl MarketplaceMutation {
    /// Connects a marketplace account.
    #[graphql(guard = "scope(ApiScope::AccountsWrite).and(ActiveSubscription)")]
    async fn connect_marketplace_account(
        &self,
        ctx: &Context<'_>,
        input: ConnectMarketplaceAccountInput,
    ) -> Result<MarketplaceAccount> {
        let tx = data::<RequestTx>(ctx)?;
        let sealer = data::<Arc<SecretBox>>(ctx)?;
        let account = service::connect(tx, sealer, input.platform, &input.display_name, &input.credentials.0).await?;
        Ok(MarketplaceAccount(account))
    }

    /// Renames a marketplace account.
    #[graphql(guard = "scope(ApiScope::AccountsWrite).on(&id).and(SignedIn)")]
    async fn rename_marketplace_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        display_name: String,
    ) -> Result<MarketplaceAccount> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(MarketplaceAccount(service::rename(tx, parse_id("id", &id)?, &display_name).await?))
    }

    /// Disconnects a marketplace account and erases its credentials.
    #[graphql(guard = "scope(ApiScope::AccountsWrite).on(&id).and(SignedIn)")]
    async fn disconnect_marketplace_account(&self, ctx: &Context<'_>, id: ID) -> Result<MarketplaceAccount> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(MarketplaceAccount(service::disconnect(tx, parse_id("id", &id)?).await?))
    }
}
