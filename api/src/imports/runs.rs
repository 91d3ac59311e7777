//! The statements of `imports`, the web app's import runs (one row per started import:
//! its state, progress, counts and report). Every statement runs in a transaction acting
//! as the owner: row-level security decides, the `user_id` filters only help the index.
use crate::error::AppResult;
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value as DbValue};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Most imports one list returns.
pub const LIST_LIMIT: i64 = 20;

/// An import as stored.
#[derive(Clone, Debug)]
pub struct ImportRow {
    /// Its id.
    pub id: Uuid,
    /// The upload it reads.
    pub upload_id: Uuid,
    /// The uploaded file's name.
    pub file_name: String,
    /// The uploaded zip's size.
    pub byte_size: i64,
    /// queued, running, succeeded, failed.
    pub status: String,
    /// Records handled (imported, or found imported before).
    pub records_done: i32,
    /// Records to handle.
    pub records_total: i32,
    /// Per file: the report's `files` (records, valid, rejected, skipped,
    /// alreadyImported, toImport, imported).
    pub counts: Value,
    /// Records and zip entries rejected.
    pub rejected: i32,
    /// The report (JSON) once the import ended.
    pub report: Option<Value>,
    /// The report for people once the import ended.
    pub report_text: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When a server began to work on it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, upload_id, file_name, byte_size, status, records_done, records_total, counts, rejected, \
                       report, report_text, error, created_at, updated_at, started_at, finished_at";

fn import_row(r: &QueryResult) -> AppResult<ImportRow> {
    let utc = |t: DateTime<FixedOffset>| t.with_timezone(&Utc);
    let opt = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<FixedOffset>>>("", c)?.map(utc))
    };
    Ok(ImportRow {
        id: r.try_get("", "id")?,
        upload_id: r.try_get("", "upload_id")?,
        file_name: r.try_get("", "file_name")?,
        byte_size: r.try_get("", "byte_size")?,
        status: r.try_get("", "status")?,
        records_done: r.try_get("", "records_done")?,
        records_total: r.try_get("", "records_total")?,
        counts: r.try_get("", "counts")?,
        rejected: r.try_get("", "rejected")?,
        report: r.try_get("", "report")?,
        report_text: r.try_get("", "report_text")?,
        error: r.try_get("", "error")?,
        created_at: utc(r.try_get("", "created_at")?),
        updated_at: utc(r.try_get("", "updated_at")?),
        started_at: opt("started_at")?,
        finished_at: opt("finished_at")?,
    })
}

