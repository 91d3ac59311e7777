//! Support's background loop: attachment reservations whose upload URL expired (and a
//! grace after it) give their bytes back to the owner's storage gauge. Their objects go
//! first (the upload key and the sealed key a rolled-back confirmation may have left),
//! then their rows through `priv.forget_ticket_attachment`; a store failure leaves the
//! row for the next run.
use super::attachments::{sealed_key, UPLOAD_URL_TTL};
use crate::{
    db::{RequestMeta, RequestTx},
    principal::Principal,
    storage::Storage,
    tasks::{delete_expired_reservation_objects, Runs, Task},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// How long after its URL expires a reservation is kept (a confirmation in flight).
pub const RESERVATION_GRACE: Duration = Duration::from_secs(15 * 60);

/// Sweeps expired attachment reservations every `every`, on one instance per interval.
pub fn sweep_expired_attachments(
    pool: DatabaseConnection,
    storage: Arc<Storage>,
    every: Duration,
    timeout_ms: u64,
) -> Task {
    Task::new("support.sweep_expired_attachments", every, Runs::OneInstance, move || {
        let (pool, storage) = (pool.clone(), storage.clone());
        async move { sweep(&pool, &storage, (UPLOAD_URL_TTL + RESERVATION_GRACE).as_secs() as i32, timeout_ms).await }
    })
}

/// One run: forgets reservations older than `older_than_secs`; how many.
///
/// Errors: the database's, the store's.
pub async fn sweep(
    pool: &DatabaseConnection,
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
        sealed_key,
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
    pub pool: DatabaseConnection,
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
