//! GDPR: data exports and account erasure. No GraphQL or HTTP here.
//!
//! `exportMyData` queues a row in `data_exports` (one in progress per user: a second
//! request answers the first); a server task ([`Privacy::build_pending`]) builds the
//! archive ([`super::export`]) and stores it under `x/<user>/<export>`, outside the
//! user's photo prefix and outside the storage gauge (which counts `photos` rows), then
//! announces it (notification and mail). Its download is a short-lived signed URL made
//! on each read. Expired archives are swept with their objects
//! ([`Privacy::sweep_exports`]).
//!
//! `deleteMyAccount` (in `service`) schedules the erasure; [`Privacy::erase_due`]
//! erases what is due: the Stripe subscription is cancelled, the objects deleted, then
//! `priv.erase_account` archives the invoices under a pseudonym and deletes every row,
//! and the tokens of every session and API token are refused on every instance.
//!
//! Each background step holds no transaction while it calls Stripe or the store
//! (PITFALLS 14): rows are read in one short transaction acting as the owner, the
//! calls follow, and the writes come in another.
use super::export;
use crate::{
    config::AccountsConfig,
    db::{RequestMeta, RequestTx, RuntimePool},
    email::templates,
    error::{AppError, AppResult},
    events::{Event, EventBus},
    model::DbRole,
    notifications::service as notifications,
    photos::service::{confirmed_key, upload_key},
    principal::Principal,
    secretbox::SecretBox,
    storage::Storage,
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde_json::Value;
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How long a download URL works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a builder holds an export before another may take it over.
const BUILD_LEASE: Duration = Duration::from_secs(10 * 60);
/// Exports built per run of one instance.
const BUILD_BATCH: i32 = 4;
/// Builds tried before an export is marked failed.
const MAX_BUILD_ATTEMPTS: i32 = 3;
/// Expired exports and due accounts handled per run.
const SWEEP_BATCH: i32 = 100;
/// Most exports one list returns.
pub const LIST_LIMIT: i64 = 20;
/// Most exports one account may ask for in 24 hours: each copies every photo into a new
/// archive kept for `PLINTH_DATA_EXPORT_TTL_DAYS` outside the storage quota, so without
/// a cap one account could fill the object store and keep the builders busy.
pub const EXPORTS_PER_DAY: i64 = 3;

/// A data export as stored.
#[derive(Clone, Debug)]
pub struct ExportRow {
    /// Its id.
    pub id: Uuid,
    /// pending, running, ready, failed, expired.
    pub status: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its archive was stored.
    pub completed_at: Option<DateTime<Utc>>,
    /// When its archive is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its archive's key while ready.
    pub object_key: Option<String>,
    /// Its archive's size.
    pub byte_size: Option<i64>,
    /// Rows per file.
    pub counts: Value,
}

const EXPORT_COLUMNS: &str = "id, status, created_at, completed_at, expires_at, object_key, byte_size, counts";

fn export_row(r: &QueryResult) -> AppResult<ExportRow> {
    let utc = |t: DateTime<chrono::FixedOffset>| t.with_timezone(&Utc);
    Ok(ExportRow {
        id: r.try_get("", "id")?,
        status: r.try_get("", "status")?,
        created_at: utc(r.try_get("", "created_at")?),
        completed_at: r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", "completed_at")?.map(utc),
        expires_at: r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", "expires_at")?.map(utc),
        object_key: r.try_get("", "object_key")?,
        byte_size: r.try_get("", "byte_size")?,
        counts: r.try_get("", "counts")?,
    })
}

/// Where an export's archive is stored: outside `u/<user>/`, the photos' prefix.
pub fn export_key(user_id: Uuid, export_id: Uuid) -> String {
    format!("x/{user_id}/{export_id}")
}

/// Cancels a Stripe subscription now (billing's client, handed down by startup: the
/// billing domain sits above this one).
pub type CancelSubscription =
    Arc<dyn Fn(String) -> futures_util::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// What [`Privacy::new`] is built from.
pub struct PrivacyDeps {
    /// The runtime pool (background work begins its own transactions).
    pub pool: RuntimePool,
    /// The object store.
    pub storage: Arc<Storage>,
    /// Live events.
    pub bus: Arc<EventBus>,
    /// Stripe's cancellation, when billing is configured.
    pub cancel_subscription: Option<CancelSubscription>,
    /// The server secret the invoice archive's pseudonyms are keyed with.
    pub sealer: Arc<SecretBox>,
    /// Grace period, export lifetime, sweep interval.
    pub config: AccountsConfig,
    /// Per-transaction statement timeout.
    pub statement_timeout_ms: u64,
}

/// Data exports and account erasure.
pub struct Privacy {
    deps: PrivacyDeps,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Privacy(..)")
    }
}

