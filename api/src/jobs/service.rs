//! Job operations. Users create, cancel and read their jobs under row-level security.
//! Workers claim through `priv.claim_job` (the only cross-tenant path), then see and
//! update only the jobs they hold; a job's effects on the owner's data are applied
//! here, acting as the owner, when its worker completes it.
use super::store;
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    drafts::service as drafts,
    error::{AppError, AppResult},
    events::Event,
    model::{JobKind, JobStatus, Role},
    pagination::{self, Cursor, Page, PageRequest},
    photos::{domain::PhotoStatus, service::PhotoService},
    quotas::service as quotas,
};
use chrono::Utc;
use entity::{
    job_logs,
    jobs::{self, Column},
    photos,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Longest log line or error kept.
const TEXT_MAX: usize = 2000;

/// Queue settings.
#[derive(Clone, Copy, Debug)]
pub struct QueueSettings {
    /// How long a claim holds a job without a progress report.
    pub lease: Duration,
}

/// Filters of the jobs list.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<JobKind>,
}

/// Queues a job for the caller. PREPARE and PUBLISH need a draft; SCAN without a draft
/// scans every confirmed photo of the caller. SCAN and PREPARE consume their counter.
///
/// Errors: SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (`input.draftId`,
/// `input.maxAttempts`); NOT_FOUND (the draft); QUOTA_EXCEEDED; INTERNAL.
pub async fn create(
    tx: &RequestTx,
    kind: JobKind,
    draft_id: Option<Uuid>,
    max_attempts: Option<i32>,
) -> AppResult<jobs::Model> {
    let user_id = tx.active_user_id()?;
    if kind != JobKind::Scan && draft_id.is_none() {
        let name = kind.as_str().to_uppercase();
        return Err(AppError::bad_input("input.draftId", format!("is required for a {name} job")));
    }
    if let Some(d) = draft_id {
        drafts::get(tx, d).await?.ok_or_else(|| AppError::NotFound("draft not found".into()))?;
    }
    let max_attempts = max_attempts.unwrap_or(3);
    if !(1..=20).contains(&max_attempts) {
        return Err(AppError::bad_input("input.maxAttempts", "must be between 1 and 20"));
    }
    // Charged inside this transaction: a request that fails later is not charged.
    if let Some(metric) = kind.metric() {
        quotas::consume(tx, metric, 1).await?;
    }
    let now = Utc::now();
    let job = jobs::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        kind: Set(kind.as_str().to_owned()),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        draft_id: Set(draft_id),
        progress: Set(0.0),
        message: Set(None),
        input: Set(json!({ "draftId": draft_id })),
        result: Set(None),
        error: Set(None),
        attempts: Set(0),
        max_attempts: Set(max_attempts),
        run_after: Set(now.into()),
        lease_expires_at: Set(None),
        worker_id: Set(None),
        cancel_requested: Set(false),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
        finished_at: Set(None),
    }
    .insert(tx)
    .await?;
    log_activity(tx, user_id, "job.create", job.id, json!({ "kind": kind })).await?;
    tx.emit(Event::JobChanged { user_id, job_id: job.id });
    // Due at once: workers listening for its kind claim it now rather than at their
    // next poll. (A retry is announced when its backoff ends: `fail`.)
    tx.emit(Event::JobQueued { job_id: job.id, kind: job.kind.clone() });
    Ok(job)
}

/// Inserts jobs and their log lines brought by `plinth import` as they were (ids chosen
/// by the importer, times kept). History is never run again: the importer gives a job
/// that was still queued or running a final status before it gets here, and this
/// refuses any other. No counter is consumed: the work was done (and paid) elsewhere.
///
/// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (a row of another
/// account, a job not finished); INTERNAL.
pub async fn insert_imported(tx: &RequestTx, rows: Vec<jobs::Model>, logs: Vec<job_logs::Model>) -> AppResult<()> {
    let user_id = tx.active_user_id()?;
    if rows.iter().any(|r| r.user_id != user_id) || logs.iter().any(|l| l.user_id != user_id) {
        return Err(AppError::bad_input("jobs", "every imported job must belong to the caller"));
    }
    let finished = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled];
    if rows.iter().any(|r| !finished.iter().any(|s| s.as_str() == r.status)) {
        return Err(AppError::bad_input("jobs", "only finished jobs are imported"));
    }
    if !rows.is_empty() {
        jobs::Entity::insert_many(rows.into_iter().map(jobs::ActiveModel::from)).exec_without_returning(tx).await?;
    }
    if !logs.is_empty() {
        job_logs::Entity::insert_many(logs.into_iter().map(job_logs::ActiveModel::from))
            .exec_without_returning(tx)
            .await?;
    }
    Ok(())
}

