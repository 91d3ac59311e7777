//! Background loops. Each domain declares its own (`<domain>::tasks`) as a [`Task`]:
//! a name, an interval, how many instances run it, and the work; startup hands them all
//! to one [`Supervisor`], which runs each on its interval, records every run in the
//! metrics (`plinth_task_runs_total`, `plinth_task_last_success_timestamp_seconds`) and
//! logs failures.
//!
//! Scheduled work that must happen once per interval however many instances run
//! ([`Runs::OneInstance`]: the sweepers, the reminder and onboarding schedules, the
//! nightly reconciliation with Stripe) runs on the **leader** only: the instance holding
//! a session-level PostgreSQL advisory lock ([`LEADER_LOCK`], `pg_try_advisory_lock`)
//! on a connection of its own, outside the pool ([`elect`]). A session lock rather than
//! a lock per run: it names one instance for as long as it lives (a per-run
//! transaction lock only serializes runs, so two instances whose ticks are apart would
//! each run the interval, and a long run would pin a pooled connection in a transaction
//! for its whole length). The lock ends with its session: a leader that stops, crashes
//! or loses its connection releases it at once (PostgreSQL drops a closed session's
//! locks), and a leader that cannot ping its connection steps down, closing it; the
//! other instances try for the lock every [`LEADER_RETRY`]. Each run still claims its
//! interval in `scheduled_tasks` first, so the moment of a handover (the old leader's
//! connection gone but not yet noticed, or a new leader ticking at once) cannot run one
//! interval twice. Work safe in parallel (mail delivery, rows taken with SKIP LOCKED)
//! stays [`Runs::EveryInstance`].
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    metrics::Metrics,
    principal::Principal,
    storage::Storage,
};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;
use uuid::Uuid;

/// How many instances run a task each interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// Every instance, on its own schedule: the work is safe in parallel (rows taken
    /// with `FOR UPDATE SKIP LOCKED`).
    EveryInstance,
    /// The leader only, once per interval (claimed in `scheduled_tasks`).
    OneInstance,
}

/// Key of the session-level advisory lock its leader holds ("plinth" and 1; the
/// migrations' lock is "plinth" alone). Advisory locks are per database.
pub const LEADER_LOCK: i64 = 0x0070_6c69_6e74_6801;

/// How often an instance that does not lead tries for the lock, and how often the
/// leader pings its connection.
pub const LEADER_RETRY: Duration = Duration::from_secs(2);

/// The name the leader's connection shows in `pg_stat_activity`.
pub const LEADER_APPLICATION_NAME: &str = "plinth-leader";

