//! HTTP: the routes, and the middleware every request passes (request id, tracing
//! span, metrics, body size limit).
pub mod cookie_auth;
pub mod cors;
pub mod drain;
pub mod graphql;
pub mod health;
pub mod metrics;
pub mod pages;
pub mod reports;
pub mod storage;
pub mod webapp;
pub mod webhooks;
pub mod ws;

use crate::{
    auth::tokens::TokenService, config::Config, db::RuntimePool, graphql::execute::Executor, metrics::Metrics,
    storage::Storage,
};
use poem::{
    get,
    http::{HeaderValue, StatusCode},
    put, Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};
use std::{sync::Arc, time::Instant};
use tracing::Instrument;

/// What the handlers share.
pub struct HttpState {
    /// Executes GraphQL requests (and holds the schema).
    pub executor: Executor,
    /// Verifies access tokens (WebSocket `connection_init`).
    pub tokens: Arc<TokenService>,
    /// The runtime pool (readiness, pool metrics).
    pub pool: RuntimePool,
    /// Configuration.
    pub config: Arc<Config>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The object store (its local variant is served by `/storage`).
    pub storage: Arc<Storage>,
    /// Live events (WebSocket revocations).
    pub bus: Arc<crate::events::EventBus>,
    /// Accounts (the web app's cookie endpoints).
    pub accounts: Arc<crate::accounts::service::AccountService>,
    /// Billing (Stripe webhooks).
    pub billing: Arc<crate::billing::service::BillingService>,
    /// The link to Redis, when configured (readiness detail, metrics).
    pub redis: Option<Arc<crate::shared_redis::SharedRedis>>,
    /// Signs and checks the links of e-mails (unsubscribe).
    pub sealer: Arc<crate::secretbox::SecretBox>,
    /// The web app's build, served at every other path.
    pub web: webapp::WebFiles,
    /// The drain SIGTERM starts (sockets close, readiness fails).
    pub drain: drain::Drain,
}

/// What a handler tells the request's log line (a response extension): the GraphQL
/// operation's name and the caller's user id. Never a token nor an e-mail address.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    /// The operation's name, when one was given.
    pub operation: Option<String>,
    /// The signed-in user (none for anonymous callers and workers).
    pub user_id: Option<uuid::Uuid>,
}

/// Per-request id, set by the middleware and read by handlers.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Every route of the server.
pub fn routes(state: Arc<HttpState>) -> impl Endpoint {
    // The store's PUT route takes photos and the imports' zips; each URL's signed size
    // bounds what it reads.
    let sizes = &state.config.storage;
    let limits = BodyLimits {
        api: state.config.server.max_body_bytes,
        upload: sizes.max_upload_bytes.max(sizes.max_import_bytes) as usize,
    };
    let metrics = state.metrics.clone();
    let origins = state.config.server.cors_origins.clone();
    let route = Route::new()
        .at("/graphql", get(graphql::graphiql).post(graphql::graphql_post))
        .at("/graphql/ws", get(ws::endpoint()))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/admin/metrics/:file", get(reports::export))
        .at("/storage/*key", put(storage::put_object).get(storage::get_object))
        .at("/auth/login", poem::post(cookie_auth::login))
        .at("/auth/register", poem::post(cookie_auth::register))
        .at("/auth/refresh", poem::post(cookie_auth::refresh))
        .at("/auth/logout", poem::post(cookie_auth::logout))
        .at("/webhooks/stripe", poem::post(webhooks::stripe))
        .at("/webhooks/sendgrid", poem::post(webhooks::sendgrid))
        .at("/webhooks/chatwoot", poem::post(webhooks::chatwoot))
        .at("/unsubscribe", get(pages::unsubscribe_page).post(pages::unsubscribe))
        .at("/", get(webapp::serve))
        .at("/*path", get(webapp::serve));
    // In production /metrics is on the metrics listener only (`metrics_routes`).
    let route = if state.config.is_production() { route } else { route.at("/metrics", get(metrics::metrics)) };
    let route = route.data(state);
    cors::for_origins(route, &origins).around(move |ep, req| observe(ep, req, metrics.clone(), limits))
}

/// The routes of the metrics listener (`PLINTH_METRICS_ADDR`): `GET /metrics`, nothing
/// else.
pub fn metrics_routes(state: Arc<HttpState>) -> impl Endpoint {
    Route::new().at("/metrics", get(metrics::metrics)).data(state)
}

/// The fixed label of a path, so metrics have bounded cardinality.
fn route_label(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        p if p.starts_with("/storage/") => "/storage",
        p if p.starts_with("/admin/metrics/") => "/admin/metrics",
        "/webhooks/stripe" => "/webhooks/stripe",
        "/webhooks/sendgrid" => "/webhooks/sendgrid",
        "/webhooks/chatwoot" => "/webhooks/chatwoot",
        "/unsubscribe" => "/unsubscribe",
        "/auth/login" => "/auth/login",
        "/auth/register" => "/auth/register",
        "/auth/refresh" => "/auth/refresh",
        "/auth/logout" => "/auth/logout",
        _ => "other",
    }
}

/// A request id from the client's `X-Request-Id` if it is sane, else a new one.
fn request_id(req: &Request) -> String {
    req.header("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Refuses a declared body over `max` with 413, and cuts an undeclared (chunked) one at
/// `max` bytes, so no request can make the server buffer more.
fn limit_body(req: &mut Request, max: usize) -> Result<(), StatusCode> {
    let declared = req.header("content-length").and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Some(_) => Ok(()),
        None => {
            use tokio::io::AsyncReadExt;
            let body = req.take_body().into_async_read().take(max as u64);
            req.set_body(Body::from_async_read(body));
            Ok(())
        }
    }
}

/// Body size limits: API requests are small; photo uploads (local store) are larger.
#[derive(Clone, Copy)]
struct BodyLimits {
    api: usize,
    upload: usize,
}

async fn observe<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    metrics: Metrics,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let id = request_id(&req);
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = if crate::telemetry::exporting() {
        // The root of the request's trace (`telemetry`): its name and kind, and the status
        // recorded below. The route is the bounded label, never the path with its ids.
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %method,
            route,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    } else {
        tracing::info_span!("request", request_id = %id, method = %method, route)
    };
    let started = Instant::now();
    let max_body = if route == "/storage" { limits.upload } else { limits.api };
    let mut resp = match limit_body(&mut req, max_body) {
        Err(_) if route == "/graphql" => graphql::body_too_large(max_body),
        Err(status) => status.into_response(),
        Ok(()) => match ep.call(req).instrument(span.clone()).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        },
    };
    let elapsed = started.elapsed();
    // Fields only the exported span has (a no-op on the other).
    span.record("http.response.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    metrics.observe(method.as_str(), route, resp.status().as_u16(), elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // The request's one info line.
    let logged = resp.extensions_mut().remove::<RequestLog>().unwrap_or_default();
    let user_id = logged.user_id.map(|u| u.to_string());
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            operation = logged.operation.as_deref(),
            user_id = user_id.as_deref(),
            "request done"
        )
    });
    Ok(resp)
}
