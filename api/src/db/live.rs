//! Live subscriptions' reads. An event on the bus only names an object; each one meant
//! for the subscriber is read again in the subscriber's own row-level-secured
//! transaction before anything is sent, so a misrouted event leaks nothing.
use super::{RequestMeta, RequestTx};
use crate::{
    db::RuntimePool,
    error::AppError,
    events::{Event, EventBus, RecvError, Topic},
    principal::Principal,
};
use futures_util::{stream::BoxStream, StreamExt};
use std::future::Future;
use uuid::Uuid;

/// Where live reads run (schema-wide data of the GraphQL schema).
#[derive(Clone, Debug)]
pub struct LiveSource {
    /// The runtime pool.
    pub pool: RuntimePool,
    /// Statement timeout of each read.
    pub statement_timeout_ms: u64,
}

/// Whether the subscriber may still receive events (checked before each one): its
/// token not revoked or expired, and the field's rule still passing.
pub type Recheck = std::sync::Arc<dyn Fn(&Principal) -> Result<(), AppError> + Send + Sync>;

impl LiveSource {
    /// Reads as `principal`, after `recheck` passes for each event.
    pub fn reader(&self, principal: Principal, recheck: Recheck) -> Reader {
        Reader { pool: self.pool.clone(), principal, statement_timeout_ms: self.statement_timeout_ms, recheck }
    }
}

/// Where a subscriber's reads run.
#[derive(Clone)]
pub struct Reader {
    /// The runtime pool.
    pub pool: RuntimePool,
    /// The subscriber.
    pub principal: Principal,
    /// Statement timeout of each read.
    pub statement_timeout_ms: u64,
    /// The subscriber's rights, checked again before each event.
    pub recheck: Recheck,
}

/// A stream of the objects `route` picks out of the events of `topic` (none: no
/// event), each read by `read`
/// in a fresh read-only transaction as the subscriber. `route` returns the object's id
/// for events meant for this subscriber; `read` returns None for an object the
/// subscriber cannot see (skipped).
///
/// Before each event, the subscriber's rights are checked again (`Reader::recheck`):
/// a token revoked or expired since, or a field it may no longer call, ends the stream
/// with that error (UNAUTHENTICATED, FORBIDDEN) and nothing is sent.
///
/// The stream ends after an error: RATE_LIMITED when the subscriber fell more than the
/// bus's buffer behind (it should resubscribe), or the read's error.
pub fn follow<T, R, F, Fut>(
    bus: &EventBus,
    topic: Option<Topic>,
    reader: Reader,
    route: R,
    read: F,
) -> BoxStream<'static, Result<T, AppError>>
where
    T: Send + 'static,
    R: Fn(&Event) -> Option<Uuid> + Send + Sync + 'static,
    F: Fn(RequestTx, Uuid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<T>, AppError>> + Send,
{
    follow_from(bus, topic, reader, None, route, read)
}

/// [`follow`], sending first the current state of `current` (when given and visible):
/// the stream listens to the bus before that first read, so a change made between
/// the subscriber's last look and its subscription is never lost (it is in the first
/// item, or arrives as an event after it). A subscriber following one object (a job
/// it just started) needs no separate query to catch up.
pub fn follow_from<T, R, F, Fut>(
    bus: &EventBus,
    topic: Option<Topic>,
    reader: Reader,
    current: Option<Uuid>,
    route: R,
    read: F,
) -> BoxStream<'static, Result<T, AppError>>
where
    T: Send + 'static,
    R: Fn(&Event) -> Option<Uuid> + Send + Sync + 'static,
    F: Fn(RequestTx, Uuid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<T>, AppError>> + Send,
{
    // Subscribed here, when the resolver runs: before the first read below.
    let state = (bus.subscribe(topic), reader, route, read, current, false);
    futures_util::stream::unfold(state, |(mut rx, reader, route, read, mut first, done)| async move {
        if done {
            return None;
        }
        loop {
            let id = match first.take() {
                Some(id) => id,
                None => match rx.recv().await {
                    Ok(event) => match route(&event) {
                        Some(id) => id,
                        None => continue,
                    },
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(missed = n, "a slow subscriber was dropped");
                        let e = AppError::RateLimited { retry_after_secs: 1 };
                        return Some((Err(e), (rx, reader, route, read, None, true)));
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            // Boxed: an idle subscriber's stream holds only its receiver's wait, not the
            // space of a whole read (a transaction and its query).
            match Box::pin(read_once(&reader, &read, id)).await {
                Ok(Some(item)) => return Some((Ok(item), (rx, reader, route, read, None, false))),
                Ok(None) => continue,
                Err(e) => return Some((Err(e), (rx, reader, route, read, None, true))),
            }
        }
    })
    // Boxed: the resolver's future, which async-graphql keeps for the subscription's
    // life, holds a pointer rather than the stream.
    .boxed()
}

/// One read in a fresh transaction, bounded by the statement timeout (and a second for
/// the connection): a database that does not answer ends the read SERVICE_UNAVAILABLE.
async fn read_once<T, F, Fut>(reader: &Reader, read: &F, id: Uuid) -> Result<Option<T>, AppError>
where
    F: Fn(RequestTx, Uuid) -> Fut,
    Fut: Future<Output = Result<Option<T>, AppError>>,
{
    (reader.recheck)(&reader.principal)?;
    let budget = std::time::Duration::from_millis(reader.statement_timeout_ms + 1_000);
    let tx = RequestTx::new(
        &reader.pool,
        reader.principal.clone(),
        RequestMeta::internal("subscription"),
        reader.statement_timeout_ms,
    );
    let item = match tokio::time::timeout(budget, read(tx.clone(), id)).await {
        Ok(item) => item,
        Err(_) => Err(AppError::ServiceUnavailable("the database did not answer; resubscribe shortly".into())),
    };
    tx.rollback().await;
    item
}
