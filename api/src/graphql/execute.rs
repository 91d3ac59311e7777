//! One GraphQL request, end to end below HTTP: authenticate the caller, check its
//! request rate, open its row-level-secured transaction, execute, then commit and
//! publish (no error) or roll back (any error). `http` only translates HTTP to this and
//! back.
use super::{with_request, AppSchema};
use crate::{
    api_tokens::service as api_tokens,
    auth::{self, entitlements, ratelimit, tokens::TokenService},
    catalog::Catalog,
    db::{RequestMeta, RequestTx},
    error::AppError,
    events::EventBus,
    principal::Principal,
};
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// What executing a request needs.
#[derive(Clone)]
pub struct Executor {
    /// The schema, with its process-wide data.
    pub schema: AppSchema,
    /// Verifies access tokens.
    pub tokens: Arc<TokenService>,
    /// The runtime pool.
    pub pool: DatabaseConnection,
    /// Where committed events go.
    pub bus: Arc<EventBus>,
    /// Request rates.
    pub limiter: Arc<ratelimit::RateLimiter>,
    /// Plans (an API token's limits).
    pub catalog: Arc<Catalog>,
    /// Statement timeout of a request's transaction.
    pub statement_timeout_ms: u64,
    /// The whole request's time budget.
    pub request_timeout: std::time::Duration,
}

impl Executor {
    /// Executes `request` for the bearer of `authorization`, within the request's time
    /// budget. Every failure is a GraphQL error with its `extensions.code`; past the
    /// budget, SERVICE_UNAVAILABLE (the transaction is dropped unfinished: it rolls back).
    pub async fn execute(
        &self,
        authorization: Option<&str>,
        meta: RequestMeta,
        request: async_graphql::Request,
    ) -> async_graphql::Response {
        match tokio::time::timeout(self.request_timeout, self.try_execute(authorization, meta, request)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => error_response(e),
            Err(_) => {
                tracing::warn!(budget_ms = self.request_timeout.as_millis() as u64, "a request ran out of time");
                error_response(AppError::ServiceUnavailable(format!(
                    "the request did not finish within {} ms; nothing was done, retry shortly",
                    self.request_timeout.as_millis()
                )))
            }
        }
    }

    async fn try_execute(
        &self,
        authorization: Option<&str>,
        meta: RequestMeta,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Response, AppError> {
        let principal = auth::authenticate(&self.tokens, authorization)?;
        // A session token carries its limits: count the request before taking a
        // connection. An API token's limits are read in its transaction first.
        let counted_early = principal.api().is_none();
        if counted_early {
            ratelimit::check_request_rate(&self.limiter, &principal).await?;
        }
        let mut tx = self.begin(principal, meta).await?;
        if let Err(e) = self.complete(&mut tx, counted_early).await {
            tx.rollback().await;
            return Err(e);
        }
        let resp = self.schema.execute(with_request(request, tx.clone())).await;
        if !resp.errors.is_empty() {
            tx.rollback().await;
            return Ok(resp);
        }
        if let Err(e) = api_tokens::touch(&tx).await {
            tx.rollback().await;
            return Err(e);
        }
        tx.commit(&self.bus).await.map_err(|e| AppError::Internal(anyhow::Error::new(e).context("commit")))?;
        Ok(resp)
    }

    /// The request's transaction, begun at its first statement (a request that reads no
    /// table takes no connection).
    async fn begin(&self, principal: Principal, meta: RequestMeta) -> Result<RequestTx, AppError> {
        Ok(RequestTx::new(&self.pool, principal, meta, self.statement_timeout_ms))
    }

    /// Completes an API token's claims and counts its request.
    async fn complete(&self, tx: &mut RequestTx, counted: bool) -> Result<(), AppError> {
        entitlements::complete(tx, &self.catalog).await?;
        if !counted {
            ratelimit::check_request_rate(&self.limiter, tx.principal()).await?;
        }
        Ok(())
    }
}

/// A response that failed before (or instead of) execution.
pub fn error_response(err: AppError) -> async_graphql::Response {
    let gql: async_graphql::Error = err.into();
    async_graphql::Response::from_errors(vec![gql.into_server_error(async_graphql::Pos::default())])
}
