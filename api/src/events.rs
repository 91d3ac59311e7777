//! The live-event bus. Events are published after commit; every instance receives
//! every event through Redis pub/sub (or, with no Redis or while it is unavailable, an
//! in-process broadcast) and hands it to its local subscribers. Events carry ids only: a subscriber re-reads the
//! object in its own row-level-secured transaction, so a misrouted event leaks nothing.
use crate::shared_redis::SharedRedis;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Redis channel all instances share.
const CHANNEL: &str = "plinth:events";
/// Events buffered per local subscriber before it counts as too slow and is dropped.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// Something that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job's state changed.
    JobChanged {
        /// Its owner.
        user_id: Uuid,
        /// The job.
        job_id: Uuid,
    },
    /// A job became due for a worker to claim (queued now): workers subscribed to
    /// `jobQueued` for its kind are told to claim. It carries the job's id and kind
    /// only, never its owner or input: workers hear it across tenants.
    JobQueued {
        /// The job.
        job_id: Uuid,
        /// Its kind, as stored (`scan`, `prepare`, `publish`).
        kind: String,
    },
    /// Access tokens of a user issued before `before` are no longer accepted (a plan or
    /// account-state change): every instance learns it within the publish latency.
    TokensRevoked {
        /// The user.
        user_id: Uuid,
        /// Tokens issued before this are refused.
        before: chrono::DateTime<chrono::Utc>,
    },
    /// A notification was added for a user.
    NotificationAdded {
        /// Its owner.
        user_id: Uuid,
        /// The notification.
        notification_id: Uuid,
    },
    /// A support ticket changed: a message was added (an internal note when
    /// `internal`), or its status or assignee changed.
    TicketChanged {
        /// The ticket's owner.
        user_id: Uuid,
        /// The ticket.
        ticket_id: Uuid,
        /// The message added, if any.
        message_id: Option<Uuid>,
        /// Whether that message is a staff-only note (never routed to the owner).
        internal: bool,
    },
    /// A web import's state or progress changed (`importUpdated`).
    ImportChanged {
        /// Its owner.
        user_id: Uuid,
        /// The import.
        import_id: Uuid,
    },
    /// An API token was revoked: every instance refuses it from now on.
    ApiTokenRevoked {
        /// Revocation id of its authority block.
        revocation_id: String,
    },
    /// A worker token was revoked (`plinth admin worker-token revoke`): every instance
    /// refuses it and closes its sockets.
    WorkerTokenRevoked {
        /// Revocation id of its authority block.
        revocation_id: String,
    },
    /// Sessions of a user were revoked (one, or all when `session_id` is None): their
    /// live sockets close.
    SessionsRevoked {
        /// The user.
        user_id: Uuid,
        /// The session, or every session.
        session_id: Option<Uuid>,
    },
}

/// Revocations kept to publish once Redis answers again, at most.
const UNSENT_REVOCATIONS: usize = 10_000;

impl Event {
    /// Whether the event revokes tokens: other instances must hear it even when Redis
    /// was away at the time.
    pub fn is_revocation(&self) -> bool {
        matches!(
            self,
            Event::TokensRevoked { .. }
                | Event::ApiTokenRevoked { .. }
                | Event::WorkerTokenRevoked { .. }
                | Event::SessionsRevoked { .. }
        )
    }
}

/// Publishes and fans out events.
pub struct EventBus {
    local: broadcast::Sender<Event>,
    redis: Option<Arc<SharedRedis>>,
    resubscribed: watch::Sender<u64>,
    /// Revocations this instance could only apply locally (Redis was away): published
    /// to the other instances when this instance subscribes again.
    unsent: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("redis", &self.redis.is_some()).finish_non_exhaustive()
    }
}