/// Whether this instance leads the scheduled work now, and the moments that changes.
#[derive(Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// Whether this instance leads now.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once this instance leads (`true`) or no longer does (`false`); never
    /// when the campaign has ended.
    async fn until(&mut self, leading: bool) {
        if self.0.wait_for(|l| *l == leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Campaigns for the leadership of the scheduled work on `runtime_url`'s database until
/// the handle is aborted (which closes its connection, releasing the lock). The first
/// try is made before this returns, so an instance that wins at start runs its first
/// ticks at once, before it serves.
pub async fn elect(runtime_url: String) -> (Leadership, tokio::task::JoinHandle<()>) {
    use sea_orm::sqlx::{postgres::PgConnectOptions, ConnectOptions};
    let options = match runtime_url.parse::<PgConnectOptions>() {
        Ok(o) => o.application_name(LEADER_APPLICATION_NAME).disable_statement_logging(),
        Err(e) => {
            tracing::error!(error = %e, "the leader's connection cannot be configured: no scheduled work here");
            return (Leadership(watch::channel(false).1), tokio::spawn(async {}));
        }
    };
    let won = match connect(&options).await {
        Some(mut conn) => try_lock(&mut conn).await.unwrap_or(false).then_some(conn),
        None => None,
    };
    let (tx, rx) = watch::channel(won.is_some());
    (Leadership(rx), tokio::spawn(campaign(options, tx, won)))
}

type LeaderConnection = sea_orm::sqlx::PgConnection;

/// A connection of its own for the lock, or None (after a pause) when it fails.
async fn connect(options: &sea_orm::sqlx::postgres::PgConnectOptions) -> Option<LeaderConnection> {
    use sea_orm::sqlx::Connection;
    match tokio::time::timeout(LEADER_RETRY * 2, LeaderConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Some(conn),
        _ => {
            tokio::time::sleep(LEADER_RETRY).await;
            None
        }
    }
}

/// One try for the lock: whether it is ours; None when the connection failed.
async fn try_lock(conn: &mut LeaderConnection) -> Option<bool> {
    let tried = sea_orm::sqlx::query_scalar::<sea_orm::sqlx::Postgres, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(conn);
    tokio::time::timeout(LEADER_RETRY * 2, tried).await.ok()?.ok()
}

async fn campaign(
    options: sea_orm::sqlx::postgres::PgConnectOptions,
    leading: watch::Sender<bool>,
    mut won: Option<LeaderConnection>,
) {
    loop {
        let mut conn = match won.take() {
            Some(conn) => conn,
            None => {
                let Some(mut conn) = connect(&options).await else { continue };
                // Try for the lock on this connection until it is ours or the connection fails.
                let ours = loop {
                    match try_lock(&mut conn).await {
                        Some(true) => break true,
                        Some(false) => tokio::time::sleep(LEADER_RETRY).await,
                        None => break false,
                    }
                };
                if !ours {
                    tokio::time::sleep(LEADER_RETRY).await;
                    continue;
                }
                conn
            }
        };
        tracing::info!("this instance leads the scheduled work");
        leading.send_replace(true);
        // Hold it while the connection answers.
        loop {
            tokio::time::sleep(LEADER_RETRY).await;
            let ping = sea_orm::sqlx::query("SELECT 1").execute(&mut conn);
            if !matches!(tokio::time::timeout(LEADER_RETRY * 2, ping).await, Ok(Ok(_))) {
                break;
            }
        }
        leading.send_replace(false);
        tracing::warn!("the leader's connection failed: stepping down until the lock is won again");
        // Closing the session releases the lock (if the server still holds it).
        drop(conn);
        tokio::time::sleep(LEADER_RETRY).await;
    }
}

/// The work of one run: how many things it handled (logged when not zero).
pub type Work = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<usize>> + Send + Sync>;

/// A background loop a domain declares.
#[derive(Clone)]
pub struct Task {
    /// A stable name (metrics label, `scheduled_tasks` key), e.g. `jobs.requeue_expired`.
    pub name: &'static str,
    /// Time between runs.
    pub every: Duration,
    /// Every instance, or one per interval.
    pub runs: Runs,
    /// The work.
    pub work: Work,
}

impl Task {
    /// A task from a name, an interval, its reach and an async closure.
    pub fn new<F, Fut>(name: &'static str, every: Duration, runs: Runs, work: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<usize>> + Send + 'static,
    {
        Task { name, every, runs, work: Arc::new(move || Box::pin(work())) }
    }
}

/// Runs the declared tasks until the process ends.
pub struct Supervisor {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Supervisor {
    /// Starts one loop per task; the [`Runs::OneInstance`] ones run while `leadership`
    /// says this instance leads.
    pub fn start(
        pool: RuntimePool,
        metrics: Metrics,
        statement_timeout_ms: u64,
        leadership: Leadership,
        tasks: Vec<Task>,
    ) -> Self {
        let handles = tasks
            .into_iter()
            .map(|task| {
                let (pool, metrics, leadership) = (pool.clone(), metrics.clone(), leadership.clone());
                tokio::spawn(async move {
                    match task.runs {
                        Runs::EveryInstance => run_loop(&pool, &metrics, statement_timeout_ms, &task, None).await,
                        Runs::OneInstance => {
                            let mut leadership = leadership;
                            loop {
                                leadership.until(true).await;
                                let lost = leadership.clone();
                                run_loop(&pool, &metrics, statement_timeout_ms, &task, Some(lost)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Supervisor { handles }
    }

    /// Stops every loop (at its next await point).
    pub fn stop(&self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `task` on its interval (the first run at once) until `leader`, when given, says
/// this instance no longer leads; a run under way then finishes.
async fn run_loop(pool: &RuntimePool, metrics: &Metrics, timeout_ms: u64, task: &Task, mut leader: Option<Leadership>) {
    let mut tick = tokio::time::interval(task.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match &mut leader {
            Some(l) => tokio::select! {
                _ = tick.tick() => {}
                _ = l.until(false) => return,
            },
            None => {
                tick.tick().await;
            }
        }
        if task.runs == Runs::OneInstance {
            match claim_interval(pool, timeout_ms, task).await {
                Ok(true) => {}
                Ok(false) => {
                    metrics.task_run(task.name, "skipped");
                    continue;
                }
                Err(e) => {
                    metrics.task_run(task.name, "error");
                    tracing::warn!(task = task.name, error = format!("{e:#}"), "claiming a task's interval");
                    continue;
                }
            }
        }
        match (task.work)().await {
            Ok(n) => {
                metrics.task_run(task.name, "ok");
                if n > 0 {
                    tracing::info!(task = task.name, handled = n, "background task ran");
                }
            }
            Err(e) => {
                metrics.task_run(task.name, "error");
                tracing::warn!(task = task.name, error = format!("{e:#}"), "background task failed");
            }
        }
    }
}

/// Claims this interval of `task` for this instance: true when no instance started it
/// within the last 90% of its interval (the slack absorbs clock jitter between ticks).
async fn claim_interval(pool: &RuntimePool, timeout_ms: u64, task: &Task) -> anyhow::Result<bool> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal(task.name), timeout_ms).await?;
    let slack_ms = (task.every.as_millis() as i64).saturating_mul(9) / 10;
    let claimed = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO scheduled_tasks AS t (name, last_started_at) VALUES ($1, now())
             ON CONFLICT (name) DO UPDATE SET last_started_at = now()
               WHERE t.last_started_at <= now() - make_interval(secs => $2::double precision / 1000)
             RETURNING name",
            [task.name.into(), slack_ms.into()],
        ))
        .await?
        .is_some();
    tx.commit_without_events().await?;
    Ok(claimed)
}

/// A loop's stop: `true` once it should end after its current step (the drain).
pub type Stop = watch::Receiver<bool>;

/// A stop that never comes.
pub fn never_stop() -> Stop {
    watch::channel(false).1
}

/// Resolves once `stop` says so; never when its sender is gone without saying it.
pub async fn stopped(stop: &mut Stop) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs `step` until `stop` (a step under way finishes: a delivery in flight is
/// recorded, not abandoned to its lease): again at once while it answers that more is
/// due (a full batch), else once `wake` is notified (a committed outbox row) or `poll`
/// has passed. A failed step is logged under `what` and waits like an idle one. The
/// delivery loops of the outboxes (mail, Chatwoot) are this.
pub async fn run_woken<F, Fut>(
    what: &'static str,
    wake: Arc<tokio::sync::Notify>,
    poll: Duration,
    mut stop: Stop,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before the step, so a row committed meanwhile is not missed.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match step().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), what, "a delivery loop failed; retrying"),
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Runs one statement in a system transaction of its own (`source` names the work in
/// logs) and commits it: an outbox's claim or record, a sweeper's step.
///
/// Errors: the database's.
pub async fn run_system(
    pool: &RuntimePool,
    source: &str,
    timeout_ms: u64,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal(source), timeout_ms).await?;
    let rows = tx.query_all(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    tx.commit_without_events().await?;
    Ok(rows)
}

/// The delay before retry number `attempts` (1-based) of an outbox row: exponential with
/// jitter (half to all of `base * 2^(attempts-1)`), at least the other side's
/// `Retry-After`, at most `max`. Shared by the outboxes (mail, Chatwoot, Stripe steps).
pub fn backoff(attempts: i32, base: Duration, max: Duration, retry_after: Option<Duration>) -> Duration {
    use rand::Rng;
    let exp = base.saturating_mul(1u32 << (attempts.clamp(1, 20) - 1));
    let jittered = exp.min(max).mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
    jittered.max(retry_after.unwrap_or_default()).min(max)
}

/// Reservations an expired-reservation sweep handles per run.
const RESERVATION_BATCH: i32 = 200;

/// The first half of an expired-reservation sweep (photos, ticket attachments, import
/// uploads): lists
/// `(user_id, id, object_key)` from `listing` (a `priv` function called with the age in
/// seconds and [`RESERVATION_BATCH`]) in a committed system transaction of its own, then
/// deletes each reservation's objects (its upload key and, when `sealed` is given, the
/// sealed key it names, which a rolled-back confirmation may have left) holding no
/// transaction. Returns the
/// reservations whose objects are gone; the caller forgets their rows. A store failure
/// stops the run before any row is forgotten, so nothing is lost.
///
/// Errors: the database's, the store's.
pub async fn delete_expired_reservation_objects(
    pool: &RuntimePool,
    storage: &Storage,
    meta: RequestMeta,
    listing: &str,
    older_than_secs: i32,
    timeout_ms: u64,
    sealed: Option<fn(Uuid, Uuid) -> String>,
) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let tx = RequestTx::begin(pool, Principal::System, meta, timeout_ms).await?;
    let rows = tx
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT user_id, id, object_key FROM {listing}($1, $2)"),
            [older_than_secs.into(), RESERVATION_BATCH.into()],
        ))
        .await?;
    tx.commit_without_events().await?;
    let mut expired = Vec::with_capacity(rows.len());
    for row in rows {
        let (user_id, id, key): (Uuid, Uuid, String) =
            (row.try_get("", "user_id")?, row.try_get("", "id")?, row.try_get("", "object_key")?);
        storage.delete(&key).await?;
        if let Some(sealed) = sealed {
            storage.delete(&sealed(user_id, id)).await?;
        }
        expired.push((user_id, id));
    }
    Ok(expired)
}