/// Cancels a job: a queued one at once; a running one when its worker next reports.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; CONFLICT (already ended); INTERNAL.
pub async fn cancel(tx: &RequestTx, id: Uuid) -> AppResult<jobs::Model> {
    let user_id = tx.user_id()?;
    let job = get(tx, id).await?.ok_or_else(not_found)?;
    let mut model: jobs::ActiveModel = job.clone().into();
    match status_of(&job)? {
        JobStatus::Queued => {
            model.status = Set(JobStatus::Canceled.as_str().to_owned());
            model.finished_at = Set(Some(Utc::now().into()));
        }
        JobStatus::Running => model.cancel_requested = Set(true),
        _ => return Err(AppError::Conflict(format!("the job is already {}", job.status))),
    }
    model.updated_at = Set(Utc::now().into());
    let job = model.update(tx).await?;
    log_activity(tx, user_id, "job.cancel", id, json!({})).await?;
    tx.emit(Event::JobChanged { user_id, job_id: id });
    Ok(job)
}

/// One of the caller's jobs (or, for a worker, one it holds).
///
/// Errors: INTERNAL.
pub async fn get(tx: &RequestTx, id: Uuid) -> AppResult<Option<jobs::Model>> {
    let mut q = jobs::Entity::find().filter(Column::Id.eq(id));
    if let Some(user_id) = tx.principal().user_id() {
        q = q.filter(Column::UserId.eq(user_id));
    }
    Ok(q.one(tx).await?)
}

/// A page of the caller's jobs, newest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn list(tx: &RequestTx, page: PageRequest, filter: &JobFilter) -> AppResult<Page<jobs::Model>> {
    let user_id = tx.user_id()?;
    let mut q = jobs::Entity::find().filter(Column::UserId.eq(user_id));
    if let Some(s) = filter.status {
        q = q.filter(Column::Status.eq(s));
    }
    if let Some(k) = filter.kind {
        q = q.filter(Column::Kind.eq(k));
    }
    if let Some(c) = page.after {
        q = q.filter(pagination::after(Column::CreatedAt, Column::Id, c));
    }
    let rows = q.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(page.limit()).all(tx).await?;
    Ok(Page::from_rows(rows, &page))
}

/// A stored job's status.
///
/// Errors: INTERNAL when the row holds a status outside the vocabulary.
pub fn status_of(job: &jobs::Model) -> AppResult<JobStatus> {
    JobStatus::parse(&job.status).map_err(|e| AppError::Internal(e.into()))
}

/// A stored job's kind.
///
/// Errors: INTERNAL when the row holds a kind outside the vocabulary.
pub fn kind_of(job: &jobs::Model) -> AppResult<JobKind> {
    JobKind::parse(&job.kind).map_err(|e| AppError::Internal(e.into()))
}

/// The cursor of a job in the list order.
pub fn cursor(j: &jobs::Model) -> Cursor {
    Cursor { created_at: j.created_at.with_timezone(&Utc), id: j.id }
}

/// Log lines of the given jobs, oldest first, for the job → logs loader.
///
/// Errors: INTERNAL (database).
pub async fn logs_of(db: &impl ConnectionTrait, job_ids: &[Uuid]) -> AppResult<Vec<job_logs::Model>> {
    Ok(job_logs::Entity::find()
        .filter(job_logs::Column::JobId.is_in(job_ids.iter().copied()))
        .order_by_asc(job_logs::Column::CreatedAt)
        .order_by_asc(job_logs::Column::Id)
        .all(db)
        .await?)
}

/// A job a worker claimed, with the input it needs (photo download URLs, the draft).
#[derive(Debug)]
pub struct Claimed {
    /// The job, as held by the worker.
    pub job: jobs::Model,
    /// Its work input.
    pub input: Value,
}

