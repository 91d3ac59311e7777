//! The statements of `photos` that sea-orm's builder does not say as clearly.
use super::domain::PhotoStatus;
use crate::error::AppResult;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// The next free position among the draft's confirmed photos.
///
/// Errors: INTERNAL (database).
pub async fn next_position(db: &impl ConnectionTrait, user_id: Uuid, draft_id: Uuid) -> AppResult<i32> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT coalesce(max(position) + 1, 0) AS next FROM photos WHERE user_id = $1 AND draft_id = $2 AND status = $3",
            [user_id.into(), draft_id.into(), PhotoStatus::Ready.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<i32>("", "next")).transpose()?.unwrap_or(0))
}

/// Whether the user has this draft, not deleted. Photos are attached only to such
/// drafts (drafts build on photos, so the check is asked here rather than of them).
///
/// Errors: INTERNAL (database).
pub async fn live_draft_exists(db: &impl ConnectionTrait, user_id: Uuid, draft_id: Uuid) -> AppResult<bool> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM drafts WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL",
            [user_id.into(), draft_id.into()],
        ))
        .await?;
    Ok(row.is_some())
}
