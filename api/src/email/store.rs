//! Addresses mail goes to.
use crate::error::{AppError, AppResult};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// The e-mail address of `user_id`, as the caller's role may read it.
///
/// Errors: NOT_FOUND when the account is not visible; INTERNAL (database).
pub async fn address_of(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<String> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT email::text AS email FROM users WHERE id = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::NotFound("account not found".into()))?;
    Ok(row.try_get("", "email")?)
}
