//! Queues a message in the outbox within the caller's transaction.
use super::templates::Message;
use crate::error::AppResult;
use entity::email_outbox;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;

/// Queues `message` to `to` for `user_id`; nothing is queued if the transaction rolls
/// back. Returns the row's id.
///
/// Errors: INTERNAL (database).
pub async fn enqueue(db: &impl ConnectionTrait, user_id: Uuid, to: &str, message: Message) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    email_outbox::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        to_email: Set(to.to_owned()),
        template: Set(message.template.as_str().to_owned()),
        subject: Set(message.subject),
        body_text: Set(message.body),
        data: Set(message.data),
        status: Set("pending".into()),
        attempts: Set(0),
        created_at: Set(chrono::Utc::now().into()),
        sent_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}
