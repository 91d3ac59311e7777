//! The delivery worker: takes due outbox rows, writes each mail in its locale, sends it
//! through the configured provider and records the outcome.
//!
//! A claim is one short transaction: due rows are taken `FOR UPDATE SKIP LOCKED` (two
//! workers never take one row), leased (`leased_until`) and their attempt counted; it
//! commits before any mail leaves, so no connection is held while the provider answers.
//! The outcomes of a batch are written in a second short transaction, fenced on the attempt number
//! (a row whose lease ran out and was taken again is not overwritten by the late
//! worker). A crash between sending and marking leaves the row leased: it is sent again
//! once the lease expires, so such a crash causes at most one duplicate, and both copies
//! carry the row id (SendGrid `custom_args.outbox_id`, header `X-Plinth-Outbox-Id`)
//! for whoever needs to tell them apart.
//!
//! 429, 5xx, network errors and timeouts are retried with exponential backoff and
//! jitter (the provider's `Retry-After` when it gives one); another refusal marks the row
//! failed with the provider's reason; so does the last of `max_attempts`. A row's
//! one-time secret is opened only to write the mail and is erased once the row is sent
//! or failed.
use super::{
    preferences::unsubscribe_link,
    provider::{Outgoing, Provider, SendError},
    render::Renderer,
};
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    metrics::Metrics,
    model::{EmailTemplate, Locale},
    principal::Principal,
    secretbox::SecretBox,
};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;
use uuid::Uuid;

/// How a worker paces itself.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Rows claimed at a time (and sent concurrently).
    pub batch: u32,
    /// How long a claim holds a row before another worker may take it again.
    pub lease: Duration,
    /// Attempts before a row is marked failed.
    pub max_attempts: i32,
    /// The first retry's delay, doubled at each attempt.
    pub backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// How often a worker looks without being woken.
    pub poll: Duration,
    /// The statement timeout of its transactions.
    pub statement_timeout_ms: u64,
}

/// One worker's dependencies (cheap to share between several loops).
pub struct Delivery {
    pool: RuntimePool,
    provider: Arc<dyn Provider>,
    renderer: Arc<Renderer>,
    sealer: Arc<SecretBox>,
    metrics: Metrics,
    settings: DeliverySettings,
}

/// A claimed row.
struct Claimed {
    id: Uuid,
    user_id: Uuid,
    to: String,
    template: String,
    data: serde_json::Value,
    locale: String,
    sealed: Option<Vec<u8>>,
    attempts: i32,
    /// Why the row was skipped instead of claimed (already marked `skipped`).
    skip_reason: Option<String>,
}

/// What became of one attempt.
enum Outcome {
    Sent(Option<String>),
    Retry(String, Option<Duration>),
    Failed(String),
}

impl Delivery {
    /// Wires a worker.
    pub fn new(
        pool: RuntimePool,
        provider: Arc<dyn Provider>,
        renderer: Arc<Renderer>,
        sealer: Arc<SecretBox>,
        metrics: Metrics,
        settings: DeliverySettings,
    ) -> Self {
        Delivery { pool, provider, renderer, sealer, metrics, settings }
    }

