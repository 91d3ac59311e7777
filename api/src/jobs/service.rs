//! Job operations. Users create, cancel and read their jobs under row-level security.
//! Workers claim through `priv.claim_job` (the only cross-tenant path), then see and
//! update only the jobs they hold; a job's effects on the owner's data are applied
//! here, acting as the owner, when its worker completes it.
use crate::{
    activity::service::{self as activity, Entry},
    db::{self, RequestScope},
    drafts::service as drafts,
    error::{AppError, AppResult},
    events::Event,
    pagination::{self, Cursor, Page, PageRequest},
    photos::service::PhotoService,
    principal::Role,
    quotas::service as quotas,
};
use chrono::Utc;
use entity::{
    job_logs,
    jobs::{self, Column},
    photos,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Statement,
};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Kinds of job, as stored.
pub const KINDS: &[&str] = &["scan", "prepare", "publish"];
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
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// Queues a job for the caller. PREPARE and PUBLISH need a draft; SCAN without a draft
/// scans every confirmed photo of the caller.
pub async fn create(
    scope: &RequestScope,
    kind: &str,
    draft_id: Option<Uuid>,
    max_attempts: Option<i32>,
) -> AppResult<jobs::Model> {
    let user_id = scope.require_active()?;
    if kind != "scan" && draft_id.is_none() {
        return Err(AppError::bad_input("input.draftId", format!("is required for a {} job", kind.to_uppercase())));
    }
    if let Some(d) = draft_id {
        drafts::get(scope, d).await?.ok_or_else(|| AppError::NotFound("draft not found".into()))?;
    }
    let max_attempts = max_attempts.unwrap_or(3);
    if !(1..=20).contains(&max_attempts) {
        return Err(AppError::bad_input("input.maxAttempts", "must be between 1 and 20"));
    }
    // Charged inside this transaction: a request that fails later is not charged.
    match kind {
        "scan" => quotas::consume(scope, "scans", 1).await?,
        "prepare" => quotas::consume(scope, "preparations", 1).await?,
        _ => {}
    }
    let now = Utc::now();
    let job = jobs::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        kind: Set(kind.to_owned()),
        status: Set("queued".into()),
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
    .insert(scope.tx.as_ref())
    .await?;
    log_activity(scope, user_id, "job.create", job.id, json!({ "kind": kind })).await?;
    scope.emit(Event::JobChanged { user_id, job_id: job.id });
    Ok(job)
}

/// Cancels a job: a queued one at once; a running one when its worker next reports.
pub async fn cancel(scope: &RequestScope, id: Uuid) -> AppResult<jobs::Model> {
    let user_id = scope.require_user()?;
    let job = get(scope, id).await?.ok_or_else(not_found)?;
    let mut model: jobs::ActiveModel = job.clone().into();
    match job.status.as_str() {
        "queued" => {
            model.status = Set("canceled".into());
            model.finished_at = Set(Some(Utc::now().into()));
        }
        "running" => model.cancel_requested = Set(true),
        _ => return Err(AppError::Conflict(format!("the job is already {}", job.status))),
    }
    model.updated_at = Set(Utc::now().into());
    let job = model.update(scope.tx.as_ref()).await?;
    log_activity(scope, user_id, "job.cancel", id, json!({})).await?;
    scope.emit(Event::JobChanged { user_id, job_id: id });
    Ok(job)
}

/// One of the caller's jobs (or, for a worker, one it holds).
pub async fn get(scope: &RequestScope, id: Uuid) -> AppResult<Option<jobs::Model>> {
    let mut q = jobs::Entity::find().filter(Column::Id.eq(id));
    if let Some(user_id) = scope.principal.user_id() {
        q = q.filter(Column::UserId.eq(user_id));
    }
    Ok(q.one(scope.tx.as_ref()).await?)
}

/// A page of the caller's jobs, newest first.
pub async fn list(scope: &RequestScope, page: PageRequest, filter: &JobFilter) -> AppResult<Page<jobs::Model>> {
    let user_id = scope.require_user()?;
    let mut q = jobs::Entity::find().filter(Column::UserId.eq(user_id));
    if let Some(s) = &filter.status {
        q = q.filter(Column::Status.eq(s.as_str()));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(Column::Kind.eq(k.as_str()));
    }
    if let Some(c) = page.after {
        q = q.filter(pagination::after(Column::CreatedAt, Column::Id, c));
    }
    let rows =
        q.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(page.limit()).all(scope.tx.as_ref()).await?;
    Ok(Page::from_rows(rows, &page))
}

/// The cursor of a job in the list order.
pub fn cursor(j: &jobs::Model) -> Cursor {
    Cursor { created_at: j.created_at.with_timezone(&Utc), id: j.id }
}

