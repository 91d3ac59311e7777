//! Connect, rename and disconnect marketplace accounts.
use super::domain::{MarketplaceAccountStatus, MarketplacePlatform};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    error::{AppError, AppResult},
    model::QuotaMetric,
    quotas::service as quotas,
    secretbox::SecretBox,
};
use chrono::Utc;
use entity::marketplace_accounts::{self as accounts, Column};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

/// Largest credentials document accepted, in bytes of JSON.
pub const CREDENTIALS_MAX_BYTES: usize = 16 * 1024;

/// Connects an account; `credentials` (any JSON object) is sealed before storage.
///
/// Errors: SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (`input.displayName`,
/// `input.credentials`); QUOTA_EXCEEDED (`CONNECTED_ACCOUNTS`); INTERNAL.
pub async fn connect(
    tx: &RequestTx,
    sealer: &SecretBox,
    platform: MarketplacePlatform,
    display_name: &str,
    credentials: &serde_json::Value,
) -> AppResult<accounts::Model> {
    let user_id = tx.active_user_id()?;
    let display_name = display_name_of("input.displayName", display_name)?;
    quotas::check_gauge(tx, QuotaMetric::ConnectedAccounts, 1).await?;
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
        platform: Set(platform.as_str().to_owned()),
        display_name: Set(display_name),
        credentials: Set(Some(sealed)),
        status: Set(MarketplaceAccountStatus::Connected.as_str().to_owned()),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(tx)
    .await?;
    log(tx, "marketplace_account.connect", id, json!({ "platform": platform })).await?;
    Ok(account)
}

/// Inserts accounts brought by `plinth import` as they were (ids chosen by the
/// importer, times and status kept); credentials, when the import carries them, are
/// sealed exactly as `connect` seals them. The caller checks the connected-accounts
/// gauge first ([`quotas::check_gauge`]) in the same transaction.
///
/// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (credentials not an
/// object or too large, a row of another account); INTERNAL.
pub async fn insert_imported(
    tx: &RequestTx,
    sealer: &SecretBox,
    rows: Vec<(accounts::Model, Option<serde_json::Value>)>,
) -> AppResult<()> {
    let user_id = tx.active_user_id()?;
    let mut models = Vec::with_capacity(rows.len());
    for (mut row, credentials) in rows {
        if row.user_id != user_id {
            return Err(AppError::bad_input("marketplaceAccounts", "every imported account must belong to the caller"));
        }
        row.display_name = display_name_of("displayName", &row.display_name)?;
        row.credentials = match credentials {
            None | Some(serde_json::Value::Null) => None,
            Some(c) if !c.is_object() => return Err(AppError::bad_input("credentials", "must be a JSON object")),
            Some(c) => {
                let plain = serde_json::to_vec(&c).map_err(anyhow::Error::from)?;
                if plain.len() > CREDENTIALS_MAX_BYTES {
                    return Err(AppError::bad_input(
                        "credentials",
                        format!("must be at most {CREDENTIALS_MAX_BYTES} bytes"),
                    ));
                }
                Some(sealer.seal(&plain, &aad(user_id, row.id))?)
            }
        };
        models.push(accounts::ActiveModel::from(row));
    }
    if !models.is_empty() {
        accounts::Entity::insert_many(models).exec_without_returning(tx).await?;
    }
    Ok(())
}

/// Renames an account.
///
/// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`displayName`); NOT_FOUND; INTERNAL.
pub async fn rename(tx: &RequestTx, id: Uuid, display_name: &str) -> AppResult<accounts::Model> {
    let display_name = display_name_of("displayName", display_name)?;
    let account = get(tx, id).await?.ok_or_else(not_found)?;
    let mut model: accounts::ActiveModel = account.into();
    model.display_name = Set(display_name);
    model.updated_at = Set(Utc::now().into());
    let account = model.update(tx).await?;
    log(tx, "marketplace_account.rename", id, json!({})).await?;
    Ok(account)
}

/// Disconnects an account and erases its credentials; the row stays for history.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL.
pub async fn disconnect(tx: &RequestTx, id: Uuid) -> AppResult<accounts::Model> {
    let account = get(tx, id).await?.ok_or_else(not_found)?;
    let mut model: accounts::ActiveModel = account.into();
    model.credentials = Set(None);
    model.status = Set(MarketplaceAccountStatus::Disconnected.as_str().to_owned());
    model.updated_at = Set(Utc::now().into());
    let account = model.update(tx).await?;
    log(tx, "marketplace_account.disconnect", id, json!({})).await?;
    Ok(account)
}

/// One of the caller's accounts.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn get(tx: &RequestTx, id: Uuid) -> AppResult<Option<accounts::Model>> {
    let user_id = tx.user_id()?;
    Ok(accounts::Entity::find().filter(Column::UserId.eq(user_id)).filter(Column::Id.eq(id)).one(tx).await?)
}

/// The caller's accounts, oldest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn list(tx: &RequestTx) -> AppResult<Vec<accounts::Model>> {
    let user_id = tx.user_id()?;
    Ok(accounts::Entity::find()
        .filter(Column::UserId.eq(user_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(tx)
        .await?)
}

/// The decrypted credentials of an account, for the publishing worker.
///
/// Errors: INTERNAL (the seal does not open with this key, or the plaintext is not JSON).
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

async fn log(tx: &RequestTx, action: &str, id: Uuid, data: serde_json::Value) -> AppResult<()> {
    activity::record(tx, Entry::by_user(tx.user_id()?, action, Some(("marketplace_account", id)), data)).await
}
