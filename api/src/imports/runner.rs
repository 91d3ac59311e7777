//! Imports from the web app (docs/import.md, "From the web app"): the signed-in user
//! uploads a zip of an import folder through a presigned URL
//! ([`ImportRunner::create_upload`], stored under `i/<user>/<upload>`, outside the photos'
//! prefix and the storage gauge), then starts it ([`ImportRunner::start`]): a row of
//! `imports`, queued in the request's transaction, then run once it committed as a task of
//! this server process (not a job: the job protocol's kinds are fixed and its workers run
//! elsewhere). The task fetches the zip, unpacks it on a blocking thread within
//! [`archive::Limits`] and runs the same [`Importer`] as `plinth import`: the same checks,
//! the same row-level-secured batches acting as the user, the same mapping table, so a
//! second import of the same folder imports nothing.
//!
//! One import at a time per account: the partial unique index `imports_one_active`
//! makes a second start CONFLICT. The task holds a lease on its row (the jobs' lease,
//! `PLINTH_JOB_LEASE_SECS`), extended with each progress write and at least every third
//! of it; a server that stops mid-import leaves a lease that lapses, and the sweeper
//! ([`super::tasks::fail_stale`]) or the user's next start marks that import failed: it
//! can be started again and imports only what is missing. Each change is published as
//! [`Event::ImportChanged`] for `importUpdated`.
use super::{
    archive::{self, Refused},
    format::Kind,
    runs::{self, ImportRow, Outcome},
    service::{Importer, Options, Progress, Report},
};
use crate::{
    catalog::Catalog,
    db::{RequestMeta, RequestTx, RuntimePool},
    error::{AppError, AppResult},
    events::{Event, EventBus},
    model::DbRole,
    photos::service::PhotoService,
    principal::Principal,
    secretbox::SecretBox,
    storage::{PresignedPut, Storage},
};
use serde_json::{json, Value};
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use uuid::Uuid;

/// How long an upload URL works.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(30 * 60);
/// The content type an upload is signed for.
pub const ZIP: &str = "application/zip";
/// Uploads an account holds at once (handed out and not yet removed): each is up to
/// `PLINTH_MAX_IMPORT_BYTES` in the store, outside the plan's storage gauge.
pub const MAX_UPLOADS: i64 = 3;
/// How long an upload is kept once nothing happens to it (never started, or its last
/// import failed): then the sweeper removes it ([`super::tasks::sweep_uploads`]).
pub const UPLOAD_KEPT: Duration = Duration::from_secs(24 * 3600);
/// Shortest pause between two progress writes.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Where an uploaded zip is stored.
pub fn upload_key(user_id: Uuid, upload_id: Uuid) -> String {
    format!("i/{user_id}/{upload_id}")
}

/// What the runner is built from.
pub struct RunnerDeps {
    /// The runtime pool (the task begins its own transactions).
    pub pool: RuntimePool,
    /// Per-transaction statement timeout.
    pub statement_timeout_ms: u64,
    /// The plans (the account's limits).
    pub catalog: Arc<Catalog>,
    /// Photos and their checks.
    pub photos: Arc<PhotoService>,
    /// Seals marketplace credentials.
    pub sealer: Arc<SecretBox>,
    /// Where uploads are stored.
    pub storage: Arc<Storage>,
    /// Live events.
    pub bus: Arc<EventBus>,
    /// Where archives are unpacked (one folder per import, removed after it).
    pub work_dir: PathBuf,
    /// Largest zip accepted (`PLINTH_MAX_IMPORT_BYTES`).
    pub max_zip_bytes: u64,
    /// What an archive may hold unpacked.
    pub limits: archive::Limits,
    /// The lease a running import holds on its row.
    pub lease: Duration,
    /// Records per batch.
    pub batch_size: usize,
}

/// Uploads and runs of the web app's imports.
pub struct ImportRunner {
    deps: RunnerDeps,
}

impl std::fmt::Debug for ImportRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImportRunner(..)")
    }
}

/// Why an import failed, for its owner, and the report so far.
struct Failure {
    message: String,
    report: Option<Box<Report>>,
}

impl Failure {
    fn plain(message: impl Into<String>) -> Self {
        Failure { message: message.into(), report: None }
    }
}

/// A file name as an import shows it: trimmed, 1 to 255 characters, no control
/// characters.
///
/// Errors: BAD_USER_INPUT (`fileName`).
fn file_name(name: Option<&str>) -> AppResult<String> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or("import.zip");
    if name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(AppError::bad_input("fileName", "must be 1 to 255 characters without control characters"));
    }
    Ok(name.to_owned())
}

