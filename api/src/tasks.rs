//! Background loops. Each domain declares its own (`<domain>::tasks`) as a [`Task`]:
//! a name, an interval, how many instances run it, and the work; startup hands them all
//! to one [`Supervisor`], which runs each on its interval, records every run in the
//! metrics (`plinth_task_runs_total`, `plinth_task_last_success_timestamp_seconds`) and
//! logs failures. A task that must run on one instance per interval claims the interval
//! in `scheduled_tasks` first, so any number of instances run it once.
use crate::{
    db::{RequestMeta, RequestTx},
    metrics::Metrics,
    principal::Principal,
    storage::Storage,
};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How many instances run a task each interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// Every instance, on its own schedule: the work is safe in parallel (rows taken
    /// with `FOR UPDATE SKIP LOCKED`).
    EveryInstance,
    /// One instance per interval, whichever claims it first.
    OneInstance,
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
    /// Starts one loop per task.
    pub fn start(pool: DatabaseConnection, metrics: Metrics, statement_timeout_ms: u64, tasks: Vec<Task>) -> Self {
        let handles = tasks
            .into_iter()
            .map(|task| tokio::spawn(run_loop(pool.clone(), metrics.clone(), statement_timeout_ms, task)))
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

async fn run_loop(pool: DatabaseConnection, metrics: Metrics, timeout_ms: u64, task: Task) {
    let mut tick = tokio::time::interval(task.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if task.runs == Runs::OneInstance {
            match claim_interval(&pool, timeout_ms, &task).await {
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
async fn claim_interval(pool: &DatabaseConnection, timeout_ms: u64, task: &Task) -> anyhow::Result<bool> {
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

/// Runs `step` until the process ends: again at once while it answers that more is due
/// (a full batch), else once `wake` is notified (a committed outbox row) or `poll` has
/// passed. A failed step is logged under `what` and waits like an idle one. The delivery
/// loops of the outboxes (mail, Chatwoot) are this.
pub async fn run_woken<F, Fut>(what: &'static str, wake: Arc<tokio::sync::Notify>, poll: Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
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
        }
    }
}

/// Runs one statement in a system transaction of its own (`source` names the work in
/// logs) and commits it: an outbox's claim or record, a sweeper's step.
///
/// Errors: the database's.
pub async fn run_system(
    pool: &DatabaseConnection,
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

/// The first half of an expired-reservation sweep (photos, ticket attachments): lists
/// `(user_id, id, object_key)` from `listing` (a `priv` function called with the age in
/// seconds and [`RESERVATION_BATCH`]) in a committed system transaction of its own, then
/// deletes each reservation's objects (its upload key and the sealed key `sealed` names,
/// which a rolled-back confirmation may have left) holding no transaction. Returns the
/// reservations whose objects are gone; the caller forgets their rows. A store failure
/// stops the run before any row is forgotten, so nothing is lost.
///
/// Errors: the database's, the store's.
pub async fn delete_expired_reservation_objects(
    pool: &DatabaseConnection,
    storage: &Storage,
    meta: RequestMeta,
    listing: &str,
    older_than_secs: i32,
    timeout_ms: u64,
    sealed: impl Fn(Uuid, Uuid) -> String,
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
        storage.delete(&sealed(user_id, id)).await?;
        expired.push((user_id, id));
    }
    Ok(expired)
}
