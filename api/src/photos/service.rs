//! Photo operations. Object keys are chosen here, never by the client, so a presigned
//! URL can only ever address the caller's own objects: a reservation is uploaded to
//! `u/<user id>/p/<photo id>`, and confirmation copies the checked bytes to
//! `u/<user id>/c/<photo id>`, which no URL can write.
use super::{
    domain::{PhotoStatus, ALLOWED_TYPES},
    store,
};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    error::{AppError, AppResult},
    model::QuotaMetric,
    quotas::service as quotas,
    storage::{PresignedPut, Storage},
};
use anyhow::Context;
use chrono::Utc;
use entity::photos::{self, Column};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};
use uuid::Uuid;
/// How long an upload URL works.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a download URL works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// A pending photo and where to upload it.
#[derive(Debug)]
pub struct Upload {
    /// The pending photo.
    pub photo: photos::Model,
    /// The presigned PUT.
    pub put: PresignedPut,
}

/// Photo operations and the store they use.
#[derive(Debug)]
pub struct PhotoService {
    storage: Arc<Storage>,
    max_bytes: u64,
}

impl PhotoService {
    /// Wires the service.
    pub fn new(storage: Arc<Storage>, max_bytes: u64) -> Self {
        PhotoService { storage, max_bytes }
    }

