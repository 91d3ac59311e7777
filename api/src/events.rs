//! The live-event bus. Events are published after commit; every instance receives
//! every event through Redis pub/sub (or, with no Redis or while it is unavailable, an
//! in-process delivery) and hands it to its local subscribers of the event's
//! [`Topic`]s only: an event of one user wakes that user's subscribers, not every socket
//! of the instance. Events carry ids only: a subscriber re-reads the
//! object in its own row-level-secured transaction, so a misrouted event leaks nothing.
use crate::shared_redis::SharedRedis;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::{
    collections::{HashMap, VecDeque},
    hash::BuildHasher,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

pub use tokio::sync::broadcast::error::RecvError;

/// Redis channel all instances share.
const CHANNEL: &str = "plinth:events";
/// Events buffered per local subscriber before it counts as too slow: it then hears
/// `RecvError::Lagged` with the number of events it missed (the oldest). The buffer
/// grows only while events wait, so an idle subscriber holds none.
pub const SUBSCRIBER_BUFFER: usize = 1024;
/// Locks the subscriber registry is split over, so subscribing and publishing for
/// different users rarely wait for each other.
const SHARDS: usize = 16;

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

    /// The topics whose subscribers hear this event (one or two).
    pub fn topics(&self) -> [Option<Topic>; 2] {
        match self {
            Event::JobChanged { user_id, .. }
            | Event::NotificationAdded { user_id, .. }
            | Event::ImportChanged { user_id, .. } => [Some(Topic::User(*user_id)), None],
            Event::TicketChanged { user_id, .. } => [Some(Topic::User(*user_id)), Some(Topic::Tickets)],
            Event::JobQueued { .. } => [Some(Topic::JobsQueued), None],
            Event::TokensRevoked { user_id, .. } | Event::SessionsRevoked { user_id, .. } => {
                [Some(Topic::Access(*user_id)), Some(Topic::Revocations)]
            }
            Event::ApiTokenRevoked { revocation_id } | Event::WorkerTokenRevoked { revocation_id } => {
                [Some(Topic::Token(revocation_id.clone())), Some(Topic::Revocations)]
            }
        }
    }
}

/// What a local subscriber listens to: it hears exactly the events whose
/// [`Event::topics`] include it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Changes of one user's objects (`JobChanged`, `NotificationAdded`,
    /// `TicketChanged`, `ImportChanged`): that user's live subscriptions.
    User(Uuid),
    /// Revocations of one user's sessions or access tokens (`TokensRevoked`,
    /// `SessionsRevoked`): the sockets that user's session tokens opened.
    Access(Uuid),
    /// The revocation of one API or worker token, by revocation id (`ApiTokenRevoked`,
    /// `WorkerTokenRevoked`): the sockets that token opened.
    Token(String),
    /// Every `JobQueued`: workers, across tenants (the event names no owner).
    JobsQueued,
    /// Every `TicketChanged`: the support inbox (staff).
    Tickets,
    /// Every revocation: the instance's revocation list.
    Revocations,
}

/// One subscriber's waiting events.
#[derive(Default)]
struct Inbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// Events dropped (the oldest) since the subscriber last heard `Lagged`.
    missed: u64,
    closed: bool,
}

impl Inbox {
    fn push(&self, event: &Event) {
        {
            let mut queue = self.queue.lock().expect("inbox");
            if queue.closed {
                return;
            }
            if queue.events.len() >= SUBSCRIBER_BUFFER {
                queue.events.pop_front();
                queue.missed += 1;
            }
            queue.events.push_back(event.clone());
        }
        self.ready.notify_one();
    }

    fn close(&self) {
        self.queue.lock().expect("inbox").closed = true;
        self.ready.notify_one();
    }
}

/// One shard of the registry: the subscribers of each topic it holds.
type Shard = Mutex<HashMap<Topic, Vec<Arc<Inbox>>>>;

/// This instance's subscribers by topic; a topic without subscribers has no entry.
struct Router {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Router {
    fn new() -> Self {
        Router { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: Default::default() }
    }

    fn shard(&self, topic: &Topic) -> &Shard {
        &self.shards[(self.hasher.hash_one(topic) as usize) % SHARDS]
    }

