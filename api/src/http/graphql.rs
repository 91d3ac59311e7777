//! POST /graphql: translates an HTTP request into a GraphQL one for
//! `graphql::execute::Executor` (one request, one transaction) and its response back
//! into HTTP (GraphQL-over-HTTP content types and status codes, the request id on
//! INTERNAL errors, `Retry-After` for RATE_LIMITED).
use super::{HttpState, RequestId};
use crate::{
    db::RequestMeta,
    error::AppError,
    graphql::execute::{error_response, is_code},
};
use async_graphql::{ServerError, Value};
use async_graphql_poem::GraphQLRequest;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, RemoteAddr},
    IntoResponse, Request, Response,
};
use std::sync::Arc;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The explorer's page: GraphiQL from the web app's build (`/graphiql/vendor/`, the npm
/// packages' own browser files, and `/graphiql/explorer.js`, which fills the
/// Authorization header from the browser's web-app session: web/static/graphiql/).
/// Nothing comes from another host, and the policy below refuses anything that would.
const GRAPHIQL_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Plinth API explorer</title>
    <link rel="icon" href="/favicon.svg">
    <link rel="stylesheet" href="/graphiql/vendor/graphiql.min.css">
    <link rel="stylesheet" href="/graphiql/explorer.css">
  </head>
  <body>
    <div id="graphiql">Loading the explorer...</div>
    <script src="/graphiql/vendor/react.production.min.js"></script>
    <script src="/graphiql/vendor/react-dom.production.min.js"></script>
    <script src="/graphiql/vendor/graphiql.min.js"></script>
    <script src="/graphiql/explorer.js"></script>
  </body>
</html>
"#;

/// The explorer's policy: its own origin only (inline styles and `data:` fonts and
/// images are GraphiQL's; no inline script).
const GRAPHIQL_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    font-src 'self' data:; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// GraphiQL, for browsers, served wholly by this server (offline too); 404 when
/// `PLINTH_GRAPHIQL` is off (production's default).
#[handler]
pub async fn graphiql(Data(state): Data<&Arc<HttpState>>) -> Response {
    if !state.config.server.graphiql {
        return StatusCode::NOT_FOUND.into_response();
    }
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header("content-security-policy", GRAPHIQL_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "strict-origin-when-cross-origin")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(GRAPHIQL_PAGE)
}

/// Executes one GraphQL request for its caller.
///
/// The body must be `Content-Type: application/json` (GraphQL over HTTP, "POST
/// request"): anything else answers 415 UNSUPPORTED_MEDIA_TYPE without running, so a
/// foreign page cannot send a query as a CORS "simple request" (`text/plain`, a form)
/// without a preflight. A body that is not a GraphQL request in JSON answers 400
/// GRAPHQL_PARSE_FAILED. The answer is `application/graphql-response+json` when the
/// `Accept` header asks for it, else `application/json`.
#[handler]
pub async fn graphql_post(
    req: &Request,
    Data(state): Data<&Arc<HttpState>>,
    remote: &RemoteAddr,
    gql: poem::Result<GraphQLRequest>,
) -> Response {
    let wants_graphql_json = req.header(header::ACCEPT).is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON));
    let content_type = if wants_graphql_json { GRAPHQL_RESPONSE_JSON } else { "application/json" };
    if !is_json(req.header(header::CONTENT_TYPE)) {
        let err = AppError::UnsupportedMediaType(
            "POST /graphql takes a JSON body: send Content-Type: application/json".into(),
        );
        return refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, content_type, err);
    }
    let mut gql = match gql {
        Ok(gql) => gql,
        Err(e) => {
            let err = AppError::GraphqlParseFailed(format!("the body is not a GraphQL request in JSON: {e}"));
            return refusal(StatusCode::BAD_REQUEST, content_type, err);
        }
    };
    let operation = crate::graphql::execute::operation_name(&mut gql.0);
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let meta = RequestMeta {
        request_id: request_id.clone(),
        ip: client_ip(req, remote, state.config.server.client_ip_header.as_deref()),
        user_agent: req.header(header::USER_AGENT).map(|ua| ua.chars().take(256).collect()),
        accept_language: req.header(header::ACCEPT_LANGUAGE).map(|l| l.chars().take(256).collect()),
        operator: None,
    };
    let (resp, user_id) = match crate::auth::authenticate(&state.executor.tokens, req.header(header::AUTHORIZATION)) {
        Ok(principal) => {
            let user_id = principal.user_id();
            (state.executor.execute_as(principal, meta, gql.0).await, user_id)
        }
        Err(e) => (error_response(e), None),
    };
    state.metrics.graphql_operation(operation.as_deref(), resp.errors.is_empty());
    state.metrics.graphql_errors(&resp.errors);
    let resp = with_request_id(resp, &request_id);
    let logged = super::RequestLog { operation, user_id };
    // An unknown persisted-query hash stays a 200: Apollo's persisted-query link takes a
    // 400 (or 500) as "this server has no persisted queries" and stops sending hashes.
    let refused = resp.errors.iter().any(|e| e.path.is_empty() && !is_code(e, "PERSISTED_QUERY_NOT_FOUND"));
    let status = if wants_graphql_json && resp.data == Value::Null && refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // A rate-limited caller learns when to retry from the header as well.
    let retry_after = resp.errors.iter().find_map(|e| e.extensions.as_ref().and_then(|x| x.get("retryAfter")).cloned());
    match serde_json::to_vec(&resp) {
        Ok(body) => {
            let mut builder = Response::builder().status(status).content_type(content_type);
            if let Some(Value::Number(n)) = retry_after {
                builder = builder.header(header::RETRY_AFTER, n.to_string());
            }
            let mut resp = builder.body(body);
            resp.extensions_mut().insert(logged);
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether a Content-Type is JSON (`application/json`, parameters such as `charset`
/// allowed).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A `POST /graphql` whose body is larger than `PLINTH_MAX_BODY_BYTES`: 413, with a
/// GraphQL error a client can branch on (QUERY_TOO_COMPLEX, limit `bodyBytes`).
pub(super) fn body_too_large(max: usize) -> Response {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "application/json",
        AppError::QueryTooComplex { limit: "bodyBytes", max: max as u64 },
    )
}

/// A request refused before it was read as GraphQL.
fn refusal(status: StatusCode, content_type: &str, err: AppError) -> Response {
    let body = serde_json::to_vec(&error_response(err)).unwrap_or_default();
    Response::builder().status(status).content_type(content_type).body(body)
}

/// INTERNAL errors carry the request id, so a user's report finds the log lines.
pub(super) fn with_request_id(mut resp: async_graphql::Response, request_id: &str) -> async_graphql::Response {
    for err in &mut resp.errors {
        if is_internal(err) {
            err.extensions.get_or_insert_with(Default::default).set("requestId", request_id);
        }
    }
    resp
}

fn is_internal(err: &ServerError) -> bool {
    is_code(err, "INTERNAL")
}

/// The client's address: the trusted proxy's header when one is configured, else the
/// socket's peer.
pub(super) fn client_ip(req: &Request, remote: &RemoteAddr, header: Option<&str>) -> Option<String> {
    if let Some(name) = header {
        if let Some(v) = req.header(name) {
            return v.split(',').next().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        }
    }
    remote.as_socket_addr().map(|a| a.ip().to_string())
}