    /// Claims one batch of due rows, sends them and records the outcomes; returns how
    /// many rows it handled (0: nothing was due). Public so tests and commands can
    /// drain the outbox step by step.
    ///
    /// Errors: the database's (the claimed rows are retried after their lease).
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let n = claimed.len();
        let (skipped, claimed): (Vec<Claimed>, Vec<Claimed>) =
            claimed.into_iter().partition(|row| row.skip_reason.is_some());
        for row in &skipped {
            self.metrics.mail_delivery(&row.template, "skipped");
            tracing::info!(
                outbox_id = %row.id,
                template = row.template,
                reason = row.skip_reason.as_deref().unwrap_or_default(),
                "mail skipped"
            );
        }
        if claimed.is_empty() {
            return Ok(n);
        }
        let outcomes: Vec<(Claimed, Outcome)> = futures_util::stream::iter(claimed)
            .map(|row| async move {
                let outcome = self.attempt(&row).await;
                (row, outcome)
            })
            .buffer_unordered(self.settings.batch as usize)
            .collect()
            .await;
        self.record(&outcomes).await?;
        Ok(n)
    }

    /// Runs until `stop` (its batch under way finishes: the drain flushes it): a batch
    /// whenever new mail is announced (`db::listen` on `plinth_email_outbox`), or every
    /// `poll` otherwise.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, stop: crate::tasks::Stop) {
        let poll = self.settings.poll;
        crate::tasks::run_woken("mail delivery", wake, poll, stop, move || {
            let this = self.clone();
            async move {
                let handled = this.run_once().await?;
                // The loop's last success (`plinth_task_last_success_timestamp_seconds`).
                this.metrics.task_run("email.delivery", "ok");
                if handled >= this.settings.batch as usize {
                    return Ok(true);
                }
                if let Err(e) = this.observe().await {
                    tracing::debug!(error = format!("{e:#}"), "reading the outbox's backlog");
                }
                Ok(false)
            }
        })
        .await
    }

    /// The provider's name (`sendgrid`, `smtp`, `file`).
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// Sends the test message to `to` in `locale` straight through the provider (no
    /// outbox row); the provider's message id.
    ///
    /// Errors: the provider's refusal or failure, with its reason.
    pub async fn send_test(&self, to: &str, locale: Locale) -> anyhow::Result<Option<String>> {
        let rendered = self.renderer.render(EmailTemplate::Test, locale, &serde_json::json!({}), None, None)?;
        let mail = Outgoing {
            id: Uuid::now_v7(),
            to: to.to_owned(),
            template: EmailTemplate::Test.as_str().to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            headers: Vec::new(),
        };
        self.provider.send(&mail).await.map_err(|e| match e {
            SendError::Retry { reason, .. } => anyhow::anyhow!("not sent (temporary): {reason}"),
            SendError::Permanent { reason } => anyhow::anyhow!("refused: {reason}"),
        })
    }

    async fn begin(&self) -> anyhow::Result<RequestTx> {
        Ok(RequestTx::begin(
            &self.pool,
            Principal::System,
            RequestMeta::internal("email.delivery"),
            self.settings.statement_timeout_ms,
        )
        .await?)
    }

    async fn claim(&self) -> anyhow::Result<Vec<Claimed>> {
        let tx = self.begin().await?;
        let rows = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT * FROM priv.email_claim($1, $2, string_to_array($3, ','))",
                [
                    (self.settings.batch as i32).into(),
                    (self.settings.lease.as_millis() as i64).into(),
                    onboarding_templates().join(",").into(),
                ],
            ))
            .await?;
        tx.commit_without_events().await?;
        rows.into_iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get("", "id")?,
                    user_id: r.try_get("", "user_id")?,
                    to: r.try_get("", "to_email")?,
                    template: r.try_get("", "template")?,
                    data: r.try_get("", "data")?,
                    locale: r.try_get("", "locale")?,
                    sealed: r.try_get("", "sealed_secret")?,
                    attempts: r.try_get("", "attempts")?,
                    skip_reason: r.try_get("", "skip_reason")?,
                })
            })
            .collect()
    }

    /// Writes and sends one row; nothing here touches the database.
    async fn attempt(&self, row: &Claimed) -> Outcome {
        let mail = match self.compose(row) {
            Ok(mail) => mail,
            Err(e) => {
                tracing::error!(outbox_id = %row.id, template = row.template, error = format!("{e:#}"), "cannot write a mail");
                return Outcome::Failed(format!("cannot be written: {e}"));
            }
        };
        match self.provider.send(&mail).await {
            Ok(id) => Outcome::Sent(id),
            Err(SendError::Permanent { reason }) => Outcome::Failed(reason),
            Err(SendError::Retry { reason, retry_after }) => Outcome::Retry(reason, retry_after),
        }
    }

    fn compose(&self, row: &Claimed) -> anyhow::Result<Outgoing> {
        let template = EmailTemplate::parse(&row.template)?;
        let locale = Locale::parse(&row.locale).unwrap_or(Locale::Fr);
        let link = match &row.sealed {
            Some(sealed) => {
                let secret = String::from_utf8(self.sealer.open(sealed, row.id.as_bytes())?)?;
                let base = row.data["link_base"].as_str().unwrap_or_default();
                Some(format!("{base}?token={secret}"))
            }
            None => None,
        };
        // Mail a preference can stop carries a signed one-click unsubscribe (RFC 8058).
        let unsubscribe = template
            .preference()
            .map(|category| unsubscribe_link(&self.sealer, self.renderer.public_url(), row.user_id, category));
        let rendered = self.renderer.render(template, locale, &row.data, link.as_deref(), unsubscribe.as_deref())?;
        let headers = match unsubscribe {
            Some(url) => vec![
                ("List-Unsubscribe".to_owned(), format!("<{url}>")),
                ("List-Unsubscribe-Post".to_owned(), "List-Unsubscribe=One-Click".to_owned()),
            ],
            None => Vec::new(),
        };
        Ok(Outgoing {
            id: row.id,
            to: row.to.clone(),
            template: row.template.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            headers,
        })
    }

    /// The delay before the next attempt: exponential with jitter (half to all of
    /// `backoff * 2^(attempt-1)`), at least the provider's `Retry-After`, at most
    /// `max_backoff`.
    fn delay(&self, attempts: i32, retry_after: Option<Duration>) -> Duration {
        crate::tasks::backoff(attempts, self.settings.backoff, self.settings.max_backoff, retry_after)
    }

    async fn record(&self, outcomes: &[(Claimed, Outcome)]) -> anyhow::Result<()> {
        let mut rows = Vec::with_capacity(outcomes.len());
        for (row, outcome) in outcomes {
            let fence = json!({ "user_id": row.user_id, "id": row.id, "attempts": row.attempts });
            let (entry, label) = match outcome {
                Outcome::Sent(provider_id) => (json!({ "outcome": "sent", "provider_id": provider_id }), "sent"),
                Outcome::Retry(reason, _) if row.attempts >= self.settings.max_attempts => (
                    json!({ "outcome": "failed", "reason": format!("gave up after {} attempts: {reason}", row.attempts) }),
                    "failed",
                ),
                Outcome::Retry(reason, retry_after) => (
                    json!({
                        "outcome": "retry",
                        "reason": reason,
                        "delay_ms": self.delay(row.attempts, *retry_after).as_millis() as i64,
                    }),
                    "retried",
                ),
                Outcome::Failed(reason) => (json!({ "outcome": "failed", "reason": reason }), "failed"),
            };
            let mut entry = entry;
            if let (Some(e), Some(f)) = (entry.as_object_mut(), fence.as_object()) {
                e.extend(f.clone());
            }
            rows.push(entry);
            self.metrics.mail_delivery(&row.template, label);
            match outcome {
                Outcome::Sent(_) => {
                    tracing::debug!(outbox_id = %row.id, template = row.template, provider = self.provider.name(), "mail sent")
                }
                Outcome::Retry(reason, _) | Outcome::Failed(reason) => tracing::warn!(
                    outbox_id = %row.id,
                    template = row.template,
                    attempts = row.attempts,
                    outcome = label,
                    reason = reason.as_str(),
                    "mail not delivered"
                ),
            }
        }
        let tx = self.begin().await?;
        let changed = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT priv.email_record($1) AS changed",
                [serde_json::Value::Array(rows).into()],
            ))
            .await?
            .map(|r| r.try_get::<i32>("", "changed"))
            .transpose()?
            .unwrap_or(0);
        tx.commit_without_events().await?;
        if (changed as usize) < outcomes.len() {
            tracing::warn!(
                missed = outcomes.len() - changed as usize,
                "outbox rows were taken again before their outcome was recorded"
            );
        }
        Ok(())
    }

    /// Updates the backlog gauges (pending rows and the age of the oldest, in all and
    /// per template). Public so tests and commands can refresh them on demand.
    ///
    /// Errors: the database's.
    pub async fn observe(&self) -> anyhow::Result<()> {
        let tx = self.begin().await?;
        let per_template = tx
            .query_all(Statement::from_string(
                DbBackend::Postgres,
                "SELECT template, pending, oldest_seconds FROM priv.email_backlog_by_template()",
            ))
            .await?;
        tx.commit_without_events().await?;
        let mut backlog = per_template
            .iter()
            .map(|r| {
                Ok((r.try_get::<String>("", "template")?, r.try_get("", "pending")?, r.try_get("", "oldest_seconds")?))
            })
            .collect::<anyhow::Result<Vec<(String, i64, i64)>>>()?;
        // The totals from the same rows (one snapshot: a row sent between two statements
        // would count in one and not the other).
        self.metrics.mail_pending.set(backlog.iter().map(|(_, n, _)| n).sum());
        self.metrics.mail_oldest_pending_seconds.set(backlog.iter().map(|(.., o)| *o).max().unwrap_or(0));
        // Every template has its series, 0 when nothing waits, so none disappears.
        for template in EmailTemplate::ALL.iter().map(|t| t.as_str()) {
            if !backlog.iter().any(|(t, ..)| t == template) {
                backlog.push((template.to_owned(), 0, 0));
            }
        }
        self.metrics.mail_backlog(&backlog);
        Ok(())
    }
}

/// The templates the onboarding preference stops (checked again when a row leaves).
fn onboarding_templates() -> Vec<String> {
    EmailTemplate::ALL.iter().filter(|t| t.preference() == Some("onboarding")).map(|t| t.as_str().to_owned()).collect()
}
