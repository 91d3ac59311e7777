//! In-app notifications, each with its e-mail: both rows are written in the caller's
//! transaction, so a change that rolls back notifies nobody.
use crate::{
    email::{service as outbox, templates::Message},
    error::{AppError, AppResult},
    events::Event,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Records `message` as a notification of `user_id` and queues it as an e-mail; returns
/// the event for `notificationAdded` subscribers, to publish after commit.
pub async fn notify(db: &impl ConnectionTrait, user_id: Uuid, message: Message) -> AppResult<Event> {
    let id = Uuid::now_v7();
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO notifications (id, user_id, kind, title, body, data) VALUES ($1, $2, $3, $4, $5, $6)",
        [
            id.into(),
            user_id.into(),
            message.template.into(),
            message.subject.clone().into(),
            message.body.clone().into(),
            message.data.clone().into(),
        ],
    ))
    .await?;
    let email = email_of(db, user_id).await?;
    outbox::enqueue(db, user_id, &email, message).await?;
    Ok(Event::NotificationAdded { user_id, notification_id: id })
}

/// The e-mail address of `user_id`, as the caller's role may read it.
pub async fn email_of(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<String> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT email::text AS email FROM users WHERE id = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::NotFound("account not found".into()))?;
    Ok(row.try_get("", "email")?)
}
