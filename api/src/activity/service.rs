//! Appends to `activity_log` inside the caller's transaction, so an action and its
//! record commit or roll back together; lists a user's log.
use crate::{
    db::RequestTx,
    error::AppResult,
    pagination::{self, Page, PageRequest},
};
use entity::activity_log::{self, Column};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

/// One entry to append.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Whose log it goes in.
    pub user_id: Uuid,
    /// Who acted (the user, staff, or None for the system).
    pub actor_id: Option<Uuid>,
    /// A dotted verb, e.g. `account.register`.
    pub action: &'a str,
    /// The kind of object acted on, e.g. `session`.
    pub subject_type: Option<&'a str>,
    /// The object acted on.
    pub subject_id: Option<Uuid>,
    /// Details; never secrets.
    pub data: serde_json::Value,
}

impl<'a> Entry<'a> {
    /// An action `user_id` took on its own account, on `subject` (kind, id) if any.
    pub fn by_user(user_id: Uuid, action: &'a str, subject: Option<(&'a str, Uuid)>, data: serde_json::Value) -> Self {
        Entry {
            user_id,
            actor_id: Some(user_id),
            action,
            subject_type: subject.map(|s| s.0),
            subject_id: subject.map(|s| s.1),
            data,
        }
    }

    /// An action the system took on `user_id`'s account (a webhook, a sweeper, a job).
    pub fn by_system(
        user_id: Uuid,
        action: &'a str,
        subject: Option<(&'a str, Uuid)>,
        data: serde_json::Value,
    ) -> Self {
        Entry { actor_id: None, ..Entry::by_user(user_id, action, subject, data) }
    }
}

/// Appends `entry` with the request's address and id.
///
/// Errors: INTERNAL (database).
pub async fn record(tx: &RequestTx, entry: Entry<'_>) -> AppResult<()> {
    let meta = tx.meta();
    // A plain INSERT, no RETURNING: staff append to a log they may not read back
    // (`activity_log_support`).
    let model = activity_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(entry.user_id),
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.to_owned()),
        subject_type: Set(entry.subject_type.map(str::to_owned)),
        subject_id: Set(entry.subject_id),
        data: Set(entry.data),
        ip: Set(meta.ip.clone()),
        request_id: Set(Some(meta.request_id.clone()).filter(|s| !s.is_empty())),
        created_at: Set(chrono::Utc::now().into()),
    };
    activity_log::Entity::insert(model).exec_without_returning(tx).await?;
    Ok(())
}

/// A page of the caller's activity, newest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL (database).
pub async fn list(tx: &RequestTx, page: PageRequest) -> AppResult<Page<activity_log::Model>> {
    let user_id = tx.user_id()?;
    let mut q = activity_log::Entity::find().filter(Column::UserId.eq(user_id));
    if let Some(c) = page.after {
        q = q.filter(pagination::after(Column::CreatedAt, Column::Id, c));
    }
    let rows = q.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(page.limit()).all(tx).await?;
    Ok(Page::from_rows(rows, &page))
}
