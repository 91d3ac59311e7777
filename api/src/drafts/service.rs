//! Draft operations on the request's transaction. Row-level security decides what
//! exists; the explicit `user_id` filters only help the planner use the indexes.
use super::domain::{DraftFields, DraftStatus, Patch};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    error::{AppError, AppResult},
    pagination::{self, Cursor, Page, PageRequest},
};
use chrono::Utc;
use entity::drafts::{self, Column};
use sea_orm::{
    sea_query::{Expr, Func},
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

/// How long a deleted draft can be restored.
pub const RESTORE_WINDOW_DAYS: i64 = 30;

/// Filters of the drafts list.
#[derive(Clone, Debug, Default)]
pub struct DraftFilter {
    /// Only this status.
    pub status: Option<DraftStatus>,
    /// Case-insensitive substring of title or description.
    pub search: Option<String>,
}

/// Creates a draft for the caller; a title is required.
///
/// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`input.title`); INTERNAL.
pub async fn create(tx: &RequestTx, fields: DraftFields) -> AppResult<drafts::Model> {
    let user_id = tx.user_id()?;
    let title = fields.title.clone().ok_or_else(|| AppError::bad_input("input.title", "is required"))?;
    let now = Utc::now();
    let mut model = drafts::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        title: Set(title),
        description: Set(String::new()),
        price_cents: Set(None),
        currency: Set("EUR".into()),
        brand: Set(None),
        size: Set(None),
        condition: Set(None),
        category: Set(None),
        status: Set(DraftStatus::Draft.as_str().to_owned()),
        deleted_at: Set(None),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    };
    apply(&mut model, &fields);
    let draft = model.insert(tx).await?;
    log(tx, "draft.create", draft.id, json!({ "title": draft.title })).await?;
    Ok(draft)
}

/// Inserts drafts brought by `plinth import` as they were (ids chosen by the importer,
/// times and status kept), for the caller; activity is recorded by the importer once
/// per batch. Every row must be the caller's: row-level security refuses the rest.
///
/// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (a row of another
/// account); INTERNAL (database, a constraint).
pub async fn insert_imported(tx: &RequestTx, rows: Vec<drafts::Model>) -> AppResult<()> {
    let user_id = tx.active_user_id()?;
    if rows.iter().any(|r| r.user_id != user_id) {
        return Err(AppError::bad_input("drafts", "every imported draft must belong to the caller"));
    }
    if rows.is_empty() {
        return Ok(());
    }
    drafts::Entity::insert_many(rows.into_iter().map(drafts::ActiveModel::from)).exec_without_returning(tx).await?;
    Ok(())
}

/// Changes the given fields of one of the caller's drafts.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL.
pub async fn update(tx: &RequestTx, id: Uuid, fields: DraftFields) -> AppResult<drafts::Model> {
    let draft = find_live(tx, id).await?.ok_or_else(not_found)?;
    let mut model: drafts::ActiveModel = draft.into();
    apply(&mut model, &fields);
    model.updated_at = Set(Utc::now().into());
    let draft = model.update(tx).await?;
    log(tx, "draft.update", draft.id, json!({ "fields": changed_names(&fields) })).await?;
    Ok(draft)
}

/// Soft-deletes a draft; it can be restored for `RESTORE_WINDOW_DAYS`.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL.
pub async fn delete(tx: &RequestTx, id: Uuid) -> AppResult<bool> {
    let draft = find_live(tx, id).await?.ok_or_else(not_found)?;
    let mut model: drafts::ActiveModel = draft.into();
    model.deleted_at = Set(Some(Utc::now().into()));
    model.updated_at = Set(Utc::now().into());
    model.update(tx).await?;
    log(tx, "draft.delete", id, json!({})).await?;
    Ok(true)
}

/// Brings back a draft deleted within the restore window.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL.
pub async fn restore(tx: &RequestTx, id: Uuid) -> AppResult<drafts::Model> {
    let user_id = tx.user_id()?;
    let cutoff = Utc::now() - chrono::Duration::days(RESTORE_WINDOW_DAYS);
    let draft = drafts::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Id.eq(id))
        .filter(Column::DeletedAt.gt(cutoff))
        .one(tx)
        .await?
        .ok_or_else(|| AppError::NotFound("no deleted draft with this id within the restore window".into()))?;
    let mut model: drafts::ActiveModel = draft.into();
    model.deleted_at = Set(None);
    model.updated_at = Set(Utc::now().into());
    let draft = model.update(tx).await?;
    log(tx, "draft.restore", id, json!({})).await?;
    Ok(draft)
}

