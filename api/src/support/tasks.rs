//! Support's background loop: attachment reservations whose upload URL expired (and a
//! grace after it) give their bytes back to the owner's storage gauge. Their objects go
//! first (the upload key and the sealed key a rolled-back confirmation may have left),
//! then their rows through `priv.forget_ticket_attachment`; a store failure leaves the
//! row for the next run.
use super::attachments::{sealed_key, UPLOAD_URL_TTL};
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    principal::Principal,
    storage::Storage,
    tasks::{delete_expired_reservation_objects, run_system, Runs, Task},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How long after its URL expires a reservation is kept (a confirmation in flight).
pub const RESERVATION_GRACE: Duration = Duration::from_secs(15 * 60);

/// Sweeps expired attachment reservations every `every`, on one instance per interval.
pub fn sweep_expired_attachments(pool: RuntimePool, storage: Arc<Storage>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("support.sweep_expired_attachments", every, Runs::OneInstance, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move { sweep(&pool, &storage, (UPLOAD_URL_TTL + RESERVATION_GRACE).as_secs() as i32, timeout_ms).await }
    })
}

/// One run: forgets reservations older than `older_than_secs`; how many.
///
/// Errors: the database's, the store's.
pub async fn sweep(
    pool: &RuntimePool,
    storage: &Storage,
    older_than_secs: i32,
    timeout_ms: u64,
) -> anyhow::Result<usize> {
    let meta = || RequestMeta::internal("attachment-sweeper");
    let expired = delete_expired_reservation_objects(
        pool,
        storage,
        meta(),
        "priv.expired_ticket_attachments",
        older_than_secs,
        timeout_ms,
        Some(sealed_key),
    )
    .await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let tx = RequestTx::begin(pool, Principal::System, meta(), timeout_ms).await?;
    let mut n = 0;
    for (user_id, id) in expired {
        let gone = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.forget_ticket_attachment($1, $2, $3) AS gone",
                [user_id.into(), id.into(), older_than_secs.into()],
            ))
            .await?
            .map(|r| r.try_get::<bool>("", "gone"))
            .transpose()?
            .unwrap_or(false);
        n += usize::from(gone);
    }
    tx.commit_without_events().await?;
    Ok(n)
}

/// Staff replies mailed per run.
const MAIL_BATCH: i32 = 200;

/// What the reply-mail sweeper needs.
#[derive(Clone)]
pub struct ReplyMails {
    /// The runtime pool.
    pub pool: RuntimePool,
    /// Base of the ticket link in the mail.
    pub public_url: String,
    /// The statement timeout of its transaction.
    pub statement_timeout_ms: u64,
}

impl ReplyMails {
    /// Queues the mail of every staff reply due at `at` whose notification is still
    /// unread (template `support_reply`, in the user's locale, linking to the ticket);
    /// how many it queued. The claim (`priv.support_reply_mails_due`) and the outbox
    /// rows share one transaction: a reply is mailed at most once, whatever the
    /// instances and restarts, and a failed run leaves its replies to the next.
    ///
    /// Errors: the database's.
    pub async fn run_at(&self, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<usize> {
        let tx = RequestTx::begin(
            &self.pool,
            Principal::System,
            RequestMeta::internal("support.reply-mails"),
            self.statement_timeout_ms,
        )
        .await?;
        let rows = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, ticket_id, to_email, subject, body FROM priv.support_reply_mails_due($1, $2)",
                [at.into(), MAIL_BATCH.into()],
            ))
            .await?;
        let n = rows.len();
        for row in rows {
            let user_id: Uuid = row.try_get("", "user_id")?;
            let ticket_id: Uuid = row.try_get("", "ticket_id")?;
            let to: String = row.try_get("", "to_email")?;
            let subject: String = row.try_get("", "subject")?;
            let body: String = row.try_get("", "body")?;
            let link = format!("{}{}", self.public_url, super::service::ticket_link(ticket_id));
            let message = crate::email::templates::support_reply(&subject, &body, &link);
            tx.acting_as_user(crate::model::Role::User, user_id, async {
                crate::email::service::enqueue(&tx, user_id, &to, message).await.map(|_| ())
            })
            .await
            .map_err(|e| e.into_anyhow())?;
        }
        tx.commit_without_events().await?;
        Ok(n)
    }

    /// The background task: the replies due now, every `every`, on every instance
    /// (claims skip each other's rows).
    pub fn task(self, every: Duration) -> Task {
        Task::new("support.reply_mails", every, Runs::EveryInstance, move || {
            let this = self.clone();
            async move { this.run_at(chrono::Utc::now()).await }
        })
    }
}

