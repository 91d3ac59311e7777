//! The delivery loop of the Chatwoot outbox. A claim is one short transaction
//! (`priv.chatwoot_outbox_claim`: the oldest pending row of each ticket whose turn has
//! come, leased, its attempt counted), committed before Chatwoot is called, so no
//! request and no connection ever waits on Chatwoot. Each row is then delivered with
//! every call bounded (`PLINTH_CHATWOOT_TIMEOUT_MS`): the user's contact and the ticket's
//! conversation are created first when the ticket has none (their ids recorded at once,
//! so a retry does not create them twice), then the message or the status. The outcome
//! is recorded in another short transaction, fenced on the attempt: `sent`, `retry`
//! (network errors, timeouts, 408, 429, 5xx; exponential backoff with jitter, at least
//! `Retry-After`) or `failed` (another refusal, or the last attempt). A crash between
//! Chatwoot's answer and the record sends the row again once its lease ends: at most
//! one duplicate, which carries the same `source_id`.
use super::client::{CallError, ChatwootClient, OutgoingMessage};
use crate::{
    config::ChatwootConfig,
    db::RuntimePool,
    tasks::{backoff, run_system, run_woken},
};
use futures_util::StreamExt;
use sea_orm::{QueryResult, Value};
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;
use uuid::Uuid;

/// Rows (of different tickets) claimed, and delivered concurrently, at a time.
const BATCH: i32 = 10;

/// A ticket message to copy.
struct ClaimedMessage {
    id: Uuid,
    body: String,
    internal: bool,
    by_staff: bool,
    author: Option<String>,
}

/// A claimed outbox row and what its delivery needs.
struct Claimed {
    id: Uuid,
    user_id: Uuid,
    ticket_id: Uuid,
    attempts: i32,
    status: Option<String>,
    message: Option<ClaimedMessage>,
    subject: String,
    category: String,
    priority: String,
    email: String,
    contact: Option<(i64, String)>,
    conversation_id: Option<i64>,
}

impl Claimed {
    fn read(r: &QueryResult) -> anyhow::Result<Self> {
        let message_id: Option<Uuid> = r.try_get("", "message_id")?;
        let message = match message_id {
            Some(id) => Some(ClaimedMessage {
                id,
                body: r.try_get("", "body")?,
                internal: r.try_get("", "internal")?,
                by_staff: r.try_get("", "author_is_staff")?,
                author: r.try_get("", "author_name")?,
            }),
            None => None,
        };
        let contact_id: Option<i64> = r.try_get("", "contact_id")?;
        let source_id: Option<String> = r.try_get("", "source_id")?;
        Ok(Claimed {
            id: r.try_get("", "id")?,
            user_id: r.try_get("", "user_id")?,
            ticket_id: r.try_get("", "ticket_id")?,
            attempts: r.try_get("", "attempts")?,
            status: r.try_get("", "status")?,
            message,
            subject: r.try_get("", "subject")?,
            category: r.try_get("", "category")?,
            priority: r.try_get("", "priority")?,
            email: r.try_get("", "email")?,
            contact: contact_id.zip(source_id),
            conversation_id: r.try_get("", "conversation_id")?,
        })
    }
}

/// What became of one attempt.
enum Outcome {
    /// Done; the Chatwoot message created (message rows).
    Sent(Option<i64>),
    /// Try again later.
    Retry(String, Option<Duration>),
    /// Chatwoot refused; never again.
    Failed(String),
}

impl From<CallError> for Outcome {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Retry(reason, after) => Outcome::Retry(reason, after),
            CallError::Refused(_, reason) => Outcome::Failed(reason),
        }
    }
}

/// The bridge's delivery side: one loop per instance (claims skip each other's rows).
pub struct Delivery {
    pool: RuntimePool,
    client: ChatwootClient,
    lease: Duration,
    max_attempts: i32,
    backoff: Duration,
    max_backoff: Duration,
    poll: Duration,
    statement_timeout_ms: u64,
}

impl Delivery {
    /// A loop for the configured Chatwoot.
    ///
    /// Errors: the HTTP client cannot be built.
    pub fn new(pool: RuntimePool, config: &ChatwootConfig, statement_timeout_ms: u64) -> anyhow::Result<Self> {
        Ok(Delivery {
            pool,
            client: ChatwootClient::new(config)?,
            lease: config.lease(),
            max_attempts: config.max_attempts,
            backoff: config.backoff,
            max_backoff: config.max_backoff,
            poll: config.poll,
            statement_timeout_ms,
        })
    }

    /// One statement in a system transaction of its own, committed.
    async fn run_statement(&self, sql: &str, values: Vec<Value>) -> anyhow::Result<Vec<QueryResult>> {
        run_system(&self.pool, "chatwoot.delivery", self.statement_timeout_ms, sql, values).await
    }

