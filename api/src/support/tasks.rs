//! Support's background loop: attachment reservations whose upload URL expired (and a
//! grace after it) give their bytes back to the owner's storage gauge. Their objects go
//! first (the upload key and the sealed key a rolled-back confirmation may have left),
//! then their rows through `priv.forget_ticket_attachment`; a store failure leaves the
//! row for the next run.
use super::attachments::{sealed_key, UPLOAD_URL_TTL};
use crate::{
    db::{RequestMeta, RequestTx},
    principal::Principal,
    storage::Storage,
    tasks::{Runs, Task},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How long after its URL expires a reservation is kept (a confirmation in flight).
pub const RESERVATION_GRACE: Duration = Duration::from_secs(15 * 60);
/// Reservations handled per run.
const BATCH: i32 = 200;

/// Sweeps expired attachment reservations every `every`, on one instance per interval.
pub fn sweep_expired_attachments(
    pool: DatabaseConnection,
    storage: Arc<Storage>,
    every: Duration,
    timeout_ms: u64,
) -> Task {
    Task::new("support.sweep_expired_attachments", every, Runs::OneInstance, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move { sweep(&pool, &storage, (UPLOAD_URL_TTL + RESERVATION_GRACE).as_secs() as i32, timeout_ms).await }
    })
}

/// One run: forgets reservations older than `older_than_secs`; how many.
///
/// Errors: the database's, the store's.
pub async fn sweep(
    pool: &DatabaseConnection,
    storage: &Storage,
    older_than_secs: i32,
    timeout_ms: u64,
) -> anyhow::Result<usize> {
    let meta = || RequestMeta::internal("attachment-sweeper");
    let tx = RequestTx::begin(pool, Principal::System, meta(), timeout_ms).await?;
    let rows = tx
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, id, object_key FROM priv.expired_ticket_attachments($1, $2)",
            [older_than_secs.into(), BATCH.into()],
        ))
        .await?;
    tx.commit_without_events().await?;
    let mut expired = Vec::with_capacity(rows.len());
    for row in rows {
        let (user_id, id, key): (Uuid, Uuid, String) =
            (row.try_get("", "user_id")?, row.try_get("", "id")?, row.try_get("", "object_key")?);
        // Objects first, holding no transaction: a store that fails leaves the row.
        storage.delete(&key).await?;
        storage.delete(&sealed_key(user_id, id)).await?;
        expired.push((user_id, id));
    }
    if expired.is_empty() {
        return Ok(0);
    }
    let tx = RequestTx::begin(pool, Principal::System, meta(), timeout_ms).await?;
    let mut n = 0;
    for (user_id, id) in expired {
        let gone = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.forget_ticket_attachment($1, $2, $3) AS gone",
                [user_id.into(), id.into(), older_than_secs.into()],
            ))
            .await?
            .map(|r| r.try_get::<bool>("", "gone"))
            .transpose()?
            .unwrap_or(false);
        n += usize::from(gone);
    }
    tx.commit_without_events().await?;
    Ok(n)
}