    /// Reserves a photo and returns a URL to PUT exactly `byte_size` bytes of
    /// `content_type` to.
    ///
    /// Errors: SUBSCRIPTION_INACTIVE; BAD_USER_INPUT (`contentType`, `byteSize`);
    /// NOT_FOUND (the draft); QUOTA_EXCEEDED (`STORAGE_BYTES`); INTERNAL.
    pub async fn create_upload(
        &self,
        tx: &RequestTx,
        content_type: &str,
        byte_size: i64,
        draft_id: Option<Uuid>,
    ) -> AppResult<Upload> {
        let user_id = tx.active_user_id()?;
        let content_type = content_type.trim().to_ascii_lowercase();
        if !ALLOWED_TYPES.contains(&content_type.as_str()) {
            return Err(AppError::bad_input("contentType", format!("must be one of {}", ALLOWED_TYPES.join(", "))));
        }
        if byte_size < 1 || byte_size as u64 > self.max_bytes {
            return Err(AppError::bad_input("byteSize", format!("must be between 1 and {} bytes", self.max_bytes)));
        }
        if let Some(d) = draft_id {
            require_draft(tx, user_id, d).await?;
        }
        quotas::check_gauge(tx, QuotaMetric::StorageBytes, byte_size).await?;
        let id = Uuid::now_v7();
        let key = upload_key(user_id, id);
        let now = Utc::now();
        let photo = photos::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            draft_id: Set(draft_id),
            position: Set(0),
            object_key: Set(key.clone()),
            content_type: Set(content_type.clone()),
            byte_size: Set(byte_size),
            width: Set(None),
            height: Set(None),
            sha256: Set(None),
            status: Set(PhotoStatus::Pending.as_str().to_owned()),
            created_at: Set(now.into()),
            updated_at: Set(now.into()),
        }
        .insert(tx)
        .await?;
        let put = self.storage.presign_put(&key, &content_type, byte_size as u64, UPLOAD_URL_TTL).await?;
        log(tx, "photo.reserve", id, json!({ "contentType": content_type, "bytes": byte_size })).await?;
        Ok(Upload { photo, put })
    }

    /// Checks the uploaded object (present, declared size and type, a real image of
    /// that type), records its dimensions and hash, and attaches it to a draft.
    ///
    /// Errors: UNAUTHENTICATED; NOT_FOUND (photo, draft); BAD_USER_INPUT (`photoId`:
    /// nothing uploaded, wrong size or type, not an image); INTERNAL.
    pub async fn confirm_upload(
        &self,
        tx: &RequestTx,
        photo_id: Uuid,
        draft_id: Option<Uuid>,
    ) -> AppResult<photos::Model> {
        let user_id = tx.user_id()?;
        let photo = self.get(tx, photo_id).await?.ok_or_else(not_found)?;
        let draft_id = draft_id.or(photo.draft_id);
        if let Some(d) = draft_id {
            require_draft(tx, user_id, d).await?;
        }
        let ready = PhotoStatus::Ready.as_str();
        if photo.status == ready && draft_id == photo.draft_id {
            return Ok(photo);
        }
        let (width, height, sha256, object_key) = if photo.status == ready {
            (photo.width, photo.height, photo.sha256.clone(), photo.object_key.clone())
        } else {
            // The checked bytes move to a key no upload URL was ever signed for, so a
            // still-valid PUT URL cannot swap what is served (issue 11, item 10). A
            // confirmation whose transaction was rolled back after the move finds the
            // bytes at the sealed key and checks them there.
            let sealed = confirmed_key(user_id, photo.id);
            let moved =
                self.storage.head(&photo.object_key).await?.is_none() && self.storage.head(&sealed).await?.is_some();
            let source = if moved { &sealed } else { &photo.object_key };
            let checked = self.check_object(&photo, source).await?;
            if !moved {
                self.storage.put(&sealed, &photo.content_type, &checked.bytes).await?;
                self.storage.delete(&photo.object_key).await?;
            }
            (Some(checked.width), Some(checked.height), Some(checked.sha256), sealed)
        };
        let position = match draft_id {
            Some(d) if draft_id != photo.draft_id || photo.status != ready => {
                store::next_position(tx, user_id, d).await?
            }
            _ => photo.position,
        };
        let mut model: photos::ActiveModel = photo.into();
        model.width = Set(width);
        model.height = Set(height);
        model.sha256 = Set(sha256);
        model.object_key = Set(object_key);
        model.status = Set(ready.to_owned());
        model.draft_id = Set(draft_id);
        model.position = Set(position);
        model.updated_at = Set(Utc::now().into());
        let photo = model.update(tx).await?;
        log(tx, "photo.confirm", photo.id, json!({ "draftId": draft_id, "bytes": photo.byte_size })).await?;
        Ok(photo)
    }

    /// Deletes a photo and its object.
    ///
    /// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL (database, storage).
    pub async fn delete(&self, tx: &RequestTx, id: Uuid) -> AppResult<bool> {
        let photo = self.get(tx, id).await?.ok_or_else(not_found)?;
        photos::Entity::delete_many()
            .filter(Column::UserId.eq(photo.user_id))
            .filter(Column::Id.eq(id))
            .exec(tx)
            .await?;
        self.storage.delete(&photo.object_key).await?;
        log(tx, "photo.delete", id, json!({})).await?;
        Ok(true)
    }

    /// One of the caller's photos.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn get(&self, tx: &RequestTx, id: Uuid) -> AppResult<Option<photos::Model>> {
        let user_id = tx.user_id()?;
        Ok(photos::Entity::find().filter(Column::UserId.eq(user_id)).filter(Column::Id.eq(id)).one(tx).await?)
    }

    /// A download URL for a confirmed photo (None while pending).
    ///
    /// Errors: INTERNAL (storage).
    pub async fn url(&self, photo: &photos::Model) -> AppResult<Option<String>> {
        if photo.status != PhotoStatus::Ready.as_str() {
            return Ok(None);
        }
        let ext = photo.content_type.rsplit('/').next().unwrap_or("bin");
        let name = format!("{}.{ext}", photo.id);
        Ok(Some(self.storage.presign_get(&photo.object_key, DOWNLOAD_URL_TTL, &photo.content_type, &name).await?))
    }

    /// The object store.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The largest photo accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Checks the bytes of a photo brought by `plinth import` as `confirm_upload` checks
    /// an upload (size, a real image of the declared type, and the checksum the import
    /// declares, when it does) and stores them at the photo's sealed key. Holds no
    /// transaction: call it before the one that inserts the row
    /// ([`PhotoService::insert_imported`]); the key is the photo's own, so a run that
    /// stops in between leaves an object the next run overwrites.
    ///
    /// Errors: BAD_USER_INPUT (`file`: size, type, checksum); INTERNAL (storage).
    pub async fn store_imported(
        &self,
        user_id: Uuid,
        photo_id: Uuid,
        content_type: &str,
        bytes: Vec<u8>,
        expected_sha256: Option<Vec<u8>>,
    ) -> AppResult<StoredImport> {
        let size = bytes.len() as u64;
        if size == 0 || size > self.max_bytes {
            return Err(AppError::bad_input("file", format!("must be between 1 and {} bytes", self.max_bytes)));
        }
        let expected = content_type.to_owned();
        let (inspected, bytes) = tokio::task::spawn_blocking(move || (inspect(&bytes, &expected), bytes))
            .await
            .context("image inspection task")?;
        let (width, height, sha256) = inspected
            .ok_or_else(|| AppError::bad_input("file", "is not a readable image of the declared contentType"))?;
        if expected_sha256.is_some_and(|e| e != sha256) {
            return Err(AppError::bad_input("file", "its SHA-256 is not the declared sha256"));
        }
        let key = confirmed_key(user_id, photo_id);
        self.storage.put(&key, content_type, &bytes).await?;
        Ok(StoredImport { key, width, height, sha256, byte_size: size as i64 })
    }

    /// Inserts photos brought by `plinth import` whose bytes [`PhotoService::store_imported`]
    /// stored, checking the storage gauge first in the same transaction: the import never
    /// takes the account past its plan's storage.
    ///
    /// Errors: UNAUTHENTICATED; SUBSCRIPTION_INACTIVE; QUOTA_EXCEEDED (`STORAGE_BYTES`);
    /// BAD_USER_INPUT (a row of another account, or not confirmed); INTERNAL.
    pub async fn insert_imported(&self, tx: &RequestTx, rows: Vec<photos::Model>) -> AppResult<()> {
        let user_id = tx.active_user_id()?;
        let ready = PhotoStatus::Ready.as_str();
        if rows
            .iter()
            .any(|r| r.user_id != user_id || r.status != ready || r.object_key != confirmed_key(user_id, r.id))
        {
            return Err(AppError::bad_input(
                "photos",
                "every imported photo must be the caller's, confirmed, at its key",
            ));
        }
        if rows.is_empty() {
            return Ok(());
        }
        quotas::check_gauge(tx, QuotaMetric::StorageBytes, rows.iter().map(|r| r.byte_size).sum()).await?;
        photos::Entity::insert_many(rows.into_iter().map(photos::ActiveModel::from)).exec_without_returning(tx).await?;
        Ok(())
    }

    async fn check_object(&self, photo: &photos::Model, key: &str) -> AppResult<Checked> {
        let info = self.storage.head(key).await?.ok_or_else(|| {
            AppError::bad_input("photoId", "nothing has been uploaded for this photo yet; PUT it to its upload URL")
        })?;
        let declared_type =
            info.content_type.as_deref().map(|t| t.split(';').next().unwrap_or("").trim().to_lowercase());
        if info.size != photo.byte_size as u64 {
            self.storage.delete(key).await?;
            return Err(AppError::bad_input(
                "photoId",
                format!("the upload has {} bytes, {} were declared; upload it again", info.size, photo.byte_size),
            ));
        }
        if declared_type.as_deref() != Some(photo.content_type.as_str()) {
            self.storage.delete(key).await?;
            return Err(AppError::bad_input("photoId", "the upload's Content-Type is not the declared one"));
        }
        let bytes = self.storage.get(key).await?;
        let expected = photo.content_type.clone();
        let inspected = tokio::task::spawn_blocking(move || inspect(&bytes, &expected).map(|f| (f, bytes)))
            .await
            .context("image inspection task")?;
        match inspected {
            Some(((width, height, sha256), bytes)) => Ok(Checked { width, height, sha256, bytes }),
            None => {
                self.storage.delete(key).await?;
                Err(AppError::bad_input("photoId", "the upload is not a readable image of the declared type"))
            }
        }
    }
}