/// Trial extensions sent per run.
const TRIAL_BATCH: i32 = 20;
/// Attempts before a trial extension is marked failed (each attempt is already a
/// Stripe call with its own retries, within `PLINTH_STRIPE_TIMEOUT_MS`).
const TRIAL_MAX_ATTEMPTS: i32 = 10;
/// The first retry's delay, doubled at each attempt up to `TRIAL_MAX_BACKOFF`.
const TRIAL_BACKOFF: Duration = Duration::from_secs(2);
/// The longest delay between attempts.
const TRIAL_MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long a claimed request is left to its instance (a Stripe call is bounded well below).
const TRIAL_LEASE: Duration = Duration::from_secs(120);

/// Sends the trial extensions admins asked for (`tools::extend_trial`) to Stripe, every
/// `every`, on every instance (claims skip each other's rows); nothing when billing is
/// not configured. Each request is claimed in a short committed transaction
/// (`priv.trial_extensions_claim`), sent holding no transaction (idempotency key
/// `trial-extension-<id>`), and its outcome recorded in another
/// (`priv.trial_extensions_record`): done; retried with backoff when Stripe did not
/// answer; failed when Stripe refused, or after `TRIAL_MAX_ATTEMPTS`.
pub fn extend_trials(
    pool: RuntimePool,
    stripe: Option<crate::billing::stripe::StripeApi>,
    every: Duration,
    timeout_ms: u64,
) -> Task {
    Task::new("support.extend_trials", every, Runs::EveryInstance, move || {
        let (pool, stripe) = (pool.clone(), stripe.clone());
        async move {
            match stripe {
                Some(stripe) => send_trial_extensions(&pool, &stripe, timeout_ms).await,
                None => Ok(0),
            }
        }
    })
}

/// One run of `extend_trials`: how many requests it handled. Public so tests can drain
/// the queue.
///
/// Errors: the database's (claimed requests are taken again after their lease).
pub async fn send_trial_extensions(
    pool: &RuntimePool,
    stripe: &crate::billing::stripe::StripeApi,
    timeout_ms: u64,
) -> anyhow::Result<usize> {
    use crate::billing::stripe::StripeFailure;
    let statement = |sql: &'static str, values| run_system(pool, "support.extend_trials", timeout_ms, sql, values);
    let claimed = statement(
        "SELECT id, user_id, subscription_id, trial_end, attempts FROM priv.trial_extensions_claim($1, $2)",
        vec![TRIAL_BATCH.into(), (TRIAL_LEASE.as_millis() as i64).into()],
    )
    .await?;
    for row in &claimed {
        let id: Uuid = row.try_get("", "id")?;
        let user_id: Uuid = row.try_get("", "user_id")?;
        let subscription: String = row.try_get("", "subscription_id")?;
        let trial_end: chrono::DateTime<chrono::FixedOffset> = row.try_get("", "trial_end")?;
        let attempts: i32 = row.try_get("", "attempts")?;
        let key = format!("trial-extension-{id}");
        let (outcome, reason, delay) = match stripe.extend_trial(&subscription, trial_end.timestamp(), &key).await {
            Ok(()) => ("done", None, 0),
            Err(StripeFailure::Unavailable(why)) if attempts < TRIAL_MAX_ATTEMPTS => {
                let delay = crate::tasks::backoff(attempts, TRIAL_BACKOFF, TRIAL_MAX_BACKOFF, None);
                ("retry", Some(why), delay.as_millis() as i64)
            }
            Err(StripeFailure::Unavailable(why)) => {
                ("failed", Some(format!("gave up after {attempts} attempts: {why}")), 0)
            }
            Err(StripeFailure::Missing) => ("failed", Some(format!("Stripe has no subscription {subscription}")), 0),
            Err(StripeFailure::Failed(e)) => ("failed", Some(format!("{e:#}")), 0),
        };
        match &reason {
            None => tracing::info!(extension_id = %id, user_id = %user_id, "trial extended at Stripe"),
            Some(why) => {
                tracing::warn!(extension_id = %id, user_id = %user_id, outcome, why = why.as_str(), "trial not extended")
            }
        }
        statement(
            "SELECT priv.trial_extensions_record($1, $2, $3, $4, $5, $6)",
            vec![user_id.into(), id.into(), attempts.into(), outcome.into(), reason.into(), delay.into()],
        )
        .await?;
    }
    Ok(claimed.len())
}
