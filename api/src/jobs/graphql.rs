//! GraphQL adapters for jobs: the users' side, the workers' side, and the live
//! `jobUpdated` subscription.
use super::service::{self, Claimed, JobFilter, QueueSettings};
use crate::{
    auth::{
        guards::{live_check, scope, ActiveSubscription, ApiRule, NoApiTokens, SignedIn, UserOrWorker, WorkerOnly},
        tokens::TokenService,
    },
    db::{data, live, RequestTx},
    error::{parse_id, AppError},
    events::{Event, EventBus, RecvError, Topic},
    model::{ApiScope, JobKind, JobStatus},
    pagination::PageRequest,
    photos::service::PhotoService,
    principal::Principal,
};
use async_graphql::{
    connection::Connection,
    dataloader::{DataLoader, HashMapCache, Loader},
    Context, InputObject, Json, Object, Result, SimpleObject, Subscription, ID,
};
use chrono::{DateTime, Utc};
use entity::{job_logs, jobs};
use futures_util::{Stream, StreamExt};
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

/// A job.
pub struct Job {
    model: jobs::Model,
    /// The work input given to the worker that claimed it.
    input: Option<serde_json::Value>,
}

impl From<jobs::Model> for Job {
    fn from(model: jobs::Model) -> Self {
        Job { model, input: None }
    }
}

#[Object]
impl Job {
    /// The job's id.
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// What it does.
    async fn kind(&self) -> Result<JobKind> {
        Ok(service::kind_of(&self.model)?)
    }
    /// Where it is in its life.
    async fn status(&self) -> Result<JobStatus> {
        Ok(service::status_of(&self.model)?)
    }
    /// Progress, 0 to 1.
    async fn progress(&self) -> f64 {
        self.model.progress
    }
    /// The worker's latest message.
    async fn message(&self) -> Option<&str> {
        self.model.message.as_deref()
    }
    /// The draft it works on.
    async fn draft_id(&self) -> Option<ID> {
        self.model.draft_id.map(|d| ID(d.to_string()))
    }
    /// Its input (for the worker that claimed it: everything it needs to work).
    async fn input(&self) -> Json<serde_json::Value> {
        Json(self.input.clone().unwrap_or_else(|| self.model.input.clone()))
    }
    /// What its worker returned.
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.model.result.clone().map(Json)
    }
    /// The last failure.
    async fn error(&self) -> Option<&str> {
        self.model.error.as_deref()
    }
    /// Attempts started.
    async fn attempts(&self) -> i32 {
        self.model.attempts
    }
    /// Attempts allowed.
    async fn max_attempts(&self) -> i32 {
        self.model.max_attempts
    }
    /// Whether its owner asked to cancel it while it ran.
    async fn cancel_requested(&self) -> bool {
        self.model.cancel_requested
    }
    /// Not claimed before this time (retry backoff).
    async fn run_after(&self) -> DateTime<Utc> {
        self.model.run_after.with_timezone(&Utc)
    }
    /// When the current claim lapses without a progress report.
    async fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.model.lease_expires_at.map(|t| t.with_timezone(&Utc))
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at.with_timezone(&Utc)
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at.with_timezone(&Utc)
    }
    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.model.finished_at.map(|t| t.with_timezone(&Utc))
    }
    /// Its log, oldest first.
    #[graphql(complexity = "crate::graphql::LOGS_PER_JOB_ESTIMATE * child_complexity + 1")]
    async fn logs(&self, ctx: &Context<'_>) -> Result<Vec<JobLog>> {
        let Ok(loader) = ctx.data::<LogsLoader>() else {
            return Err(AppError::bad_input("logs", "is not available in subscriptions; query job(id) for it").into());
        };
        let logs = loader.load_one(self.model.id).await?;
        Ok(logs.unwrap_or_default().into_iter().map(JobLog::from).collect())
    }
}

/// One line of a job's log.
#[derive(SimpleObject)]
pub struct JobLog {
    /// debug, info, warn or error.
    pub level: String,
    /// The line.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<job_logs::Model> for JobLog {
    fn from(m: job_logs::Model) -> Self {
        JobLog { level: m.level, message: m.message, created_at: m.created_at.with_timezone(&Utc) }
    }
}

/// The per-request job → logs loader.
pub type LogsLoader = DataLoader<LogsByJob, HashMapCache>;

/// Logs of jobs, batched.
pub struct LogsByJob(pub RequestTx);

impl Loader<Uuid> for LogsByJob {
    type Value = Vec<job_logs::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut map: HashMap<Uuid, Vec<job_logs::Model>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for line in service::logs_of(&self.0, keys).await? {
            map.entry(line.job_id).or_default().push(line);
        }
        Ok(map)
    }
}

