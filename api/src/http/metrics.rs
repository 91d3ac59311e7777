//! Prometheus metrics: requests, latency, GraphQL errors by code, pool usage.
use super::HttpState;
use poem::{handler, web::Data, IntoResponse};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::{sync::Arc, time::Duration};

/// The process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    graphql_errors: IntCounterVec,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    statements: IntGauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("plinth".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["route"],
        )?;
        let graphql_errors =
            IntCounterVec::new(Opts::new("graphql_errors_total", "GraphQL errors by extensions.code"), &["code"])?;
        let pool_size = IntGauge::new("db_pool_connections", "Open connections of the runtime pool")?;
        let pool_idle = IntGauge::new("db_pool_idle_connections", "Idle connections of the runtime pool")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(graphql_errors.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        // A counter in meaning; kept in a gauge because it mirrors an atomic owned by db.
        let statements = IntGauge::new("db_statements_total", "Statements sent by the runtime pool")?;
        registry.register(Box::new(statements.clone()))?;
        Ok(Metrics { registry, requests, latency, graphql_errors, pool_size, pool_idle, statements })
    }

    /// Records one finished HTTP request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.latency.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// Records one GraphQL error by its code.
    pub fn graphql_error(&self, code: &str) {
        self.graphql_errors.with_label_values(&[code]).inc();
    }
}

/// The Prometheus text exposition.
#[handler]
pub async fn metrics(Data(state): Data<&Arc<HttpState>>) -> impl IntoResponse {
    let pool = state.pool.get_postgres_connection_pool();
    state.metrics.pool_size.set(i64::from(pool.size()));
    state.metrics.pool_idle.set(pool.num_idle() as i64);
    state.metrics.statements.set(crate::db::STATEMENTS.load(std::sync::atomic::Ordering::Relaxed) as i64);
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics");
    }
    buf.with_content_type("text/plain; version=0.0.4")
}
