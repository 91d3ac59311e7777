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
};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};

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
