//! The process's Prometheus metrics: HTTP requests and latency, GraphQL errors by code,
//! the runtime pool, statements sent, and background tasks. Registered once; cheap to
//! clone; served by `http::metrics`.
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// The metrics registry and handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    graphql_errors: IntCounterVec,
    /// Open connections of the runtime pool (`plinth_db_pool_connections`).
    pub pool_size: IntGauge,
    /// Idle connections of the runtime pool (`plinth_db_pool_idle_connections`).
    pub pool_idle: IntGauge,
    /// Statements sent by the runtime pool (`plinth_db_statements_total`).
    pub statements: IntGauge,
    task_runs: IntCounterVec,
    task_last_success: GaugeVec,
    /// 1 while an optional dependency answers, 0 while the instance runs degraded
    /// without it (`plinth_dependency_up{dependency}`).
    pub dependency_up: IntGaugeVec,
    mail_deliveries: IntCounterVec,
    /// Outbox rows waiting to be sent (`plinth_mail_pending`).
    pub mail_pending: IntGauge,
    /// Age in seconds of the oldest waiting row (`plinth_mail_oldest_pending_seconds`).
    pub mail_oldest_pending_seconds: IntGauge,
    mail_queued: IntGaugeVec,
    mail_oldest_queued: IntGaugeVec,
}

impl Metrics {
    /// Registers every metric (names prefixed `plinth_`).
    ///
    /// Errors: a registration failure (a duplicate name: a bug).
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
        // A counter in meaning; kept in a gauge because it mirrors an atomic owned by db.
        let statements = IntGauge::new("db_statements_total", "Statements sent by the runtime pool")?;
        let task_runs = IntCounterVec::new(
            Opts::new("task_runs_total", "Background task runs by task and outcome (ok, error, skipped)"),
            &["task", "outcome"],
        )?;
        let task_last_success = GaugeVec::new(
            Opts::new("task_last_success_timestamp_seconds", "Unix time of each background task's last success"),
            &["task"],
        )?;
        let dependency_up = IntGaugeVec::new(
            Opts::new("dependency_up", "1 while an optional dependency answers, 0 while running degraded without it"),
            &["dependency"],
        )?;
        registry.register(Box::new(dependency_up.clone()))?;
        let mail_deliveries = IntCounterVec::new(
            Opts::new(
                "mail_deliveries_total",
                "Mail delivery attempts by template and outcome (sent, retried, failed, skipped)",
            ),
            &["template", "outcome"],
        )?;
        let mail_pending = IntGauge::new("mail_pending", "Outbox rows waiting to be sent")?;
        let mail_oldest_pending_seconds =
            IntGauge::new("mail_oldest_pending_seconds", "Age of the oldest outbox row waiting to be sent")?;
        let mail_queued = IntGaugeVec::new(
            Opts::new("mail_queued", "Outbox rows waiting to be sent, by template (from the database)"),
            &["template"],
        )?;
        let mail_oldest_queued = IntGaugeVec::new(
            Opts::new("mail_oldest_queued_seconds", "Age of the oldest outbox row waiting to be sent, by template"),
            &["template"],
        )?;
        registry.register(Box::new(mail_queued.clone()))?;
        registry.register(Box::new(mail_oldest_queued.clone()))?;
        registry.register(Box::new(mail_deliveries.clone()))?;
        registry.register(Box::new(mail_pending.clone()))?;
        registry.register(Box::new(mail_oldest_pending_seconds.clone()))?;
        for c in [&requests, &graphql_errors, &task_runs] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(statements.clone()))?;
        registry.register(Box::new(task_last_success.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            graphql_errors,
            pool_size,
            pool_idle,
            statements,
            task_runs,
            task_last_success,
            dependency_up,
            mail_deliveries,
            mail_pending,
            mail_oldest_pending_seconds,
            mail_queued,
            mail_oldest_queued,
        })
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

    /// Records a background task's run: `outcome` is `ok`, `error` or `skipped`.
    pub fn task_run(&self, task: &str, outcome: &str) {
        self.task_runs.with_label_values(&[task, outcome]).inc();
        if outcome == "ok" {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            self.task_last_success.with_label_values(&[task]).set(now);
        }
    }

    /// Sets the per-template backlog: (template, rows waiting, age in seconds of the
    /// oldest); a template absent from it has nothing waiting.
    pub fn mail_backlog(&self, backlog: &[(String, i64, i64)]) {
        self.mail_queued.reset();
        self.mail_oldest_queued.reset();
        for (template, pending, oldest) in backlog {
            self.mail_queued.with_label_values(&[template]).set(*pending);
            self.mail_oldest_queued.with_label_values(&[template]).set(*oldest);
        }
    }

    /// Records one delivery attempt: `outcome` is `sent`, `retried`, `failed`, or
    /// `skipped` (not wanted any more when it was about to leave).
    pub fn mail_delivery(&self, template: &str, outcome: &str) {
        self.mail_deliveries.with_label_values(&[template, outcome]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        buf
    }
}