fn stmt(sql: String, values: Vec<DbValue>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Marks failed the user's queued or running imports whose server went away (lease
/// lapsed), so they no longer hold the one-at-a-time lock. How many.
///
/// Errors: INTERNAL (database).
pub async fn fail_stale(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<u64> {
    Ok(db
        .execute(stmt(
            "UPDATE imports SET status = 'failed', leased_until = NULL, updated_at = now(), finished_at = now(),
                    error = 'the server stopped during the import; start it again to import what is missing'
              WHERE user_id = $1 AND status IN ('queued', 'running') AND leased_until < now()"
                .into(),
            vec![user_id.into()],
        ))
        .await?
        .rows_affected())
}

/// Queues an import of the upload `upload_id`, leased for `lease` (the server that
/// queued it starts it at once).
///
/// Errors: CONFLICT (another import of the account is queued or running:
/// `imports_one_active`); INTERNAL.
pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    upload_id: Uuid,
    file_name: &str,
    byte_size: i64,
    lease: Duration,
) -> AppResult<ImportRow> {
    let row = db
        .query_one(stmt(
            format!(
                "INSERT INTO imports (user_id, id, upload_id, file_name, byte_size, leased_until)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING {COLUMNS}"
            ),
            vec![
                user_id.into(),
                Uuid::now_v7().into(),
                upload_id.into(),
                file_name.into(),
                byte_size.into(),
                lease.as_secs_f64().into(),
            ],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT … RETURNING returned nothing"))?;
    import_row(&row)
}

/// Records an upload URL handed out to `user_id` (`import_uploads`), unless the account
/// already holds `max` uploads: then `Ok(false)`, nothing written. Concurrent calls of one
/// account are serialised (an advisory lock per account, held to the transaction's end).
///
/// Errors: INTERNAL (database).
pub async fn reserve_upload(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    upload_id: Uuid,
    byte_size: i64,
    max: i64,
) -> AppResult<bool> {
    db.execute(stmt(
        "SELECT pg_advisory_xact_lock(hashtextextended('import_uploads:' || $1::text, 0))".into(),
        vec![user_id.into()],
    ))
    .await?;
    Ok(db
        .execute(stmt(
            "INSERT INTO import_uploads (user_id, id, byte_size)
             SELECT $1, $2, $3 WHERE (SELECT count(*) FROM import_uploads WHERE user_id = $1) < $4"
                .into(),
            vec![user_id.into(), upload_id.into(), byte_size.into(), max.into()],
        ))
        .await?
        .rows_affected()
        == 1)
}

/// Whether `user_id` holds the upload `upload_id` (handed out and not yet removed).
///
/// Errors: INTERNAL (database).
pub async fn upload_exists(db: &impl ConnectionTrait, user_id: Uuid, upload_id: Uuid) -> AppResult<bool> {
    Ok(db
        .query_one(stmt(
            "SELECT 1 AS one FROM import_uploads WHERE user_id = $1 AND id = $2".into(),
            vec![user_id.into(), upload_id.into()],
        ))
        .await?
        .is_some())
}

/// Forgets the upload `upload_id` (its object is gone).
///
/// Errors: INTERNAL (database).
pub async fn forget_upload(db: &impl ConnectionTrait, user_id: Uuid, upload_id: Uuid) -> AppResult<()> {
    db.execute(stmt(
        "DELETE FROM import_uploads WHERE user_id = $1 AND id = $2".into(),
        vec![user_id.into(), upload_id.into()],
    ))
    .await?;
    Ok(())
}

/// One of the user's imports.
///
/// Errors: INTERNAL (database).
pub async fn get(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<Option<ImportRow>> {
    let row = db
        .query_one(stmt(
            format!("SELECT {COLUMNS} FROM imports WHERE user_id = $1 AND id = $2"),
            vec![user_id.into(), id.into()],
        ))
        .await?;
    row.as_ref().map(import_row).transpose()
}

/// The user's newest imports, at most [`LIST_LIMIT`].
///
/// Errors: INTERNAL (database).
pub async fn list(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<ImportRow>> {
    let rows = db
        .query_all(stmt(
            format!("SELECT {COLUMNS} FROM imports WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"),
            vec![user_id.into(), LIST_LIMIT.into()],
        ))
        .await?;
    rows.iter().map(import_row).collect()
}

/// Takes a queued import to running, leased for `lease`; None when it is not queued
/// (already taken, or gone).
///
/// Errors: INTERNAL (database).
pub async fn claim(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    lease: Duration,
) -> AppResult<Option<ImportRow>> {
    let row = db
        .query_one(stmt(
            format!(
                "UPDATE imports SET status = 'running', started_at = now(), updated_at = now(),
                        leased_until = now() + make_interval(secs => $3)
                  WHERE user_id = $1 AND id = $2 AND status = 'queued' RETURNING {COLUMNS}"
            ),
            vec![user_id.into(), id.into(), lease.as_secs_f64().into()],
        ))
        .await?;
    row.as_ref().map(import_row).transpose()
}

/// Records progress and extends the lease of a running import; false when it no longer
/// runs (the sweeper failed it: its lease had lapsed).
///
/// Errors: INTERNAL (database).
pub async fn progress(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    done: i32,
    total: i32,
    lease: Duration,
) -> AppResult<bool> {
    Ok(db
        .execute(stmt(
            "UPDATE imports SET records_done = $3, records_total = $4, updated_at = now(),
                    leased_until = now() + make_interval(secs => $5)
              WHERE user_id = $1 AND id = $2 AND status = 'running'"
                .into(),
            vec![user_id.into(), id.into(), done.into(), total.into(), lease.as_secs_f64().into()],
        ))
        .await?
        .rows_affected()
        == 1)
}

/// How an import ended.
#[derive(Debug)]
pub struct Outcome {
    /// succeeded or failed.
    pub status: &'static str,
    /// Per file (the report's `files`).
    pub counts: Value,
    /// Records and entries rejected.
    pub rejected: i32,
    /// The report, when there is one.
    pub report: Option<Value>,
    /// The report for people.
    pub report_text: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The last progress the importer reported: records handled, records to handle (a
    /// short import ends before any progress write).
    pub records: (i32, i32),
}

/// Ends a queued or running import, with its last progress.
///
/// Errors: INTERNAL (database).
pub async fn finish(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid, o: Outcome) -> AppResult<bool> {
    Ok(db
        .execute(stmt(
            "UPDATE imports SET status = $3, counts = $4, rejected = $5, report = $6, report_text = $7,
                    error = left($8, 2000), leased_until = NULL, updated_at = now(), finished_at = now(),
                    records_total = greatest(records_total, $10),
                    records_done = CASE WHEN $3 = 'succeeded' THEN greatest(records_total, $10)
                                        ELSE greatest(records_done, $9) END
              WHERE user_id = $1 AND id = $2 AND status IN ('queued', 'running')"
                .into(),
            vec![
                user_id.into(),
                id.into(),
                o.status.into(),
                o.counts.into(),
                o.rejected.into(),
                o.report.into(),
                o.report_text.into(),
                o.error.into(),
                o.records.0.into(),
                o.records.1.into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1)
}
