//! The one way work reaches the database for a principal: a `RequestTx` begins the
//! row-level-secured transaction, carries the caller, where the request came from and
//! the events it caused, and finishes it: commit and publish, or roll back.
//!
//! Resolvers, DataLoaders, webhooks, sweepers and command-line tools all use it. It is a
//! cheap handle (clones share one transaction); the transaction itself sits in a slot
//! that `commit`/`rollback` empty under a write lock, so the owner releases it
//! deterministically once every statement in flight has finished, whatever clones a
//! finished loader task still holds.
//!
//! The transaction begins at the first statement (`RequestTx::new`), so a request that
//! touches no table (`plans`, `__typename`, introspection, a refused one) takes no
//! connection at all, and work done before the first statement (a rate check, an object
//! store's answer) holds none. `RequestTx::begin` opens it at once.
use super::pool::{Lent, RuntimePool};
use crate::{
    error::AppError,
    events::{Event, EventBus},
    model::{DbRole, Role},
    principal::{Principal, WorkerClaims},
};
use sea_orm::{
    sqlx::{self, Postgres},
    ConnAcquireErr, ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement,
};
use std::sync::{Arc, Mutex};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tracing::Instrument;
use uuid::Uuid;

/// Facts about the HTTP request, for logs, throttling and the activity log.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The id in every log line of this request and in its INTERNAL errors.
    pub request_id: String,
    /// The client's address, as the trusted proxy header or the socket says.
    pub ip: Option<String>,
    /// The client's User-Agent, truncated.
    pub user_agent: Option<String>,
    /// The client's Accept-Language, truncated (the locale of a new account).
    pub accept_language: Option<String>,
    /// Who ran the command line step this is (`cli:<OS user>@<host>`), recorded in the
    /// staff audit beside the administrator it acts as; None over the API.
    pub operator: Option<String>,
}

impl RequestMeta {
    /// Meta for work the server starts itself (a sweeper, a webhook, the CLI), tagged
    /// with what started it.
    pub fn internal(source: &str) -> Self {
        RequestMeta { request_id: source.to_owned(), ..Default::default() }
    }

    /// Meta for an operator's command (`plinth user ...`): `operator` (as
    /// `cli:<OS user>@<host>`) is both the request id of its log lines and activity
    /// entries and the operator of its staff-audit rows.
    pub fn operator(operator: &str) -> Self {
        RequestMeta { request_id: operator.to_owned(), operator: Some(operator.to_owned()), ..Default::default() }
    }
}

/// One principal's transaction (see the module docs).
#[derive(Clone)]
pub struct RequestTx {
    inner: Arc<Inner>,
}

struct Inner {
    slot: RwLock<Slot>,
    pool: RuntimePool,
    statement_timeout_ms: u64,
    principal: Principal,
    meta: RequestMeta,
    events: Mutex<Vec<Event>>,
    /// Events for later: each published when its time comes (see [`RequestTx::emit_at`]).
    delayed: Mutex<Vec<(Event, chrono::DateTime<chrono::Utc>)>>,
    /// Work to run once the transaction committed (a metric of what it did).
    after_commit: Mutex<Vec<AfterCommit>>,
    /// The identity statements run under now: the principal's, or the one a scope
    /// ([`RequestTx::acting_as`]) switched to until it ends.
    identity: Mutex<Identity>,
    /// Held by an open scope for its whole length, and by every other statement of the
    /// request while it runs: fields resolved concurrently (a query's root fields) never
    /// run a statement under an identity another field switched to.
    scope: tokio::sync::Mutex<()>,
}

tokio::task_local! {
    /// The transaction (its `Inner`'s address) whose scope the current future runs in:
    /// its statements pass the scope gate they are inside of.
    static IN_SCOPE: usize;
}

/// Work run once a transaction committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

/// A database role, and the user (and worker) it acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    role: DbRole,
    user_id: Option<Uuid>,
    worker_id: Option<Uuid>,
}

impl Identity {
    fn of(p: &Principal) -> Self {
        Identity { role: p.db_role(), user_id: p.user_id(), worker_id: p.worker().map(|w| w.worker_id) }
    }
}