impl ImportRunner {
    /// Wires the runner.
    pub fn new(deps: RunnerDeps) -> Self {
        ImportRunner { deps }
    }

    /// The largest zip accepted, in bytes.
    pub fn max_zip_bytes(&self) -> u64 {
        self.deps.max_zip_bytes
    }

    /// A URL to upload a zip of `byte_size` bytes (`application/zip`) to, and the
    /// upload's id for [`ImportRunner::start`]. The upload is recorded: an account holds
    /// at most [`MAX_UPLOADS`]; one is removed once its import succeeded and its URL
    /// expired, or [`UPLOAD_KEPT`] after nothing more happened to it.
    ///
    /// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (`byteSize` not
    /// 1 to `PLINTH_MAX_IMPORT_BYTES`); CONFLICT (the account already holds
    /// [`MAX_UPLOADS`] uploads); INTERNAL (signing).
    pub async fn create_upload(&self, tx: &RequestTx, byte_size: i64) -> AppResult<(Uuid, PresignedPut)> {
        let user_id = tx.active_user_id()?;
        if byte_size <= 0 || byte_size as u64 > self.deps.max_zip_bytes {
            return Err(AppError::bad_input(
                "byteSize",
                format!("must be 1 to {} bytes (PLINTH_MAX_IMPORT_BYTES)", self.deps.max_zip_bytes),
            ));
        }
        let upload_id = Uuid::now_v7();
        if !runs::reserve_upload(tx, user_id, upload_id, byte_size, MAX_UPLOADS).await? {
            return Err(AppError::Conflict(format!(
                "{MAX_UPLOADS} uploads are waiting: start one of them, or wait a day for the unused ones to be removed"
            )));
        }
        let key = upload_key(user_id, upload_id);
        let put = self.deps.storage.presign_put(&key, ZIP, byte_size as u64, UPLOAD_URL_TTL).await?;
        Ok((upload_id, put))
    }

    /// Queues the import of the caller's upload `upload_id` (named `name`), started by
    /// this server once the request commits. An import the caller started before whose
    /// server went away is marked failed first. An upload may be started again after
    /// its import failed (what was imported is skipped).
    ///
    /// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; NOT_FOUND (no such upload of the
    /// caller); BAD_USER_INPUT (`fileName`; the upload larger than allowed); CONFLICT
    /// (another import of the account is queued or running); SERVICE_UNAVAILABLE (the
    /// store); INTERNAL.
    pub async fn start(self: &Arc<Self>, tx: &RequestTx, upload_id: Uuid, name: Option<&str>) -> AppResult<ImportRow> {
        let user_id = tx.active_user_id()?;
        let name = file_name(name)?;
        if !runs::upload_exists(tx, user_id, upload_id).await? {
            return Err(AppError::NotFound("no such upload: upload the zip first (createImportUpload)".into()));
        }
        let key = upload_key(user_id, upload_id);
        // The store is asked holding no connection (PITFALLS 14).
        let info = tx
            .without_transaction(self.deps.storage.head(&key))
            .await?
            .map_err(|e| AppError::ServiceUnavailable(format!("the object store did not answer ({e}); retry shortly")))?
            .ok_or_else(|| AppError::NotFound("no such upload: upload the zip first (createImportUpload)".into()))?;
        if info.size > self.deps.max_zip_bytes {
            return Err(AppError::bad_input("uploadId", "the upload is larger than PLINTH_MAX_IMPORT_BYTES"));
        }
        runs::fail_stale(tx, user_id).await?;
        let row = runs::insert(tx, user_id, upload_id, &name, info.size as i64, self.deps.lease).await?;
        let data = json!({ "fileName": name, "byteSize": info.size });
        crate::activity::service::record(
            tx,
            crate::activity::service::Entry::by_user(user_id, "import.started", Some(("import", row.id)), data),
        )
        .await?;
        tx.emit(Event::ImportChanged { user_id, import_id: row.id });
        let runner = self.clone();
        let id = row.id;
        tx.after_commit(move || {
            tokio::spawn(async move { runner.run(user_id, id).await });
        });
        Ok(row)
    }

    /// One write acting as `user_id`, committed with its events.
    async fn write<T, F, Fut>(&self, user_id: Uuid, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(RequestTx) -> Fut,
        Fut: std::future::Future<Output = AppResult<T>>,
    {
        let tx = RequestTx::begin(
            &self.deps.pool,
            Principal::System,
            RequestMeta::internal("imports.run"),
            self.deps.statement_timeout_ms,
        )
        .await?;
        tx.act_for_system(DbRole::User, user_id).await?;
        match work(tx.clone()).await {
            Ok(v) => {
                tx.commit(&self.deps.bus).await?;
                Ok(v)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e.into_anyhow())
            }
        }
    }