/// One of the caller's drafts, None when absent, deleted or another's.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn get(tx: &RequestTx, id: Uuid) -> AppResult<Option<drafts::Model>> {
    find_live(tx, id).await
}

/// A page of the caller's drafts, newest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn list(tx: &RequestTx, page: PageRequest, filter: &DraftFilter) -> AppResult<Page<drafts::Model>> {
    let user_id = tx.user_id()?;
    let mut q = drafts::Entity::find().filter(Column::UserId.eq(user_id)).filter(Column::DeletedAt.is_null());
    if let Some(status) = filter.status {
        q = q.filter(Column::Status.eq(status));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        q = q.filter(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(Column::Title))).like(pattern.clone()))
                .add(Expr::expr(Func::lower(Expr::col(Column::Description))).like(pattern)),
        );
    }
    if let Some(after) = page.after {
        q = q.filter(pagination::after(Column::CreatedAt, Column::Id, after));
    }
    let rows = q.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(page.limit()).all(tx).await?;
    Ok(Page::from_rows(rows, &page))
}

/// Drafts by id, for the photo → draft loader.
///
/// Errors: INTERNAL (database).
pub async fn by_ids(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<drafts::Model>> {
    Ok(drafts::Entity::find()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::DeletedAt.is_null())
        .all(db)
        .await?)
}

/// The cursor of a draft in the list order.
pub fn cursor(d: &drafts::Model) -> Cursor {
    Cursor { created_at: d.created_at.with_timezone(&Utc), id: d.id }
}

async fn find_live(tx: &RequestTx, id: Uuid) -> AppResult<Option<drafts::Model>> {
    let user_id = tx.user_id()?;
    Ok(drafts::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Id.eq(id))
        .filter(Column::DeletedAt.is_null())
        .one(tx)
        .await?)
}

fn not_found() -> AppError {
    AppError::NotFound("draft not found".into())
}

fn apply(model: &mut drafts::ActiveModel, f: &DraftFields) {
    fn patch<T: Clone>(p: &Patch<T>) -> Option<Option<T>> {
        match p {
            Patch::Keep => None,
            Patch::Clear => Some(None),
            Patch::Set(v) => Some(Some(v.clone())),
        }
    }
    if let Some(t) = &f.title {
        model.title = Set(t.clone());
    }
    if let Some(d) = &f.description {
        model.description = Set(d.clone());
    }
    if let Some(p) = patch(&f.price_cents) {
        model.price_cents = Set(p);
    }
    if let Some(c) = &f.currency {
        model.currency = Set(c.clone());
    }
    if let Some(b) = patch(&f.brand) {
        model.brand = Set(b);
    }
    if let Some(s) = patch(&f.size) {
        model.size = Set(s);
    }
    if let Some(c) = patch(&f.condition) {
        model.condition = Set(c.map(|c| c.as_str().to_owned()));
    }
    if let Some(c) = patch(&f.category) {
        model.category = Set(c);
    }
    if let Some(s) = f.status {
        model.status = Set(s.as_str().to_owned());
    }
}

fn changed_names(f: &DraftFields) -> Vec<&'static str> {
    let mut names = Vec::new();
    let keep = |p: bool, n: &'static str, names: &mut Vec<&'static str>| {
        if p {
            names.push(n)
        }
    };
    keep(f.title.is_some(), "title", &mut names);
    keep(f.description.is_some(), "description", &mut names);
    keep(f.price_cents != Patch::Keep, "priceCents", &mut names);
    keep(f.currency.is_some(), "currency", &mut names);
    keep(f.brand != Patch::Keep, "brand", &mut names);
    keep(f.size != Patch::Keep, "size", &mut names);
    keep(f.condition != Patch::Keep, "condition", &mut names);
    keep(f.category != Patch::Keep, "category", &mut names);
    keep(f.status.is_some(), "status", &mut names);
    names
}

async fn log(tx: &RequestTx, action: &str, id: Uuid, data: serde_json::Value) -> AppResult<()> {
    activity::record(tx, Entry::by_user(tx.user_id()?, action, Some(("draft", id)), data)).await
}

/// Escapes LIKE's wildcards in user text.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