/// Where the transaction is in its life.
enum Slot {
    /// Not begun: no statement yet.
    Pending,
    /// Begun, switched to the principal.
    Open(OpenTx),
    /// Committed or rolled back.
    Done,
}

/// A begun transaction on a connection lent by the runtime pool. Statements run on
/// the connection as sea-orm runs them (prepared, cached per connection, values bound
/// by sea-orm's own binder), one at a time.
///
/// Dropped unfinished (a request cancelled or out of time mid-statement), the
/// connection is closed rather than given back (`Lent`'s drop): the server ends the
/// transaction with the session, and no later request can ever run inside it.
///
/// A statement the database refused aborts the transaction: PostgreSQL then answers
/// COMMIT with ROLLBACK and no error. `aborted` remembers it, so a caller that ignored
/// the failure cannot have its request reported committed (and its events published).
/// (No savepoints are used: one would have to clear it on `ROLLBACK TO SAVEPOINT`.)
struct OpenTx {
    conn: tokio::sync::Mutex<Option<Lent>>,
    /// The SQLSTATE of the first statement the database refused, if any.
    aborted: std::sync::OnceLock<String>,
}

impl OpenTx {
    /// Takes a connection and begins the transaction switched to `id` in one round trip
    /// (`db::begin_sql`).
    async fn begin(pool: &RuntimePool, id: Identity, statement_timeout_ms: u64) -> Result<Self, DbErr> {
        let waiting = crate::metrics::PoolWait::start();
        let acquired = pool.acquire().await;
        drop(waiting);
        let conn = acquired.map_err(acquire_err)?;
        // Held by the transaction before the first await: a future dropped while BEGIN is
        // in flight (a client gone, a budget spent) closes the connection (`Lent`'s drop)
        // rather than giving it back with the transaction begun.
        let mut tx = OpenTx { conn: tokio::sync::Mutex::new(Some(conn)), aborted: Default::default() };
        let sql = super::begin_sql(id.role, id.user_id, id.worker_id, statement_timeout_ms);
        super::STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = tx.conn.get_mut().as_mut().expect("just set");
        sqlx::Executor::execute(&mut **conn, sql.as_str()).await.map_err(exec_err)?;
        Ok(tx)
    }

    /// Ends the transaction with `sql` (COMMIT or ROLLBACK) and gives the connection
    /// back to the pool, idle, with no further round trip; on failure it is closed
    /// instead.
    ///
    /// Errors: the database's; a COMMIT of a transaction a statement aborted rolls back
    /// and fails (`DbErr::Custom`, INTERNAL to the client): nothing was written.
    async fn finish(mut self, sql: &'static str) -> Result<(), DbErr> {
        let aborted = if sql == "COMMIT" { self.aborted.take() } else { None };
        let sql = if aborted.is_some() { "ROLLBACK" } else { sql };
        let slot = self.conn.get_mut();
        let conn = slot.as_mut().ok_or_else(finished)?;
        // The connection stays in `self` until the answer is read: dropped meanwhile, it
        // is closed (`Drop`), never returned mid-COMMIT.
        sqlx::Executor::execute(&mut **conn, sql).await.map_err(exec_err)?;
        // Finished, its answer read: back to the pool.
        if let Some(conn) = slot.take() {
            conn.release();
        }
        if let Some(sqlstate) = aborted {
            return Err(DbErr::Custom(format!(
                "COMMIT of a transaction an earlier statement's error (SQLSTATE {sqlstate}) aborted, \
                 though the error was not returned: rolled back, nothing was written"
            )));
        }
        Ok(())
    }

    /// Passes a statement's result through, remembering a refusal by the database (which
    /// aborted the transaction).
    fn watch<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(sqlx::Error::Database(e)) = &result {
            let _ = self.aborted.set(e.code().map(|c| c.into_owned()).unwrap_or_default());
        }
        result
    }

    /// The connection, for one statement (counted in `plinth_db_statements_total`).
    async fn lock(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Lent>, DbErr> {
        let slot = self.conn.lock().await;
        let conn = tokio::sync::MutexGuard::try_map(slot, Option::as_mut).map_err(|_| finished())?;
        super::STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(conn)
    }
}

/// The pool's error as sea-orm's: a wait that timed out or a closed pool as
/// `ConnectionAcquire`, a connection that could not be opened as `Conn`.
pub(crate) fn acquire_err(e: sqlx::Error) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(e)),
    }
}

