//! The process's Prometheus metrics: HTTP requests and latency, GraphQL operations and
//! errors, the runtime pool, statements sent, background tasks, the job queue, Stripe
//! webhooks, mail, sockets, refusals, the process itself and the build. Registered once;
//! cheap to clone; served by `http::metrics`.
//!
//! What code below the HTTP layer counts (token cache, rate limits, pool waits, lease
//! expiries) lives in [`shared()`]: one set per process, like `db::STATEMENTS`, added to
//! every registry.
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::{
    collections::HashSet,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

/// Distinct GraphQL operation names given a label of their own; later ones count as
/// `other`, so a client inventing names cannot grow the series without bound.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Counters and histograms of code below the HTTP layer, one set per process.
pub struct Shared {
    /// Access-token verifications by `result` (`hit`, `miss`) of the token cache
    /// (`plinth_token_cache_requests_total`).
    pub token_cache: IntCounterVec,
    /// Attempts a rate limit refused, by `limit` (`api`, `login`, `signup`, `reauth`,
    /// `other`) (`plinth_rate_limit_refusals_total`).
    pub rate_limit_refusals: IntCounterVec,
    /// Time to take a runtime pool connection and begin a transaction, waiting for a
    /// free connection included (`plinth_db_pool_acquire_duration_seconds`).
    pub pool_acquire: Histogram,
    /// Transactions waiting for a runtime pool connection (or their BEGIN) right now
    /// (`plinth_db_pool_waiting`).
    pub pool_waiting: IntGauge,
    /// Jobs whose lease expired: requeued, or failed when out of attempts
    /// (`plinth_job_lease_expiries_total`).
    pub lease_expiries: IntCounter,
    /// Seconds from a job becoming due (queued, or its retry backoff over) to a worker
    /// claiming it, by `kind` (`plinth_job_queue_wait_seconds`): observed once the
    /// claim committed.
    pub job_queue_wait: HistogramVec,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| Shared {
    token_cache: IntCounterVec::new(
        Opts::new("plinth_token_cache_requests_total", "Access-token verifications by token cache result (hit, miss)"),
        &["result"],
    )
    .expect("valid metric"),
    rate_limit_refusals: IntCounterVec::new(
        Opts::new("plinth_rate_limit_refusals_total", "Attempts refused by a rate limit, by limit"),
        &["limit"],
    )
    .expect("valid metric"),
    pool_acquire: Histogram::with_opts(
        HistogramOpts::new(
            "plinth_db_pool_acquire_duration_seconds",
            "Time to take a runtime pool connection and begin a transaction (waiting included)",
        )
        .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
    )
    .expect("valid metric"),
    pool_waiting: IntGauge::new("plinth_db_pool_waiting", "Transactions waiting for a runtime pool connection")
        .expect("valid metric"),
    lease_expiries: IntCounter::new(
        "plinth_job_lease_expiries_total",
        "Jobs whose worker lease expired (requeued, or failed when out of attempts)",
    )
    .expect("valid metric"),
    job_queue_wait: HistogramVec::new(
        HistogramOpts::new(
            "plinth_job_queue_wait_seconds",
            "Time from a job becoming due (queued, or its retry backoff over) to its claim by a worker, by kind",
        )
        .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        &["kind"],
    )
    .expect("valid metric"),
});

/// The process-wide counters.
pub fn shared() -> &'static Shared {
    &SHARED
}

/// One transaction waiting for a pool connection and its BEGIN: counted in
/// `plinth_db_pool_waiting` until dropped (a request cancelled meanwhile included), its
/// wait then observed in `plinth_db_pool_acquire_duration_seconds`.
pub struct PoolWait(std::time::Instant);

impl PoolWait {
    /// Starts counting.
    pub fn start() -> Self {
        SHARED.pool_waiting.inc();
        PoolWait(std::time::Instant::now())
    }
}

