//! Schema assembly only: each domain owns its roots, merged here, with the limits that
//! keep one request from costing the server arbitrarily much.
use crate::accounts::graphql::{AccountsMutation, AccountsQuery};
use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

/// Every domain's queries.
#[derive(MergedObject, Default)]
pub struct Query(AccountsQuery);

/// Every domain's mutations.
#[derive(MergedObject, Default)]
pub struct Mutation(AccountsMutation);

/// The API's schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection accepted.
pub const MAX_DEPTH: usize = 12;
/// Highest total complexity accepted (one per field, list fields multiply).
pub const MAX_COMPLEXITY: usize = 2_000;
/// Largest page a connection returns, whatever `first` asks.
pub const MAX_PAGE: usize = 100;

/// The schema with its limits, before per-process data is attached.
pub fn builder(introspection: bool) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
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