    /// Runs the queued import `id` of `user_id` to its end, recording how it ended.
    pub async fn run(self: Arc<Self>, user_id: Uuid, id: Uuid) {
        let lease = self.deps.lease;
        let claimed = self
            .write(user_id, |tx| async move {
                let row = runs::claim(&tx, user_id, id, lease).await?;
                tx.emit(Event::ImportChanged { user_id, import_id: id });
                Ok(row)
            })
            .await;
        let row = match claimed {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(import_id = %id, error = format!("{e:#}"), "claiming an import failed");
                return;
            }
        };
        tracing::info!(import_id = %id, bytes = row.byte_size, "import started");
        let started = std::time::Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, progress_rx) = tokio::sync::watch::channel((0usize, 0usize));
        let last_progress = progress_rx.clone();
        let keeper = tokio::spawn(self.clone().keep(user_id, id, progress_rx, stop.clone()));
        let dir = self.deps.work_dir.join(id.to_string());
        // The importer's batches (streams of futures over borrowed records, as `plinth
        // import` runs them) are not provably Send, so the run takes a blocking thread of
        // its own and drives them there with the runtime's handle; its I/O still runs on
        // the runtime.
        let handle = tokio::runtime::Handle::current();
        let (runner, work) = (self.clone(), (row.clone(), dir.clone(), stop.clone()));
        let result = tokio::task::spawn_blocking(move || {
            let (row, dir, stop) = work;
            handle.block_on(runner.import(user_id, row, dir, stop, progress_tx))
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(import_id = %id, error = %e, "an import's task failed");
            Err(Failure::plain("the import stopped on a server error; start it again to import what is missing"))
        });
        keeper.abort();
        let _ = keeper.await;
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(import_id = %id, error = %e, "removing an import's working folder");
            }
        }
        let (done, total) = *last_progress.borrow();
        let outcome = outcome(result, (clamp_i32(done), clamp_i32(total)));
        let succeeded = outcome.status == "succeeded";
        tracing::info!(
            import_id = %id,
            status = outcome.status,
            rejected = outcome.rejected,
            ms = started.elapsed().as_millis() as u64,
            "import ended"
        );
        let ended = self
            .write(user_id, |tx| async move {
                let ended = runs::finish(&tx, user_id, id, outcome).await?;
                tx.emit(Event::ImportChanged { user_id, import_id: id });
                Ok(ended)
            })
            .await;
        if let Err(e) = ended {
            tracing::error!(import_id = %id, error = format!("{e:#}"), "recording an import's end failed");
        }
        // A failed import's upload stays, so it can be started again (the sweeper
        // removes it a day later). An imported one's zip goes now; its row stays until
        // its upload URL expired (the sweeper then deletes the object once more: a PUT
        // to the URL meanwhile would otherwise leave a zip nothing knows of).
        if succeeded {
            if let Err(e) = self.deps.storage.delete(&upload_key(user_id, row.upload_id)).await {
                tracing::warn!(import_id = %id, error = %e, "removing an imported upload (the sweeper will)");
            }
        }
    }

    /// Writes the progress the import reports (at most every [`PROGRESS_EVERY`]) and
    /// extends the lease at least every third of it; sets `stop` when the row no longer
    /// runs (the sweeper took it: the import stops between two batches).
    async fn keep(
        self: Arc<Self>,
        user_id: Uuid,
        id: Uuid,
        mut rx: tokio::sync::watch::Receiver<(usize, usize)>,
        stop: Arc<AtomicBool>,
    ) {
        let lease = self.deps.lease;
        loop {
            if let Ok(Err(_)) = tokio::time::timeout(lease / 3, rx.changed()).await {
                return;
            }
            let (done, total) = *rx.borrow_and_update();
            let (done, total) = (clamp_i32(done), clamp_i32(total));
            let written = self
                .write(user_id, |tx| async move {
                    let running = runs::progress(&tx, user_id, id, done, total, lease).await?;
                    tx.emit(Event::ImportChanged { user_id, import_id: id });
                    Ok(running)
                })
                .await;
            match written {
                Ok(true) => {}
                Ok(false) => {
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => tracing::warn!(import_id = %id, error = format!("{e:#}"), "recording an import's progress"),
            }
            tokio::time::sleep(PROGRESS_EVERY).await;
        }
    }

    /// Fetches, unpacks and imports; the report, or why it failed.
    async fn import(
        &self,
        user_id: Uuid,
        row: ImportRow,
        dir: PathBuf,
        stop: Arc<AtomicBool>,
        progress: tokio::sync::watch::Sender<(usize, usize)>,
    ) -> Result<Report, Failure> {
        let key = upload_key(user_id, row.upload_id);
        let bytes = match self.deps.storage.get(&key).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(import_id = %row.id, error = %e, "reading an import's upload");
                return Err(Failure::plain("the uploaded zip could not be read: upload it again"));
            }
        };
        if bytes.len() as u64 > self.deps.max_zip_bytes {
            return Err(Failure::plain("the upload is larger than PLINTH_MAX_IMPORT_BYTES"));
        }
        let (limits, at) = (self.deps.limits, dir);
        let unpacked = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&at);
            archive::unpack(&bytes, &at, limits)
        })
        .await;
        let unpacked = match unpacked {
            Ok(Ok(u)) => u,
            Ok(Err(Refused::Archive(m))) => return Err(Failure::plain(m)),
            Ok(Err(Refused::Io(e))) => {
                tracing::error!(import_id = %row.id, error = %e, "unpacking an import");
                return Err(Failure::plain("the archive could not be unpacked on the server; try again later"));
            }
            Err(e) => {
                tracing::error!(import_id = %row.id, error = %e, "the unpacking task failed");
                return Err(Failure::plain("the archive could not be unpacked on the server; try again later"));
            }
        };
        if !Kind::ALL.iter().any(|k| unpacked.root.join(k.file()).is_file()) {
            let mut report =
                Report { folder: row.file_name.clone(), rejected: unpacked.rejected, ..Default::default() };
            report.stopped = Some(no_files());
            return Err(Failure { message: no_files(), report: Some(Box::new(report)) });
        }
        let importer = Importer {
            pool: &self.deps.pool,
            statement_timeout_ms: self.deps.statement_timeout_ms,
            catalog: &self.deps.catalog,
            photos: &self.deps.photos,
            sealer: &self.deps.sealer,
        };
        let options = Options { dry_run: false, batch_size: self.deps.batch_size.max(1), pause: Duration::ZERO };
        let tell = |p: Progress| {
            let _ = progress.send((p.all_done, p.all_total));
        };
        let label = format!("account {user_id}");
        match importer.run_for(user_id, &label, &unpacked.root, options, &stop, &tell).await {
            Ok(mut report) => {
                report.folder = row.file_name.clone();
                let mut rejected = unpacked.rejected;
                rejected.append(&mut report.rejected);
                report.rejected = rejected;
                if let Some(why) = report.stopped.clone() {
                    return Err(Failure { message: why, report: Some(Box::new(report)) });
                }
                if report.interrupted {
                    return Err(Failure {
                        message: "the import was stopped between two batches; start it again to import what is missing"
                            .into(),
                        report: Some(Box::new(report)),
                    });
                }
                Ok(report)
            }
            Err(e) => {
                // A plan's limit reached mid-import is the user's to read; anything else
                // stays in the log.
                let quota = e.root_cause().to_string();
                if quota.starts_with("stopped before exceeding") {
                    return Err(Failure::plain(format!("{e:#}")));
                }
                tracing::error!(import_id = %row.id, error = format!("{e:#}"), "an import failed");
                Err(Failure::plain(
                    "the import stopped on a server error; what was imported stays: start it again to import what is missing",
                ))
            }
        }
    }
}