/// Claims one due job of `kinds` (those the worker's token allows) for the worker.
///
/// Errors: FORBIDDEN (not a worker, or none of the kinds allowed); INTERNAL.
pub async fn claim(
    tx: &RequestTx,
    photos: &PhotoService,
    settings: QueueSettings,
    kinds: &[JobKind],
) -> AppResult<Option<Claimed>> {
    let worker = tx.worker()?;
    let allowed: Vec<JobKind> = kinds.iter().filter(|k| worker.kinds.contains(k)).copied().collect();
    if allowed.is_empty() {
        return Err(AppError::Forbidden("this worker token may not claim these kinds of job".into()));
    }
    let lease_secs = settings.lease.as_secs().max(1) as i32;
    let Some((owner, id)) = store::claim(tx, worker.worker_id, &allowed, lease_secs).await? else { return Ok(None) };
    let job = jobs::Entity::find()
        .filter(Column::UserId.eq(owner))
        .filter(Column::Id.eq(id))
        .one(tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a claimed job is not visible to its worker"))?;
    append_log(tx, &job, "info", &format!("claimed (attempt {} of {})", job.attempts, job.max_attempts)).await?;
    let waited = (Utc::now() - job.run_after.with_timezone(&Utc)).to_std().unwrap_or_default();
    let kind = kind_of(&job)?;
    tx.after_commit(move || {
        crate::metrics::shared().job_queue_wait.with_label_values(&[kind.as_str()]).observe(waited.as_secs_f64());
    });
    // The input is read as the owner (the worker's role cannot see drafts or photos),
    // in a scope: the rest of the worker's request runs as the worker again.
    let input = tx.acting_as_user(Role::User, owner, work_input(tx, photos, &job)).await?;
    tx.emit(Event::JobChanged { user_id: owner, job_id: id });
    Ok(Some(Claimed { job, input }))
}

/// Records a worker's progress, extends its lease, and tells it about a cancellation
/// (the returned job is CANCELED and the worker should stop).
///
/// Errors: FORBIDDEN (not a worker); BAD_USER_INPUT (`progress`); NOT_FOUND; CONFLICT
/// (not running); INTERNAL.
pub async fn report_progress(
    tx: &RequestTx,
    settings: QueueSettings,
    id: Uuid,
    progress: f64,
    message: Option<&str>,
) -> AppResult<jobs::Model> {
    tx.worker()?;
    if !(0.0..=1.0).contains(&progress) || progress.is_nan() {
        return Err(AppError::bad_input("progress", "must be between 0 and 1"));
    }
    let job = held(tx, id).await?;
    let mut model: jobs::ActiveModel = job.clone().into();
    let now = Utc::now();
    if job.cancel_requested {
        model.status = Set(JobStatus::Canceled.as_str().to_owned());
        model.finished_at = Set(Some(now.into()));
        model.lease_expires_at = Set(None);
    } else {
        model.progress = Set(progress);
        model.message = Set(message.map(|m| clip(m).to_owned()));
        model.lease_expires_at =
            Set(Some((now + chrono::Duration::from_std(settings.lease).map_err(anyhow::Error::from)?).into()));
    }
    model.updated_at = Set(now.into());
    let job = model.update(tx).await?;
    let line = match (status_of(&job)?, message) {
        (JobStatus::Canceled, _) => "canceled by the user; the worker was told to stop".to_owned(),
        (_, Some(m)) => format!("{:.0}% {}", progress * 100.0, clip(m)),
        (_, None) => format!("{:.0}%", progress * 100.0),
    };
    append_log(tx, &job, "info", &line).await?;
    tx.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Completes a held job and applies its result to the owner's data.
///
/// Errors: FORBIDDEN (not a worker); NOT_FOUND; CONFLICT (not running);
/// BAD_USER_INPUT (`result` of the wrong shape); INTERNAL.
pub async fn complete(tx: &RequestTx, id: Uuid, result: Option<Value>) -> AppResult<jobs::Model> {
    tx.worker()?;
    let job = held(tx, id).await?;
    let result = result.unwrap_or(Value::Null);
    let mut model: jobs::ActiveModel = job.clone().into();
    let now = Utc::now();
    model.status = Set(JobStatus::Succeeded.as_str().to_owned());
    model.progress = Set(1.0);
    model.result = Set(Some(result.clone()));
    model.finished_at = Set(Some(now.into()));
    model.lease_expires_at = Set(None);
    model.updated_at = Set(now.into());
    let job = model.update(tx).await?;
    append_log(tx, &job, "info", "completed").await?;
    tx.acting_as_user(Role::User, job.user_id, apply_result(tx, &job, &result)).await?;
    tx.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Fails a held job's attempt: retried with backoff while attempts remain, then FAILED.
///
/// Errors: FORBIDDEN (not a worker); NOT_FOUND; CONFLICT (not running); INTERNAL.
pub async fn fail(tx: &RequestTx, id: Uuid, error: &str) -> AppResult<jobs::Model> {
    tx.worker()?;
    let job = held(tx, id).await?;
    let now = Utc::now();
    let retry = job.attempts < job.max_attempts;
    let mut model: jobs::ActiveModel = job.clone().into();
    model.error = Set(Some(clip(error).to_owned()));
    model.lease_expires_at = Set(None);
    model.updated_at = Set(now.into());
    if retry {
        let due = now + backoff(job.attempts);
        model.status = Set(JobStatus::Queued.as_str().to_owned());
        model.run_after = Set(due.into());
        // Announced when it becomes due (workers' poll finds it too).
        tx.emit_at(Event::JobQueued { job_id: job.id, kind: job.kind.clone() }, due);
    } else {
        model.status = Set(JobStatus::Failed.as_str().to_owned());
        model.finished_at = Set(Some(now.into()));
    }
    let job = model.update(tx).await?;
    let line = if retry {
        format!("attempt {} failed: {}; retrying", job.attempts, clip(error))
    } else {
        format!("attempt {} failed: {}; no attempts left", job.attempts, clip(error))
    };
    append_log(tx, &job, if retry { "warn" } else { "error" }, &line).await?;
    tx.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Sends jobs whose lease expired back to the queue (or to FAILED); returns them as
/// (owner, job).
///
/// Errors: INTERNAL.
pub async fn requeue_expired(tx: &RequestTx) -> AppResult<Vec<(Uuid, Uuid)>> {
    let changed = store::requeue_expired(tx).await?;
    for (user_id, job_id) in &changed {
        tx.emit(Event::JobChanged { user_id: *user_id, job_id: *job_id });
    }
    Ok(changed)
}

/// The queue across every tenant, per kind: (kind, queued, age in seconds of the oldest
/// due queued job, running), read as the system role (`priv.job_queue_stats`) for the
/// metrics.
///
/// Errors: the database's.
pub async fn queue_stats(
    pool: &crate::db::RuntimePool,
    statement_timeout_ms: u64,
) -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
    use sea_orm::{DbBackend, Statement};
    let system = crate::principal::Principal::System;
    let tx = RequestTx::begin(pool, system, crate::db::RequestMeta::internal("metrics"), statement_timeout_ms).await?;
    let rows = tx
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT kind, queued, running, oldest_due_seconds FROM priv.job_queue_stats()",
        ))
        .await?;
    tx.commit_without_events().await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String>("", "kind")?,
                r.try_get("", "queued")?,
                r.try_get("", "oldest_due_seconds")?,
                r.try_get("", "running")?,
            ))
        })
        .collect()
}

