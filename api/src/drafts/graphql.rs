//! GraphQL adapters for drafts, the draft loader, and a photo's computed fields (its
//! URL and its draft: drafts build on photos, so the reference runs this way).
use super::{
    domain::{self, Condition as ItemCondition, DraftFields, DraftStatus, Patch},
    service::{self, DraftFilter},
};
use crate::{
    auth::guards::{scope, SignedIn},
    db::{data, RequestTx},
    error::{parse_id, AppError},
    model::ApiScope,
    pagination::PageRequest,
    photos::{
        graphql::{photos_of, Photo, PhotosLoader},
        service::PhotoService,
    },
};
use async_graphql::{
    connection::Connection,
    dataloader::{DataLoader, HashMapCache, Loader},
    ComplexObject, Context, InputObject, MaybeUndefined, Object, Result, ID,
};
use chrono::{DateTime, Utc};
use entity::drafts;
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

/// A listing in preparation.
pub struct Draft(pub drafts::Model);

#[Object]
impl Draft {
    /// The draft's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Description (may be empty).
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Price in cents of `currency`.
    async fn price_cents(&self) -> Option<i64> {
        self.0.price_cents
    }
    /// ISO 4217 currency.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Brand.
    async fn brand(&self) -> Option<&str> {
        self.0.brand.as_deref()
    }
    /// Size label.
    async fn size(&self) -> Option<&str> {
        self.0.size.as_deref()
    }
    /// Condition.
    async fn condition(&self) -> Option<ItemCondition> {
        self.0.condition.as_deref().and_then(|c| ItemCondition::parse(c).ok())
    }
    /// Category.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Lifecycle status.
    async fn status(&self) -> Result<DraftStatus> {
        Ok(DraftStatus::parse(&self.0.status).map_err(anyhow::Error::from).map_err(AppError::Internal)?)
    }
    /// Confirmed photos, in order.
    #[graphql(complexity = "crate::graphql::PHOTOS_PER_DRAFT_ESTIMATE * child_complexity + 1")]
    async fn photos(&self, ctx: &Context<'_>) -> Result<Vec<Photo>> {
        let photos = data::<PhotosLoader>(ctx)?.load_one(self.0.id).await?;
        Ok(photos_of(photos.unwrap_or_default())?)
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.with_timezone(&Utc)
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at.with_timezone(&Utc)
    }
}

/// The per-request draft loader; cached, so drafts already read are not read again.
pub type DraftLoader = DataLoader<DraftById, HashMapCache>;

/// Drafts by id, batched: one query for every photo on a page.
pub struct DraftById(pub RequestTx);

impl Loader<Uuid> for DraftById {
    type Value = drafts::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        Ok(service::by_ids(&self.0, keys).await?.into_iter().map(|d| (d.id, d)).collect())
    }
}

#[ComplexObject]
impl Photo {
    /// A download URL valid for 15 minutes, once confirmed.
    async fn url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(data::<Arc<PhotoService>>(ctx)?.url(&self.model).await?)
    }
    /// The draft it belongs to.
    async fn draft(&self, ctx: &Context<'_>) -> Result<Option<Draft>> {
        let Some(id) = self.model.draft_id else { return Ok(None) };
        Ok(data::<DraftLoader>(ctx)?.load_one(id).await?.map(Draft))
    }
}

/// Input of `createDraft`.
#[derive(InputObject)]
pub struct CreateDraftInput {
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 5,000 characters.
    pub description: Option<String>,
    /// 0 to 100,000,000.
    pub price_cents: Option<i64>,
    /// ISO 4217 code (EUR by default).
    pub currency: Option<String>,
    /// Up to 100 characters.
    pub brand: Option<String>,
    /// Up to 50 characters.
    pub size: Option<String>,
    /// Condition.
    pub condition: Option<ItemCondition>,
    /// Up to 100 characters.
    pub category: Option<String>,
    /// DRAFT by default.
    pub status: Option<DraftStatus>,
}

/// Input of `updateDraft`: absent fields stay, null clears the optional ones.
#[derive(InputObject)]
pub struct UpdateDraftInput {
    /// 1 to 200 characters.
    pub title: Option<String>,
    /// Up to 5,000 characters; null empties it.
    pub description: MaybeUndefined<String>,
    /// 0 to 100,000,000; null clears it.
    pub price_cents: MaybeUndefined<i64>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// Up to 100 characters; null clears it.
    pub brand: MaybeUndefined<String>,
    /// Up to 50 characters; null clears it.
    pub size: MaybeUndefined<String>,
    /// Null clears it.
    pub condition: MaybeUndefined<ItemCondition>,
    /// Up to 100 characters; null clears it.
    pub category: MaybeUndefined<String>,
    /// Lifecycle status.
    pub status: Option<DraftStatus>,
}

