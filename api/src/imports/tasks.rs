//! The imports' background loop: imports whose server went away (their lease lapsed)
//! are marked failed, so they can be started again, and their owners' subscriptions
//! hear it.
use crate::{
    db::{RequestMeta, RequestTx},
    events::{Event, EventBus},
    principal::Principal,
    tasks::{Runs, Task},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// Imports failed per run, at most.
const BATCH: i32 = 500;

/// Fails the imports whose lease lapsed, every `every`, on the leader
/// (`priv.imports_fail_stale` takes rows with SKIP LOCKED, so an overlap is harmless).
pub fn fail_stale(pool: DatabaseConnection, bus: Arc<EventBus>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("imports.fail_stale", every, Runs::OneInstance, move || {
        let (pool, bus) = (pool.clone(), bus.clone());
        async move {
            let tx =
                RequestTx::begin(&pool, Principal::System, RequestMeta::internal("imports.fail_stale"), timeout_ms)
                    .await?;
            let rows = tx
                .query_all(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT user_id, id FROM priv.imports_fail_stale($1)",
                    [BATCH.into()],
                ))
                .await?;
            for r in &rows {
                let (user_id, import_id): (Uuid, Uuid) = (r.try_get("", "user_id")?, r.try_get("", "id")?);
                tracing::warn!(import_id = %import_id, "an import's server went away: marked failed");
                tx.emit(Event::ImportChanged { user_id, import_id });
            }
            tx.commit(&bus).await?;
            Ok(rows.len())
        }
    })
}
