//! The reservations' sweeper: a pending photo whose upload URL expired (and a grace
//! after it) gives its bytes back to the storage gauge. Its objects go first (the upload
//! key, and the sealed key a rolled-back confirmation may have left), then its row, as
//! its owner; a failure leaves the row for the next run, so nothing is forgotten.
use super::service::{confirmed_key, UPLOAD_URL_TTL};
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    model::DbRole,
    principal::Principal,
    storage::Storage,
    tasks::{delete_expired_reservation_objects, Runs, Task},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::{sync::Arc, time::Duration};

/// How long after its URL expires a reservation is kept (a confirmation in flight).
pub const RESERVATION_GRACE: Duration = Duration::from_secs(15 * 60);

/// Sweeps expired reservations every `every`, on one instance per interval.
pub fn sweep_expired_uploads(pool: RuntimePool, storage: Arc<Storage>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("photos.sweep_expired_uploads", every, Runs::OneInstance, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move { sweep(&pool, &storage, timeout_ms).await }
    })
}

async fn sweep(pool: &RuntimePool, storage: &Storage, timeout_ms: u64) -> anyhow::Result<usize> {
    let meta = || RequestMeta::internal("upload-sweeper");
    let older_than = (UPLOAD_URL_TTL + RESERVATION_GRACE).as_secs() as i32;
    let expired = delete_expired_reservation_objects(
        pool,
        storage,
        meta(),
        "priv.expired_uploads",
        older_than,
        timeout_ms,
        Some(confirmed_key),
    )
    .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let tx = RequestTx::begin(pool, Principal::System, meta(), timeout_ms).await?;
    let mut n = 0;
    for (user_id, id) in expired {
        tx.act_for_system(DbRole::User, user_id).await?;
        n += tx
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM photos WHERE user_id = $1 AND id = $2 AND status = 'pending'",
                [user_id.into(), id.into()],
            ))
            .await?
            .rows_affected() as usize;
    }
    tx.commit_without_events().await?;
    Ok(n)
}
