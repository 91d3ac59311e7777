//! Mail scheduled from the database: the onboarding sequence (welcome, connect a
//! marketplace account, first scan, tips). `priv.email_sequences_run(at)` decides and
//! records each step once per user in one statement, so even two runs at once (a
//! leadership handover) neither skip nor repeat a step; the task runs on the leader
//! (`Runs::OneInstance`).
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    principal::Principal,
    tasks::{Runs, Task},
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Duration;

/// Queues the steps due at `at`; how many mails it queued. Public with its clock so
/// tests and commands can run it for any moment.
///
/// Errors: the database's.
pub async fn run_at(pool: &RuntimePool, at: DateTime<Utc>, statement_timeout_ms: u64) -> anyhow::Result<usize> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("email.sequences"), statement_timeout_ms)
        .await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.email_sequences_run($1) AS queued",
            [at.into()],
        ))
        .await?;
    tx.commit_without_events().await?;
    Ok(row.map(|r| r.try_get::<i32>("", "queued")).transpose()?.unwrap_or(0) as usize)
}

/// The background task: the sequence steps due now, every `every`.
pub fn task(pool: RuntimePool, every: Duration, statement_timeout_ms: u64) -> Task {
    Task::new("email.sequences", every, Runs::OneInstance, move || {
        let pool = pool.clone();
        async move { run_at(&pool, Utc::now(), statement_timeout_ms).await }
    })
}