/// A statement's error as sea-orm's.
pub(crate) fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e))
}

/// sea-orm's statement as sqlx's query (sea-orm's own conversion).
fn sqlx_query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, sea_query_binder::SqlxValues> {
    let values = stmt.values.clone().unwrap_or(sea_orm::Values(Vec::new()));
    sqlx::query_with(&stmt.sql, sea_query_binder::SqlxValues(values))
}

#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for OpenTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut c = self.lock().await?;
        self.watch(sqlx_query(&stmt).execute(&mut **c).await).map(Into::into).map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut c = self.lock().await?;
        self.watch(sqlx::Executor::execute(&mut **c, sql).await).map(Into::into).map_err(exec_err)
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut c = self.lock().await?;
        let row = self.watch(sqlx_query(&stmt).fetch_optional(&mut **c).await);
        row.map(|r| r.map(Into::into)).map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e)))
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut c = self.lock().await?;
        let rows = self.watch(sqlx_query(&stmt).fetch_all(&mut **c).await);
        rows.map(|rows| rows.into_iter().map(Into::into).collect()).map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e)))
    }

    fn support_returning(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for RequestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTx").field("principal", &self.inner.principal).finish_non_exhaustive()
    }
}

impl RequestTx {
    /// A transaction for `principal` on `pool`, begun at its first statement: then, in
    /// one statement, it is switched to the principal's database role and user (and
    /// worker) and its statements' time is bounded (`statement_timeout_ms`).
    pub fn new(pool: &RuntimePool, principal: Principal, meta: RequestMeta, statement_timeout_ms: u64) -> Self {
        RequestTx {
            inner: Arc::new(Inner {
                slot: RwLock::new(Slot::Pending),
                pool: pool.clone(),
                statement_timeout_ms,
                identity: Mutex::new(Identity::of(&principal)),
                principal,
                meta,
                events: Mutex::default(),
                delayed: Mutex::default(),
                after_commit: Mutex::default(),
                scope: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// [`RequestTx::new`], begun now (background work that should fail at once when
    /// the database is unreachable).
    ///
    /// Errors: the pool's (no connection, database down) as `DbErr`.
    pub async fn begin(
        pool: &RuntimePool,
        principal: Principal,
        meta: RequestMeta,
        statement_timeout_ms: u64,
    ) -> Result<Self, DbErr> {
        let tx = Self::new(pool, principal, meta, statement_timeout_ms);
        drop(tx.conn().await?);
        Ok(tx)
    }

    /// Whether a statement has begun the transaction.
    pub async fn is_begun(&self) -> bool {
        !matches!(*self.inner.slot.read().await, Slot::Pending)
    }

    /// The open transaction, begun (and switched to the principal) by the first caller.
    async fn conn(&self) -> Result<RwLockReadGuard<'_, OpenTx>, DbErr> {
        let open = |guard| {
            RwLockReadGuard::try_map(guard, |s| match s {
                Slot::Open(tx) => Some(tx),
                _ => None,
            })
            .map_err(|_| finished())
        };
        let read = self.inner.slot.read().await;
        if !matches!(*read, Slot::Pending) {
            return open(read);
        }
        drop(read);
        let mut write: RwLockWriteGuard<'_, Slot> = self.inner.slot.write().await;
        if matches!(*write, Slot::Pending) {
            let inner = &self.inner;
            // One span for the connection's wait, BEGIN and the switch to the identity.
            // The current identity: a fresh transaction begun inside a scope (after
            // `without_transaction`) keeps the scope's.
            let id = *inner.identity.lock().expect("identity");
            let tx =
                OpenTx::begin(&inner.pool, id, inner.statement_timeout_ms).instrument(statement_span("BEGIN")).await?;
            *write = Slot::Open(tx);
        }
        open(write.downgrade())
    }

    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    /// Changes the caller's claims once they are complete (an API token's plan is read
    /// in this transaction). Only possible before the handle is shared.
    ///
    /// Errors: when the handle is already shared (a bug).
    pub fn update_principal(&mut self, f: impl FnOnce(&mut Principal)) -> anyhow::Result<()> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| anyhow::anyhow!("the principal of a shared request transaction cannot change"))?;
        f(&mut inner.principal);
        inner.identity = Mutex::new(Identity::of(&inner.principal));
        Ok(())
    }

    /// Where the request came from.
    pub fn meta(&self) -> &RequestMeta {
        &self.inner.meta
    }

    /// Queues an event for after the commit; dropped if the transaction rolls back.
    pub fn emit(&self, event: Event) {
        self.inner.events.lock().expect("pending events").push(event);
    }

    /// Queues an event to publish at `at` (at once if past), once the transaction
    /// committed: a job whose retry becomes due later. The timer lives in this process:
    /// an instance that stops first never publishes it, so only a shortcut (workers
    /// poll) may depend on it, never a revocation.
    pub fn emit_at(&self, event: Event, at: chrono::DateTime<chrono::Utc>) {
        debug_assert!(!event.is_revocation(), "a revocation cannot wait");
        self.inner.delayed.lock().expect("delayed events").push((event, at));
    }

    /// Runs `work` once the transaction committed (never when it rolls back): an
    /// observation of what it did, such as a metric, that must not count undone work.
    pub fn after_commit(&self, work: impl FnOnce() + Send + 'static) {
        self.inner.after_commit.lock().expect("after-commit work").push(Box::new(work));
    }

    fn run_after_commit(&self) {
        let work = std::mem::take(&mut *self.inner.after_commit.lock().expect("after-commit work"));
        for w in work {
            w();
        }
    }

    /// The caller's account id. Errors: UNAUTHENTICATED for anyone else.
    pub fn user_id(&self) -> Result<Uuid, AppError> {
        self.principal().user_id().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
    }

    /// The caller's account id, refusing a suspended account's premium operations.
    /// Errors: UNAUTHENTICATED, SUBSCRIPTION_INACTIVE.
    pub fn active_user_id(&self) -> Result<Uuid, AppError> {
        let claims = self.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        if claims.account_state == crate::model::AccountState::Suspended {
            return Err(AppError::SubscriptionInactive);
        }
        Ok(claims.user_id)
    }

    /// The worker's claims. Errors: FORBIDDEN for any other caller.
    pub fn worker(&self) -> Result<&WorkerClaims, AppError> {
        self.principal().worker().ok_or_else(|| AppError::Forbidden("only a worker token may do this".into()))
    }

    /// Runs `work` with the transaction switched to `role` acting for `user_id` (None:
    /// nobody, the anonymous lookups), then switches it back to the identity it had,
    /// whether `work` succeeded or not. The switch is scoped so that nothing else of the
    /// request (a later root field of the same document) ever runs under the identity a
    /// field proved or borrowed: where the identity is proven inside the request (a
    /// password, a refresh token, an e-mailed token, a new account), where a worker
    /// writes for a job's owner, where a sign-in lookup must run as `plinth_anon`.
    ///
    /// No other statement of the request runs while a scope is open: query fields
    /// resolve concurrently (an admin's `conversion` and `activation` in one document),
    /// so the scope holds the transaction's scope gate from its first switch to its
    /// switch back, and the statements of the other fields wait for it (`work` itself,
    /// and a scope nested in it, pass; `work` must not wait on a DataLoader, whose loads
    /// run in tasks of their own and would wait for the gate). When switching back fails
    /// the transaction is left failed (Postgres refuses every later statement) and the
    /// error is returned.
    ///
    /// Errors: `work`'s, or the database's (as `E`).
    pub async fn acting_as<T, E, Fut>(&self, role: DbRole, user_id: Option<Uuid>, work: Fut) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        E: From<DbErr>,
    {
        let _gate = self.gate().await;
        IN_SCOPE
            .scope(self.scope_key(), async {
                let scoped = Identity { role, user_id, worker_id: None };
                let previous = self.switch_identity(scoped).await?;
                let out = work.await;
                match (self.switch_identity(previous).await, out) {
                    (Ok(_), out) => out,
                    // The work failed and left the transaction failed (a unique violation, say):
                    // its error is the answer; no later statement can run in it anyway.
                    (Err(_), Err(e)) => Err(e),
                    (Err(e), Ok(_)) => {
                        tracing::error!(error = %e, "switching a request back to its own identity failed");
                        Err(e.into())
                    }
                }
            })
            .await
    }

    fn scope_key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// The scope gate for one statement or one scope; None inside this transaction's own
    /// open scope (its statements and nested scopes go on under it).
    async fn gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if IN_SCOPE.try_with(|k| *k == self.scope_key()).unwrap_or(false) {
            return None;
        }
        Some(self.inner.scope.lock().await)
    }