/// What an erasure must undo outside the database, read before it.
struct Footprint {
    subscriptions: Vec<String>,
    objects: Vec<String>,
    sessions: Vec<Uuid>,
    api_tokens: Vec<String>,
}

impl Privacy {
    /// Wires the service.
    pub fn new(deps: PrivacyDeps) -> Self {
        Privacy { deps }
    }

    /// The configuration.
    pub fn config(&self) -> &AccountsConfig {
        &self.deps.config
    }

    /// The pseudonym of `user_id` in the invoice archive: HMAC-SHA256 (128 bits, hex) of
    /// the id under the server's secret, so the archive names nobody to whoever lacks it.
    pub fn pseudonym(sealer: &SecretBox, user_id: Uuid) -> String {
        sealer.sign(format!("invoice-archive:{user_id}").as_bytes())
    }

    async fn begin(&self, source: &str) -> anyhow::Result<RequestTx> {
        let meta = RequestMeta::internal(source);
        Ok(RequestTx::begin(&self.deps.pool, Principal::System, meta, self.deps.statement_timeout_ms).await?)
    }

    /// Queues an export of the caller's data, or answers the one already in progress.
    /// At most [`EXPORTS_PER_DAY`] are queued per account in 24 hours.
    ///
    /// Errors: UNAUTHENTICATED; RATE_LIMITED; INTERNAL.
    pub async fn request_export(&self, tx: &RequestTx) -> AppResult<(ExportRow, bool)> {
        let user_id = tx.user_id()?;
        let recent = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) AS n,
                        ceil(extract(epoch FROM min(created_at) + interval '1 day' - now()))::bigint AS wait
                   FROM data_exports WHERE user_id = $1 AND created_at > now() - interval '1 day'",
                [user_id.into()],
            ))
            .await?;
        if let Some(r) = recent {
            let n: i64 = r.try_get("", "n")?;
            if n >= EXPORTS_PER_DAY {
                if let Some(running) = self.in_progress(tx, user_id).await? {
                    return Ok((running, false));
                }
                let wait: Option<i64> = r.try_get("", "wait")?;
                return Err(AppError::RateLimited { retry_after_secs: wait.unwrap_or(1).max(1) as u64 });
            }
        }
        // Two requests at once: the unique index makes the second wait for the first's
        // commit, then find its row.
        let inserted = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "INSERT INTO data_exports (id, user_id) VALUES ($1, $2)
                     ON CONFLICT (user_id) WHERE status IN ('pending', 'running') DO NOTHING
                     RETURNING {EXPORT_COLUMNS}"
                ),
                [Uuid::now_v7().into(), user_id.into()],
            ))
            .await?;
        if let Some(row) = inserted {
            let row = export_row(&row)?;
            let entry = crate::activity::service::Entry::by_user(
                user_id,
                "account.export_requested",
                Some(("data_export", row.id)),
                serde_json::json!({}),
            );
            crate::activity::service::record(tx, entry).await?;
            return Ok((row, true));
        }
        let running = self
            .in_progress(tx, user_id)
            .await?
            .ok_or_else(|| AppError::Conflict("an export finished meanwhile; ask again".into()))?;
        Ok((running, false))
    }

    async fn in_progress(&self, tx: &RequestTx, user_id: Uuid) -> AppResult<Option<ExportRow>> {
        let row = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "SELECT {EXPORT_COLUMNS} FROM data_exports
                      WHERE user_id = $1 AND status IN ('pending', 'running')"
                ),
                [user_id.into()],
            ))
            .await?;
        row.as_ref().map(export_row).transpose()
    }

    /// The caller's newest exports.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn exports(&self, tx: &RequestTx) -> AppResult<Vec<ExportRow>> {
        let user_id = tx.user_id()?;
        let rows = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "SELECT {EXPORT_COLUMNS} FROM data_exports WHERE user_id = $1
                      ORDER BY created_at DESC, id DESC LIMIT $2"
                ),
                [user_id.into(), LIST_LIMIT.into()],
            ))
            .await?;
        rows.iter().map(export_row).collect()
    }

    /// A download URL for a ready, unexpired export, valid for [`DOWNLOAD_URL_TTL`].
    ///
    /// Errors: INTERNAL (signing).
    pub async fn download_url(&self, row: &ExportRow) -> AppResult<Option<String>> {
        let (Some(key), "ready") = (&row.object_key, row.status.as_str()) else { return Ok(None) };
        if row.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Ok(None);
        }
        let name = format!("plinth-export-{}.zip", row.created_at.format("%Y-%m-%d"));
        Ok(Some(self.deps.storage.presign_get(key, DOWNLOAD_URL_TTL, "application/zip", &name).await?))
    }

    /// Builds the exports waiting (this instance's share); how many were stored.
    ///
    /// Errors: the database's (a failed export is recorded and does not stop the run).
    pub async fn build_pending(&self) -> anyhow::Result<usize> {
        let tx = self.begin("accounts.build_exports").await?;
        let claimed = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, id FROM priv.data_exports_claim($1, $2)",
                [BUILD_BATCH.into(), (BUILD_LEASE.as_millis() as i64).into()],
            ))
            .await?;
        tx.commit_without_events().await?;
        let mut built = 0;
        for r in claimed {
            let (user_id, id): (Uuid, Uuid) = (r.try_get("", "user_id")?, r.try_get("", "id")?);
            let started = std::time::Instant::now();
            match self.build_one(user_id, id).await {
                Ok(bytes) => {
                    built += 1;
                    tracing::info!(export_id = %id, bytes, ms = started.elapsed().as_millis() as u64, "data export built");
                }
                Err(e) => {
                    tracing::warn!(export_id = %id, error = format!("{e:#}"), "building a data export failed");
                    self.record_failure(user_id, id, &format!("{e:#}")).await?;
                }
            }
        }
        Ok(built)
    }

    /// Builds, stores and announces one export; the archive's size.
    async fn build_one(&self, user_id: Uuid, id: Uuid) -> anyhow::Result<usize> {
        // The rows, in one short transaction acting as the owner.
        let tx = self.begin("accounts.build_exports").await?;
        tx.act_for_system(DbRole::User, user_id).await?;
        let collected = export::collect(&tx, user_id).await?;
        tx.rollback().await;
        // The objects and the compression, holding no transaction.
        let (bytes, counts) = export::build_archive(collected, &self.deps.storage, user_id, id).await?;
        let key = export_key(user_id, id);
        self.deps.storage.put(&key, "application/zip", &bytes).await?;
        let size = bytes.len();
        let expires_at = Utc::now() + chrono::Duration::days(self.deps.config.export_ttl_days);
        let tx = self.begin("accounts.build_exports").await?;
        tx.act_for_system(DbRole::User, user_id).await?;
        let stored = tx
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE data_exports
                    SET status = 'ready', object_key = $3, byte_size = $4, counts = $5, completed_at = now(),
                        expires_at = $6, leased_until = NULL, updated_at = now(), error = NULL
                  WHERE user_id = $1 AND id = $2 AND status = 'running'",
                [user_id.into(), id.into(), key.clone().into(), (size as i64).into(), counts.into(), expires_at.into()],
            ))
            .await?
            .rows_affected();
        if stored == 0 {
            // Taken over by another builder (our lease lapsed) or the account is gone.
            tx.rollback().await;
            return Ok(size);
        }
        let message = templates::data_export_ready(&expires_at.format("%Y-%m-%d").to_string());
        notifications::notify(&tx, user_id, message).await.map_err(AppError::into_anyhow)?;
        tx.commit(&self.deps.bus).await?;
        Ok(size)
    }

    async fn record_failure(&self, user_id: Uuid, id: Uuid, error: &str) -> anyhow::Result<()> {
        let tx = self.begin("accounts.build_exports").await?;
        tx.act_for_system(DbRole::User, user_id).await?;
        // Retried at the lease's end, until the attempts run out.
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE data_exports
                SET error = left($3, 500), updated_at = now(),
                    status = CASE WHEN attempts >= $4 THEN 'failed' ELSE status END,
                    leased_until = CASE WHEN attempts >= $4 THEN NULL ELSE now() + interval '30 seconds' END
              WHERE user_id = $1 AND id = $2 AND status = 'running'",
            [user_id.into(), id.into(), error.into(), MAX_BUILD_ATTEMPTS.into()],
        ))
        .await?;
        tx.commit_without_events().await?;
        Ok(())
    }

    /// Deletes the archives of exports expired at `at` (objects first, then the row is
    /// marked expired); how many. Public with its clock so tests can run it for any
    /// moment.
    ///
    /// Errors: the database's, the store's (what is left is swept next run).
    pub async fn sweep_exports(&self, at: DateTime<Utc>) -> anyhow::Result<usize> {
        let tx = self.begin("accounts.sweep_exports").await?;
        let rows = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, id FROM priv.data_exports_expired($1, $2)",
                [at.into(), SWEEP_BATCH.into()],
            ))
            .await?;
        tx.commit_without_events().await?;
        let mut n = 0;
        for r in rows {
            let (user_id, id): (Uuid, Uuid) = (r.try_get("", "user_id")?, r.try_get("", "id")?);
            self.deps.storage.delete(&export_key(user_id, id)).await?;
            let tx = self.begin("accounts.sweep_exports").await?;
            tx.act_for_system(DbRole::User, user_id).await?;
            n += tx
                .execute(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "UPDATE data_exports SET status = 'expired', object_key = NULL, updated_at = now()
                      WHERE user_id = $1 AND id = $2 AND status = 'ready'",
                    [user_id.into(), id.into()],
                ))
                .await?
                .rows_affected() as usize;
            tx.commit_without_events().await?;
        }
        Ok(n)
    }

    /// Erases every account whose deletion is due at `at`; how many. An account whose
    /// Stripe cancellation or object deletion fails is left for the next run, whole.
    /// Public with its clock so tests can run it for any moment.
    ///
    /// Errors: the database's.
    pub async fn erase_due(&self, at: DateTime<Utc>) -> anyhow::Result<usize> {
        let tx = self.begin("accounts.erase_due").await?;
        let due = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id FROM priv.accounts_due_for_deletion($1, $2)",
                [at.into(), SWEEP_BATCH.into()],
            ))
            .await?;
        tx.commit_without_events().await?;
        let mut n = 0;
        for r in due {
            let user_id: Uuid = r.try_get("", "user_id")?;
            match self.erase_one(user_id, at).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(user_id = %user_id, error = format!("{e:#}"), "erasing an account failed"),
            }
        }
        Ok(n)
    }

    async fn erase_one(&self, user_id: Uuid, at: DateTime<Utc>) -> anyhow::Result<bool> {
        // First, committed on its own: the account is marked as being erased, so a
        // sign-in from now on no longer keeps it (the work below, outside the database,
        // cannot be undone). False: a sign-in cancelled it since the list was read.
        let tx = self.begin("accounts.erase_due").await?;
        let begun = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.begin_erasure($1, $2) AS begun",
                [user_id.into(), at.into()],
            ))
            .await?
            .map(|r| r.try_get::<bool>("", "begun"))
            .transpose()?
            .unwrap_or(false);
        if begun {
            // From the mark on, the account's tokens are refused and its sockets close on
            // every instance (sign-in and refresh refuse a marked account), so nothing
            // writes rows or objects while the erasure reads and deletes them.
            tx.emit(Event::TokensRevoked { user_id, before: Utc::now() + chrono::Duration::seconds(1) });
            tx.emit(Event::SessionsRevoked { user_id, session_id: None });
        }
        tx.commit(&self.deps.bus).await?;
        if !begun {
            return Ok(false);
        }
        let footprint = self.footprint(user_id).await?;
        // Outside any transaction: Stripe, then the store.
        if !footprint.subscriptions.is_empty() {
            let cancel = self
                .deps
                .cancel_subscription
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("the account has a subscription and billing is not configured"))?;
            for sub in &footprint.subscriptions {
                cancel(sub.clone()).await?;
            }
        }
        for key in &footprint.objects {
            self.deps.storage.delete(key).await?;
        }
        // Then the account's folders whole: objects no row of the user's lists (a staff
        // attachment on its ticket, hidden from the user's role; an upload that landed
        // after the list was read; import zips, which may hold marketplace credentials).
        for prefix in [format!("u/{user_id}"), format!("x/{user_id}"), format!("i/{user_id}")] {
            self.deps.storage.delete_prefix(&prefix).await?;
        }
        let tx = self.begin("accounts.erase_due").await?;
        let subject = Self::pseudonym(&self.deps.sealer, user_id);
        let erased = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.erase_account($1, $2, $3) AS erased",
                [user_id.into(), subject.into(), at.into()],
            ))
            .await?
            .map(|r| r.try_get::<bool>("", "erased"))
            .transpose()?
            .unwrap_or(false);
        if !erased {
            // Erased meanwhile by another instance's sweeper.
            tx.rollback().await;
            return Ok(false);
        }
        // Every token of the account is refused at once on every instance, and its
        // sockets close.
        tx.emit(Event::TokensRevoked { user_id, before: Utc::now() + chrono::Duration::seconds(1) });
        for session_id in footprint.sessions {
            tx.emit(Event::SessionsRevoked { user_id, session_id: Some(session_id) });
        }
        for revocation_id in footprint.api_tokens {
            tx.emit(Event::ApiTokenRevoked { revocation_id });
        }
        tx.commit(&self.deps.bus).await?;
        tracing::info!(user_id = %user_id, "account erased");
        Ok(true)
    }

    /// What the account has outside the database, and the tokens to refuse, read as
    /// its owner in one short transaction.
    async fn footprint(&self, user_id: Uuid) -> anyhow::Result<Footprint> {
        let tx = self.begin("accounts.erase_due").await?;
        tx.act_for_system(DbRole::User, user_id).await?;
        let strings = |sql: &'static str| {
            let tx = tx.clone();
            async move {
                let rows =
                    tx.query_all(Statement::from_sql_and_values(DbBackend::Postgres, sql, [user_id.into()])).await?;
                rows.iter().map(|r| r.try_get::<String>("", "v")).collect::<Result<Vec<_>, _>>()
            }
        };
        let subscriptions = strings(
            "SELECT subscription_id AS v FROM billing_subscriptions
              WHERE user_id = $1 AND NOT ended AND status NOT IN ('canceled', 'incomplete_expired')",
        )
        .await?;
        let mut objects =
            strings("SELECT object_key AS v FROM data_exports WHERE user_id = $1 AND object_key IS NOT NULL").await?;
        let photos = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, object_key FROM photos WHERE user_id = $1",
                [user_id.into()],
            ))
            .await?;
        for p in photos {
            let id: Uuid = p.try_get("", "id")?;
            objects.push(p.try_get("", "object_key")?);
            objects.push(upload_key(user_id, id));
            objects.push(confirmed_key(user_id, id));
        }
        objects.sort();
        objects.dedup();
        let sessions = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
                [user_id.into()],
            ))
            .await?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        let api_tokens = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT revocation_id FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL",
                [user_id.into()],
            ))
            .await?
            .iter()
            .map(|r| r.try_get::<String>("", "revocation_id"))
            .collect::<Result<Vec<_>, _>>()?;
        tx.rollback().await;
        Ok(Footprint { subscriptions, objects, sessions, api_tokens })
    }
}
