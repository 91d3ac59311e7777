//! GraphQL adapters for photos: the `Photo` type (its URL and its draft are resolved by
//! the drafts domain, which builds on photos), the photos-of-a-draft loader, and the
//! upload mutations.
use super::{
    domain::PhotoStatus,
    service::{self, PhotoService},
};
use crate::{
    auth::guards::{scope, ActiveSubscription, SignedIn},
    db::{data, RequestTx},
    error::{parse_id, AppError},
    model::ApiScope,
};
use async_graphql::{
    dataloader::{DataLoader, HashMapCache, Loader},
    Context, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use entity::photos;
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

// An uploaded image. (A plain comment: as a doc comment it would become the type's
// description in the published SDL, which has none.)
#[allow(missing_docs)]
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Photo {
    /// The photo's id.
    pub id: ID,
    /// The draft it belongs to, if attached.
    pub draft_id: Option<ID>,
    /// Order within the draft, from 0.
    pub position: i32,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub byte_size: i64,
    /// Width in pixels, once confirmed.
    pub width: Option<i32>,
    /// Height in pixels, once confirmed.
    pub height: Option<i32>,
    /// SHA-256 of the bytes (hex), once confirmed.
    pub sha256: Option<String>,
    /// Upload state.
    pub status: PhotoStatus,
    /// When it was reserved.
    pub created_at: DateTime<Utc>,
    /// The row, for the computed fields.
    #[graphql(skip)]
    pub model: photos::Model,
}

impl TryFrom<photos::Model> for Photo {
    type Error = AppError;

    fn try_from(m: photos::Model) -> Result<Self, AppError> {
        Ok(Photo {
            id: ID(m.id.to_string()),
            draft_id: m.draft_id.map(|d| ID(d.to_string())),
            position: m.position,
            content_type: m.content_type.clone(),
            byte_size: m.byte_size,
            width: m.width,
            height: m.height,
            sha256: m.sha256.as_ref().map(hex::encode),
            status: PhotoStatus::parse(&m.status).map_err(anyhow::Error::from)?,
            created_at: m.created_at.with_timezone(&Utc),
            model: m,
        })
    }
}

/// Converts rows, failing on the first unreadable one.
///
/// Errors: INTERNAL (a row with a status outside the vocabulary).
pub fn photos_of(rows: Vec<photos::Model>) -> Result<Vec<Photo>, AppError> {
    rows.into_iter().map(Photo::try_from).collect()
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
pub struct PhotosByDraft(pub RequestTx);

impl Loader<Uuid> for PhotosByDraft {
    type Value = Vec<photos::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = service::by_draft_ids(&self.0, keys).await?;
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
    #[graphql(guard = "scope(ApiScope::DraftsRead).on(&id).and(SignedIn)")]
    async fn photo(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Photo>> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("id", &id)?;
        Ok(data::<Arc<PhotoService>>(ctx)?.get(tx, id).await?.map(Photo::try_from).transpose()?)
    }
}

/// Photo mutations.
#[derive(Default)]
pub struct PhotosMutation;

#[Object]
impl PhotosMutation {
    /// Reserves a photo and returns a presigned URL to PUT its bytes to (15 minutes).
    #[graphql(guard = "scope(ApiScope::DraftsWrite).and(ActiveSubscription)")]
    async fn create_upload(
        &self,
        ctx: &Context<'_>,
        content_type: String,
        byte_size: i64,
        draft_id: Option<ID>,
    ) -> Result<PhotoUpload> {
        let tx = data::<RequestTx>(ctx)?;
        let draft_id = draft_id.map(|d| parse_id("draftId", &d)).transpose()?;
        let upload = data::<Arc<PhotoService>>(ctx)?.create_upload(tx, &content_type, byte_size, draft_id).await?;
        Ok(PhotoUpload {
            photo: upload.photo.try_into()?,
            upload_url: upload.put.url,
            method: "PUT".into(),
            headers: upload.put.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
            expires_at: upload.put.expires_at,
        })
    }

    /// Confirms an upload: checks the object and attaches the photo to a draft.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).and(SignedIn)")]
    async fn confirm_upload(&self, ctx: &Context<'_>, photo_id: ID, draft_id: Option<ID>) -> Result<Photo> {
        let tx = data::<RequestTx>(ctx)?;
        let photo_id = parse_id("photoId", &photo_id)?;
        let draft_id = draft_id.map(|d| parse_id("draftId", &d)).transpose()?;
        Ok(data::<Arc<PhotoService>>(ctx)?.confirm_upload(tx, photo_id, draft_id).await?.try_into()?)
    }

    /// Deletes a photo and its stored object.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).on(&id).and(SignedIn)")]
    async fn delete_photo(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("id", &id)?;
        Ok(data::<Arc<PhotoService>>(ctx)?.delete(tx, id).await?)
    }
}
