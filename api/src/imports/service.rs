//! `plinth import`: a folder in the import format (docs/import.md) brought into one
//! account, and `plinth export`, which writes such a folder from the GDPR export's code.
//!
//! The import reads and checks the whole folder first ([`format::read`]), then writes
//! in batches, each one transaction acting as the account (the API's `RequestTx`, so
//! row-level security decides), through the domains' services: the rows, the mapping of
//! their original ids (`import_records`) and one activity entry. A batch commits whole or
//! not at all, so a run stopped anywhere (a crash, Ctrl-C between batches) resumes where
//! it stopped: what the mapping holds is skipped. New ids are derived from the account
//! and the original id (a SHA-256 of both), so a photo's object stored before its batch committed is
//! overwritten, not duplicated, by the next run. History consumes no counter; the gauges
//! (storage, connected accounts) are checked before the first write and in every batch.
use super::{
    format::{self, FileCounts, Kind, Record, Rejection},
    store,
};
use crate::{
    accounts::{domain::EmailAddress, export, store as accounts},
    activity::service::{self as activity, Entry},
    auth::entitlements,
    catalog::Catalog,
    db::{RequestMeta, RequestTx, RuntimePool},
    drafts::service as drafts,
    error::{AppError, AppResult},
    jobs::service as jobs,
    marketplace::service as marketplace,
    model::{AccountState, DbRole, QuotaMetric, Role},
    photos::{domain::PhotoStatus, service::PhotoService},
    principal::{Principal, UserClaims},
    quotas::service as quotas,
    secretbox::SecretBox,
    storage::Storage,
};
use chrono::Utc;
use futures_util::{stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};
use uuid::Uuid;

/// Records per batch unless told otherwise.
pub const DEFAULT_BATCH: usize = 500;
/// Photos stored at once.
const PHOTO_CONCURRENCY: usize = 8;

/// What the import needs from the server.
#[derive(Clone, Copy)]
pub struct Importer<'a> {
    /// The runtime pool.
    pub pool: &'a RuntimePool,
    /// Bound on each statement.
    pub statement_timeout_ms: u64,
    /// The plans (the account's limits).
    pub catalog: &'a Catalog,
    /// Photos and their store.
    pub photos: &'a PhotoService,
    /// Seals marketplace credentials.
    pub sealer: &'a SecretBox,
}

/// How to run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Check and report only.
    pub dry_run: bool,
    /// Records per transaction.
    pub batch_size: usize,
    /// A pause after each batch (tests interrupt an import between two).
    pub pause: std::time::Duration,
}

/// Where the import is, after each batch.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The kind being imported.
    pub kind: Kind,
    /// Its records done (imported or found imported before).
    pub done: usize,
    /// Its records in all.
    pub total: usize,
    /// Records of every kind done.
    pub all_done: usize,
    /// Records of every kind to do.
    pub all_total: usize,
}

/// One file's line of the report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// What checking found.
    #[serde(flatten)]
    pub counts: FileCounts,
    /// Valid records an earlier run imported (skipped).
    pub already_imported: usize,
    /// Valid records not imported yet.
    pub to_import: usize,
    /// Records this run imported.
    pub imported: usize,
}

/// What the import found and did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Nothing was written.
    pub dry_run: bool,
    /// The account, by e-mail.
    pub user: String,
    /// The folder.
    pub folder: String,
    /// One line per file.
    pub files: Vec<FileReport>,
    /// Every rejected record.
    pub rejected: Vec<Rejection>,
    /// Bytes of the photos to import.
    pub photo_bytes: i64,
    /// Why the import stopped before the end (a gauge), if it did.
    pub stopped: Option<String>,
    /// Ctrl-C stopped it between two batches.
    pub interrupted: bool,
    /// Seconds spent writing.
    pub seconds: f64,
    /// Records imported per second of writing.
    pub records_per_second: f64,
    /// Megabytes (10^6 bytes) of photos imported per second of writing.
    pub photo_mb_per_second: f64,
}

