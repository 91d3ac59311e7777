//! GraphQL adapters for the web app's imports: the upload URL, the start, the list, one
//! import, and `importUpdated` (its current state, then each change).
use super::{
    runner::ImportRunner,
    runs::{self, ImportRow},
};
use crate::{
    auth::{
        guards::{live_check, ApiRule, NoApiTokens, SignedIn},
        tokens::TokenService,
    },
    db::{data, live, RequestTx},
    error::{parse_id, AppError},
    events::{Event, EventBus, Topic},
    photos::graphql::HttpHeader,
    principal::Principal,
};
use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;

/// Where an import is in its life.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ImportStatus {
    /// Started, waiting for the server to take it.
    Queued,
    /// Being unpacked, checked and imported.
    Running,
    /// Every valid record is in the account (rejected ones are in the report).
    Succeeded,
    /// Stopped: the archive was refused, a plan limit was reached, or the server stopped
    /// (start it again: what was imported is skipped).
    Failed,
}

impl ImportStatus {
    fn parse(s: &str) -> Result<Self, AppError> {
        Ok(match s {
            "queued" => ImportStatus::Queued,
            "running" => ImportStatus::Running,
            "succeeded" => ImportStatus::Succeeded,
            "failed" => ImportStatus::Failed,
            other => return Err(AppError::Internal(anyhow::anyhow!("unknown import status {other}"))),
        })
    }
}

/// One file of an import: what checking found and what was imported.
#[derive(SimpleObject, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ImportFileCount {
    /// The file (`drafts.jsonl`, ...).
    pub file: String,
    /// Records (non-blank lines).
    pub records: i64,
    /// Records that passed every check.
    pub valid: i64,
    /// Records rejected (reasons in the report).
    pub rejected: i64,
    /// Records with nothing to import (a photo never uploaded).
    pub skipped: i64,
    /// Valid records an earlier import brought (skipped).
    pub already_imported: i64,
    /// Valid records not imported before.
    pub to_import: i64,
    /// Records this import brought.
    pub imported: i64,
}

/// An import of an uploaded zip into the caller's account.
pub struct Import(ImportRow);

#[Object]
impl Import {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where it is.
    async fn status(&self) -> Result<ImportStatus> {
        Ok(ImportStatus::parse(&self.0.status)?)
    }
    /// The uploaded file's name.
    async fn file_name(&self) -> &str {
        &self.0.file_name
    }
    /// The uploaded zip's size, in bytes.
    async fn byte_size(&self) -> i64 {
        self.0.byte_size
    }
    /// Records handled so far (imported, or found imported before).
    async fn records_done(&self) -> i32 {
        self.0.records_done
    }
    /// Records to handle (known once the archive is checked; 0 before).
    async fn records_total(&self) -> i32 {
        self.0.records_total
    }
    /// 0 to 1: `recordsDone / recordsTotal`, 1 once it succeeded.
    async fn progress(&self) -> f64 {
        match (self.0.status.as_str(), self.0.records_total) {
            ("succeeded", _) => 1.0,
            (_, 0) => 0.0,
            (_, total) => (f64::from(self.0.records_done) / f64::from(total)).clamp(0.0, 1.0),
        }
    }
    /// Per file, once the import ended.
    async fn files(&self) -> Vec<ImportFileCount> {
        serde_json::from_value(self.0.counts.clone()).unwrap_or_default()
    }
    /// Records and zip entries rejected, once the import ended.
    async fn rejected(&self) -> i32 {
        self.0.rejected
    }
    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The report, once it ended: counts per file, every rejected record or zip entry
    /// (`file`, `line` — 0 for a zip entry —, `id`, `reason`), the rate.
    async fn report(&self) -> Option<Json<serde_json::Value>> {
        self.0.report.clone().map(Json)
    }
    /// The same report as text, for people (what `plinth import` prints).
    async fn report_text(&self) -> Option<&str> {
        self.0.report_text.as_deref()
    }
    /// When it was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When the server began to work on it.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Where and how to upload a zip for `startImport`.
#[derive(SimpleObject)]
pub struct ImportUpload {
    /// The upload, for `startImport`.
    pub upload_id: ID,
    /// The presigned URL.
    pub upload_url: String,
    /// The HTTP method: PUT.
    pub method: String,
    /// Headers the upload must carry, exactly (`Content-Type: application/zip` and the
    /// declared length).
    pub headers: Vec<HttpHeader>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// Import queries.
#[derive(Default)]
pub struct ImportsQuery;

#[Object]
impl ImportsQuery {
    /// The caller's newest imports (at most 20), newest first.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn imports(&self, ctx: &Context<'_>) -> Result<Vec<Import>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(runs::list(tx, tx.user_id()?).await?.into_iter().map(Import).collect())
    }

