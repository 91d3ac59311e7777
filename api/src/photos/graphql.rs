//! GraphQL adapters for photos, and the photo loaders.
use super::service::{self, PhotoService};
use crate::{
    db::{data, RequestScope},
    drafts::graphql::{Draft, DraftLoader},
    error::parse_id,
};
use async_graphql::{
    dataloader::{DataLoader, HashMapCache, Loader},
    Context, Enum, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use entity::photos;
use sea_orm::DatabaseTransaction;
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

/// Whether a photo's upload was confirmed.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum PhotoStatus {
    /// Reserved; waiting for the upload and its confirmation.
    Pending,
    /// Uploaded and checked.
    Ready,
}

/// An uploaded image.
pub struct Photo(pub photos::Model);

#[Object]
impl Photo {
    /// The photo's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The draft it belongs to, if attached.
    async fn draft_id(&self) -> Option<ID> {
        self.0.draft_id.map(|d| ID(d.to_string()))
    }
    /// Order within the draft, from 0.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// MIME type.
    async fn content_type(&self) -> &str {
        &self.0.content_type
    }
    /// Size in bytes.
    async fn byte_size(&self) -> i64 {
        self.0.byte_size
    }
    /// Width in pixels, once confirmed.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }
    /// Height in pixels, once confirmed.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }
    /// SHA-256 of the bytes (hex), once confirmed.
    async fn sha256(&self) -> Option<String> {
        self.0.sha256.as_ref().map(hex::encode)
    }
    /// Upload state.
    async fn status(&self) -> PhotoStatus {
        if self.0.status == "ready" {
            PhotoStatus::Ready
        } else {
            PhotoStatus::Pending
        }
    }
    /// When it was reserved.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.with_timezone(&Utc)
    }
    /// A download URL valid for 15 minutes, once confirmed.
    async fn url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(data::<Arc<PhotoService>>(ctx)?.url(&self.0).await?)
    }
    /// The draft it belongs to.
    async fn draft(&self, ctx: &Context<'_>) -> Result<Option<Draft>> {
        let Some(id) = self.0.draft_id else { return Ok(None) };
        Ok(data::<DraftLoader>(ctx)?.load_one(id).await?.map(Draft))
    }
}

/// A header an upload must carry.
#[derive(SimpleObject, Debug)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Where and how to upload a reserved photo.
#[derive(SimpleObject)]
pub struct PhotoUpload {
    /// The reserved photo (PENDING until confirmed).
    pub photo: Photo,
    /// The presigned URL.
    pub upload_url: String,
    /// The HTTP method: PUT.
    pub method: String,
    /// Headers the upload must carry, exactly.
    pub headers: Vec<HttpHeader>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// The per-request photos-of-a-draft loader, cached so a page can prefetch.
pub type PhotosLoader = DataLoader<PhotosByDraft, HashMapCache>;

/// Photos of drafts, batched: one query for every draft on a page.
pub struct PhotosByDraft(pub Arc<DatabaseTransaction>);

impl Loader<Uuid> for PhotosByDraft {
    type Value = Vec<photos::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = service::by_draft_ids(self.0.as_ref(), keys).await?;
        // Every key gets an entry, so a draft without photos is cached as such.
        let mut map: HashMap<Uuid, Vec<photos::Model>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for p in rows {
            if let Some(d) = p.draft_id {
                map.entry(d).or_default().push(p);
            }
        }
        Ok(map)
    }
}

/// Photo queries.
#[derive(Default)]
pub struct PhotosQuery;

#[Object]
impl PhotosQuery {
    /// One of the caller's photos; null when absent or not yours.
    async fn photo(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Photo>> {
        let scope = data::<RequestScope>(ctx)?;
        let id = parse_id("id", &id)?;
        Ok(data::<Arc<PhotoService>>(ctx)?.get(scope, id).await?.map(Photo))
    }
}

/// Photo mutations.
#[derive(Default)]
pub struct PhotosMutation;

#[Object]
impl PhotosMutation {
    /// Reserves a photo and returns a presigned URL to PUT its bytes to (15 minutes).
    async fn create_upload(
        &self,
        ctx: &Context<'_>,
        content_type: String,
        byte_size: i64,
        draft_id: Option<ID>,
    ) -> Result<PhotoUpload> {
        let scope = data::<RequestScope>(ctx)?;
        let draft_id = draft_id.map(|d| parse_id("draftId", &d)).transpose()?;
        let upload = data::<Arc<PhotoService>>(ctx)?.create_upload(scope, &content_type, byte_size, draft_id).await?;
        Ok(PhotoUpload {
            photo: Photo(upload.photo),
            upload_url: upload.put.url,
            method: "PUT".into(),
            headers: upload.put.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
            expires_at: upload.put.expires_at,
        })
    }

    /// Confirms an upload: checks the object and attaches the photo to a draft.
    async fn confirm_upload(&self, ctx: &Context<'_>, photo_id: ID, draft_id: Option<ID>) -> Result<Photo> {
        let scope = data::<RequestScope>(ctx)?;
        let photo_id = parse_id("photoId", &photo_id)?;
        let draft_id = draft_id.map(|d| parse_id("draftId", &d)).transpose()?;
        Ok(Photo(data::<Arc<PhotoService>>(ctx)?.confirm_upload(scope, photo_id, draft_id).await?))
    }

    /// Deletes a photo and its stored object.
    async fn delete_photo(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let scope = data::<RequestScope>(ctx)?;
        let id = parse_id("id", &id)?;
        Ok(data::<Arc<PhotoService>>(ctx)?.delete(scope, id).await?)
    }
}
