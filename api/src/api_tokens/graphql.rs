//! GraphQL adapters for API tokens.
use super::{service, store::ApiTokenRow};
use crate::{
    auth::{
        guards::{NoApiTokens, SignedIn},
        tokens::TokenService,
    },
    db::{data, RequestTx},
    error::parse_id,
};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// An API token (the secret itself is shown only at creation).
#[derive(SimpleObject)]
pub struct ApiToken {
    /// Its id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenRow> for ApiToken {
    fn from(r: ApiTokenRow) -> Self {
        ApiToken {
            id: ID(r.id.to_string()),
            name: r.name,
            scopes: r.scopes,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A new token and its row.
#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// The biscuit, for `Authorization: Bearer`; shown once.
    pub token: String,
    /// Its row.
    pub api_token: ApiToken,
}

/// Input of `createApiToken`.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// A name to recognise it by.
    pub name: String,
    /// Scopes: drafts:read, drafts:write, jobs:read, jobs:write, accounts:read,
    /// accounts:write, usage:read, billing:read, activity:read (which fields each one
    /// opens: README, "API token scopes").
    pub scopes: Vec<String>,
    /// Expiry (90 days by default, at most 366).
    pub expires_at: Option<DateTime<Utc>>,
}

/// API token queries.
#[derive(Default)]
pub struct ApiTokensQuery;

#[Object]
impl ApiTokensQuery {
    /// The caller's API tokens.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::list(tx).await?.into_iter().map(ApiToken::from).collect())
    }
}

/// API token mutations.
#[derive(Default)]
pub struct ApiTokensMutation;

#[Object]
impl ApiTokensMutation {
    /// Creates an API token; its secret is in the answer and nowhere else.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn create_api_token(&self, ctx: &Context<'_>, input: CreateApiTokenInput) -> Result<CreatedApiToken> {
        let tx = data::<RequestTx>(ctx)?;
        let tokens = data::<Arc<TokenService>>(ctx)?;
        let (token, row) = service::create(tx, tokens, &input.name, &input.scopes, input.expires_at).await?;
        Ok(CreatedApiToken { token, api_token: row.into() })
    }

    /// Revokes an API token on every instance.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::revoke(tx, parse_id("id", &id)?).await?)
    }
}