/// Retry delay after the `attempt`-th failure: 5 s doubling, at most 5 minutes.
pub fn backoff(attempt: i32) -> chrono::Duration {
    let secs = 5i64.saturating_mul(1i64 << attempt.clamp(0, 16)).min(300);
    chrono::Duration::seconds(secs)
}

/// The running job `id` held by the calling worker.
async fn held(tx: &RequestTx, id: Uuid) -> AppResult<jobs::Model> {
    let job = jobs::Entity::find().filter(Column::Id.eq(id)).one(tx).await?.ok_or_else(not_found)?;
    if status_of(&job)? != JobStatus::Running {
        return Err(AppError::Conflict(format!("the job is {}, not running", job.status)));
    }
    Ok(job)
}

async fn work_input(tx: &RequestTx, photos_svc: &PhotoService, job: &jobs::Model) -> AppResult<Value> {
    // The caller is a worker acting as the owner: filter by the job's owner.
    let draft = match job.draft_id {
        Some(d) => {
            entity::drafts::Entity::find()
                .filter(entity::drafts::Column::UserId.eq(job.user_id))
                .filter(entity::drafts::Column::Id.eq(d))
                .filter(entity::drafts::Column::DeletedAt.is_null())
                .one(tx)
                .await?
        }
        None => None,
    };
    let mut q = photos::Entity::find()
        .filter(photos::Column::UserId.eq(job.user_id))
        .filter(photos::Column::Status.eq(PhotoStatus::Ready));
    if let Some(d) = job.draft_id {
        q = q.filter(photos::Column::DraftId.eq(d));
    }
    let rows = q.order_by_asc(photos::Column::Position).all(tx).await?;
    let mut photos = Vec::with_capacity(rows.len());
    for p in &rows {
        photos.push(json!({
            "id": p.id, "url": photos_svc.url(p).await?, "contentType": p.content_type, "byteSize": p.byte_size,
            "width": p.width, "height": p.height,
        }));
    }
    Ok(json!({
        "kind": job.kind,
        "draft": draft.map(|d| json!({
            "id": d.id, "title": d.title, "description": d.description, "brand": d.brand, "size": d.size,
            "category": d.category, "priceCents": d.price_cents, "currency": d.currency, "status": d.status,
        })),
        "photos": photos,
    }))
}