    /// Claims due rows, delivers them and records the outcomes; how many rows it handled
    /// (0: nothing was due). Public so tests can drain the outbox step by step.
    ///
    /// Errors: the database's (claimed rows are taken again after their lease).
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let rows = self
            .run_statement(
                "SELECT * FROM priv.chatwoot_outbox_claim($1, $2)",
                vec![BATCH.into(), (self.lease.as_millis() as i64).into()],
            )
            .await?;
        let claimed = rows.iter().map(Claimed::read).collect::<anyhow::Result<Vec<_>>>()?;
        let n = claimed.len();
        let recorded: Vec<anyhow::Result<()>> = futures_util::stream::iter(claimed)
            .map(|row| async move {
                let outcome = self.attempt(&row).await;
                self.record(&row, outcome).await
            })
            .buffer_unordered(BATCH as usize)
            .collect()
            .await;
        recorded.into_iter().collect::<anyhow::Result<()>>()?;
        Ok(n)
    }

    /// Runs until the process ends: whenever a committed row announces itself
    /// (`plinth_chatwoot_outbox`), when a retry comes due (`poll`), or at once while rows
    /// keep coming (the next row of a ticket waits for the one before it).
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, stop: crate::tasks::Stop) {
        let poll = self.poll;
        run_woken("chatwoot delivery", wake, poll, stop, move || {
            let this = self.clone();
            async move { Ok(this.run_once().await? > 0) }
        })
        .await
    }

    /// The conversation of the row's ticket, created (with the user's contact) when it
    /// has none yet.
    async fn conversation(&self, row: &Claimed) -> Result<i64, Outcome> {
        if let Some(id) = row.conversation_id {
            return Ok(id);
        }
        let (contact_id, source_id) = match &row.contact {
            Some(c) => c.clone(),
            None => {
                let source_id = format!("plinth-{}", row.user_id);
                let id = self.client.ensure_contact(&row.user_id.to_string(), &row.email, &source_id).await?;
                self.record_mapping(row, id, &source_id, None).await?;
                (id, source_id)
            }
        };
        let conversation = self
            .client
            .create_conversation(contact_id, &source_id, row.ticket_id, &row.subject, &row.category, &row.priority)
            .await?;
        self.record_mapping(row, contact_id, &source_id, Some(conversation)).await?;
        Ok(conversation)
    }

    async fn record_mapping(
        &self,
        row: &Claimed,
        contact: i64,
        source_id: &str,
        conversation: Option<i64>,
    ) -> Result<(), Outcome> {
        self.run_statement(
            "SELECT priv.chatwoot_record_mapping($1, $2, $3, $4, $5)",
            vec![row.user_id.into(), row.ticket_id.into(), contact.into(), source_id.into(), conversation.into()],
        )
        .await
        .map(|_| ())
        .map_err(|e| Outcome::Retry(format!("recording Chatwoot's ids: {e:#}"), None))
    }

    /// Delivers one row; the database is touched only to record Chatwoot's ids.
    async fn attempt(&self, row: &Claimed) -> Outcome {
        let conversation = match self.conversation(row).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        let sent = match (&row.message, &row.status) {
            (Some(m), _) => {
                // Staff messages written in Plinth are signed, since Chatwoot shows every
                // message the bridge sends as its token's agent.
                let content = match (m.by_staff, &m.author) {
                    (true, Some(author)) => format!("{}\n\n— {author} (Plinth)", m.body),
                    _ => m.body.clone(),
                };
                let out = OutgoingMessage {
                    content: &content,
                    incoming: !m.by_staff,
                    private: m.internal,
                    plinth_message_id: m.id,
                };
                self.client.create_message(conversation, &out).await.map(Some)
            }
            (None, Some(status)) => self.client.set_status(conversation, status).await.map(|_| None),
            (None, None) => return Outcome::Failed("an outbox row with neither a message nor a status".into()),
        };
        match sent {
            Ok(id) => Outcome::Sent(id),
            Err(e) => e.into(),
        }
    }

    async fn record(&self, row: &Claimed, outcome: Outcome) -> anyhow::Result<()> {
        let (label, chatwoot_id, reason, delay) = match outcome {
            Outcome::Sent(id) => ("sent", id, None, None),
            Outcome::Retry(reason, _) if row.attempts >= self.max_attempts => {
                ("failed", None, Some(format!("gave up after {} attempts: {reason}", row.attempts)), None)
            }
            Outcome::Retry(reason, after) => {
                let delay = backoff(row.attempts, self.backoff, self.max_backoff, after);
                ("retry", None, Some(reason), Some(delay.as_millis() as i64))
            }
            Outcome::Failed(reason) => ("failed", None, Some(reason), None),
        };
        match &reason {
            None => tracing::debug!(outbox_id = %row.id, ticket_id = %row.ticket_id, "copied to chatwoot"),
            Some(why) => tracing::warn!(
                outbox_id = %row.id,
                ticket_id = %row.ticket_id,
                attempts = row.attempts,
                outcome = label,
                reason = why.as_str(),
                "not copied to chatwoot"
            ),
        }
        let rows = self
            .run_statement(
                "SELECT priv.chatwoot_outbox_record($1, $2, $3, $4, $5, $6, $7) AS changed",
                vec![
                    row.user_id.into(),
                    row.id.into(),
                    row.attempts.into(),
                    label.into(),
                    chatwoot_id.into(),
                    reason.into(),
                    delay.unwrap_or(0).into(),
                ],
            )
            .await?;
        let changed = rows.first().map(|r| r.try_get::<bool>("", "changed")).transpose()?.unwrap_or(false);
        if !changed {
            tracing::warn!(outbox_id = %row.id, "a chatwoot outbox row was taken again before its outcome was recorded");
        }
        Ok(())
    }
}
