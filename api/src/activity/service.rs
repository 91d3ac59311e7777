//! Appends to `activity_log` inside the caller's transaction, so an action and its
//! record commit or roll back together.
use crate::{db::RequestMeta, error::AppResult};
use entity::activity_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
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

/// Appends `entry` with the request's address and id.
pub async fn record(db: &impl ConnectionTrait, meta: &RequestMeta, entry: Entry<'_>) -> AppResult<()> {
    activity_log::ActiveModel {
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
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A page of the caller's activity, newest first.
pub async fn list(
    scope: &crate::db::RequestScope,
    page: crate::pagination::PageRequest,
) -> AppResult<crate::pagination::Page<activity_log::Model>> {
    use activity_log::Column;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let user_id = scope.require_user()?;
    let mut q = activity_log::Entity::find().filter(Column::UserId.eq(user_id));
    if let Some(c) = page.after {
        q = q.filter(crate::pagination::after(Column::CreatedAt, Column::Id, c));
    }
    let rows =
        q.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(page.limit()).all(scope.tx.as_ref()).await?;
    Ok(crate::pagination::Page::from_rows(rows, &page))
}
