//! The live-event bus. Events are published after commit; every instance receives
//! every event through Redis pub/sub (or, with no Redis, an in-process broadcast) and
//! hands it to its local subscribers. Events carry ids only: a subscriber re-reads the
//! object in its own row-level-secured transaction, so a misrouted event leaks nothing.
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
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
    /// An API token was revoked: every instance refuses it from now on.
    ApiTokenRevoked {
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

/// Publishes and fans out events.
pub struct EventBus {
    local: broadcast::Sender<Event>,
    redis: Option<redis::aio::ConnectionManager>,
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
        EventBus { local, redis: None }
    }

    /// A bus over Redis pub/sub. Returns once this instance is subscribed, so nothing
    /// published after start is missed; the subscription reconnects by itself.
    ///
    /// Errors: Redis could not be reached or subscribed to within 5 s.
    pub async fn redis(url: &str, publisher: redis::aio::ConnectionManager) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let client = redis::Client::open(url)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(forward(client, local.clone(), ready_tx));
        tokio::time::timeout(std::time::Duration::from_secs(5), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("subscribing to Redis timed out"))?
            .map_err(|_| anyhow::anyhow!("the Redis subscriber stopped"))?;
        Ok(EventBus { local, redis: Some(publisher) })
    }

    /// Publishes events (call after the transaction that caused them committed).
    pub async fn publish(&self, events: &[Event]) {
        for event in events {
            match &self.redis {
                Some(conn) => {
                    let payload = match serde_json::to_string(event) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(error = %e, "serializing an event");
                            continue;
                        }
                    };
                    let mut conn = conn.clone();
                    let sent: redis::RedisResult<i64> =
                        redis::cmd("PUBLISH").arg(CHANNEL).arg(payload).query_async(&mut conn).await;
                    if let Err(e) = sent {
                        // Subscribers on this instance still hear it.
                        tracing::warn!(error = %e, "publishing to Redis failed; delivering locally only");
                        let _ = self.local.send(event.clone());
                    }
                }
                None => {
                    let _ = self.local.send(event.clone());
                }
            }
        }
    }

    /// A receiver of every event from now on; it lags (and should be dropped) when its
    /// consumer falls `SUBSCRIBER_BUFFER` events behind.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }
}

/// Forwards Redis messages to local subscribers, reconnecting after failures.
async fn forward(client: redis::Client, local: broadcast::Sender<Event>, ready: tokio::sync::oneshot::Sender<()>) {
    let mut ready = Some(ready);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        match serde_json::from_str::<Event>(&payload) {
                            Ok(event) => {
                                let _ = local.send(event);
                            }
                            Err(e) => tracing::warn!(error = %e, "an event from Redis could not be read"),
                        }
                    }
                    tracing::warn!("the Redis event subscription ended; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "subscribing to Redis events"),
            },
            Err(e) => tracing::warn!(error = %e, "connecting to Redis for events"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
