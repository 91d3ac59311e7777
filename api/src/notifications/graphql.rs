//! GraphQL adapters for notifications: the list, marking read, and the live
//! `notificationAdded` subscription.
use super::{service, store};
use crate::{
    auth::{
        guards::{live_check, ApiRule, NoApiTokens, SignedIn},
        tokens::TokenService,
    },
    db::{data, live, RequestTx},
    error::parse_id,
    events::{Event, EventBus, Topic},
    principal::Principal,
};
use async_graphql::{Context, Object, Result, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;

/// An in-app notification.
#[derive(SimpleObject)]
pub struct Notification {
    /// The notification's id.
    pub id: ID,
    /// What it is about (e.g. payment_failed).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<store::NotificationRow> for Notification {
    fn from(n: store::NotificationRow) -> Self {
        Notification {
            id: ID(n.id.to_string()),
            kind: n.kind.as_str().to_owned(),
            title: n.title,
            body: n.body,
            read_at: n.read_at,
            created_at: n.created_at,
        }
    }
}

/// Notification queries.
#[derive(Default)]
pub struct NotificationsQuery;

#[Object]
impl NotificationsQuery {
    /// The caller's notifications, newest first (at most 100).
    #[graphql(
        guard = "NoApiTokens.and(SignedIn)",
        complexity = "super::service::LIST_LIMIT as usize * child_complexity + 1"
    )]
    async fn notifications(&self, ctx: &Context<'_>, unread_only: Option<bool>) -> Result<Vec<Notification>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::list(tx, unread_only.unwrap_or(false)).await?.into_iter().map(Notification::from).collect())
    }
}

/// Notification mutations.
#[derive(Default)]
pub struct NotificationsMutation;

#[Object]
impl NotificationsMutation {
    /// Marks notifications read (all of them when `ids` is omitted); returns how many.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn mark_notifications_read(&self, ctx: &Context<'_>, ids: Option<Vec<ID>>) -> Result<i32> {
        let tx = data::<RequestTx>(ctx)?;
        let ids = ids.map(|ids| ids.iter().map(|i| parse_id("ids", i)).collect::<Result<Vec<_>, _>>()).transpose()?;
        Ok(service::mark_read(tx, ids).await? as i32)
    }
}

/// Live notifications.
#[derive(Default)]
pub struct NotificationsSubscription;

#[Subscription]
impl NotificationsSubscription {
    /// Each notification added for the caller (quota thresholds, billing changes), read
    /// again in the subscriber's own transaction before it is sent.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn notification_added(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Result<Notification>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let user_id = principal.user_id();
        let tokens = data::<Arc<TokenService>>(ctx)?.clone();
        let recheck = live_check(tokens, ApiRule::NoApiTokens, "notificationAdded");
        let reader = data::<live::LiveSource>(ctx)?.reader(principal, recheck);
        let route = move |e: &Event| match e {
            Event::NotificationAdded { user_id: owner, notification_id } if Some(*owner) == user_id => {
                Some(*notification_id)
            }
            _ => None,
        };
        let read = |tx: RequestTx, id| async move { store::get(&tx, id).await.map(|n| n.map(Notification::from)) };
        Ok(live::follow(data::<Arc<EventBus>>(ctx)?, user_id.map(Topic::User), reader, route, read)
            .map(|r| r.map_err(Into::into)))
    }
}