    /// Hands `event` to the subscribers of its topics on this instance.
    fn deliver(&self, event: &Event) {
        for topic in event.topics().iter().flatten() {
            let shard = self.shard(topic).lock().expect("event router");
            for inbox in shard.get(topic).into_iter().flatten() {
                inbox.push(event);
            }
        }
    }

    fn add(&self, topic: &Topic, inbox: Arc<Inbox>) {
        self.shard(topic).lock().expect("event router").entry(topic.clone()).or_default().push(inbox);
    }

    fn remove(&self, topic: &Topic, inbox: &Arc<Inbox>) {
        let mut shard = self.shard(topic).lock().expect("event router");
        if let Some(inboxes) = shard.get_mut(topic) {
            inboxes.retain(|i| !Arc::ptr_eq(i, inbox));
            if inboxes.is_empty() {
                shard.remove(topic);
            }
        }
    }

    fn close(&self) {
        for shard in self.shards.iter() {
            for inbox in shard.lock().expect("event router").values().flatten() {
                inbox.close();
            }
        }
    }

    #[cfg(test)]
    fn topics(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// A local subscriber of one topic: it hears the topic's events published from the
/// moment it subscribed, in order; it stops being registered when dropped.
pub struct Receiver {
    inbox: Arc<Inbox>,
    registered: Option<(Arc<Router>, Topic)>,
}

impl Receiver {
    /// The next event; `Lagged(n)` after the subscriber fell `SUBSCRIBER_BUFFER` events
    /// behind (the `n` oldest were dropped; the next calls return the rest), `Closed`
    /// once the bus is gone. Cancel-safe: an event is taken only when returned.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        loop {
            {
                let mut queue = self.inbox.queue.lock().expect("inbox");
                if queue.missed > 0 {
                    return Err(RecvError::Lagged(std::mem::take(&mut queue.missed)));
                }
                if let Some(event) = queue.events.pop_front() {
                    if queue.events.is_empty() && queue.events.capacity() > 8 {
                        // A burst is over: an idle subscriber keeps no buffer.
                        queue.events = VecDeque::new();
                    }
                    return Ok(event);
                }
                if queue.closed {
                    return Err(RecvError::Closed);
                }
            }
            // A push after the check above left a permit: this returns at once then.
            self.inbox.ready.notified().await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((router, topic)) = &self.registered {
            router.remove(topic, &self.inbox);
        }
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("topic", &self.registered.as_ref().map(|(_, t)| t)).finish()
    }
}

/// Publishes and fans out events.
pub struct EventBus {
    local: Arc<Router>,
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
        let local = Arc::new(Router::new());
        let (resubscribed, _) = watch::channel(0);
        EventBus { local, redis: None, resubscribed, unsent: Default::default() }
    }

    /// A bus over Redis pub/sub. Waits up to `wait` for this instance to be subscribed,
    /// so nothing published after start is missed; when Redis is down it starts without
    /// (events stay on this instance) and subscribes when Redis comes back.
    pub async fn redis(link: Arc<SharedRedis>, wait: Duration) -> Self {
        let local = Arc::new(Router::new());
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
                self.local.deliver(event);
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
                local.deliver(&event);
            }
        });
    }

    /// A receiver of `topic`'s events from now on (see [`Receiver::recv`] for a consumer
    /// that falls behind); with no topic, one that hears nothing until the bus closes.
    pub fn subscribe(&self, topic: Option<Topic>) -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let registered = topic.map(|topic| {
            self.local.add(&topic, inbox.clone());
            (self.local.clone(), topic)
        });
        Receiver { inbox, registered }
    }

    /// Counts this instance's subscriptions to Redis: each change after the first means
    /// events other instances published meanwhile were missed (whoever must not miss
    /// them, such as revocations, reloads what it needs from Postgres).
    pub fn resubscriptions(&self) -> watch::Receiver<u64> {
        self.resubscribed.subscribe()
    }
}