    /// [`RequestTx::acting_as`] for an account in its own role.
    ///
    /// Errors: `work`'s, or the database's (as `E`).
    pub async fn acting_as_user<T, E, Fut>(&self, role: Role, user_id: Uuid, work: Fut) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
        E: From<DbErr>,
    {
        self.acting_as(role.db_role(), Some(user_id), work).await
    }

    /// Switches a transaction the server began for itself (the principal is `System`:
    /// webhooks, sweepers, reconciliation) to `role` acting for `user_id` until it ends.
    /// A caller's transaction never switches for good: it uses [`RequestTx::acting_as`].
    ///
    /// Errors: the database's; a transaction of any other principal (a bug).
    pub async fn act_for_system(&self, role: DbRole, user_id: Uuid) -> Result<(), DbErr> {
        if self.principal() != &Principal::System {
            return Err(DbErr::Custom("only the server's own transactions switch identity for good".into()));
        }
        self.switch_identity(Identity { role, user_id: Some(user_id), worker_id: None }).await.map(|_| ())
    }

    /// The identity the transaction's statements run under now (role, user), for tests
    /// and assertions.
    pub fn current_identity(&self) -> (DbRole, Option<Uuid>) {
        let id = *self.inner.identity.lock().expect("identity");
        (id.role, id.user_id)
    }