impl EventBus {
    /// An in-process bus (one instance, no Redis).
    pub fn in_process() -> Self {
        let (local, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let (resubscribed, _) = watch::channel(0);
        EventBus { local, redis: None, resubscribed, unsent: Default::default() }
    }

    /// A bus over Redis pub/sub. Waits up to `wait` for this instance to be subscribed,
    /// so nothing published after start is missed; when Redis is down it starts without
    /// (events stay on this instance) and subscribes when Redis comes back.
    pub async fn redis(link: Arc<SharedRedis>, wait: Duration) -> Self {
        let (local, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let (resubscribed, _) = watch::channel(0);
        let mut subscribed = resubscribed.subscribe();
        let unsent: Arc<std::sync::Mutex<Vec<Event>>> = Default::default();
        tokio::spawn(forward(link.clone(), local.clone(), resubscribed.clone(), unsent.clone()));
        if tokio::time::timeout(wait, subscribed.changed()).await.is_err() {
            tracing::warn!("not subscribed to Redis events yet: this instance hears only its own events for now");
        }
        EventBus { local, redis: Some(link), resubscribed, unsent }
    }

    /// Publishes events (call after the transaction that caused them committed): through
    /// Redis to every instance, or, while Redis is unavailable, to this instance only.
    pub async fn publish(&self, events: &[Event]) {
        for event in events {
            let sent = match &self.redis {
                Some(link) => publish_one(link, event).await,
                None => false,
            };
            if !sent {
                // Subscribers on this instance still hear it; other instances hear a
                // revocation when Redis answers again.
                let _ = self.local.send(event.clone());
                if self.redis.is_some() && event.is_revocation() {
                    let mut unsent = self.unsent.lock().expect("unsent revocations");
                    if unsent.len() < UNSENT_REVOCATIONS {
                        unsent.push(event.clone());
                    } else {
                        tracing::error!("too many revocations waiting for Redis; instances reload them from Postgres");
                    }
                }
            }
        }
    }

    /// Publishes `event` at `at` (at once when past), from a timer of this process: lost
    /// if the process stops first, so never for a revocation (use [`EventBus::publish`]).
    pub fn publish_at(&self, event: Event, at: chrono::DateTime<chrono::Utc>) {
        let delay = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        let (local, redis) = (self.local.clone(), self.redis.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let sent = match &redis {
                Some(link) => publish_one(link, &event).await,
                None => false,
            };
            if !sent {
                let _ = local.send(event);
            }
        });
    }

    /// A receiver of every event from now on; it lags (and should be dropped) when its
    /// consumer falls `SUBSCRIBER_BUFFER` events behind.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    /// Counts this instance's subscriptions to Redis: each change after the first means
    /// events other instances published meanwhile were missed (whoever must not miss
    /// them, such as revocations, reloads what it needs from Postgres).
    pub fn resubscriptions(&self) -> watch::Receiver<u64> {
        self.resubscribed.subscribe()
    }
}

/// Publishes one event through Redis (bounded by the link's command timeout); whether
/// Redis took it.
async fn publish_one(link: &SharedRedis, event: &Event) -> bool {
    match serde_json::to_string(event) {
        Ok(payload) => link
            .run(|mut conn| async move {
                redis::cmd("PUBLISH").arg(CHANNEL).arg(payload).query_async::<i64>(&mut conn).await
            })
            .await
            .is_some(),
        Err(e) => {
            tracing::error!(error = %e, "serializing an event");
            false
        }
    }
}

/// Forwards Redis messages to local subscribers: subscribes whenever Redis is up, drops
/// the subscription when the link reports it down, and counts every subscription. Once
/// subscribed, publishes the revocations that could only be applied locally meanwhile.
async fn forward(
    link: Arc<SharedRedis>,
    local: broadcast::Sender<Event>,
    resubscribed: watch::Sender<u64>,
    unsent: Arc<std::sync::Mutex<Vec<Event>>>,
) {
    let mut up = link.watch_up();
    loop {
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
        let subscribe = async {
            let mut pubsub = link.client().get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(1), subscribe).await {
            Ok(Ok(mut pubsub)) => {
                resubscribed.send_modify(|n| *n += 1);
                let waiting = std::mem::take(&mut *unsent.lock().expect("unsent revocations"));
                for (i, event) in waiting.iter().enumerate() {
                    if !publish_one(&link, event).await {
                        // Still away: keep the rest for the next subscription.
                        unsent.lock().expect("unsent revocations").extend(waiting[i..].iter().cloned());
                        break;
                    }
                }
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(msg) => {
                                let Ok(payload) = msg.get_payload::<String>() else { continue };
                                match serde_json::from_str::<Event>(&payload) {
                                    Ok(event) => {
                                        let _ = local.send(event);
                                    }
                                    Err(e) => tracing::warn!(error = %e, "an event from Redis could not be read"),
                                }
                            }
                            None => break,
                        },
                        changed = up.changed() => if changed.is_err() || !*up.borrow() { break },
                    }
                }
                tracing::warn!("the Redis event subscription ended; resubscribing when Redis answers");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "subscribing to Redis events");
                link.failed();
            }
            Err(_) => {
                tracing::warn!("subscribing to Redis events timed out");
                link.failed();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
