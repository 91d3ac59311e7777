//! POST /graphql: one request, one transaction. The transaction commits when the
//! response carries no error and rolls back otherwise, so a failed mutation leaves
//! nothing behind.
use super::{HttpState, RequestId};
use crate::{
    auth::principal_from_authorization,
    db::{self, RequestMeta, RequestScope},
    error::AppError,
};
use async_graphql::{http::GraphiQLSource, ServerError, Value};
use async_graphql_poem::GraphQLRequest;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Html, RemoteAddr},
    IntoResponse, Request, Response,
};
use std::sync::Arc;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// GraphiQL, for browsers.
#[handler]
pub async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish())
}

/// Executes one GraphQL request for its caller.
#[handler]
pub async fn graphql_post(
    req: &Request,
    Data(state): Data<&Arc<HttpState>>,
    remote: &RemoteAddr,
    gql: GraphQLRequest,
) -> Response {
    let wants_graphql_json = req.header(header::ACCEPT).is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON));
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let meta = RequestMeta {
        request_id: request_id.clone(),
        ip: client_ip(req, remote, state.config.client_ip_header.as_deref()),
        user_agent: req.header(header::USER_AGENT).map(|ua| ua.chars().take(256).collect()),
    };
    let resp = execute(state, req.header(header::AUTHORIZATION), meta, gql.0).await;
    for err in &resp.errors {
        let code = err.extensions.as_ref().and_then(|e| e.get("code")).and_then(|v| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        });
        state.metrics.graphql_error(code.unwrap_or("GRAPHQL_VALIDATION"));
    }
    let resp = with_request_id(resp, &request_id);
    let status = if wants_graphql_json && resp.data == Value::Null && resp.errors.iter().any(|e| e.path.is_empty()) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if wants_graphql_json { GRAPHQL_RESPONSE_JSON } else { "application/json" };
    // A rate-limited caller learns when to retry from the header as well.
    let retry_after = resp.errors.iter().find_map(|e| e.extensions.as_ref().and_then(|x| x.get("retryAfter")).cloned());
    match serde_json::to_vec(&resp) {
        Ok(body) => {
            let mut builder = Response::builder().status(status).content_type(content_type);
            if let Some(Value::Number(n)) = retry_after {
                builder = builder.header(header::RETRY_AFTER, n.to_string());
            }
            builder.body(body)
        }
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn execute(
    state: &HttpState,
    authorization: Option<&str>,
    meta: RequestMeta,
    request: async_graphql::Request,
) -> async_graphql::Response {
    let mut principal = match principal_from_authorization(&state.tokens, authorization) {
        Ok(p) => p,
        Err(e) => return error_response(e),
    };
    let tx = match db::begin(&state.pool, &principal, state.config.statement_timeout_ms).await {
        Ok(tx) => Arc::new(tx),
        Err(e) => return error_response(AppError::from_db(e)),
    };
    // API tokens live for months: their plan, state and quotas are read per request.
    let api_token = match principal_api(state, &tx, &mut principal).await {
        Ok(t) => t,
        Err(e) => return error_response(e),
    };
    if let Err(e) = plan_rate(state, &principal).await {
        return error_response(e);
    }
    let scope = RequestScope::new(tx.clone(), principal, meta);
    let events = scope.events.clone();
    let resp = state.schema.execute(crate::graphql::with_scope(request, scope)).await;
    let Some(tx) = sole_owner(tx).await else {
        return error_response(AppError::Internal(anyhow::anyhow!("transaction still shared after execution")));
    };
    if resp.errors.is_empty() {
        if let Some((user_id, token_id)) = api_token {
            if let Err(e) = crate::api_tokens::service::touch(&tx, user_id, token_id).await {
                return error_response(e);
            }
        }
        if let Err(e) = tx.commit().await {
            return error_response(AppError::Internal(anyhow::Error::new(e).context("commit")));
        }
        let events = std::mem::take(&mut *events.lock().expect("pending events"));
        state.bus.publish(&events).await;
    } else if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rollback failed");
    }
    resp
}

/// Fills an API token's plan, state and quotas from the database (session tokens carry
/// them); returns the token's (user, id).
async fn principal_api(
    state: &HttpState,
    tx: &sea_orm::DatabaseTransaction,
    principal: &mut crate::principal::Principal,
) -> Result<Option<(uuid::Uuid, uuid::Uuid)>, AppError> {
    let crate::principal::Principal::User(claims) = principal else { return Ok(None) };
    let Some(api) = &claims.api else { return Ok(None) };
    let token_id = api.token_id;
    let (plan, account_state) = crate::billing::service::token_state(tx, claims.user_id).await?;
    let catalog = state.billing.catalog();
    let quotas = catalog
        .plan(&plan)
        .or_else(|| catalog.plan("free"))
        .map(|p| crate::quotas::service::limits(&p.quotas))
        .ok_or_else(|| anyhow::anyhow!("the catalog has no plan {plan:?}"))?;
    claims.quotas = quotas.iter().map(|(m, l)| (m.to_string(), *l)).collect();
    claims.plan = plan;
    claims.account_state = account_state;
    Ok(Some((claims.user_id, token_id)))
}

/// Each signed-in session gets its plan's requests per minute (the limit travels in
/// its token), counted in Redis so every instance shares it; in-process without Redis.
async fn plan_rate(state: &HttpState, principal: &crate::principal::Principal) -> Result<(), AppError> {
    let Some(claims) = principal.claims() else { return Ok(()) };
    let Some(limit) = claims.quota("api_requests_per_minute").filter(|l| *l > 0) else { return Ok(()) };
    let key = format!("api:{}:{}", claims.user_id, claims.session_id);
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    match state.limiter.hit(&key, limit, std::time::Duration::from_secs(60)).await {
        crate::ratelimit::Decision::Allowed => Ok(()),
        crate::ratelimit::Decision::Limited { retry_after } => {
            Err(AppError::RateLimited { retry_after_secs: retry_after.as_secs().max(1) })
        }
    }
}

/// Execution has finished, so resolvers hold no clone of the transaction; a DataLoader
/// task may still be dropping its clone, so give it a few turns of the scheduler.
async fn sole_owner<T>(mut shared: Arc<T>) -> Option<T> {
    for _ in 0..1000 {
        match Arc::try_unwrap(shared) {
            Ok(owned) => return Some(owned),
            Err(still_shared) => shared = still_shared,
        }
        tokio::task::yield_now().await;
    }
    None
}

/// A response that failed before (or instead of) execution.
fn error_response(err: AppError) -> async_graphql::Response {
    let gql: async_graphql::Error = err.into();
    async_graphql::Response::from_errors(vec![gql.into_server_error(async_graphql::Pos::default())])
}

/// INTERNAL errors carry the request id, so a user's report finds the log lines.
fn with_request_id(mut resp: async_graphql::Response, request_id: &str) -> async_graphql::Response {
    for err in &mut resp.errors {
        if is_internal(err) {
            err.extensions.get_or_insert_with(Default::default).set("requestId", request_id);
        }
    }
    resp
}

fn is_internal(err: &ServerError) -> bool {
    err.extensions.as_ref().and_then(|e| e.get("code")) == Some(&Value::from("INTERNAL"))
}

/// The client's address: the trusted proxy's header when one is configured, else the
/// socket's peer.
fn client_ip(req: &Request, remote: &RemoteAddr, header: Option<&str>) -> Option<String> {
    if let Some(name) = header {
        if let Some(v) = req.header(name) {
            return v.split(',').next().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        }
    }
    remote.as_socket_addr().map(|a| a.ip().to_string())
}
