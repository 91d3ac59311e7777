//! Redis, optional at run time. Plinth uses Redis for what instances share (request
//! rates, live events); without it each instance falls back to in-process limits and
//! events. This link never makes a request wait on Redis for more than its command
//! timeout, and never hammers a Redis that is down:
//!
//! - every command runs on one multiplexed connection with a short response timeout;
//! - a circuit breaker opens after consecutive failures: commands are skipped at once
//!   (the callers fall back) while a background task reconnects with exponential
//!   backoff and jitter; a successful `PING` closes it again;
//! - an instance that starts while Redis is down starts degraded and joins when it
//!   comes back; `is_up()` and `watch_up()` tell the metrics, `/readyz` and the event
//!   bus (which resubscribes and replays revocations from Postgres) when that happens.
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Client, RedisResult};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::sync::watch;

/// How long a command may take before it counts as failed (and the caller falls back).
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Consecutive failures that open the breaker.
const FAILURES_TO_OPEN: u32 = 3;
/// How often an idle link checks that Redis still answers.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// First and longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// A shared, breaker-guarded link to Redis.
pub struct SharedRedis {
    client: Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    failures: AtomicU32,
    up: watch::Sender<bool>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis").field("up", &self.is_up()).finish_non_exhaustive()
    }
}

impl SharedRedis {
    /// A link to `url` (not connected yet: call [`SharedRedis::start`]).
    ///
    /// Errors: a URL the client cannot parse.
    pub fn new(url: &str) -> anyhow::Result<Arc<Self>> {
        let client = Client::open(url)?;
        let (up, _) = watch::channel(false);
        Ok(Arc::new(SharedRedis {
            client,
            conn: Mutex::new(None),
            failures: AtomicU32::new(0),
            up,
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Starts the connection keeper and waits up to `wait` for a first connection;
    /// returns whether Redis is up (the instance runs degraded until it is).
    pub async fn start(self: &Arc<Self>, wait: Duration) -> bool {
        tokio::spawn(keep_connected(self.clone()));
        let mut up = self.watch_up();
        let _ = tokio::time::timeout(wait, up.wait_for(|u| *u)).await;
        self.is_up()
    }

    /// Whether Redis answers (the breaker is closed).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Changes of `is_up`, for whoever must react to Redis going away or coming back.
    pub fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `command` on the shared connection within `COMMAND_TIMEOUT`; None when the
    /// breaker is open, the command failed or it took too long (the caller falls back).
    pub async fn run<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn.lock().expect("redis connection").clone()?;
        match tokio::time::timeout(COMMAND_TIMEOUT, command(conn)).await {
            Ok(Ok(v)) => {
                self.failures.store(0, Ordering::Relaxed);
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a Redis command failed");
                self.failed();
                None
            }
            Err(_) => {
                tracing::warn!(timeout_ms = COMMAND_TIMEOUT.as_millis() as u64, "a Redis command timed out");
                self.failed();
                None
            }
        }
    }

    /// Counts a failure (also of work done on connections of its own, such as the event
    /// subscription); enough in a row open the breaker and wake the keeper.
    pub fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_TO_OPEN {
            self.open();
        }
    }

    fn open(&self) {
        if self.conn.lock().expect("redis connection").take().is_some() {
            tracing::warn!("Redis is unavailable: shared limits and events fall back to this instance");
        }
        self.up.send_if_modified(|u| std::mem::replace(u, false));
        self.wake.notify_one();
    }
}

/// Keeps the shared connection: connects (with backoff and jitter while Redis is down),
/// checks it with a `PING` every `HEARTBEAT` while up (so an idle instance notices an
/// outage too), and reconnects when the breaker opens.
async fn keep_connected(link: Arc<SharedRedis>) {
    let mut pause = BACKOFF.0;
    loop {
        if link.is_up() {
            tokio::select! {
                _ = link.wake.notified() => {}
                _ = tokio::time::sleep(HEARTBEAT) => {
                    link.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await }).await;
                }
            }
            continue;
        }
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(COMMAND_TIMEOUT);
        let attempt = async {
            let mut conn = link.client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            RedisResult::Ok(conn)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
            Ok(Ok(conn)) => {
                *link.conn.lock().expect("redis connection") = Some(conn);
                link.failures.store(0, Ordering::Relaxed);
                link.up.send_if_modified(|u| !std::mem::replace(u, true));
                tracing::info!("Redis is available: shared limits and events resume");
                pause = BACKOFF.0;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "Redis still unavailable"),
            Err(_) => tracing::debug!("connecting to Redis timed out"),
        }
        if !link.is_up() {
            let jitter = Duration::from_millis(rand::random::<u64>() % (pause.as_millis() as u64 / 2 + 1));
            tokio::time::sleep(pause + jitter).await;
            pause = (pause * 2).min(BACKOFF.1);
        }
    }
}
