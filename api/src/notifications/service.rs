//! Notifying a user, and reading and marking the caller's notifications.
use super::store::{self, NotificationRow};
use crate::{
    db::RequestTx,
    email::{service as outbox, store as addresses, templates::Message},
    error::{AppError, AppResult},
    events::Event,
};
use uuid::Uuid;

/// Most notifications one list returns.
pub const LIST_LIMIT: i64 = 100;

/// Records `message` as a notification of `user_id`, queues it as an e-mail, and tells
/// the user's live subscriptions once `tx` commits.
///
/// Errors: NOT_FOUND when the account is not visible to `tx`; INTERNAL (database).
pub async fn notify(tx: &RequestTx, user_id: Uuid, message: Message) -> AppResult<()> {
    let id = Uuid::now_v7();
    store::insert(tx, id, user_id, message.template, &message.subject, &message.body, &message.data).await?;
    let email = addresses::address_of(tx, user_id).await?;
    outbox::enqueue(tx, user_id, &email, message).await?;
    tx.emit(Event::NotificationAdded { user_id, notification_id: id });
    Ok(())
}

/// Records `message` as a notification of `user_id` and tells its live subscriptions
/// once `tx` commits, without e-mail (the caller decides whether one follows: support
/// replies are mailed only to users who did not come back in time). The notification's
/// id.
///
/// Errors: INTERNAL (database, or a policy refusing the insert).
pub async fn notify_in_app(tx: &RequestTx, user_id: Uuid, message: &Message) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    store::insert(tx, id, user_id, message.template, &message.subject, &message.body, &message.data).await?;
    tx.emit(Event::NotificationAdded { user_id, notification_id: id });
    Ok(id)
}

/// The caller's notifications, newest first (at most `LIST_LIMIT`).
///
/// Errors: UNAUTHENTICATED; INTERNAL (database).
pub async fn list(tx: &RequestTx, unread_only: bool) -> AppResult<Vec<NotificationRow>> {
    store::list(tx, tx.user_id()?, unread_only, LIST_LIMIT).await
}

/// Marks the caller's notifications read (all of them when `ids` is None); returns how
/// many changed.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND when an id is not the caller's; INTERNAL.
pub async fn mark_read(tx: &RequestTx, ids: Option<Vec<Uuid>>) -> AppResult<u64> {
    let user_id = tx.user_id()?;
    if let Some(ids) = &ids {
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        if store::count_owned(tx, user_id, ids).await? != distinct.len() as i64 {
            return Err(AppError::NotFound("notification not found".into()));
        }
    }
    store::mark_read(tx, user_id, ids).await
}
