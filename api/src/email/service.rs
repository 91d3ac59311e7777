//! Queues a message in the outbox within the caller's transaction.
use super::templates::Message;
use crate::{error::AppResult, secretbox::SecretBox};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Queues `message` to `to` for `user_id`, in the user's locale; nothing is queued if
/// the transaction rolls back. Returns the row's id. A message that carries a secret
/// must go through [`enqueue_sealed`].
///
/// Errors: INTERNAL (database; a secret without a box to seal it in).
pub async fn enqueue(db: &impl ConnectionTrait, user_id: Uuid, to: &str, message: Message) -> AppResult<Uuid> {
    insert(db, None, user_id, to, message).await
}

/// [`enqueue`] for a message that carries a one-time token: the token is sealed with
/// `sealer`, bound to the row's id, and is the only place the row keeps it.
///
/// Errors: INTERNAL (database, sealing).
pub async fn enqueue_sealed(
    db: &impl ConnectionTrait,
    sealer: &SecretBox,
    user_id: Uuid,
    to: &str,
    message: Message,
) -> AppResult<Uuid> {
    insert(db, Some(sealer), user_id, to, message).await
}

async fn insert(
    db: &impl ConnectionTrait,
    sealer: Option<&SecretBox>,
    user_id: Uuid,
    to: &str,
    message: Message,
) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    let sealed = match (&message.secret, sealer) {
        (None, _) => None,
        (Some(secret), Some(sealer)) => Some(sealer.seal(secret.as_bytes(), id.as_bytes())?),
        (Some(_), None) => {
            return Err(anyhow::anyhow!("a message with a secret was queued without sealing it").into());
        }
    };
    // The locale is the account's as the caller's role sees it (its own row, or the
    // billing role's); French when the row is not visible.
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO email_outbox (id, user_id, to_email, template, subject, body_text, data, status, attempts,
                                   created_at, locale, sealed_secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, now(),
                 COALESCE((SELECT locale FROM users WHERE id = $2), 'fr'), $8)",
        [
            id.into(),
            user_id.into(),
            to.into(),
            message.template.as_str().into(),
            message.subject.into(),
            message.body.into(),
            message.data.into(),
            sealed.into(),
        ],
    ))
    .await?;
    Ok(id)
}
