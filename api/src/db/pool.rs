//! The runtime pool: connections of the runtime role (`db::APP_ROLE`), each lent to one
//! transaction at a time (`RequestTx`) and given back after its COMMIT or ROLLBACK.
//!
//! Why not sqlx's pool: it pings every connection it gets back (an empty `Sync` and
//! its answer: a round trip per request, and a task spawned for it), on top of the
//! COMMIT that already proved the connection alive and left it idle. Here a connection
//! is given back only by [`Lent::release`], which the transaction calls once its
//! COMMIT's or ROLLBACK's answer is read, so no check is needed; any other way out (a
//! statement or COMMIT failed, a future dropped mid-statement) closes it, so no later
//! transaction can ever start inside an earlier one's state.
//!
//! Connections are lent last-in first-out (the warmest: its statement cache and the
//! server's backend hot), opened on demand up to `max_size`, closed after
//! [`MAX_LIFETIME`] or [`IDLE_TIMEOUT`] idle (checked for the oldest idle one at each
//! release, and for each one about to be lent). With no traffic at all, idle
//! connections stay open until the next request. Waiting for one, and opening one, is bounded by
//! `acquire_timeout`.
use sea_orm::sqlx::{
    self,
    postgres::{PgConnectOptions, PgConnection},
    ConnectOptions, Connection,
};
use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection older than this is closed when it comes back (sqlx's default): memory
/// a backend accumulated is given back, a fail-over's new primary is reached.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// An idle connection unused this long is closed (sqlx's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The pool (cheap to clone: clones share it).
#[derive(Clone)]
pub struct RuntimePool {
    inner: Arc<Inner>,
}

struct Inner {
    options: PgConnectOptions,
    /// Idle connections, the most recently released last.
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may be lent: `max_size` of them.
    permits: Arc<Semaphore>,
    /// Open connections (idle and lent).
    size: AtomicU32,
    acquire_timeout: Duration,
}

struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

impl std::fmt::Debug for RuntimePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimePool").field("size", &self.size()).field("idle", &self.num_idle()).finish()
    }
}

impl RuntimePool {
    /// A pool of at most `max_size` connections to `url`; none is opened yet.
    ///
    /// Errors: `url` is not a PostgreSQL URL.
    pub fn new(url: &str, max_size: u32, acquire_timeout: Duration) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        Ok(RuntimePool {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_size.max(1) as usize)),
                size: AtomicU32::new(0),
                acquire_timeout,
            }),
        })
    }

    /// Lends a connection: an idle one, or a new one while fewer than `max_size` are
    /// open.
    ///
    /// Errors: `PoolTimedOut` when none is free within `acquire_timeout` (or opening one
    /// took that long), `PoolClosed` after [`RuntimePool::close`], the database's when it
    /// refuses a new connection.
    pub async fn acquire(&self) -> Result<Lent, sqlx::Error> {
        let started = Instant::now();
        let wait = self.inner.permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(self.inner.acquire_timeout, wait).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
            Ok(Ok(permit)) => permit,
        };
        loop {
            let next = self.inner.idle.lock().expect("idle connections").pop();
            let Some(idle) = next else { break };
            if idle.opened.elapsed() < MAX_LIFETIME && idle.since.elapsed() < IDLE_TIMEOUT {
                return Ok(Lent {
                    conn: Some(idle.conn),
                    opened: idle.opened,
                    _permit: permit,
                    pool: self.inner.clone(),
                });
            }
            self.inner.retire(idle.conn);
        }
        let left = self.inner.acquire_timeout.saturating_sub(started.elapsed());
        let opened = match tokio::time::timeout(left, PgConnection::connect_with(&self.inner.options)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
        };
        // Counted once open (the permits bound how many may be): a caller gone while it
        // was opening leaves nothing counted.
        self.inner.size.fetch_add(1, Ordering::Relaxed);
        Ok(Lent { conn: Some(opened), opened: Instant::now(), _permit: permit, pool: self.inner.clone() })
    }

    /// Open connections, idle and lent (`plinth_db_pool_connections`).
    pub fn size(&self) -> u32 {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Idle connections (`plinth_db_pool_idle_connections`).
    pub fn num_idle(&self) -> usize {
        self.inner.idle.lock().expect("idle connections").len()
    }

    /// Lends nothing more and closes the idle connections; lent ones close when they
    /// come back.
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle = std::mem::take(&mut *self.inner.idle.lock().expect("idle connections"));
        for idle in idle {
            self.inner.size.fetch_sub(1, Ordering::Relaxed);
            idle.conn.close().await.ok();
        }
    }
}

impl Inner {
    /// Closes a connection in the background (`Terminate`, then the socket).
    fn retire(&self, conn: PgConnection) {
        self.size.fetch_sub(1, Ordering::Relaxed);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(async move { conn.close().await.ok() })),
            Err(_) => drop(conn),
        }
    }
}

/// A lent connection. Dropped without [`Lent::release`], it is closed, never lent again.
pub struct Lent {
    conn: Option<PgConnection>,
    opened: Instant,
    /// Given back after the connection is idle again: a waiter then finds it.
    _permit: OwnedSemaphorePermit,
    pool: Arc<Inner>,
}

impl Lent {
    /// Gives the connection back to be lent again. Only for a connection that is idle
    /// outside any transaction, its last answer read (after COMMIT or ROLLBACK).
    pub fn release(mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.pool.permits.is_closed() || self.opened.elapsed() >= MAX_LIFETIME {
            self.pool.retire(conn);
            return;
        }
        let now = Instant::now();
        let mut idle = self.pool.idle.lock().expect("idle connections");
        if self.pool.permits.is_closed() {
            // Closed meanwhile (`close` empties the list under this lock).
            drop(idle);
            self.pool.retire(conn);
            return;
        }
        let stale = idle.first().is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT);
        let stale = stale.then(|| idle.remove(0));
        idle.push(Idle { conn, opened: self.opened, since: now });
        drop(idle);
        if let Some(stale) = stale {
            self.pool.retire(stale.conn);
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Unfinished (a transaction may be open, an answer unread): the socket is
            // closed at once, and the server ends whatever ran on it.
            self.pool.size.fetch_sub(1, Ordering::Relaxed);
            drop(conn);
        }
    }
}

impl std::ops::Deref for Lent {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a lent connection until released")
    }
}

impl std::ops::DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lent connection until released")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_are_bounded_and_a_closed_pool_lends_nothing() {
        // No server needed: nothing connects while every permit is held.
        let pool = RuntimePool::new("postgres://nobody@127.0.0.1:1/none", 1, Duration::from_millis(50)).unwrap();
        let held = pool.inner.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolTimedOut)));
        drop(held);
        pool.close().await;
        assert!(matches!(pool.acquire().await, Err(sqlx::Error::PoolClosed)));
        assert_eq!((pool.size(), pool.num_idle()), (0, 0));
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_counted_and_gives_its_turn_back() {
        let pool = RuntimePool::new("postgres://nobody@127.0.0.1:1/none", 1, Duration::from_secs(2)).unwrap();
        assert!(!matches!(pool.acquire().await, Ok(_) | Err(sqlx::Error::PoolTimedOut)));
        assert_eq!(pool.size(), 0);
        // Its permit came back: the next try is refused by the server again, not timed out.
        assert!(!matches!(pool.acquire().await, Ok(_) | Err(sqlx::Error::PoolTimedOut)));
    }
}
