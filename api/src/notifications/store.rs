//! The statements of `notifications`.
use crate::{error::AppResult, model::EmailTemplate};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use uuid::Uuid;

/// A notification as stored.
#[derive(Clone, Debug)]
pub struct NotificationRow {
    /// Its id.
    pub id: Uuid,
    /// What it is about.
    pub kind: EmailTemplate,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, kind, title, body, read_at, created_at";

fn row(r: &QueryResult) -> AppResult<NotificationRow> {
    let utc = |t: DateTime<chrono::FixedOffset>| t.with_timezone(&Utc);
    Ok(NotificationRow {
        id: r.try_get("", "id")?,
        kind: r.try_get("", "kind")?,
        title: r.try_get("", "title")?,
        body: r.try_get("", "body")?,
        read_at: r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", "read_at")?.map(utc),
        created_at: utc(r.try_get("", "created_at")?),
    })
}

/// Inserts a notification.
///
/// Errors: INTERNAL (database).
pub async fn insert(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
    kind: EmailTemplate,
    title: &str,
    body: &str,
    data: &serde_json::Value,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO notifications (id, user_id, kind, title, body, data) VALUES ($1, $2, $3, $4, $5, $6)",
        [id.into(), user_id.into(), kind.into(), title.into(), body.into(), data.clone().into()],
    ))
    .await?;
    Ok(())
}

/// The user's newest notifications (at most `limit`), unread only if asked.
///
/// Errors: INTERNAL (database).
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    unread_only: bool,
    limit: i64,
) -> AppResult<Vec<NotificationRow>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ),
            [user_id.into(), unread_only.into(), limit.into()],
        ))
        .await?;
    rows.iter().map(row).collect()
}

/// One notification the caller can see.
///
/// Errors: INTERNAL (database).
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<NotificationRow>> {
    let r = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {COLUMNS} FROM notifications WHERE id = $1"),
            [id.into()],
        ))
        .await?;
    r.as_ref().map(row).transpose()
}

/// How many of `ids` are the user's.
///
/// Errors: INTERNAL (database).
pub async fn count_owned(db: &impl ConnectionTrait, user_id: Uuid, ids: &[Uuid]) -> AppResult<i64> {
    let r = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM notifications WHERE user_id = $1 AND id = ANY($2)",
            [user_id.into(), ids.to_vec().into()],
        ))
        .await?;
    Ok(r.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

/// Marks the user's unread notifications read (only `ids` when given); returns how many.
///
/// Errors: INTERNAL (database).
pub async fn mark_read(db: &impl ConnectionTrait, user_id: Uuid, ids: Option<Vec<Uuid>>) -> AppResult<u64> {
    let done = db
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE notifications SET read_at = now()
             WHERE user_id = $1 AND read_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2))",
            [user_id.into(), ids.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}