    /// One of the caller's imports; null when absent or not yours.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn import(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Import>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(runs::get(tx, tx.user_id()?, parse_id("id", &id)?).await?.map(Import))
    }

    /// The largest zip `createImportUpload` accepts, in bytes (`PLINTH_MAX_IMPORT_BYTES`).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn import_max_bytes(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(data::<Arc<ImportRunner>>(ctx)?.max_zip_bytes() as i64)
    }
}

/// Import mutations.
#[derive(Default)]
pub struct ImportsMutation;

#[Object]
impl ImportsMutation {
    /// A presigned URL to upload a zip of an import folder (docs/import.md) of
    /// `byteSize` bytes, as `application/zip`; then `startImport(uploadId)`.
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (API tokens); SUBSCRIPTION_INACTIVE;
    /// BAD_USER_INPUT (`byteSize` not 1 to `PLINTH_MAX_IMPORT_BYTES`); CONFLICT (the
    /// account already holds 3 uploads: start one, or wait a day for unused ones to be
    /// removed).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn create_import_upload(&self, ctx: &Context<'_>, byte_size: i64) -> Result<ImportUpload> {
        let tx = data::<RequestTx>(ctx)?;
        let (upload_id, put) = data::<Arc<ImportRunner>>(ctx)?.create_upload(tx, byte_size).await?;
        Ok(ImportUpload {
            upload_id: ID(upload_id.to_string()),
            upload_url: put.url,
            method: "PUT".into(),
            headers: put.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
            expires_at: put.expires_at,
        })
    }

    /// Starts importing an uploaded zip into the caller's account, as a task of the
    /// server: follow it with `importUpdated(id)`. One import at a time per account. An
    /// upload whose import failed may be started again: what was imported is skipped.
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (API tokens); SUBSCRIPTION_INACTIVE;
    /// NOT_FOUND (no such upload of yours, or it was imported or removed);
    /// BAD_USER_INPUT (`fileName`; the upload larger than `PLINTH_MAX_IMPORT_BYTES`);
    /// CONFLICT (another import of the account is queued or running);
    /// SERVICE_UNAVAILABLE (the object store did not answer: retry).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn start_import(&self, ctx: &Context<'_>, upload_id: ID, file_name: Option<String>) -> Result<Import> {
        let tx = data::<RequestTx>(ctx)?;
        let upload_id = parse_id("uploadId", &upload_id)?;
        Ok(Import(data::<Arc<ImportRunner>>(ctx)?.start(tx, upload_id, file_name.as_deref()).await?))
    }
}

/// Live imports.
#[derive(Default)]
pub struct ImportsSubscription;

#[Subscription]
impl ImportsSubscription {
    /// One import of the caller: its current state first (nothing when it is absent or
    /// not yours), then each change (progress after each batch, its end), each read again
    /// in the subscriber's own transaction before it is sent.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn import_updated(&self, ctx: &Context<'_>, id: ID) -> Result<impl Stream<Item = Result<Import>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let user_id = principal.user_id();
        let only = parse_id("id", &id)?;
        let tokens = data::<Arc<TokenService>>(ctx)?.clone();
        let recheck = live_check(tokens, ApiRule::NoApiTokens, "importUpdated");
        let reader = data::<live::LiveSource>(ctx)?.reader(principal, recheck);
        // Routing is a shortcut; the re-read is the guarantee.
        let route = move |e: &Event| match e {
            Event::ImportChanged { user_id: owner, import_id } if Some(*owner) == user_id && *import_id == only => {
                Some(*import_id)
            }
            _ => None,
        };
        let read = |tx: RequestTx, id| async move { runs::get(&tx, tx.user_id()?, id).await.map(|r| r.map(Import)) };
        Ok(live::follow_from(data::<Arc<EventBus>>(ctx)?, user_id.map(Topic::User), reader, Some(only), route, read)
            .map(|r| r.map_err(Into::into)))
    }
}
