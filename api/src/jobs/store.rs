//! The statements of the queue that sea-orm's builder does not say as clearly: the
//! claim and the lease sweep go through narrow `SECURITY DEFINER` functions (the only
//! paths that cross tenants), and a job's result is applied to the owner's rows.
use crate::{drafts::domain::DraftStatus, error::AppResult, model::JobKind};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Claims the oldest due job of `kinds` for `worker_id` for `lease_secs`
/// (`priv.claim_job`, `FOR UPDATE SKIP LOCKED`); returns (owner, job).
///
/// Errors: INTERNAL (database).
pub async fn claim(
    db: &impl ConnectionTrait,
    worker_id: Uuid,
    kinds: &[JobKind],
    lease_secs: i32,
) -> AppResult<Option<(Uuid, Uuid)>> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, id FROM priv.claim_job($1, $2, $3)",
            [worker_id.into(), kinds.into(), lease_secs.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some((row.try_get("", "user_id")?, row.try_get("", "id")?)))
}

/// Returns jobs whose lease expired to the queue (or to FAILED when out of attempts,
/// `priv.requeue_expired_jobs`); returns them as (owner, job).
///
/// Errors: INTERNAL (database).
pub async fn requeue_expired(db: &impl ConnectionTrait) -> AppResult<Vec<(Uuid, Uuid)>> {
    let rows = db
        .query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id, id FROM priv.requeue_expired_jobs()"))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "user_id")?, r.try_get("", "id")?))).collect()
}

/// Records what a SCAN measured of one of the owner's photos.
///
/// Errors: INTERNAL (database).
pub async fn record_scan(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    photo_id: Uuid,
    width: i32,
    height: i32,
    sha256: Vec<u8>,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE photos SET width = $3, height = $4, sha256 = $5, updated_at = now() WHERE user_id = $1 AND id = $2",
        [user_id.into(), photo_id.into(), width.into(), height.into(), sha256.into()],
    ))
    .await?;
    Ok(())
}

/// What a PREPARE proposes for a draft.
#[derive(Debug, Default)]
pub struct Prepared {
    /// A description.
    pub description: Option<String>,
    /// A brand.
    pub brand: Option<String>,
    /// A category.
    pub category: Option<String>,
    /// A size label.
    pub size: Option<String>,
}

/// Fills the draft's empty fields from a PREPARE, within each field's bounds.
///
/// Errors: INTERNAL (database).
pub async fn fill_draft(db: &impl ConnectionTrait, user_id: Uuid, draft_id: Uuid, p: &Prepared) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE drafts SET
           description = CASE WHEN description = '' THEN coalesce(left($3, 5000), '') ELSE description END,
           brand = coalesce(brand, left($4, 100)),
           category = coalesce(category, left($5, 100)),
           size = coalesce(size, left($6, 50)),
           updated_at = now()
         WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL",
        [
            user_id.into(),
            draft_id.into(),
            p.description.clone().into(),
            p.brand.clone().into(),
            p.category.clone().into(),
            p.size.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Marks the draft published after a PUBLISH.
///
/// Errors: INTERNAL (database).
pub async fn mark_published(db: &impl ConnectionTrait, user_id: Uuid, draft_id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE drafts SET status = $3, updated_at = now() WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL",
        [user_id.into(), draft_id.into(), DraftStatus::Published.into()],
    ))
    .await?;
    Ok(())
}