    /// Switches to `to`, returning the identity it replaces.
    async fn switch_identity(&self, to: Identity) -> Result<Identity, DbErr> {
        let conn = self.conn().await?;
        let previous = *self.inner.identity.lock().expect("identity");
        if previous != to {
            super::set_identity(&*conn, to.role, to.user_id, to.worker_id).await?;
            *self.inner.identity.lock().expect("identity") = to;
        }
        Ok(previous)
    }

    /// Runs `call` (a request to another service: Stripe) holding no transaction and no
    /// pooled connection, so a slow dependency cannot drain the pool (PITFALLS 14): the
    /// transaction, which must not have written anything yet, is rolled back (it only
    /// read), `call` runs, and a fresh transaction for the same principal takes its
    /// place for the rest of the request. Statements of this request wait meanwhile.
    /// What was read before may have changed: the caller re-reads what it relies on.
    /// The fresh transaction runs under the current identity (a scope's, inside one).
    ///
    /// Errors: BAD_USER_INPUT when this request already wrote (an earlier mutation
    /// field: it would be committed or lost); INTERNAL (database), the new transaction
    /// could not begin (the request then fails as a whole).
    pub async fn without_transaction<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T, AppError> {
        let mut slot = self.inner.slot.write().await;
        let tx = match std::mem::replace(&mut *slot, Slot::Pending) {
            // Nothing begun: nothing to release.
            Slot::Pending => return Ok(call.await),
            Slot::Open(tx) => tx,
            Slot::Done => {
                *slot = Slot::Done;
                return Err(finished().into());
            }
        };
        // An xid is assigned at the first write; reads, advisory locks and set_config take none.
        let wrote = tx
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS wrote",
            ))
            .await
            .and_then(|r| r.map(|r| r.try_get::<bool>("", "wrote")).transpose())
            .map(|w| w.unwrap_or(false));
        match wrote {
            Ok(false) => tx.finish("ROLLBACK").await?,
            Ok(true) => {
                *slot = Slot::Open(tx);
                return Err(AppError::bad_input(
                    "mutation",
                    "this field calls the payment provider and must come first in its request",
                ));
            }
            Err(e) => {
                *slot = Slot::Open(tx);
                return Err(e.into());
            }
        }
        // The slot stays Pending: the next statement begins a fresh transaction.
        Ok(call.await)
    }

    /// Commits, then publishes the events the work caused. Idempotent: a second call
    /// (or one after `rollback`) does nothing.
    ///
    /// Errors: the commit's, as `DbErr` (nothing is published then).
    pub async fn commit(&self, bus: &EventBus) -> Result<(), DbErr> {
        match std::mem::replace(&mut *self.inner.slot.write().await, Slot::Done) {
            Slot::Open(tx) => {
                if let Err(e) = tx.finish("COMMIT").instrument(statement_span("COMMIT")).await {
                    self.discard_pending();
                    return Err(e);
                }
            }
            Slot::Pending => {}
            Slot::Done => return Ok(()),
        }
        self.run_after_commit();
        let events = std::mem::take(&mut *self.inner.events.lock().expect("pending events"));
        bus.publish(&events).await;
        for (event, at) in std::mem::take(&mut *self.inner.delayed.lock().expect("delayed events")) {
            bus.publish_at(event, at);
        }
        Ok(())
    }

    /// Commits work that emits no events (a claim, a read-and-write with no live
    /// consequence). Events emitted anyway are a bug: logged and dropped.
    ///
    /// Errors: the commit's, as `DbErr`.
    pub async fn commit_without_events(&self) -> Result<(), DbErr> {
        if let Slot::Open(tx) = std::mem::replace(&mut *self.inner.slot.write().await, Slot::Done) {
            if let Err(e) = tx.finish("COMMIT").instrument(statement_span("COMMIT")).await {
                self.discard_pending();
                return Err(e);
            }
        }
        self.run_after_commit();
        let mut dropped = std::mem::take(&mut *self.inner.events.lock().expect("pending events"));
        dropped.extend(
            std::mem::take(&mut *self.inner.delayed.lock().expect("delayed events")).into_iter().map(|(e, _)| e),
        );
        if !dropped.is_empty() {
            tracing::error!(events = dropped.len(), "events emitted in a transaction committed without a bus");
        }
        Ok(())
    }

    /// Drops the events and after-commit work of a transaction that will not commit.
    fn discard_pending(&self) {
        self.inner.events.lock().expect("pending events").clear();
        self.inner.after_commit.lock().expect("after-commit work").clear();
        self.inner.delayed.lock().expect("delayed events").clear();
    }

    /// Rolls back; the pending events are dropped. Idempotent.
    pub async fn rollback(&self) {
        let slot = std::mem::replace(&mut *self.inner.slot.write().await, Slot::Done);
        self.discard_pending();
        if let Slot::Open(tx) = slot {
            if let Err(e) = tx.finish("ROLLBACK").instrument(statement_span("ROLLBACK")).await {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
    }
}

/// The exported span of one statement (`telemetry`): named by its first keyword, with
/// `db.system` and `db.operation.name`; never the statement's text nor its values. At
/// DEBUG under the trace target: nothing is built when nothing exports.
fn statement_span(sql: &str) -> tracing::Span {
    tracing::debug_span!(
        target: crate::telemetry::TRACE_TARGET,
        "sql",
        otel.name = crate::telemetry::sql_keyword(sql),
        otel.kind = "client",
        db.system = "postgresql",
        db.operation.name = crate::telemetry::sql_keyword(sql),
    )
}

fn finished() -> DbErr {
    DbErr::Custom("the request's transaction has already finished".into())
}

/// Every statement of a request goes through its transaction, so services take
/// `&RequestTx` wherever sea-orm takes a connection.
#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for RequestTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let _gate = self.gate().await;
        let span = statement_span(&stmt.sql);
        self.conn().await?.execute(stmt).instrument(span).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let _gate = self.gate().await;
        self.conn().await?.execute_unprepared(sql).instrument(statement_span(sql)).await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let _gate = self.gate().await;
        let span = statement_span(&stmt.sql);
        self.conn().await?.query_one(stmt).instrument(span).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let _gate = self.gate().await;
        let span = statement_span(&stmt.sql);
        self.conn().await?.query_all(stmt).instrument(span).await
    }

    fn support_returning(&self) -> bool {
        true
    }
}

/// Reads a piece of per-request or schema data; a missing one is a bug, reported as
/// INTERNAL with a log line rather than a panic.
///
/// Errors: INTERNAL when the data is missing (a bug).
pub fn data<'a, T: Send + Sync + 'static>(ctx: &async_graphql::Context<'a>) -> Result<&'a T, AppError> {
    ctx.data::<T>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("missing context data: {}", std::any::type_name::<T>())))
}