/// Input of `createJob`.
#[derive(InputObject)]
pub struct CreateJobInput {
    /// What to do.
    pub kind: JobKind,
    /// The draft to work on (required for PREPARE and PUBLISH).
    pub draft_id: Option<ID>,
    /// Attempts allowed, 1 to 20 (3 by default).
    pub max_attempts: Option<i32>,
}

/// Job queries.
#[derive(Default)]
pub struct JobsQuery;

#[Object]
impl JobsQuery {
    /// The caller's jobs, newest first; `first` is capped at 100.
    #[graphql(
        guard = "scope(ApiScope::JobsRead).and(SignedIn)",
        complexity = "crate::pagination::page_cost(first, child_complexity)"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<JobStatus>,
        kind: Option<JobKind>,
    ) -> Result<Connection<String, Job>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = service::list(tx, PageRequest::parse(first, after.as_deref())?, &JobFilter { status, kind }).await?;
        if ctx.look_ahead().field("edges").field("node").field("logs").exists() {
            data::<LogsLoader>(ctx)?.load_many(page.items.iter().map(|j| j.id)).await?;
        }
        Ok(page.into_connection(service::cursor, Job::from))
    }

    /// One of the caller's jobs (a worker: one it holds); null when absent or not yours.
    #[graphql(guard = "scope(ApiScope::JobsRead).on(&id).and(UserOrWorker)")]
    async fn job(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Job>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::get(tx, parse_id("id", &id)?).await?.map(Job::from))
    }
}

/// Job mutations, for users and for workers.
#[derive(Default)]
pub struct JobsMutation;

#[Object]
impl JobsMutation {
    /// Queues a job.
    #[graphql(guard = "scope(ApiScope::JobsWrite).and(ActiveSubscription)")]
    async fn create_job(&self, ctx: &Context<'_>, input: CreateJobInput) -> Result<Job> {
        let tx = data::<RequestTx>(ctx)?;
        let draft_id = input.draft_id.map(|d| parse_id("input.draftId", &d)).transpose()?;
        Ok(service::create(tx, input.kind, draft_id, input.max_attempts).await?.into())
    }

    /// Cancels a job: a queued one at once, a running one at its worker's next report.
    #[graphql(guard = "scope(ApiScope::JobsWrite).on(&id).and(SignedIn)")]
    async fn cancel_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::cancel(tx, parse_id("id", &id)?).await?.into())
    }

    /// Workers: claims one due job of these kinds; null when none is due.
    #[graphql(guard = "NoApiTokens.and(WorkerOnly)")]
    async fn claim_job(&self, ctx: &Context<'_>, kinds: Vec<JobKind>) -> Result<Option<Job>> {
        let tx = data::<RequestTx>(ctx)?;
        let photos = data::<Arc<PhotoService>>(ctx)?;
        let settings = *data::<QueueSettings>(ctx)?;
        Ok(service::claim(tx, photos, settings, &kinds)
            .await?
            .map(|Claimed { job, input }| Job { model: job, input: Some(input) }))
    }

    /// Workers: reports progress (0 to 1) and extends the lease. A CANCELED job in the
    /// answer means: stop.
    #[graphql(guard = "NoApiTokens.and(WorkerOnly)")]
    async fn report_job_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
        progress: f64,
        message: Option<String>,
    ) -> Result<Job> {
        let tx = data::<RequestTx>(ctx)?;
        let settings = *data::<QueueSettings>(ctx)?;
        Ok(service::report_progress(tx, settings, parse_id("id", &id)?, progress, message.as_deref()).await?.into())
    }

    /// Workers: completes a job with its result.
    #[graphql(guard = "NoApiTokens.and(WorkerOnly)")]
    async fn complete_job(&self, ctx: &Context<'_>, id: ID, result: Option<Json<serde_json::Value>>) -> Result<Job> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::complete(tx, parse_id("id", &id)?, result.map(|r| r.0)).await?.into())
    }

    /// Workers: fails the current attempt; retried with backoff while attempts remain.
    #[graphql(guard = "NoApiTokens.and(WorkerOnly)")]
    async fn fail_job(&self, ctx: &Context<'_>, id: ID, error: String) -> Result<Job> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::fail(tx, parse_id("id", &id)?, &error).await?.into())
    }
}

/// What a worker listening with `jobQueued` is told: a job it may claim is due.
#[derive(SimpleObject)]
pub struct JobQueued {
    /// The job queued. Null in the first item, sent as soon as the subscription
    /// listens, and after the worker fell behind: then it stands for every job queued
    /// before (claim until `claimJob` answers null).
    pub job_id: Option<ID>,
    /// Its kind; null with `jobId`.
    pub kind: Option<JobKind>,
}