fn patch<T>(m: MaybeUndefined<T>) -> Patch<T> {
    match m {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(v) => Patch::Set(v),
    }
}

impl CreateDraftInput {
    fn parse(self) -> Result<DraftFields, AppError> {
        Ok(DraftFields {
            title: Some(domain::title("input.title", &self.title)?),
            description: self.description.map(|d| domain::description("input.description", &d)).transpose()?,
            price_cents: Patch::from(self.price_cents).try_map(|p| domain::price_cents("input.priceCents", p))?,
            currency: self.currency.map(|c| domain::currency("input.currency", &c)).transpose()?,
            brand: Patch::from(self.brand).try_map(|b| domain::label("input.brand", &b, 100))?,
            size: Patch::from(self.size).try_map(|s| domain::label("input.size", &s, 50))?,
            condition: Patch::from(self.condition),
            category: Patch::from(self.category).try_map(|c| domain::label("input.category", &c, 100))?,
            status: self.status,
        })
    }
}

impl UpdateDraftInput {
    fn parse(self) -> Result<DraftFields, AppError> {
        let description = match self.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(String::new()),
            MaybeUndefined::Value(d) => Some(domain::description("input.description", &d)?),
        };
        Ok(DraftFields {
            title: self.title.map(|t| domain::title("input.title", &t)).transpose()?,
            description,
            price_cents: patch(self.price_cents).try_map(|p| domain::price_cents("input.priceCents", p))?,
            currency: self.currency.map(|c| domain::currency("input.currency", &c)).transpose()?,
            brand: patch(self.brand).try_map(|b| domain::label("input.brand", &b, 100))?,
            size: patch(self.size).try_map(|s| domain::label("input.size", &s, 50))?,
            condition: patch(self.condition),
            category: patch(self.category).try_map(|c| domain::label("input.category", &c, 100))?,
            status: self.status,
        })
    }
}

impl<T> From<Option<T>> for Patch<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Patch::Keep, Patch::Set)
    }
}

/// Draft queries.
#[derive(Default)]
pub struct DraftsQuery;

#[Object]
impl DraftsQuery {
    /// The caller's drafts, newest first; `first` is capped at 100.
    #[graphql(
        guard = "scope(ApiScope::DraftsRead).and(SignedIn)",
        complexity = "crate::pagination::page_cost(first, child_complexity)"
    )]
    async fn drafts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<DraftStatus>,
        search: Option<String>,
    ) -> Result<Connection<String, Draft>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = DraftFilter { status, search };
        let page = service::list(tx, page, &filter).await?;
        // Photos on this page point back at these drafts: seed the loader's cache.
        data::<DraftLoader>(ctx)?.feed_many(page.items.iter().map(|d| (d.id, d.clone()))).await;
        // Load the whole page's photos in one batch now, rather than trusting the
        // loader's batching window to catch every draft's request.
        if ctx.look_ahead().field("edges").field("node").field("photos").exists() {
            data::<PhotosLoader>(ctx)?.load_many(page.items.iter().map(|d| d.id)).await?;
        }
        Ok(page.into_connection(service::cursor, Draft))
    }

    /// One of the caller's drafts; null when absent or not yours.
    #[graphql(guard = "scope(ApiScope::DraftsRead).on(&id).and(SignedIn)")]
    async fn draft(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Draft>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::get(tx, parse_id("id", &id)?).await?.map(Draft))
    }
}

/// Draft mutations.
#[derive(Default)]
pub struct DraftsMutation;

#[Object]
impl DraftsMutation {
    /// Creates a draft.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).and(SignedIn)")]
    async fn create_draft(&self, ctx: &Context<'_>, input: CreateDraftInput) -> Result<Draft> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(Draft(service::create(tx, input.parse()?).await?))
    }

    /// Changes a draft's fields.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).on(&id).and(SignedIn)")]
    async fn update_draft(&self, ctx: &Context<'_>, id: ID, input: UpdateDraftInput) -> Result<Draft> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("id", &id)?;
        Ok(Draft(service::update(tx, id, input.parse()?).await?))
    }

    /// Deletes a draft; `restoreDraft` brings it back within 30 days.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).on(&id).and(SignedIn)")]
    async fn delete_draft(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::delete(tx, parse_id("id", &id)?).await?)
    }

    /// Restores a draft deleted within the last 30 days.
    #[graphql(guard = "scope(ApiScope::DraftsWrite).on(&id).and(SignedIn)")]
    async fn restore_draft(&self, ctx: &Context<'_>, id: ID) -> Result<Draft> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(Draft(service::restore(tx, parse_id("id", &id)?).await?))
    }
}