impl Drop for EventBus {
    /// Ends every local subscription (`RecvError::Closed`).
    fn drop(&mut self) {
        self.local.close();
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
    local: Arc<Router>,
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
                                    Ok(event) => local.deliver(&event),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(user_id: Uuid) -> Event {
        Event::JobChanged { user_id, job_id: Uuid::new_v4() }
    }

    /// The events `rx` holds now, without waiting.
    fn waiting(rx: &mut Receiver) -> Vec<Result<Event, RecvError>> {
        let mut got = Vec::new();
        while let Some(r) = futures_util::FutureExt::now_or_never(rx.recv()) {
            got.push(r);
        }
        got
    }

    #[tokio::test]
    async fn an_event_of_one_user_reaches_only_that_users_subscribers() {
        let bus = EventBus::in_process();
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut ann_rx = bus.subscribe(Some(Topic::User(ann)));
        let mut bob_rx = bus.subscribe(Some(Topic::User(bob)));
        let mut bob_socket = bus.subscribe(Some(Topic::Access(bob)));
        let mut revocations = bus.subscribe(Some(Topic::Revocations));
        let events: Vec<Event> = (0..3).map(|_| job(ann)).collect();
        bus.publish(&events).await;
        bus.publish(&[Event::SessionsRevoked { user_id: ann, session_id: None }]).await;
        let got: Vec<Event> = waiting(&mut ann_rx).into_iter().map(Result::unwrap).collect();
        assert_eq!(got, events, "ann hears her events, in order");
        assert!(waiting(&mut bob_rx).is_empty(), "bob's subscription is not woken by ann's events");
        assert!(waiting(&mut bob_socket).is_empty(), "nor is bob's socket by ann's revocation");
        assert_eq!(waiting(&mut revocations).len(), 1, "the revocation list hears every revocation");
        bus.publish(&[job(bob)]).await;
        assert_eq!(waiting(&mut bob_rx).len(), 1);
        assert!(waiting(&mut ann_rx).is_empty());
    }

    #[tokio::test]
    async fn each_event_reaches_the_topics_that_need_it() {
        let bus = EventBus::in_process();
        let ann = Uuid::new_v4();
        let mut queued = bus.subscribe(Some(Topic::JobsQueued));
        let mut inbox = bus.subscribe(Some(Topic::Tickets));
        let mut token = bus.subscribe(Some(Topic::Token("ab".into())));
        let mut other_token = bus.subscribe(Some(Topic::Token("cd".into())));
        let mut nothing = bus.subscribe(None);
        bus.publish(&[
            Event::JobQueued { job_id: Uuid::new_v4(), kind: "scan".into() },
            Event::TicketChanged { user_id: ann, ticket_id: Uuid::new_v4(), message_id: None, internal: true },
            Event::WorkerTokenRevoked { revocation_id: "ab".into() },
            job(ann),
        ])
        .await;
        assert_eq!(waiting(&mut queued).len(), 1, "workers hear JobQueued of every tenant");
        assert_eq!(waiting(&mut inbox).len(), 1, "staff hear every ticket change");
        assert_eq!(waiting(&mut token).len(), 1);
        assert!(waiting(&mut other_token).is_empty());
        assert!(waiting(&mut nothing).is_empty());
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_and_an_idle_topic_costs_nothing() {
        let bus = EventBus::in_process();
        let ann = Uuid::new_v4();
        let mut rx = bus.subscribe(Some(Topic::User(ann)));
        let second = bus.subscribe(Some(Topic::User(ann)));
        let events: Vec<Event> = (0..SUBSCRIBER_BUFFER + 2).map(|_| job(ann)).collect();
        bus.publish(&events).await;
        assert_eq!(rx.recv().await, Err(RecvError::Lagged(2)), "the two oldest were dropped");
        assert_eq!(rx.recv().await, Ok(events[2].clone()), "then the rest, in order");
        assert_eq!(bus.local.topics(), 1);
        drop(second);
        assert_eq!(bus.local.topics(), 1, "a topic stays while one subscriber listens");
        drop(rx);
        assert_eq!(bus.local.topics(), 0, "the last subscriber gone, the topic is gone");
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_its_event_and_ends_with_the_bus() {
        let bus = EventBus::in_process();
        let ann = Uuid::new_v4();
        let mut rx = bus.subscribe(Some(Topic::User(ann)));
        let waiter = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        let event = job(ann);
        bus.publish(std::slice::from_ref(&event)).await;
        tokio::task::yield_now().await;
        drop(bus);
        let (first, second) = waiter.await.unwrap();
        assert_eq!(first, Ok(event));
        assert_eq!(second, Err(RecvError::Closed));
    }
}