/// Applies a completed job's result as the owner: SCAN records photo dimensions and
/// hashes, PREPARE fills the draft's empty fields, PUBLISH marks the draft published.
async fn apply_result(tx: &RequestTx, job: &jobs::Model, result: &Value) -> AppResult<()> {
    match kind_of(job)? {
        JobKind::Scan => {
            let items = result.get("photos").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in items {
                let (Some(id), Some(w), Some(h), Some(sha)) = (
                    item.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()),
                    item.get("width").and_then(Value::as_i64),
                    item.get("height").and_then(Value::as_i64),
                    item.get("sha256").and_then(Value::as_str).and_then(|s| hex::decode(s).ok()),
                ) else {
                    return Err(AppError::bad_input(
                        "result",
                        "SCAN results are {photos: [{id, width, height, sha256}]}",
                    ));
                };
                store::record_scan(tx, job.user_id, id, w as i32, h as i32, sha).await?;
            }
        }
        JobKind::Prepare => {
            let Some(draft_id) = job.draft_id else { return Ok(()) };
            let text = |k: &str| result.get(k).and_then(Value::as_str).map(|s| clip(s.trim()).to_owned());
            let prepared = store::Prepared {
                description: text("description"),
                brand: text("brand"),
                category: text("category"),
                size: text("size"),
            };
            store::fill_draft(tx, job.user_id, draft_id, &prepared).await?;
        }
        JobKind::Publish => {
            let Some(draft_id) = job.draft_id else { return Ok(()) };
            store::mark_published(tx, job.user_id, draft_id).await?;
        }
    }
    activity::record(
        tx,
        Entry::by_system(job.user_id, "job.succeeded", Some(("job", job.id)), json!({ "kind": job.kind })),
    )
    .await
}

async fn append_log(tx: &RequestTx, job: &jobs::Model, level: &str, message: &str) -> AppResult<()> {
    job_logs::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(job.user_id),
        job_id: Set(job.id),
        level: Set(level.to_owned()),
        message: Set(clip(message).to_owned()),
        created_at: Set(Utc::now().into()),
    }
    .insert(tx)
    .await?;
    Ok(())
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(TEXT_MAX) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn not_found() -> AppError {
    AppError::NotFound("job not found".into())
}

async fn log_activity(tx: &RequestTx, user_id: Uuid, action: &str, id: Uuid, data: Value) -> AppResult<()> {
    activity::record(tx, Entry::by_user(user_id, action, Some(("job", id)), data)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0).num_seconds(), 5);
        assert_eq!(backoff(1).num_seconds(), 10);
        assert_eq!(backoff(3).num_seconds(), 40);
        assert_eq!(backoff(30).num_seconds(), 300);
        assert_eq!(clip(&"é".repeat(3000)).chars().count(), TEXT_MAX);
    }
}
