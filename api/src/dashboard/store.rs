//! One statement gathers every number of the dashboard; row-level security scopes
//! each sub-select to the caller.
use crate::error::AppResult;
use entity::activity_log;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::collections::HashMap;

/// Recent entries shown.
pub const RECENT_ACTIVITY: i64 = 10;

/// The dashboard's numbers.
#[derive(Debug, Default)]
pub struct Summary {
    /// Live drafts by status.
    pub drafts_by_status: HashMap<String, i64>,
    /// Jobs by status.
    pub jobs_by_status: HashMap<String, i64>,
    /// Confirmed photos.
    pub photo_count: i64,
    /// Bytes of confirmed photos.
    pub storage_bytes: i64,
    /// Connected marketplace accounts.
    pub connected_accounts: i64,
    /// The newest activity entries.
    pub recent_activity: Vec<activity_log::Model>,
}

const SQL: &str = "
SELECT
  (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT status, count(*) AS n FROM drafts WHERE user_id = $1 AND deleted_at IS NULL GROUP BY status) s)
    AS drafts,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT status, count(*) AS n FROM jobs WHERE user_id = $1 GROUP BY status) j)
    AS jobs,
  (SELECT count(*) FROM photos WHERE user_id = $1 AND status = 'ready') AS photo_count,
  -- The storage gauge's definition (quotas::store::gauge): confirmed and reserved bytes
  -- of photos and of the user's own ticket attachments.
  ((SELECT coalesce(sum(byte_size), 0) FROM photos WHERE user_id = $1)
   + (SELECT coalesce(sum(byte_size), 0) FROM ticket_attachments WHERE user_id = $1 AND NOT by_staff))::bigint
    AS storage_bytes,
  (SELECT count(*) FROM marketplace_accounts WHERE user_id = $1 AND status = 'connected') AS connected_accounts,
  (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.created_at DESC, a.id DESC), '[]'::jsonb)
     FROM (SELECT * FROM activity_log WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) a)
    AS recent";

/// Gathers `user_id`'s dashboard.
///
/// Errors: INTERNAL (database).
pub async fn summary(db: &impl ConnectionTrait, user_id: uuid::Uuid) -> AppResult<Summary> {
    let row = db
        .query_one(Statement::from_sql_and_values(DbBackend::Postgres, SQL, [user_id.into(), RECENT_ACTIVITY.into()]))
        .await?
        .ok_or_else(|| anyhow::anyhow!("dashboard query returned no row"))?;
    let drafts: serde_json::Value = row.try_get("", "drafts")?;
    let jobs: serde_json::Value = row.try_get("", "jobs")?;
    let recent: serde_json::Value = row.try_get("", "recent")?;
    Ok(Summary {
        drafts_by_status: serde_json::from_value(drafts).map_err(anyhow::Error::from)?,
        jobs_by_status: serde_json::from_value(jobs).map_err(anyhow::Error::from)?,
        photo_count: row.try_get("", "photo_count")?,
        storage_bytes: row.try_get("", "storage_bytes")?,
        connected_accounts: row.try_get("", "connected_accounts")?,
        recent_activity: recent.as_array().into_iter().flatten().map(activity_from_json).collect::<Result<_, _>>()?,
    })
}

fn activity_from_json(v: &serde_json::Value) -> AppResult<activity_log::Model> {
    #[derive(serde::Deserialize)]
    struct Row {
        id: uuid::Uuid,
        user_id: uuid::Uuid,
        actor_id: Option<uuid::Uuid>,
        action: String,
        subject_type: Option<String>,
        subject_id: Option<uuid::Uuid>,
        data: serde_json::Value,
        ip: Option<String>,
        request_id: Option<String>,
        created_at: chrono::DateTime<chrono::FixedOffset>,
    }
    let r: Row = serde_json::from_value(v.clone()).map_err(anyhow::Error::from)?;
    Ok(activity_log::Model {
        id: r.id,
        user_id: r.user_id,
        actor_id: r.actor_id,
        action: r.action,
        subject_type: r.subject_type,
        subject_id: r.subject_id,
        data: r.data,
        ip: r.ip,
        request_id: r.request_id,
        created_at: r.created_at,
    })
}
