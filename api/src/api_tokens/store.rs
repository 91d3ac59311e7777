//! The statements of `api_tokens`.
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use uuid::Uuid;

/// A token's row.
#[derive(Clone, Debug)]
pub struct ApiTokenRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its scopes (`model::ApiScope` spellings).
    pub scopes: Vec<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Inserts a token's row and returns it as listed.
///
/// Errors: INTERNAL (database).
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
    name: &str,
    scopes: &[String],
    revocation_id: &str,
    expires_at: DateTime<Utc>,
) -> AppResult<ApiTokenRow> {
    let r = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO api_tokens (id, user_id, name, scopes, revocation_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, name, scopes, created_at, last_used_at, expires_at, revoked_at",
            [id.into(), user_id.into(), name.into(), scopes.to_vec().into(), revocation_id.into(), expires_at.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT ... RETURNING returned no row"))?;
    row(&r)
}

/// The user's tokens, newest first.
///
/// Errors: INTERNAL (database).
pub async fn list(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<ApiTokenRow>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at FROM api_tokens
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
            [user_id.into()],
        ))
        .await?;
    rows.iter().map(row).collect()
}

/// Marks one of the user's tokens revoked (idempotently); its revocation id, or None
/// when the user has no such token.
///
/// Errors: INTERNAL (database).
pub async fn revoke(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<Option<String>> {
    let found = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1 AND id = $2
             RETURNING revocation_id",
            [user_id.into(), id.into()],
        ))
        .await?;
    Ok(found.map(|r| r.try_get("", "revocation_id")).transpose()?)
}

/// Records a use of the token, at most once a minute.
///
/// Errors: INTERNAL (database).
pub async fn touch(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE api_tokens SET last_used_at = now()
         WHERE user_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        [user_id.into(), id.into()],
    ))
    .await?;
    Ok(())
}

fn row(r: &QueryResult) -> AppResult<ApiTokenRow> {
    let utc = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
    };
    Ok(ApiTokenRow {
        id: r.try_get("", "id")?,
        name: r.try_get("", "name")?,
        scopes: r.try_get("", "scopes")?,
        created_at: utc("created_at")?.unwrap_or_default(),
        last_used_at: utc("last_used_at")?,
        expires_at: utc("expires_at")?.unwrap_or_default(),
        revoked_at: utc("revoked_at")?,
    })
}
