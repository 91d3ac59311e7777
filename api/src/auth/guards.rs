//! Who may call a field, declared at the field with `#[graphql(guard = ...)]`, so reading
//! a resolver shows who may call it. Guards read the request's `Principal` from the
//! GraphQL context (HTTP requests and WebSocket connections both put it there), so one
//! authorization path serves both transports.
//!
//! Every root field declares exactly one API-token rule: `scope(ApiScope::X)` (an API
//! token needs that scope, and passes the token's own checks, attenuations included)
//! or `NoApiTokens` (never callable with one). A test sweeps every root field to prove
//! it.
use super::tokens::TokenService;
use crate::{
    db::data,
    error::AppError,
    model::{AccountState, ApiScope, Role},
    principal::Principal,
};
use async_graphql::{Context, Guard, Result, ID};
use std::sync::Arc;

fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    Ok(data::<Principal>(ctx)?)
}

/// The field's name, for messages and API-token facts.
fn field_name<'a>(ctx: &Context<'a>) -> &'a str {
    ctx.item.node.name.node.as_str()
}

/// A signed-in account (a session, or an API token acting for one). Refuses with
/// UNAUTHENTICATED.
pub struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match principal(ctx)? {
            Principal::User(_) => Ok(()),
            _ => Err(AppError::Unauthenticated("sign in to do this".into()).into()),
        }
    }
}

/// A signed-in account whose subscription is not suspended: premium operations.
/// Refuses with UNAUTHENTICATED or SUBSCRIPTION_INACTIVE.
pub struct ActiveSubscription;

impl Guard for ActiveSubscription {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match principal(ctx)? {
            Principal::User(c) if c.account_state == AccountState::Suspended => {
                Err(AppError::SubscriptionInactive.into())
            }
            Principal::User(_) => Ok(()),
            _ => Err(AppError::Unauthenticated("sign in to do this".into()).into()),
        }
    }
}

/// A job worker's token. Refuses with FORBIDDEN.
pub struct WorkerOnly;

impl Guard for WorkerOnly {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match principal(ctx)? {
            Principal::Worker(_) => Ok(()),
            _ => Err(AppError::Forbidden("only a worker token may do this".into()).into()),
        }
    }
}

/// A signed-in user or a worker: anyone with a token. Refuses anonymous callers with
/// UNAUTHENTICATED.
pub struct UserOrWorker;

impl Guard for UserOrWorker {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match principal(ctx)? {
            Principal::User(_) | Principal::Worker(_) => Ok(()),
            _ => Err(AppError::Unauthenticated("sign in to do this".into()).into()),
        }
    }
}

/// Staff of at least `role` (support: support or admin; admin: admin only), through a
/// session token (never an API token or a worker's). Refuses anonymous callers with
/// UNAUTHENTICATED, everyone else with FORBIDDEN.
pub struct Staff(pub Role);

impl Guard for Staff {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let c = match principal(ctx)? {
            Principal::User(c) => c,
            Principal::Worker(_) | Principal::System => {
                return Err(AppError::Forbidden(format!("only staff may call {}", field_name(ctx))).into())
            }
            Principal::Anonymous => return Err(AppError::Unauthenticated("sign in to do this".into()).into()),
        };
        let allowed = c.api.is_none()
            && match self.0 {
                Role::Admin => c.role == Role::Admin,
                Role::Support => c.role.is_staff(),
                Role::User => true,
            };
        if allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("only {} staff may call {}", self.0, field_name(ctx))).into())
        }
    }
}

/// Never callable with an API token (sign-in, passwords, billing changes, token
/// management, notifications). Refuses API tokens with FORBIDDEN; everyone else passes.
pub struct NoApiTokens;

impl Guard for NoApiTokens {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let tokens = data::<Arc<TokenService>>(ctx)?;
        Ok(check_api_rule(tokens, principal(ctx)?, ApiRule::NoApiTokens, field_name(ctx), None)?)
    }
}

/// A field's API-token rule: what [`scope`] and [`NoApiTokens`] declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiRule {
    /// An API token needs this scope (and its checks must pass).
    Scope(ApiScope),
    /// No API token may call it.
    NoApiTokens,
}

/// The one authorization path of an API-token rule, for HTTP and WebSocket fields alike
/// and for each event a subscription sends: the guards call it with the request's
/// principal, live subscriptions again before every event (with [`live_check`]).
/// Callers other than API tokens pass.
///
/// Errors: FORBIDDEN.
pub fn check_api_rule(
    tokens: &TokenService,
    principal: &Principal,
    rule: ApiRule,
    field: &str,
    resource: Option<&str>,
) -> Result<(), AppError> {
    let Some(api) = principal.api() else { return Ok(()) };
    match rule {
        ApiRule::NoApiTokens => Err(AppError::Forbidden(format!("API tokens cannot call {field}"))),
        ApiRule::Scope(scope) => tokens.authorize_api(api, scope, field, resource),
    }
}

/// What a live subscription checks before sending each event: nothing revoked the
/// subscriber's token since it subscribed, and it still passes the field's API-token
/// rule (an attenuation may have a time bound). The socket itself closes at its
/// token's expiry unless a fresh token renewed it in band.
pub type LiveCheck = crate::db::live::Recheck;

/// The [`LiveCheck`] of subscription `field` under `rule`.
pub fn live_check(tokens: Arc<TokenService>, rule: ApiRule, field: &'static str) -> LiveCheck {
    Arc::new(move |p: &Principal| {
        tokens.not_revoked(p)?;
        check_api_rule(&tokens, p, rule, field, None)
    })
}

/// The API-token scope a field needs; see [`scope`].
pub struct ScopeGuard {
    scope: ApiScope,
    resource: Option<String>,
}

/// An API token calling this field needs `scope`, and every check of the token
/// (attenuations included) must pass with the field's facts. Other callers pass.
/// Refuses with FORBIDDEN.
pub fn scope(scope: ApiScope) -> ScopeGuard {
    ScopeGuard { scope, resource: None }
}

impl ScopeGuard {
    /// The field's `id` argument, given to the token's checks as `resource("<id>")`
    /// (so a token attenuated to one resource reaches only it).
    pub fn on(mut self, id: &ID) -> Self {
        self.resource = Some(id.to_string());
        self
    }
}

impl Guard for ScopeGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let tokens = data::<Arc<TokenService>>(ctx)?;
        let rule = ApiRule::Scope(self.scope);
        Ok(check_api_rule(tokens, principal(ctx)?, rule, field_name(ctx), self.resource.as_deref())?)
    }
}