fn no_files() -> String {
    format!("the archive holds none of {}", Kind::ALL.map(|k| k.file()).join(", "))
}

fn clamp_i32(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// How the import ended, for its row, with the last progress reported.
fn outcome(result: Result<Report, Failure>, records: (i32, i32)) -> Outcome {
    let (status, report, error) = match result {
        Ok(report) => ("succeeded", Some(report), None),
        Err(Failure { message, report }) => ("failed", report.map(|r| *r), Some(message)),
    };
    let counts = report.as_ref().map(|r| json!(r.files)).unwrap_or_else(|| json!([]));
    let rejected = report.as_ref().map(|r| r.rejected.len()).unwrap_or(0).min(i32::MAX as usize) as i32;
    let report_text = report.as_ref().map(|r| {
        let mut text = r.to_text();
        if let Some(e) = &error {
            if r.stopped.is_none() {
                text.push_str(&format!("failed: {e}\n"));
            }
        }
        text
    });
    let report_json: Option<Value> = report.as_ref().and_then(|r| serde_json::to_value(r).ok());
    let report_text = report_text.or_else(|| error.as_ref().map(|e| format!("failed: {e}\n")));
    let report_json = report_json.or_else(|| error.as_ref().map(|e| json!({ "error": e })));
    Outcome { status, counts, rejected, report: report_json, report_text, error, records }
}