impl Drop for PoolWait {
    fn drop(&mut self) {
        SHARED.pool_waiting.dec();
        SHARED.pool_acquire.observe(self.0.elapsed().as_secs_f64());
    }
}

/// The `limit` label of a rate-limit key (`login:ip:…` → `login`): its first segment
/// when known, else `other`.
pub fn rate_limit_label(key: &str) -> &'static str {
    match key.split(':').next().unwrap_or_default() {
        "api" => "api",
        "login" => "login",
        "signup" => "signup",
        "reauth" => "reauth",
        _ => "other",
    }
}

/// The bounded `event_type` label of a Stripe event type: its family.
pub fn stripe_event_family(kind: &str) -> &'static str {
    const FAMILIES: [&str; 6] =
        ["customer.subscription", "customer.tax_id", "checkout.session", "charge.dispute", "invoice", "customer"];
    FAMILIES.into_iter().find(|f| kind.strip_prefix(f).is_some_and(|rest| rest.starts_with('.'))).unwrap_or("other")
}

/// The metrics registry and handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The process-wide set ([`shared()`]) and the process collector, names unprefixed.
    unprefixed: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    graphql_errors: IntCounterVec,
    /// Open connections of the runtime pool (`plinth_db_pool_connections`).
    pub pool_size: IntGauge,
    /// Idle connections of the runtime pool (`plinth_db_pool_idle_connections`).
    pub pool_idle: IntGauge,
    statements: IntCounter,
    /// Serializes the statement counter's catch-up at scrape time.
    statements_sync: Arc<Mutex<()>>,
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
    graphql_operations: IntCounterVec,
    operation_names: Arc<Mutex<HashSet<String>>>,
    quota_refusals: IntCounterVec,
    stripe_webhooks: IntCounterVec,
    stripe_webhook_lag: Histogram,
    /// Open GraphQL WebSockets (`plinth_websockets_open`).
    pub websockets_open: IntGauge,
    jobs_queued: IntGaugeVec,
    jobs_oldest_queued: IntGaugeVec,
    jobs_running: IntGaugeVec,
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
        // Mirrors an atomic owned by db, caught up at each scrape (`sync_statements`).
        let statements = IntCounter::new("db_statements_total", "Statements sent by the runtime pool")?;
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
        let graphql_operations = IntCounterVec::new(
            Opts::new(
                "graphql_operations_total",
                "GraphQL operations by name (anonymous; other past the first 200 names) and outcome (ok, error)",
            ),
            &["operation", "outcome"],
        )?;
        let quota_refusals = IntCounterVec::new(
            Opts::new("quota_refusals_total", "Operations refused by a plan quota, by metric"),
            &["metric"],
        )?;
        let stripe_webhooks = IntCounterVec::new(
            Opts::new(
                "stripe_webhooks_total",
                "Stripe webhook deliveries by event family and outcome (applied, duplicate, ignored, rejected, error)",
            ),
            &["event_type", "outcome"],
        )?;
        let stripe_webhook_lag = Histogram::with_opts(
            HistogramOpts::new(
                "stripe_webhook_lag_seconds",
                "Time from a Stripe event's creation to its first recording here (applied or ignored)",
            )
            .buckets(vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0]),
        )?;
        let websockets_open = IntGauge::new("websockets_open", "Open GraphQL WebSockets")?;
        let jobs_queued = IntGaugeVec::new(Opts::new("jobs_queued", "Jobs waiting in the queue, by kind"), &["kind"])?;
        let jobs_oldest_queued = IntGaugeVec::new(
            Opts::new("jobs_oldest_queued_seconds", "Age of the oldest job waiting in the queue, by kind"),
            &["kind"],
        )?;
        let jobs_running =
            IntGaugeVec::new(Opts::new("jobs_running", "Jobs held by a worker right now, by kind"), &["kind"])?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "1, labelled with the version and the git commit built"),
            &["version", "git_sha"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), option_env!("PLINTH_GIT_SHA").unwrap_or("unknown")])
            .set(1);
        registry.register(Box::new(graphql_operations.clone()))?;
        registry.register(Box::new(quota_refusals.clone()))?;
        registry.register(Box::new(stripe_webhooks.clone()))?;
        registry.register(Box::new(stripe_webhook_lag.clone()))?;
        registry.register(Box::new(websockets_open.clone()))?;
        registry.register(Box::new(jobs_queued.clone()))?;
        registry.register(Box::new(jobs_oldest_queued.clone()))?;
        registry.register(Box::new(jobs_running.clone()))?;
        registry.register(Box::new(build_info))?;
        for kind in job_kinds() {
            jobs_queued.with_label_values(&[kind]).set(0);
            jobs_oldest_queued.with_label_values(&[kind]).set(0);
            jobs_running.with_label_values(&[kind]).set(0);
        }
        // Named in full already (`plinth_…`), and the standard `process_…` names carry no
        // prefix: a registry of their own.
        let unprefixed = Registry::new();
        let shared = shared();
        unprefixed.register(Box::new(shared.token_cache.clone()))?;
        unprefixed.register(Box::new(shared.rate_limit_refusals.clone()))?;
        unprefixed.register(Box::new(shared.pool_acquire.clone()))?;
        unprefixed.register(Box::new(shared.pool_waiting.clone()))?;
        unprefixed.register(Box::new(shared.lease_expiries.clone()))?;
        unprefixed.register(Box::new(shared.job_queue_wait.clone()))?;
        for kind in job_kinds() {
            // Exported from the start, before the first claim.
            shared.job_queue_wait.with_label_values(&[kind]);
        }
        unprefixed.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Metrics {
            unprefixed,
            registry,
            requests,
            latency,
            graphql_errors,
            pool_size,
            pool_idle,
            statements,
            statements_sync: Arc::new(Mutex::new(())),
            task_runs,
            task_last_success,
            dependency_up,
            mail_deliveries,
            mail_pending,
            mail_oldest_pending_seconds,
            mail_queued,
            mail_oldest_queued,
            graphql_operations,
            operation_names: Arc::new(Mutex::new(HashSet::new())),
            quota_refusals,
            stripe_webhooks,
            stripe_webhook_lag,
            websockets_open,
            jobs_queued,
            jobs_oldest_queued,
            jobs_running,
        })
    }

    /// Catches the statement counter up with `db::STATEMENTS` (at scrape time).
    pub fn sync_statements(&self, total: u64) {
        let _one_at_a_time = self.statements_sync.lock().expect("statements");
        let seen = self.statements.get();
        if total > seen {
            self.statements.inc_by(total - seen);
        }
    }

    /// Records one GraphQL operation: its name (None: anonymous) and whether it answered
    /// without errors.
    pub fn graphql_operation(&self, name: Option<&str>, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        let label = match name {
            None => "anonymous".to_owned(),
            Some(n) => {
                let mut seen = self.operation_names.lock().expect("operation names");
                let valid = !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if valid && (seen.contains(n) || seen.len() < MAX_OPERATION_NAMES) {
                    seen.insert(n.to_owned());
                    n.to_owned()
                } else {
                    "other".to_owned()
                }
            }
        };
        self.graphql_operations.with_label_values(&[&label, outcome]).inc();
    }

    /// Records the errors of one GraphQL response: each by code, and quota refusals by
    /// metric.
    pub fn graphql_errors(&self, errors: &[async_graphql::ServerError]) {
        for err in errors {
            let ext = err.extensions.as_ref();
            let code = match ext.and_then(|e| e.get("code")) {
                Some(async_graphql::Value::String(c)) => c.as_str(),
                _ => "UNKNOWN",
            };
            self.graphql_error(code);
            if code == "QUOTA_EXCEEDED" {
                let metric = match ext.and_then(|e| e.get("metric")) {
                    Some(async_graphql::Value::String(m)) => quota_metric_label(m),
                    _ => "other",
                };
                self.quota_refusals.with_label_values(&[metric]).inc();
            }
        }
    }

    /// Records one Stripe webhook delivery: the event's type (None: not verified) and
    /// the outcome; `lag` is now − the event's creation, for a first recording.
    pub fn stripe_webhook(&self, kind: Option<&str>, outcome: &str, lag: Option<Duration>) {
        let family = kind.map(stripe_event_family).unwrap_or("unverified");
        self.stripe_webhooks.with_label_values(&[family, outcome]).inc();
        if let Some(lag) = lag {
            self.stripe_webhook_lag.observe(lag.as_secs_f64());
        }
    }

    /// Sets the queue gauges: (kind, queued, age in seconds of the oldest queued,
    /// running); a kind absent from it has nothing queued or running.
    pub fn job_queue(&self, queue: &[(String, i64, i64, i64)]) {
        for kind in job_kinds() {
            let (queued, oldest, running) =
                queue.iter().find(|(k, ..)| k == kind).map(|(_, q, o, r)| (*q, *o, *r)).unwrap_or((0, 0, 0));
            self.jobs_queued.with_label_values(&[kind]).set(queued);
            self.jobs_oldest_queued.with_label_values(&[kind]).set(oldest);
            self.jobs_running.with_label_values(&[kind]).set(running);
        }
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
    /// oldest); a template absent from it loses its series.
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
        let mut families = self.registry.gather();
        families.extend(self.unprefixed.gather());
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        buf
    }
}