/// Where and what an imported photo's checked bytes are.
#[derive(Clone, Debug)]
pub struct StoredImport {
    /// Its sealed key.
    pub key: String,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// SHA-256 of the bytes.
    pub sha256: Vec<u8>,
    /// Size in bytes.
    pub byte_size: i64,
}

/// An upload that passed the checks, and its bytes.
struct Checked {
    width: i32,
    height: i32,
    sha256: Vec<u8>,
    bytes: Vec<u8>,
}

/// Where a reservation is uploaded: the only key a presigned PUT is ever signed for.
pub fn upload_key(user_id: Uuid, photo_id: Uuid) -> String {
    format!("u/{user_id}/p/{photo_id}")
}

/// Where a confirmed photo lives: written by the server alone, never by a URL.
pub fn confirmed_key(user_id: Uuid, photo_id: Uuid) -> String {
    format!("u/{user_id}/c/{photo_id}")
}

/// Width, height and SHA-256 of an image whose magic bytes match `content_type`; None
/// when it is not a readable image of that type.
pub fn inspect(bytes: &[u8], content_type: &str) -> Option<(i32, i32, Vec<u8>)> {
    let kind = imagesize::image_type(bytes).ok()?;
    let matches = matches!(
        (kind, content_type),
        (imagesize::ImageType::Jpeg, "image/jpeg")
            | (imagesize::ImageType::Png, "image/png")
            | (imagesize::ImageType::Webp, "image/webp")
            | (imagesize::ImageType::Heif(_), "image/heic")
    );
    if !matches {
        return None;
    }
    let size = imagesize::blob_size(bytes).ok()?;
    Some((i32::try_from(size.width).ok()?, i32::try_from(size.height).ok()?, Sha256::digest(bytes).to_vec()))
}

/// Confirmed photos of the given drafts, in order, for the draft → photos loader.
///
/// Errors: INTERNAL (database).
pub async fn by_draft_ids(db: &impl ConnectionTrait, draft_ids: &[Uuid]) -> AppResult<Vec<photos::Model>> {
    Ok(photos::Entity::find()
        .filter(Column::DraftId.is_in(draft_ids.iter().copied()))
        .filter(Column::Status.eq(PhotoStatus::Ready))
        .order_by_asc(Column::Position)
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await?)
}

/// NOT_FOUND unless the user has this draft (not deleted).
async fn require_draft(tx: &RequestTx, user_id: Uuid, draft_id: Uuid) -> AppResult<()> {
    if store::live_draft_exists(tx, user_id, draft_id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("draft not found".into()))
    }
}

fn not_found() -> AppError {
    AppError::NotFound("photo not found".into())
}

async fn log(tx: &RequestTx, action: &str, id: Uuid, data: serde_json::Value) -> AppResult<()> {
    activity::record(tx, Entry::by_user(tx.user_id()?, action, Some(("photo", id)), data)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 PNG.
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00,
        0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D,
        0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];

    #[test]
    fn inspection_checks_the_magic_bytes() {
        let (w, h, sha) = inspect(PNG, "image/png").unwrap();
        assert_eq!((w, h, sha.len()), (1, 1, 32));
        assert!(inspect(PNG, "image/jpeg").is_none());
        assert!(inspect(b"not an image at all", "image/png").is_none());
    }
}