impl Report {
    /// Whether the import ran to its end (every valid record is in the account).
    pub fn complete(&self) -> bool {
        self.stopped.is_none() && !self.interrupted
    }

    /// The report for people: a table of counts, then every rejection.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mode = if self.dry_run { "dry run (nothing written)" } else { "import" };
        let _ = writeln!(out, "plinth import: {mode} of {} into {}", self.folder, self.user);
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "file", "records", "valid", "rejected", "skipped", "already", "to import", "imported"
        );
        for f in &self.files {
            let _ = writeln!(
                out,
                "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
                f.file,
                f.counts.records,
                f.counts.valid,
                f.counts.rejected,
                f.counts.skipped,
                f.already_imported,
                f.to_import,
                f.imported
            );
        }
        let _ = writeln!(out, "photo bytes to import: {}", self.photo_bytes);
        if !self.rejected.is_empty() {
            let _ = writeln!(out, "rejected records ({}):", self.rejected.len());
            for r in &self.rejected {
                let id = r.id.as_deref().map(|i| format!(" (id {i})")).unwrap_or_default();
                let _ = writeln!(out, "  {}:{}{id}: {}", r.file, r.line, r.reason);
            }
        }
        if let Some(s) = &self.stopped {
            let _ = writeln!(out, "{}: {s}", if self.dry_run { "the import would stop" } else { "stopped" });
        }
        if self.interrupted {
            let _ = writeln!(out, "interrupted between two batches: run the same command again to resume");
        }
        if !self.dry_run && self.seconds > 0.0 {
            let _ = writeln!(
                out,
                "written in {:.1} s: {:.0} records/s, {:.2} MB of photos/s",
                self.seconds, self.records_per_second, self.photo_mb_per_second
            );
        }
        out
    }
}

