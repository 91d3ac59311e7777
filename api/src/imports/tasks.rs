//! The imports' background loops: imports whose server went away (their lease lapsed)
//! are marked failed, so they can be started again, and their owners' subscriptions
//! hear it; uploads nothing happened to for [`UPLOAD_KEPT`] (never started, or their
//! last import failed that long ago) are removed, object first.
use super::runner::UPLOAD_KEPT;
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppError,
    events::{Event, EventBus},
    model::DbRole,
    principal::Principal,
    storage::Storage,
    tasks::{delete_expired_reservation_objects, Runs, Task},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// Imports failed per run, at most.
const BATCH: i32 = 500;

/// Fails the imports whose lease lapsed, every `every`, on the leader
/// (`priv.imports_fail_stale` takes rows with SKIP LOCKED, so an overlap is harmless).
pub fn fail_stale(pool: RuntimePool, bus: Arc<EventBus>, every: Duration, timeout_ms: u64) -> Task {
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

/// Removes the uploads nothing happened to for [`UPLOAD_KEPT`], every `every`, on one
/// instance per interval: their objects (`i/<user>/<upload>`), then their rows as their
/// owners. A store failure leaves the rows for the next run.
pub fn sweep_uploads(pool: RuntimePool, storage: Arc<Storage>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("imports.sweep_uploads", every, Runs::OneInstance, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move {
            let meta = || RequestMeta::internal("imports.sweep_uploads");
            let older_than = UPLOAD_KEPT.as_secs() as i32;
            let expired = delete_expired_reservation_objects(
                &pool,
                &storage,
                meta(),
                "priv.expired_import_uploads",
                older_than,
                timeout_ms,
                None,
            )
            .await?;
            if expired.is_empty() {
                return Ok(0);
            }
            let tx = RequestTx::begin(&pool, Principal::System, meta(), timeout_ms).await?;
            for &(user_id, id) in &expired {
                tx.act_for_system(DbRole::User, user_id).await?;
                super::runs::forget_upload(&tx, user_id, id).await.map_err(AppError::into_anyhow)?;
            }
            tx.commit_without_events().await?;
            Ok(expired.len())
        }
    })
}