impl JobQueued {
    /// "Claim what is due": the subscription's first item, and what a worker that fell
    /// behind is told instead of the events it missed.
    fn backlog() -> Self {
        JobQueued { job_id: None, kind: None }
    }
}

/// Live job updates.
#[derive(Default)]
pub struct JobsSubscription;

#[Subscription]
impl JobsSubscription {
    /// Every change of one job (`id`), or of all the caller's jobs. Each event is read
    /// again in the subscriber's own transaction before it is sent. Following one job,
    /// its current state comes first (nothing when it is absent or not yours), then
    /// each change: a job that ended before the subscription began is still seen ending.
    #[graphql(guard = "scope(ApiScope::JobsRead).and(SignedIn)")]
    async fn job_updated(&self, ctx: &Context<'_>, id: Option<ID>) -> Result<impl Stream<Item = Result<Job>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let user_id = principal.user_id();
        let only = id.map(|i| parse_id("id", &i)).transpose()?;
        let tokens = data::<Arc<TokenService>>(ctx)?.clone();
        let recheck = live_check(tokens, ApiRule::Scope(ApiScope::JobsRead), "jobUpdated");
        let reader = data::<live::LiveSource>(ctx)?.reader(principal, recheck);
        // Routing is a shortcut; the re-read is the guarantee.
        let route = move |e: &Event| match e {
            Event::JobChanged { user_id: owner, job_id }
                if Some(*owner) == user_id && only.is_none_or(|o| o == *job_id) =>
            {
                Some(*job_id)
            }
            _ => None,
        };
        let read = |tx: RequestTx, id| async move { service::get(&tx, id).await.map(|j| j.map(Job::from)) };
        Ok(live::follow_from(data::<Arc<EventBus>>(ctx)?, user_id.map(Topic::User), reader, only, route, read)
            .map(|r| r.map_err(Into::into)))
    }

    /// Workers: tells the worker to claim (`claimJob`) as soon as a job of `kinds`
    /// (those its token allows; FORBIDDEN when none is) is queued, on any instance,
    /// instead of waiting for its next poll. The first item comes at once, when the
    /// subscription listens: `jobId` null, for the jobs queued before. Each later item
    /// names one job queued since (its id and kind, nothing of its owner); another
    /// worker may have claimed it first, so `claimJob` may answer null. A job retried
    /// after `failJob` is announced when its backoff ends, from a timer of the instance
    /// that failed it; one whose lease expired is not announced: keep polling (more
    /// slowly) for those, and for a timer lost with its instance.
    ///
    /// Errors: FORBIDDEN (not a worker token, or no kind allowed); UNAUTHENTICATED
    /// ends the stream when the token is revoked or expires.
    #[graphql(guard = "NoApiTokens.and(WorkerOnly)")]
    async fn job_queued(
        &self,
        ctx: &Context<'_>,
        kinds: Vec<JobKind>,
    ) -> Result<impl Stream<Item = Result<JobQueued>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let Some(worker) = principal.worker() else {
            return Err(AppError::Forbidden("only a worker token may do this".into()).into());
        };
        let allowed: Vec<JobKind> = kinds.iter().filter(|k| worker.kinds.contains(k)).copied().collect();
        if allowed.is_empty() {
            return Err(AppError::Forbidden("this worker token may not claim these kinds of job".into()).into());
        }
        let recheck = live_check(data::<Arc<TokenService>>(ctx)?.clone(), ApiRule::NoApiTokens, "jobQueued");
        // Subscribed here, before the first item is sent: nothing queued after it is missed.
        let rx = data::<Arc<EventBus>>(ctx)?.subscribe(Some(Topic::JobsQueued));
        let state = (rx, principal, allowed, recheck, Some(JobQueued::backlog()), false);
        Ok(futures_util::stream::unfold(state, |(mut rx, principal, allowed, recheck, mut first, done)| async move {
            if done {
                return None;
            }
            let item = match first.take() {
                Some(item) => item,
                None => loop {
                    match rx.recv().await {
                        Ok(Event::JobQueued { job_id, kind }) => match JobKind::parse(&kind) {
                            Ok(kind) if allowed.contains(&kind) => {
                                break JobQueued { job_id: Some(ID(job_id.to_string())), kind: Some(kind) }
                            }
                            _ => continue,
                        },
                        Ok(_) => continue,
                        // A worker is told to claim, not what to claim: the events it
                        // missed come down to one backlog item.
                        Err(RecvError::Lagged(_)) => break JobQueued::backlog(),
                        Err(RecvError::Closed) => return None,
                    }
                },
            };
            // The token checked again before each item: revoked or expired ends it.
            let (item, done) = match recheck(&principal) {
                Ok(()) => (Ok(item), false),
                Err(e) => (Err(e.into()), true),
            };
            Some((item, (rx, principal, allowed, recheck, None, done)))
        })
        .boxed())
    }
}
