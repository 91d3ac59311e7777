//! Schema assembly only: each domain owns its roots, merged here, with the limits that
//! keep one request from costing the server arbitrarily much, and the per-request data
//! (the caller, its transaction, its DataLoaders).

pub mod execute;
pub mod limits;
pub mod persisted;

use crate::{
    accounts::graphql::{AccountsMutation, AccountsQuery},
    activity::graphql::ActivityQuery,
    api_tokens::graphql::{ApiTokensMutation, ApiTokensQuery},
    billing::graphql::{BillingMutation, BillingQuery},
    business::graphql::BusinessQuery,
    dashboard::graphql::DashboardQuery,
    db::RequestTx,
    drafts::graphql::{DraftById, DraftsMutation, DraftsQuery},
    email::graphql::{EmailMutation, EmailQuery},
    experiments::graphql::{ExperimentsMutation, ExperimentsQuery},
    feedback::graphql::{FeedbackMutation, FeedbackQuery},
    imports::graphql::{ImportsMutation, ImportsQuery, ImportsSubscription},
    jobs::graphql::{JobsMutation, JobsQuery, JobsSubscription, LogsByJob},
    marketplace::graphql::{MarketplaceMutation, MarketplaceQuery},
    notifications::graphql::{NotificationsMutation, NotificationsQuery, NotificationsSubscription},
    photos::graphql::{PhotosByDraft, PhotosMutation, PhotosQuery},
    plans::graphql::PlansQuery,
    quotas::graphql::QuotasQuery,
    support::graphql::{CsatByTicket, SupportMutation, SupportQuery, SupportSubscription},
    support::tools_graphql::{SupportToolsMutation, SupportToolsQuery},
};
use async_graphql::{
    dataloader::{DataLoader, HashMapCache},
    MergedObject, MergedSubscription, Request, Schema, SchemaBuilder,
};

/// Every domain's queries.
// In the order of the published SDL.
#[derive(MergedObject, Default)]
pub struct Query(
    AccountsQuery,
    DraftsQuery,
    PhotosQuery,
    MarketplaceQuery,
    ActivityQuery,
    DashboardQuery,
    JobsQuery,
    PlansQuery,
    BillingQuery,
    NotificationsQuery,
    QuotasQuery,
    ApiTokensQuery,
    EmailQuery,
    BusinessQuery,
    SupportQuery,
    SupportToolsQuery,
    ExperimentsQuery,
    FeedbackQuery,
    ImportsQuery,
);

/// Every domain's mutations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountsMutation,
    DraftsMutation,
    PhotosMutation,
    MarketplaceMutation,
    JobsMutation,
    BillingMutation,
    NotificationsMutation,
    ApiTokensMutation,
    EmailMutation,
    SupportMutation,
    SupportToolsMutation,
    ExperimentsMutation,
    FeedbackMutation,
    ImportsMutation,
);

/// Every domain's subscriptions.
#[derive(MergedSubscription, Default)]
pub struct Subscription(JobsSubscription, NotificationsSubscription, SupportSubscription, ImportsSubscription);

/// The API's schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Deepest selection accepted (`{ me { id } }` is 2 deep), checked by `limits::check`
/// before validation.
pub const MAX_DEPTH: usize = 12;
/// Deepest selection accepted under `__schema` or `__type` (when introspection is on):
/// the standard introspection query, graphql-js 16's `getIntrospectionQuery` that
/// GraphiQL and code generators send, is 15 deep (its `TypeRef` chain of `ofType`), and
/// introspection reads only the in-memory schema. Also the schema's own depth limit, a
/// backstop for any path that would skip `limits::check`.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// Highest total complexity accepted. Each field costs 1; a connection field costs
/// `first × its selection` (`pagination::page_cost`), a list field without `first` its
/// selection times the estimate below (or its hard limit). A full page of 100 drafts with
/// their photos costs about 6,500; 20 aliases of `drafts(first: 100) { edges { node {
/// id title } } }` cost 8,020.
pub const MAX_COMPLEXITY: usize = 10_000;
/// Photos assumed per draft, for complexity (no hard limit: the storage gauge bounds them).
pub const PHOTOS_PER_DRAFT_ESTIMATE: usize = 10;
/// Log lines assumed per job, for complexity.
pub const LOGS_PER_JOB_ESTIMATE: usize = 20;

/// The schema with its limits, before per-process data is attached.
pub fn builder(introspection: bool) -> SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(MAX_INTROSPECTION_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(16);
    if introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The SDL clients build against (`plinth schema`, and schema.graphql).
pub fn sdl() -> String {
    builder(true).finish().sdl()
}

/// Runs a DataLoader's batch on a task of its own inside the span that asked for it, so
/// its statements stay in the request's trace (`telemetry`).
fn spawn_in_span(load: futures_util::future::BoxFuture<'static, ()>) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    tokio::spawn(load.instrument(tracing::Span::current()))
}

/// Attaches a request's caller, transaction and DataLoaders. Loaders are created per
/// request, on its transaction, so batching never mixes tenants and RLS applies to them.
pub fn with_request(request: Request, tx: RequestTx) -> Request {
    request
        .data(tx.principal().clone())
        .data(DataLoader::with_cache(PhotosByDraft(tx.clone()), spawn_in_span, HashMapCache::default()))
        .data(DataLoader::with_cache(DraftById(tx.clone()), spawn_in_span, HashMapCache::default()))
        .data(DataLoader::with_cache(LogsByJob(tx.clone()), spawn_in_span, HashMapCache::default()))
        .data(DataLoader::with_cache(CsatByTicket(tx.clone()), spawn_in_span, HashMapCache::default()))
        .data(tx)
}
