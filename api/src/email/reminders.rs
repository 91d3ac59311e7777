//! Reminders ("relances"), scheduled from the database: an unverified address on day 1
//! and day 3 after sign-up (none once verified), a past-due subscription on day 3 and
//! day 7 of its spell (none once paid), a trial 3 days before it ends. Each is recorded
//! once per occurrence in `email_reminders` (unique key: user, kind, occurrence), so
//! restarts and overlapping runs neither skip nor repeat one; the task runs on the
//! leader (`Runs::OneInstance`). `priv.email_reminders_run(at)` records what is due and queues the mail that
//! needs no secret; verification reminders get their fresh one-time link here, in the
//! same transaction (a failure rolls the record back with it, and the next run tries
//! again).
use super::{service as outbox, templates};
use crate::{
    auth::opaque::{self, Kind},
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppResult,
    model::Role,
    principal::Principal,
    secretbox::SecretBox,
    tasks::{Runs, Task},
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;

/// What the scheduler needs.
#[derive(Clone)]
pub struct Reminders {
    /// The runtime pool.
    pub pool: RuntimePool,
    /// Seals the verification links.
    pub sealer: Arc<SecretBox>,
    /// Base of the links in mail.
    pub public_url: String,
    /// The statement timeout of its transaction.
    pub statement_timeout_ms: u64,
}

impl Reminders {
    /// Queues the reminders due at `at`; how many it queued. Public with its clock so
    /// tests and commands can run it for any moment.
    ///
    /// Errors: the database's, sealing.
    pub async fn run_at(&self, at: DateTime<Utc>) -> anyhow::Result<usize> {
        let tx = RequestTx::begin(
            &self.pool,
            Principal::System,
            RequestMeta::internal("email.reminders"),
            self.statement_timeout_ms,
        )
        .await?;
        let rows = tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT user_id, kind, occurrence, to_email, queued FROM priv.email_reminders_run($1)",
                [at.into()],
            ))
            .await?;
        let n = rows.len();
        for row in rows {
            if row.try_get::<bool>("", "queued")? {
                continue;
            }
            let user_id: Uuid = row.try_get("", "user_id")?;
            let to: String = row.try_get("", "to_email")?;
            let occurrence: String = row.try_get("", "occurrence")?;
            let day = occurrence.trim_start_matches("day").parse::<i64>().unwrap_or(1);
            self.queue_verification(&tx, user_id, &to, day).await.map_err(|e| e.into_anyhow())?;
        }
        tx.commit_without_events().await?;
        Ok(n)
    }

    /// Queues a reminder to confirm the address of `user_id` with a fresh link of its
    /// own (a `verify_email` one-time token, sealed in the outbox), in a scope acting
    /// for the account.
    async fn queue_verification(&self, tx: &RequestTx, user_id: Uuid, to: &str, day: i64) -> AppResult<()> {
        tx.acting_as_user(Role::User, user_id, async {
            let (token, parsed) = opaque::generate(Kind::VerifyEmail, user_id);
            let expires_at = Utc::now() + chrono::Duration::hours(templates::VERIFY_EMAIL_TTL_HOURS);
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, expires_at)
                 VALUES ($1, $2, 'verify_email', $3, $4)",
                [Uuid::now_v7().into(), user_id.into(), parsed.hash.into(), expires_at.into()],
            ))
            .await?;
            let mut message = templates::verify_email(&self.public_url, &token);
            message.data["reminder"] = serde_json::json!(day);
            message.subject = format!("Reminder: {}", message.subject);
            outbox::enqueue_sealed(tx, &self.sealer, user_id, to, message).await?;
            Ok(())
        })
        .await
    }

    /// The background task: the reminders due now, every `every`.
    pub fn task(self, every: Duration) -> Task {
        Task::new("email.reminders", every, Runs::OneInstance, move || {
            let this = self.clone();
            async move { this.run_at(Utc::now()).await }
        })
    }
}

/// The moment an RFC 3339 time names, or now (the `plinth mail remind --at` clock).
///
/// Errors: not an RFC 3339 time.
pub fn moment(at: Option<&str>) -> Result<DateTime<Utc>, chrono::ParseError> {
    match at {
        Some(at) => Ok(DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc)),
        None => Ok(Utc::now()),
    }
}

/// Records the reminder `kind` of `user_id` for `occurrence` in the caller's
/// transaction; false when it was already recorded (by the scheduler, another
/// instance, or an earlier delivery of the same webhook), and then it must not be sent.
///
/// Errors: INTERNAL (database).
pub async fn claim(db: &impl ConnectionTrait, user_id: Uuid, kind: &str, occurrence: &str) -> AppResult<bool> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO email_reminders (user_id, kind, occurrence) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING 1 AS new",
            [user_id.into(), kind.into(), occurrence.into()],
        ))
        .await?;
    Ok(row.is_some())
}
