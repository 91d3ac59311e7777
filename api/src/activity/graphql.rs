//! GraphQL adapters for the activity log.
use super::service;
use crate::{
    auth::guards::{scope, SignedIn},
    db::{data, RequestTx},
    model::ApiScope,
    pagination::{Cursor, PageRequest},
};
use async_graphql::{connection::Connection, Context, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::activity_log;

/// One recorded action.
#[derive(SimpleObject)]
pub struct ActivityEntry {
    /// The entry's id.
    pub id: ID,
    /// A dotted verb, e.g. `draft.create`.
    pub action: String,
    /// The kind of object acted on.
    pub subject_type: Option<String>,
    /// The object acted on.
    pub subject_id: Option<ID>,
    /// Details.
    pub data: Json<serde_json::Value>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Done by support staff on the account (a staff tool), not by its owner or the
    /// system.
    pub by_support: bool,
}

impl From<activity_log::Model> for ActivityEntry {
    fn from(m: activity_log::Model) -> Self {
        ActivityEntry {
            id: ID(m.id.to_string()),
            action: m.action,
            subject_type: m.subject_type,
            subject_id: m.subject_id.map(|s| ID(s.to_string())),
            data: Json(m.data),
            created_at: m.created_at.with_timezone(&Utc),
            by_support: m.actor_id.is_some_and(|a| a != m.user_id),
        }
    }
}

/// Activity queries.
#[derive(Default)]
pub struct ActivityQuery;

#[Object]
impl ActivityQuery {
    /// What happened in the caller's account, newest first; `first` is capped at 100.
    #[graphql(
        guard = "scope(ApiScope::ActivityRead).and(SignedIn)",
        complexity = "crate::pagination::page_cost(first, child_complexity)"
    )]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, ActivityEntry>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = service::list(tx, PageRequest::parse(first, after.as_deref())?).await?;
        let cursor = |m: &activity_log::Model| Cursor { created_at: m.created_at.with_timezone(&Utc), id: m.id };
        Ok(page.into_connection(cursor, ActivityEntry::from))
    }
}