/// The job kinds the queue metrics always report (0 when nothing waits).
fn job_kinds() -> impl Iterator<Item = &'static str> {
    crate::model::JobKind::ALL.iter().map(|k| k.as_str())
}

/// The `metric` label of a quota refusal (`SCANS` → `scans`), from the known metrics.
fn quota_metric_label(metric: &str) -> &'static str {
    crate::model::QuotaMetric::ALL
        .iter()
        .map(|m| m.as_str())
        .find(|m| m.eq_ignore_ascii_case(metric))
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(stripe_event_family("customer.subscription.updated"), "customer.subscription");
        assert_eq!(stripe_event_family("customer.updated"), "customer");
        assert_eq!(stripe_event_family("invoice.paid"), "invoice");
        assert_eq!(stripe_event_family("invoiced.x"), "other");
        assert_eq!(stripe_event_family("payout.paid"), "other");
        assert_eq!(rate_limit_label("login:ip:1.2.3.4"), "login");
        assert_eq!(rate_limit_label("anything"), "other");
        let m = Metrics::new().unwrap();
        for i in 0..MAX_OPERATION_NAMES + 10 {
            m.graphql_operation(Some(&format!("Op{i}")), true);
        }
        m.graphql_operation(Some("Op0"), false);
        m.graphql_operation(Some("not a name!"), true);
        m.graphql_operation(None, true);
        let text = String::from_utf8(m.encode()).unwrap();
        let series = text.lines().filter(|l| l.starts_with("plinth_graphql_operations_total{")).count();
        assert_eq!(series, MAX_OPERATION_NAMES + 3, "200 names ok, Op0 error, other, anonymous");
        assert!(text.contains(r#"plinth_graphql_operations_total{operation="other",outcome="ok"} 11"#), "{text}");
    }

    #[test]
    fn the_statement_counter_is_a_counter_that_catches_up() {
        let m = Metrics::new().unwrap();
        m.sync_statements(5);
        m.sync_statements(3);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains("# TYPE plinth_db_statements_total counter"), "{text}");
        assert!(text.contains("plinth_db_statements_total 5"), "{text}");
        assert!(text.contains("plinth_build_info{git_sha="), "{text}");
        assert!(text.contains("process_start_time_seconds"), "{text}");
    }
}
