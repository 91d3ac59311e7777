//! GraphQL adapters for API tokens, and the per-field scope guard.
use super::service::{self, ApiTokenRow};
use crate::{
    auth::tokens::TokenService,
    db::{data, RequestScope},
    error::{parse_id, AppError},
};
use async_graphql::{
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
    Context, InputObject, Object, Result, ServerResult, SimpleObject, Value, Variables, ID,
};
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
    /// accounts:write, usage:read, billing:read.
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
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(service::list(scope).await?.into_iter().map(ApiToken::from).collect())
    }
}

/// API token mutations.
#[derive(Default)]
pub struct ApiTokensMutation;

#[Object]
impl ApiTokensMutation {
    /// Creates an API token; its secret is in the answer and nowhere else.
    async fn create_api_token(&self, ctx: &Context<'_>, input: CreateApiTokenInput) -> Result<CreatedApiToken> {
        let scope = data::<RequestScope>(ctx)?;
        let tokens = data::<Arc<TokenService>>(ctx)?;
        let (token, row) = service::create(scope, tokens, &input.name, &input.scopes, input.expires_at).await?;
        Ok(CreatedApiToken { token, api_token: row.into() })
    }

    /// Revokes an API token on every instance.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(service::revoke(scope, parse_id("id", &id)?).await?)
    }
}

/// The request's variables, for guards that read arguments.
pub struct RequestVariables(pub Variables);

/// Checks every root field an API token calls against the token (its scopes and any
/// attenuation its holder added).
pub struct ApiScopeGuard;

impl ExtensionFactory for ApiScopeGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ApiScopeGuardExtension)
    }
}

struct ApiScopeGuardExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ApiScopeGuardExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root = info.path_node.parent.is_none();
        let api = ctx.data_opt::<RequestScope>().and_then(|s| s.principal.claims()).and_then(|c| c.api.clone());
        if let (true, Some(api), false) = (root, api, info.is_for_introspection) {
            let field = info.name;
            let checked = match (service::scope_of(field), ctx.data_opt::<Arc<TokenService>>()) {
                (Some(operation), Some(tokens)) => {
                    let resource = id_argument(ctx, &info);
                    tokens.authorize_api(&api, operation, field, resource.as_deref())
                }
                (None, _) => Err(AppError::Forbidden(format!("API tokens cannot call {field}"))),
                (_, None) => Err(AppError::Internal(anyhow::anyhow!("token service missing"))),
            };
            if let Err(e) = checked {
                let err: async_graphql::Error = e.into();
                return Err(err.into_server_error(info.field.name.pos));
            }
        }
        next.run(ctx, info).await
    }
}

/// The field's `id` argument as a string, from a literal or a variable.
fn id_argument(ctx: &ExtensionContext<'_>, info: &ResolveInfo<'_>) -> Option<String> {
    let (_, value) = info.field.arguments.iter().find(|(name, _)| name.node.as_str() == "id")?;
    let vars = ctx.data_opt::<RequestVariables>();
    let resolved =
        value.node.clone().into_const_with(|name| vars.and_then(|v| v.0.get(&name).cloned()).ok_or(())).ok()?;
    match resolved {
        Value::String(s) => Some(s),
        _ => None,
    }
}