/// Log lines of the given jobs, oldest first, for the job → logs loader.
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
pub async fn claim(
    scope: &RequestScope,
    photos: &PhotoService,
    settings: QueueSettings,
    kinds: &[String],
) -> AppResult<Option<Claimed>> {
    let worker = scope.require_worker()?;
    let allowed: Vec<String> = kinds.iter().filter(|k| worker.kinds.contains(k)).cloned().collect();
    if allowed.is_empty() {
        return Err(AppError::Forbidden("this worker token may not claim these kinds of job".into()));
    }
    let row = scope
        .tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, id FROM priv.claim_job($1, $2, $3)",
            [worker.worker_id.into(), allowed.into(), (settings.lease.as_secs().max(1) as i32).into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (owner, id): (Uuid, Uuid) = (row.try_get("", "user_id")?, row.try_get("", "id")?);
    let job = jobs::Entity::find()
        .filter(Column::UserId.eq(owner))
        .filter(Column::Id.eq(id))
        .one(scope.tx.as_ref())
        .await?
        .ok_or_else(|| anyhow::anyhow!("a claimed job is not visible to its worker"))?;
    append_log(scope, &job, "info", &format!("claimed (attempt {} of {})", job.attempts, job.max_attempts)).await?;
    // The input is read as the owner: the worker's role cannot see drafts or photos.
    db::act_as(&scope.tx, Role::User, owner).await?;
    let input = work_input(scope, photos, &job).await?;
    scope.emit(Event::JobChanged { user_id: owner, job_id: id });
    Ok(Some(Claimed { job, input }))
}

/// Records a worker's progress, extends its lease, and tells it about a cancellation
/// (the returned job is CANCELED and the worker should stop).
pub async fn report_progress(
    scope: &RequestScope,
    settings: QueueSettings,
    id: Uuid,
    progress: f64,
    message: Option<&str>,
) -> AppResult<jobs::Model> {
    scope.require_worker()?;
    if !(0.0..=1.0).contains(&progress) || progress.is_nan() {
        return Err(AppError::bad_input("progress", "must be between 0 and 1"));
    }
    let job = held(scope, id).await?;
    let mut model: jobs::ActiveModel = job.clone().into();
    let now = Utc::now();
    if job.cancel_requested {
        model.status = Set("canceled".into());
        model.finished_at = Set(Some(now.into()));
        model.lease_expires_at = Set(None);
    } else {
        model.progress = Set(progress);
        model.message = Set(message.map(|m| clip(m).to_owned()));
        model.lease_expires_at =
            Set(Some((now + chrono::Duration::from_std(settings.lease).map_err(anyhow::Error::from)?).into()));
    }
    model.updated_at = Set(now.into());
    let job = model.update(scope.tx.as_ref()).await?;
    let line = match (job.status.as_str(), message) {
        ("canceled", _) => "canceled by the user; the worker was told to stop".to_owned(),
        (_, Some(m)) => format!("{:.0}% {}", progress * 100.0, clip(m)),
        (_, None) => format!("{:.0}%", progress * 100.0),
    };
    append_log(scope, &job, "info", &line).await?;
    scope.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Completes a held job and applies its result to the owner's data.
pub async fn complete(scope: &RequestScope, id: Uuid, result: Option<Value>) -> AppResult<jobs::Model> {
    scope.require_worker()?;
    let job = held(scope, id).await?;
    let result = result.unwrap_or(Value::Null);
    let mut model: jobs::ActiveModel = job.clone().into();
    let now = Utc::now();
    model.status = Set("succeeded".into());
    model.progress = Set(1.0);
    model.result = Set(Some(result.clone()));
    model.finished_at = Set(Some(now.into()));
    model.lease_expires_at = Set(None);
    model.updated_at = Set(now.into());
    let job = model.update(scope.tx.as_ref()).await?;
    append_log(scope, &job, "info", "completed").await?;
    db::act_as(&scope.tx, Role::User, job.user_id).await?;
    apply_result(scope, &job, &result).await?;
    scope.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Fails a held job's attempt: retried with backoff while attempts remain, then FAILED.
pub async fn fail(scope: &RequestScope, id: Uuid, error: &str) -> AppResult<jobs::Model> {
    scope.require_worker()?;
    let job = held(scope, id).await?;
    let now = Utc::now();
    let retry = job.attempts < job.max_attempts;
    let mut model: jobs::ActiveModel = job.clone().into();
    model.error = Set(Some(clip(error).to_owned()));
    model.lease_expires_at = Set(None);
    model.updated_at = Set(now.into());
    if retry {
        model.status = Set("queued".into());
        model.run_after = Set((now + backoff(job.attempts)).into());
    } else {
        model.status = Set("failed".into());
        model.finished_at = Set(Some(now.into()));
    }
    let job = model.update(scope.tx.as_ref()).await?;
    let line = if retry {
        format!("attempt {} failed: {}; retrying", job.attempts, clip(error))
    } else {
        format!("attempt {} failed: {}; no attempts left", job.attempts, clip(error))
    };
    append_log(scope, &job, if retry { "warn" } else { "error" }, &line).await?;
    scope.emit(Event::JobChanged { user_id: job.user_id, job_id: id });
    Ok(job)
}

/// Sends jobs whose lease expired back to the queue (or to FAILED); returns them.
pub async fn requeue_expired(scope: &RequestScope) -> AppResult<Vec<(Uuid, Uuid)>> {
    let rows = scope
        .tx
        .query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id, id FROM priv.requeue_expired_jobs()"))
        .await?;
    let changed: Vec<(Uuid, Uuid)> =
        rows.iter().map(|r| Ok((r.try_get("", "user_id")?, r.try_get("", "id")?))).collect::<AppResult<_>>()?;
    for (user_id, job_id) in &changed {
        scope.emit(Event::JobChanged { user_id: *user_id, job_id: *job_id });
    }
    Ok(changed)
}

/// Retry delay after the `attempt`-th failure: 5 s doubling, at most 5 minutes.
pub fn backoff(attempt: i32) -> chrono::Duration {
    let secs = 5i64.saturating_mul(1i64 << attempt.clamp(0, 16)).min(300);
    chrono::Duration::seconds(secs)
}

/// The running job `id` held by the calling worker.
async fn held(scope: &RequestScope, id: Uuid) -> AppResult<jobs::Model> {
    let job = jobs::Entity::find().filter(Column::Id.eq(id)).one(scope.tx.as_ref()).await?.ok_or_else(not_found)?;
    if job.status != "running" {
        return Err(AppError::Conflict(format!("the job is {}, not running", job.status)));
    }
    Ok(job)
}

async fn work_input(scope: &RequestScope, photos_svc: &PhotoService, job: &jobs::Model) -> AppResult<Value> {
    // The caller is a worker acting as the owner: filter by the job's owner.
    let draft = match job.draft_id {
        Some(d) => {
            entity::drafts::Entity::find()
                .filter(entity::drafts::Column::UserId.eq(job.user_id))
                .filter(entity::drafts::Column::Id.eq(d))
                .filter(entity::drafts::Column::DeletedAt.is_null())
                .one(scope.tx.as_ref())
                .await?
        }
        None => None,
    };
    let mut q = photos::Entity::find()
        .filter(photos::Column::UserId.eq(job.user_id))
        .filter(photos::Column::Status.eq("ready"));
    if let Some(d) = job.draft_id {
        q = q.filter(photos::Column::DraftId.eq(d));
    }
    let rows = q.order_by_asc(photos::Column::Position).all(scope.tx.as_ref()).await?;
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
async fn apply_result(scope: &RequestScope, job: &jobs::Model, result: &Value) -> AppResult<()> {
    let tx = scope.tx.as_ref();
    match job.kind.as_str() {
        "scan" => {
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
                tx.execute(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "UPDATE photos SET width = $3, height = $4, sha256 = $5, updated_at = now() WHERE user_id = $1 AND id = $2",
                    [job.user_id.into(), id.into(), (w as i32).into(), (h as i32).into(), sha.into()],
                ))
                .await?;
            }
        }
        "prepare" => {
            let Some(draft_id) = job.draft_id else { return Ok(()) };
            let text = |k: &str| result.get(k).and_then(Value::as_str).map(|s| clip(s.trim()).to_owned());
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE drafts SET
                   description = CASE WHEN description = '' THEN coalesce(left($3, 5000), '') ELSE description END,
                   brand = coalesce(brand, left($4, 100)),
                   category = coalesce(category, left($5, 100)),
                   size = coalesce(size, left($6, 50)),
                   updated_at = now()
                 WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL",
                [
                    job.user_id.into(),
                    draft_id.into(),
                    text("description").into(),
                    text("brand").into(),
                    text("category").into(),
                    text("size").into(),
                ],
            ))
            .await?;
        }
        "publish" => {
            let Some(draft_id) = job.draft_id else { return Ok(()) };
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE drafts SET status = 'published', updated_at = now() WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL",
                [job.user_id.into(), draft_id.into()],
            ))
            .await?;
        }
        other => return Err(AppError::Internal(anyhow::anyhow!("unknown job kind {other:?}"))),
    }
    activity::record(
        tx,
        &scope.meta,
        Entry {
            user_id: job.user_id,
            actor_id: None,
            action: "job.succeeded",
            subject_type: Some("job"),
            subject_id: Some(job.id),
            data: json!({ "kind": job.kind }),
        },
    )
    .await
}

async fn append_log(scope: &RequestScope, job: &jobs::Model, level: &str, message: &str) -> AppResult<()> {
    job_logs::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(job.user_id),
        job_id: Set(job.id),
        level: Set(level.to_owned()),
        message: Set(clip(message).to_owned()),
        created_at: Set(Utc::now().into()),
    }
    .insert(scope.tx.as_ref())
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

async fn log_activity(scope: &RequestScope, user_id: Uuid, action: &str, id: Uuid, data: Value) -> AppResult<()> {
    activity::record(
        scope.tx.as_ref(),
        &scope.meta,
        Entry { user_id, actor_id: Some(user_id), action, subject_type: Some("job"), subject_id: Some(id), data },
    )
    .await
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
