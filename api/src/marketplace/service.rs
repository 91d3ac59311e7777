//! Connect, rename and disconnect marketplace accounts.
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestScope,
    error::{AppError, AppResult},
    secretbox::SecretBox,
};
use chrono::Utc;
use entity::marketplace_accounts::{self as accounts, Column};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

/// Marketplaces an account can be connected to.
pub const PLATFORMS: &[&str] = &["vinted", "ebay", "leboncoin", "etsy", "depop"];
/// Largest credentials document accepted, in bytes of JSON.
pub const CREDENTIALS_MAX_BYTES: usize = 16 * 1024;

/// Connects an account; `credentials` (any JSON object) is sealed before storage.
pub async fn connect(
    scope: &RequestScope,
    sealer: &SecretBox,
    platform: &str,
    display_name: &str,
    credentials: &serde_json::Value,
) -> AppResult<accounts::Model> {
    let user_id = scope.require_active()?;
    if !PLATFORMS.contains(&platform) {
        return Err(AppError::bad_input("input.platform", format!("must be one of {}", PLATFORMS.join(", "))));
    }
    let display_name = display_name_of("input.displayName", display_name)?;
    crate::quotas::service::check_gauge(scope, "connected_accounts", 1).await?;
    if !credentials.is_object() {
        return Err(AppError::bad_input("input.credentials", "must be a JSON object"));
    }
    let plain = serde_json::to_vec(credentials).map_err(anyhow::Error::from)?;
    if plain.len() > CREDENTIALS_MAX_BYTES {
        return Err(AppError::bad_input("input.credentials", format!("must be at most {CREDENTIALS_MAX_BYTES} bytes")));
    }
    let id = Uuid::now_v7();
    let sealed = sealer.seal(&plain, &aad(user_id, id))?;
    let now = Utc::now();
    let account = accounts::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        platform: Set(platform.to_owned()),
        display_name: Set(display_name),
        credentials: Set(Some(sealed)),
        status: Set("connected".into()),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(scope.tx.as_ref())
    .await?;
    log(scope, "marketplace_account.connect", id, json!({ "platform": platform })).await?;
    Ok(account)
}

/// Renames an account.
pub async fn rename(scope: &RequestScope, id: Uuid, display_name: &str) -> AppResult<accounts::Model> {
    let display_name = display_name_of("displayName", display_name)?;
    let account = get(scope, id).await?.ok_or_else(not_found)?;
    let mut model: accounts::ActiveModel = account.into();
    model.display_name = Set(display_name);
    model.updated_at = Set(Utc::now().into());
    let account = model.update(scope.tx.as_ref()).await?;
    log(scope, "marketplace_account.rename", id, json!({})).await?;
    Ok(account)
}

/// Disconnects an account and erases its credentials; the row stays for history.
pub async fn disconnect(scope: &RequestScope, id: Uuid) -> AppResult<accounts::Model> {
    let account = get(scope, id).await?.ok_or_else(not_found)?;
    let mut model: accounts::ActiveModel = account.into();
    model.credentials = Set(None);
    model.status = Set("disconnected".into());
    model.updated_at = Set(Utc::now().into());
    let account = model.update(scope.tx.as_ref()).await?;
    log(scope, "marketplace_account.disconnect", id, json!({})).await?;
    Ok(account)
}

/// One of the caller's accounts.
pub async fn get(scope: &RequestScope, id: Uuid) -> AppResult<Option<accounts::Model>> {
    let user_id = scope.require_user()?;
    Ok(accounts::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Id.eq(id))
        .one(scope.tx.as_ref())
        .await?)
}

/// The caller's accounts, oldest first.
pub async fn list(scope: &RequestScope) -> AppResult<Vec<accounts::Model>> {
    let user_id = scope.require_user()?;
    Ok(accounts::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(scope.tx.as_ref())
        .await?)
}

/// The decrypted credentials of an account, for the publishing worker.
pub fn open_credentials(sealer: &SecretBox, account: &accounts::Model) -> AppResult<Option<serde_json::Value>> {
    let Some(sealed) = &account.credentials else { return Ok(None) };
    let plain = sealer.open(sealed, &aad(account.user_id, account.id))?;
    Ok(Some(serde_json::from_slice(&plain).map_err(anyhow::Error::from)?))
}

/// Binds a ciphertext to its owner and row.
fn aad(user_id: Uuid, id: Uuid) -> Vec<u8> {
    [user_id.as_bytes().as_slice(), id.as_bytes()].concat()
}

fn display_name_of(field: &str, raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input(field, "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn not_found() -> AppError {
    AppError::NotFound("marketplace account not found".into())
}

async fn log(scope: &RequestScope, action: &str, id: Uuid, data: serde_json::Value) -> AppResult<()> {
    let user_id = scope.require_user()?;
    activity::record(
        scope.tx.as_ref(),
        &scope.meta,
        Entry {
            user_id,
            actor_id: Some(user_id),
            action,
            subject_type: Some("marketplace_account"),
            subject_id: Some(id),
            data,
        },
    )
    .await
}
