//! GraphQL adapter for the dashboard.
use super::service;
use crate::{
    activity::graphql::ActivityEntry,
    auth::guards::{scope, SignedIn},
    db::{data, RequestTx},
    drafts::domain::DraftStatus,
    model::{ApiScope, JobStatus},
};
use async_graphql::{Context, Object, Result, SimpleObject};

/// Live drafts by status.
#[derive(SimpleObject, Debug)]
pub struct DraftCounts {
    /// Being edited.
    pub draft: i64,
    /// Ready to publish.
    pub ready: i64,
    /// Published.
    pub published: i64,
    /// Archived.
    pub archived: i64,
    /// All live drafts.
    pub total: i64,
}

/// Jobs by status.
#[derive(SimpleObject, Debug)]
pub struct JobCounts {
    /// Waiting for a worker.
    pub queued: i64,
    /// Held by a worker.
    pub running: i64,
    /// Done.
    pub succeeded: i64,
    /// Out of attempts.
    pub failed: i64,
    /// Canceled.
    pub canceled: i64,
}

/// What the user's dashboard shows.
#[derive(SimpleObject)]
pub struct Dashboard {
    /// Drafts by status.
    pub drafts: DraftCounts,
    /// Jobs by status.
    pub jobs: JobCounts,
    /// Confirmed photos.
    pub photo_count: i64,
    /// Bytes counted against the storage quota (the `STORAGE_BYTES` gauge of `usage`):
    /// confirmed photos and uploads reserved but not yet confirmed or expired.
    pub storage_bytes: i64,
    /// Connected marketplace accounts.
    pub connected_accounts: i64,
    /// The latest activity, newest first.
    pub recent_activity: Vec<ActivityEntry>,
}

/// Dashboard query.
#[derive(Default)]
pub struct DashboardQuery;

#[Object]
impl DashboardQuery {
    /// The caller's dashboard, gathered in one database round trip.
    #[graphql(guard = "scope(ApiScope::ActivityRead).and(SignedIn)")]
    async fn dashboard(&self, ctx: &Context<'_>) -> Result<Dashboard> {
        let tx = data::<RequestTx>(ctx)?;
        let s = service::summary(tx).await?;
        let count = |k: DraftStatus| s.drafts_by_status.get(k.as_str()).copied().unwrap_or(0);
        let job = |k: JobStatus| s.jobs_by_status.get(k.as_str()).copied().unwrap_or(0);
        Ok(Dashboard {
            drafts: DraftCounts {
                draft: count(DraftStatus::Draft),
                ready: count(DraftStatus::Ready),
                published: count(DraftStatus::Published),
                archived: count(DraftStatus::Archived),
                total: s.drafts_by_status.values().sum(),
            },
            jobs: JobCounts {
                queued: job(JobStatus::Queued),
                running: job(JobStatus::Running),
                succeeded: job(JobStatus::Succeeded),
                failed: job(JobStatus::Failed),
                canceled: job(JobStatus::Canceled),
            },
            photo_count: s.photo_count,
            storage_bytes: s.storage_bytes,
            connected_accounts: s.connected_accounts,
            recent_activity: s.recent_activity.into_iter().map(ActivityEntry::from).collect(),
        })
    }
}