/// The id a record gets here: derived from the account and its original id (the first
/// 16 bytes of a SHA-256, as a version 8 UUID), so every run gives the same one.
pub fn new_id(user_id: Uuid, kind: Kind, original: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(user_id.as_bytes())
        .chain_update(kind.as_str().as_bytes())
        .chain_update(b":")
        .chain_update(original.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Importer<'_> {
    /// Imports the folder `dir` into the account with address `email` (or only checks
    /// it, `options.dry_run`). `stop` is read between batches (Ctrl-C); `progress` is told
    /// after each one.
    ///
    /// Errors: no such account, a suspended one; the folder unreadable; the database's
    /// or the store's (what was committed stays: run again to resume).
    pub async fn run(
        &self,
        email: &str,
        dir: &Path,
        options: Options,
        stop: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Report> {
        let (user_id, principal) = self.account(email).await?;
        self.run_as(user_id, principal, email, dir, options, stop, progress).await
    }

    /// [`Importer::run`] for the account `user_id` (the web app's imports: the signed-in
    /// user), named `label` in the report.
    ///
    /// Errors: as [`Importer::run`].
    pub async fn run_for(
        &self,
        user_id: Uuid,
        label: &str,
        dir: &Path,
        options: Options,
        stop: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Report> {
        let principal = self.principal_for(user_id).await?;
        self.run_as(user_id, principal, label, dir, options, stop, progress).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_as(
        &self,
        user_id: Uuid,
        principal: Principal,
        email: &str,
        dir: &Path,
        options: Options,
        stop: &AtomicBool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Report> {
        if principal.claims().is_some_and(|c| c.account_state == AccountState::Suspended) {
            anyhow::bail!("{email}'s subscription is inactive: nothing can be imported until it is paid");
        }
        let tx = self.tx(&principal);
        let imported = store::imported(&tx, user_id).await;
        tx.rollback().await;
        let imported = imported.map_err(AppError::into_anyhow)?;
        let (root, max, now) = (dir.to_owned(), self.photos.max_bytes(), Utc::now());
        let seen = imported.clone();
        let folder = tokio::task::spawn_blocking(move || format::read(&root, max, now, &seen)).await??;

        let fresh = |kind: Kind, id: &str| !imported.contains(&(kind, id.to_owned()));
        let accounts: Vec<_> = folder.accounts.iter().filter(|r| fresh(Kind::MarketplaceAccount, &r.id)).collect();
        let drafts: Vec<_> = folder.drafts.iter().filter(|r| fresh(Kind::Draft, &r.id)).collect();
        let photos: Vec<_> = folder.photos.iter().filter(|r| fresh(Kind::Photo, &r.id)).collect();
        let jobs: Vec<_> = folder.jobs.iter().filter(|r| fresh(Kind::Job, &r.id)).collect();
        let logs: Vec<_> = folder.logs.iter().filter(|r| fresh(Kind::JobLog, &r.id)).collect();
        let valid = |k: Kind| folder.counts.get(&k).map(|c| c.valid).unwrap_or(0);
        let todo = [
            (Kind::MarketplaceAccount, accounts.len()),
            (Kind::Draft, drafts.len()),
            (Kind::Photo, photos.len()),
            (Kind::Job, jobs.len()),
            (Kind::JobLog, logs.len()),
        ];
        let mut report = Report {
            dry_run: options.dry_run,
            user: email.to_owned(),
            folder: dir.display().to_string(),
            files: todo
                .iter()
                .map(|(k, n)| FileReport {
                    file: k.file().into(),
                    counts: folder.counts.get(k).cloned().unwrap_or_default(),
                    already_imported: valid(*k) - n,
                    to_import: *n,
                    imported: 0,
                })
                .collect(),
            rejected: folder.rejected.clone(),
            photo_bytes: photos.iter().map(|p| p.value.bytes).sum(),
            ..Default::default()
        };
        let connecting = accounts.iter().filter(|a| a.value.status == "CONNECTED").count() as i64;
        report.stopped = self.check_gauges(&principal, report.photo_bytes, connecting).await?;
        if options.dry_run || report.stopped.is_some() {
            return Ok(report);
        }

        let started = Instant::now();
        let batch = options.batch_size.max(1);
        let all_total: usize = todo.iter().map(|(_, n)| n).sum();
        let mut all_done = 0;
        let mut photo_bytes = 0i64;
        let mut tell = |report: &mut Report, kind: Kind, n: usize, done: usize, total: usize| {
            all_done += n;
            if let Some(f) = report.files.iter_mut().find(|f| f.file == kind.file()) {
                f.imported += n;
            }
            progress(Progress { kind, done, total, all_done, all_total });
        };
        'kinds: for (kind, total) in todo {
            let mut done = 0;
            for start in (0..total).step_by(batch) {
                if stop.load(Ordering::SeqCst) {
                    report.interrupted = true;
                    break 'kinds;
                }
                let end = (start + batch).min(total);
                let n = match kind {
                    Kind::MarketplaceAccount => self.accounts(&principal, user_id, &accounts[start..end]).await,
                    Kind::Draft => self.drafts(&principal, user_id, &drafts[start..end]).await,
                    Kind::Photo => {
                        let (n, bytes, rejected) =
                            self.photos(&principal, user_id, &folder.root, &photos[start..end]).await?;
                        photo_bytes += bytes;
                        report.rejected.extend(rejected);
                        Ok(n)
                    }
                    Kind::Job => self.jobs(&principal, user_id, &jobs[start..end]).await,
                    Kind::JobLog => self.logs(&principal, user_id, &logs[start..end]).await,
                };
                let n = n.map_err(|e| match e {
                    AppError::QuotaExceeded { metric, limit, .. } => {
                        anyhow::anyhow!(
                            "stopped before exceeding the plan's {} limit ({limit}); nothing of this batch was written",
                            metric.as_str().to_uppercase()
                        )
                    }
                    e => e.into_anyhow(),
                });
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        return Err(e.context(format!(
                            "importing {} records {}–{} (run again to resume)",
                            kind.file(),
                            start + 1,
                            end
                        )))
                    }
                };
                done += end - start;
                tell(&mut report, kind, n, done, total);
                if !options.pause.is_zero() {
                    tokio::time::sleep(options.pause).await;
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let imported: usize = report.files.iter().map(|f| f.imported).sum();
        report.seconds = seconds;
        if seconds > 0.0 {
            report.records_per_second = imported as f64 / seconds;
            report.photo_mb_per_second = photo_bytes as f64 / 1e6 / seconds;
        }
        Ok(report)
    }

    /// The account with address `email`, and a principal acting for it in the user role
    /// with its plan's limits now (as a session token would carry them).
    async fn account(&self, email: &str) -> anyhow::Result<(Uuid, Principal)> {
        let email = EmailAddress::parse("--user", email).map_err(AppError::into_anyhow)?;
        let (user_id, e) = find_account(self.pool, self.statement_timeout_ms, Some(self.catalog), email.as_str())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no account has the address {}", email.as_str()))?;
        let e = e.expect("entitlements read");
        Ok((user_id, claims_of(user_id, e)))
    }

    /// A principal acting for the account `user_id` with its plan's limits now.
    async fn principal_for(&self, user_id: Uuid) -> anyhow::Result<Principal> {
        let tx =
            RequestTx::begin(self.pool, Principal::System, RequestMeta::internal("import"), self.statement_timeout_ms)
                .await?;
        let e: AppResult<_> = async {
            tx.act_for_system(DbRole::User, user_id).await?;
            entitlements::current(&tx, self.catalog, user_id).await
        }
        .await;
        tx.rollback().await;
        Ok(claims_of(user_id, e.map_err(AppError::into_anyhow)?))
    }

    fn tx(&self, principal: &Principal) -> RequestTx {
        RequestTx::new(self.pool, principal.clone(), RequestMeta::internal("import"), self.statement_timeout_ms)
    }

    /// The message that stops the import before its first write, when the photos or the
    /// connected accounts it brings would take a gauge past the plan's limit.
    async fn check_gauges(&self, principal: &Principal, bytes: i64, accounts: i64) -> anyhow::Result<Option<String>> {
        let tx = self.tx(principal);
        let usage = quotas::usage(&tx).await;
        tx.rollback().await;
        let usage = usage.map_err(AppError::into_anyhow)?;
        for (metric, add, what) in [
            (QuotaMetric::StorageBytes, bytes, "bytes of photos"),
            (QuotaMetric::ConnectedAccounts, accounts, "connected marketplace accounts"),
        ] {
            if let Some(u) = usage.iter().find(|u| u.metric == metric) {
                if add > 0 && u.used + add > u.limit {
                    return Ok(Some(format!(
                        "the folder brings {add} {what}; the account has {} of its plan's {} ({}): nothing was imported — free some or change plan, then run again",
                        u.used,
                        u.limit,
                        metric.as_str().to_uppercase()
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Ends a batch: when `written` (its rows, inserted in `tx`) succeeded, records their
    /// mapping and one activity entry and commits; otherwise rolls back.
    async fn finish(
        &self,
        tx: RequestTx,
        written: AppResult<()>,
        user_id: Uuid,
        kind: Kind,
        pairs: Vec<(String, Uuid)>,
    ) -> AppResult<usize> {
        let done = match written {
            Ok(()) => {
                async {
                    store::record(&tx, user_id, kind, &pairs).await?;
                    let data = json!({ "kind": kind.as_str(), "count": pairs.len() });
                    activity::record(&tx, Entry::by_user(user_id, "import.batch", None, data)).await
                }
                .await
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                tx.commit_without_events().await?;
                Ok(pairs.len())
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn accounts(
        &self,
        principal: &Principal,
        user_id: Uuid,
        batch: &[&Record<format::AccountRecord>],
    ) -> AppResult<usize> {
        let rows: Vec<_> = batch
            .iter()
            .map(|r| {
                let v = &r.value;
                let model = entity::marketplace_accounts::Model {
                    user_id,
                    id: new_id(user_id, Kind::MarketplaceAccount, &r.id),
                    platform: v.platform.to_lowercase(),
                    display_name: v.display_name.clone(),
                    credentials: None,
                    status: v.status.to_lowercase(),
                    created_at: v.created_at.into(),
                    updated_at: v.updated_at.unwrap_or(v.created_at).into(),
                };
                (model, v.credentials.clone())
            })
            .collect();
        let connecting = rows.iter().filter(|(m, _)| m.status == "connected").count() as i64;
        let pairs = pairs(user_id, Kind::MarketplaceAccount, batch);
        let tx = self.tx(principal);
        let written = async {
            if connecting > 0 {
                quotas::check_gauge(&tx, QuotaMetric::ConnectedAccounts, connecting).await?;
            }
            marketplace::insert_imported(&tx, self.sealer, rows).await
        }
        .await;
        self.finish(tx, written, user_id, Kind::MarketplaceAccount, pairs).await
    }

    async fn drafts(
        &self,
        principal: &Principal,
        user_id: Uuid,
        batch: &[&Record<format::DraftRecord>],
    ) -> AppResult<usize> {
        let rows: Vec<_> = batch
            .iter()
            .map(|r| {
                let v = &r.value;
                entity::drafts::Model {
                    user_id,
                    id: new_id(user_id, Kind::Draft, &r.id),
                    title: v.title.clone(),
                    description: v.description.clone().unwrap_or_default(),
                    price_cents: v.price_cents,
                    currency: v.currency.clone().unwrap_or_else(|| "EUR".into()),
                    brand: v.brand.clone(),
                    size: v.size.clone(),
                    condition: v.condition.as_deref().map(str::to_lowercase),
                    category: v.category.clone(),
                    status: v.status.to_lowercase(),
                    deleted_at: v.deleted_at.map(Into::into),
                    created_at: v.created_at.into(),
                    updated_at: v.updated_at.unwrap_or(v.created_at).into(),
                }
            })
            .collect();
        let pairs = pairs(user_id, Kind::Draft, batch);
        let tx = self.tx(principal);
        let written = drafts::insert_imported(&tx, rows).await;
        self.finish(tx, written, user_id, Kind::Draft, pairs).await
    }

    /// Stores the batch's photos (holding no transaction), then inserts the rows of those
    /// that passed the storage layer's checks; the others are rejected. Returns how many
    /// were imported, their bytes and the rejections.
    async fn photos(
        &self,
        principal: &Principal,
        user_id: Uuid,
        root: &Path,
        batch: &[&Record<format::PhotoRecord>],
    ) -> anyhow::Result<(usize, i64, Vec<Rejection>)> {
        let stored: Vec<_> = stream::iter(batch.iter().copied())
            .map(|r| async move {
                let v = &r.value;
                let id = new_id(user_id, Kind::Photo, &r.id);
                let path = root.join(v.file.as_deref().unwrap_or_default());
                let bytes = match tokio::fs::read(&path).await {
                    Ok(b) => b,
                    Err(e) => return (r, Err(AppError::bad_input("file", format!("cannot be read: {e}")))),
                };
                let stored =
                    self.photos.store_imported(user_id, id, &v.content_type, bytes, Some(v.checksum.clone())).await;
                (r, stored.map(|s| (id, s)))
            })
            .buffered(PHOTO_CONCURRENCY)
            .collect()
            .await;
        let mut rows = Vec::new();
        let mut keys = Vec::new();
        let mut rejected = Vec::new();
        let mut ok = Vec::new();
        for (r, s) in stored {
            match s {
                Ok((id, s)) => {
                    let v = &r.value;
                    keys.push(s.key.clone());
                    rows.push(entity::photos::Model {
                        user_id,
                        id,
                        draft_id: v.draft_id.as_deref().map(|d| new_id(user_id, Kind::Draft, d)),
                        position: v.position.unwrap_or(0),
                        object_key: s.key,
                        content_type: v.content_type.clone(),
                        byte_size: s.byte_size,
                        width: Some(s.width),
                        height: Some(s.height),
                        sha256: Some(s.sha256),
                        status: PhotoStatus::Ready.as_str().to_owned(),
                        created_at: v.created_at.into(),
                        updated_at: v.created_at.into(),
                    });
                    ok.push(r);
                }
                Err(AppError::BadUserInput { message, .. }) => rejected.push(Rejection {
                    file: Kind::Photo.file().into(),
                    line: r.line,
                    id: Some(r.id.clone()),
                    reason: format!("file {}: {message}", r.value.file.as_deref().unwrap_or_default()),
                }),
                Err(e) => return Err(e.into_anyhow()),
            }
        }
        let bytes: i64 = rows.iter().map(|r| r.byte_size).sum();
        let pairs = pairs(user_id, Kind::Photo, &ok);
        let tx = self.tx(principal);
        let written = self.photos.insert_imported(&tx, rows).await;
        match self.finish(tx, written, user_id, Kind::Photo, pairs).await {
            Ok(n) => Ok((n, bytes, rejected)),
            Err(e) => {
                // Nothing of the batch is recorded: its objects go too.
                for key in keys {
                    if let Err(err) = self.photos.storage().delete(&key).await {
                        tracing::warn!(error = %err, "removing an imported photo's object after its batch failed");
                    }
                }
                Err(match e {
                    AppError::QuotaExceeded { metric, limit, .. } => anyhow::anyhow!(
                        "stopped before exceeding the plan's {} limit ({limit}); nothing of this batch was written",
                        metric.as_str().to_uppercase()
                    ),
                    e => e.into_anyhow(),
                })
            }
        }
    }

    async fn jobs(
        &self,
        principal: &Principal,
        user_id: Uuid,
        batch: &[&Record<format::JobRecord>],
    ) -> AppResult<usize> {
        let rows: Vec<_> = batch
            .iter()
            .map(|r| {
                let v = &r.value;
                let draft_id = v.draft_id.as_deref().map(|d| new_id(user_id, Kind::Draft, d));
                let updated = v.updated_at.unwrap_or(v.created_at);
                // History is never run again: what was still waiting or running ends here.
                let (status, finished) = match v.status.as_str() {
                    "QUEUED" | "RUNNING" => ("canceled".to_owned(), Some(v.finished_at.unwrap_or(updated))),
                    s => (s.to_lowercase(), v.finished_at),
                };
                let mut input = match &v.input {
                    Some(serde_json::Value::Object(m)) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                input.insert("draftId".into(), json!(draft_id));
                entity::jobs::Model {
                    user_id,
                    id: new_id(user_id, Kind::Job, &r.id),
                    kind: v.kind.to_lowercase(),
                    status,
                    draft_id,
                    progress: v.progress.unwrap_or(0.0),
                    message: v.message.clone(),
                    input: serde_json::Value::Object(input),
                    result: v.result.clone().filter(|r| !r.is_null()),
                    error: v.error.clone(),
                    attempts: v.attempts.unwrap_or(0),
                    max_attempts: v.max_attempts.unwrap_or(3),
                    run_after: v.created_at.into(),
                    lease_expires_at: None,
                    worker_id: None,
                    cancel_requested: false,
                    created_at: v.created_at.into(),
                    updated_at: updated.into(),
                    finished_at: finished.map(Into::into),
                }
            })
            .collect();
        let pairs = pairs(user_id, Kind::Job, batch);
        let tx = self.tx(principal);
        let written = jobs::insert_imported(&tx, rows, Vec::new()).await;
        self.finish(tx, written, user_id, Kind::Job, pairs).await
    }

    async fn logs(
        &self,
        principal: &Principal,
        user_id: Uuid,
        batch: &[&Record<format::JobLogRecord>],
    ) -> AppResult<usize> {
        let rows: Vec<_> = batch
            .iter()
            .map(|r| {
                let v = &r.value;
                entity::job_logs::Model {
                    user_id,
                    id: new_id(user_id, Kind::JobLog, &r.id),
                    job_id: new_id(user_id, Kind::Job, &v.job_id),
                    level: v.level.clone().unwrap_or_else(|| "info".into()),
                    message: v.message.clone(),
                    created_at: v.created_at.into(),
                }
            })
            .collect();
        let pairs = pairs(user_id, Kind::JobLog, batch);
        let tx = self.tx(principal);
        let written = jobs::insert_imported(&tx, Vec::new(), rows).await;
        self.finish(tx, written, user_id, Kind::JobLog, pairs).await
    }
}

/// The account in the user role with its plan's limits now (as a session token would
/// carry them).
fn claims_of(user_id: Uuid, e: entitlements::Entitlements) -> Principal {
    let now = Utc::now();
    Principal::User(UserClaims {
        user_id,
        role: Role::User,
        session_id: Uuid::nil(),
        expires_at: now + chrono::Duration::days(1),
        issued_at: now,
        plan: e.plan,
        account_state: e.state,
        quotas: e.limits,
        api: None,
    })
}

fn pairs<T>(user_id: Uuid, kind: Kind, batch: &[&Record<T>]) -> Vec<(String, Uuid)> {
    batch.iter().map(|r| (r.id.clone(), new_id(user_id, kind, &r.id))).collect()
}

/// Finds the account with address `email` through the narrow lookup a password reset
/// uses (as the anonymous role), then, with `catalog`, reads its entitlements acting as
/// it. None when no account has the address.
async fn find_account(
    pool: &RuntimePool,
    statement_timeout_ms: u64,
    catalog: Option<&Catalog>,
    email: &str,
) -> anyhow::Result<Option<(Uuid, Option<entitlements::Entitlements>)>> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("import"), statement_timeout_ms).await?;
    let found: AppResult<_> = async {
        let Some(id) = tx.acting_as(DbRole::Anon, None, accounts::user_id_for_email(&tx, email)).await? else {
            return Ok(None);
        };
        let e = match catalog {
            Some(catalog) => {
                tx.act_for_system(DbRole::User, id).await?;
                Some(entitlements::current(&tx, catalog, id).await?)
            }
            None => None,
        };
        Ok(Some((id, e)))
    }
    .await;
    tx.rollback().await;
    found.map_err(AppError::into_anyhow)
}

/// `plinth export --user EMAIL --out DIR`: the GDPR export of the account (the same
/// rows and objects, read by the same code), written as a folder `plinth import` reads.
/// `out` must not exist or be empty. Returns the manifest.
///
/// Errors: no such account; `out` not empty or not writable; the database's, the store's.
pub async fn export_folder(
    pool: &RuntimePool,
    statement_timeout_ms: u64,
    storage: &Storage,
    email: &str,
    out: &Path,
) -> anyhow::Result<serde_json::Value> {
    let email = EmailAddress::parse("--user", email).map_err(AppError::into_anyhow)?;
    let (user_id, _) = find_account(pool, statement_timeout_ms, None, email.as_str())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account has the address {}", email.as_str()))?;
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        anyhow::bail!("{} is not empty: export into a new folder", out.display());
    }
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("export"), statement_timeout_ms).await?;
    tx.act_for_system(DbRole::User, user_id).await?;
    let collected = export::collect(&tx, user_id).await;
    tx.rollback().await;
    export::write_folder(collected?, storage, user_id, Uuid::now_v7(), out).await
}
