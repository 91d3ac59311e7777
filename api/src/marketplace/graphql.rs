//! GraphQL adapters for marketplace accounts. Credentials go in, never out.
use super::service;
use crate::{
    db::{data, RequestScope},
    error::{parse_id, AppError},
    secretbox::SecretBox,
};
use async_graphql::{Context, Enum, InputObject, Json, Object, Result, ID};
use chrono::{DateTime, Utc};
use entity::marketplace_accounts as accounts;
use std::sync::Arc;

/// A marketplace.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum MarketplacePlatform {
    /// Vinted.
    Vinted,
    /// eBay.
    Ebay,
    /// Leboncoin.
    Leboncoin,
    /// Etsy.
    Etsy,
    /// Depop.
    Depop,
}

impl MarketplacePlatform {
    fn as_str(self) -> &'static str {
        match self {
            MarketplacePlatform::Vinted => "vinted",
            MarketplacePlatform::Ebay => "ebay",
            MarketplacePlatform::Leboncoin => "leboncoin",
            MarketplacePlatform::Etsy => "etsy",
            MarketplacePlatform::Depop => "depop",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "vinted" => MarketplacePlatform::Vinted,
            "ebay" => MarketplacePlatform::Ebay,
            "leboncoin" => MarketplacePlatform::Leboncoin,
            "etsy" => MarketplacePlatform::Etsy,
            "depop" => MarketplacePlatform::Depop,
            _ => return None,
        })
    }
}

/// Whether an account can be used.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum MarketplaceAccountStatus {
    /// Usable.
    Connected,
    /// Disconnected by the user; credentials erased.
    Disconnected,
    /// The marketplace refused the credentials.
    Error,
}

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
        Ok(MarketplacePlatform::parse(&self.0.platform)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("unknown platform {:?}", self.0.platform)))?)
    }
    /// The name the user gave it.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// Whether it can be used.
    async fn status(&self) -> MarketplaceAccountStatus {
        match self.0.status.as_str() {
            "connected" => MarketplaceAccountStatus::Connected,
            "disconnected" => MarketplaceAccountStatus::Disconnected,
            _ => MarketplaceAccountStatus::Error,
        }
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
    async fn marketplace_accounts(&self, ctx: &Context<'_>) -> Result<Vec<MarketplaceAccount>> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(service::list(scope).await?.into_iter().map(MarketplaceAccount).collect())
    }

    /// One of the caller's marketplace accounts; null when absent or not yours.
    async fn marketplace_account(&self, ctx: &Context<'_>, id: ID) -> Result<Option<MarketplaceAccount>> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(service::get(scope, parse_id("id", &id)?).await?.map(MarketplaceAccount))
    }
}

/// Marketplace account mutations.
#[derive(Default)]
pub struct MarketplaceMutation;

#[Object]
impl MarketplaceMutation {
    /// Connects a marketplace account.
    async fn connect_marketplace_account(
        &self,
        ctx: &Context<'_>,
        input: ConnectMarketplaceAccountInput,
    ) -> Result<MarketplaceAccount> {
        let scope = data::<RequestScope>(ctx)?;
        let sealer = data::<Arc<SecretBox>>(ctx)?;
        let account =
            service::connect(scope, sealer, input.platform.as_str(), &input.display_name, &input.credentials.0).await?;
        Ok(MarketplaceAccount(account))
    }

    /// Renames a marketplace account.
    async fn rename_marketplace_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        display_name: String,
    ) -> Result<MarketplaceAccount> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(MarketplaceAccount(service::rename(scope, parse_id("id", &id)?, &display_name).await?))
    }

    /// Disconnects a marketplace account and erases its credentials.
    async fn disconnect_marketplace_account(&self, ctx: &Context<'_>, id: ID) -> Result<MarketplaceAccount> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(MarketplaceAccount(service::disconnect(scope, parse_id("id", &id)?).await?))
    }
}
