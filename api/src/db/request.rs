//! The one way work reaches the database for a principal: a `RequestTx` begins the
//! row-level-secured transaction, carries the caller, where the request came from and
//! the events it caused, and finishes it: commit and publish, or roll back.
//!
//! Resolvers, DataLoaders, webhooks, sweepers and command-line tools all use it. It is a
//! cheap handle (clones share one transaction); the transaction itself sits in a slot
//! that `commit`/`rollback` empty under a write lock, so the owner releases it
//! deterministically once every statement in flight has finished, whatever clones a
//! finished loader task still holds.
use crate::{
    error::AppError,
    events::{Event, EventBus},
    model::{DbRole, Role},
    principal::{Principal, WorkerClaims},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    TransactionTrait,
};
use std::sync::{Arc, Mutex};
use tokio::sync::RwLock;
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
}

impl RequestMeta {
    /// Meta for work the server starts itself (a sweeper, a webhook, the CLI), tagged
    /// with what started it.
    pub fn internal(source: &str) -> Self {
        RequestMeta { request_id: source.to_owned(), ..Default::default() }
    }
}

/// One principal's transaction (see the module docs).
#[derive(Clone)]
pub struct RequestTx {
    inner: Arc<Inner>,
}

struct Inner {
    slot: RwLock<Option<DatabaseTransaction>>,
    pool: DatabaseConnection,
    statement_timeout_ms: u64,
    principal: Principal,
    meta: RequestMeta,
    events: Mutex<Vec<Event>>,
}

impl std::fmt::Debug for RequestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTx").field("principal", &self.inner.principal).finish_non_exhaustive()
    }
}

impl RequestTx {
    /// Opens a transaction on `pool` and, in one statement, switches it to the
    /// principal's database role and user (and worker) and bounds its statements'
    /// time (`statement_timeout_ms`).
    ///
    /// Errors: the pool's (no connection, database down) as `DbErr`.
    pub async fn begin(
        pool: &DatabaseConnection,
        principal: Principal,
        meta: RequestMeta,
        statement_timeout_ms: u64,
    ) -> Result<Self, DbErr> {
        let tx = pool.begin().await?;
        let worker = principal.worker().map(|w| w.worker_id);
        super::set_identity(&tx, principal.db_role(), principal.user_id(), worker, Some(statement_timeout_ms)).await?;
        Ok(RequestTx {
            inner: Arc::new(Inner {
                slot: RwLock::new(Some(tx)),
                pool: pool.clone(),
                statement_timeout_ms,
                principal,
                meta,
                events: Mutex::default(),
            }),
        })
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

    /// Switches the transaction to act for `user_id` as `role` from the next statement
    /// on: where the identity is proven inside the request (a password, a refresh
    /// token, an e-mailed token) or a service role writes for one user.
    ///
    /// Errors: the database's, as `DbErr`.
    pub async fn act_as(&self, role: DbRole, user_id: Uuid) -> Result<(), DbErr> {
        let slot = self.inner.slot.read().await;
        let tx = slot.as_ref().ok_or_else(finished)?;
        super::set_identity(tx, role, Some(user_id), None, None).await
    }

    /// [`RequestTx::act_as`] for an account's own role.
    ///
    /// Errors: the database's, as `DbErr`.
    pub async fn act_as_user(&self, role: Role, user_id: Uuid) -> Result<(), DbErr> {
        self.act_as(role.db_role(), user_id).await
    }

    /// Runs `call` (a request to another service: Stripe) holding no transaction and no
    /// pooled connection, so a slow dependency cannot drain the pool (PITFALLS 14): the
    /// transaction, which must not have written anything yet, is rolled back (it only
    /// read), `call` runs, and a fresh transaction for the same principal takes its
    /// place for the rest of the request. Statements of this request wait meanwhile.
    /// What was read before may have changed: the caller re-reads what it relies on,
    /// and `act_as` must be repeated.
    ///
    /// Errors: BAD_USER_INPUT when this request already wrote (an earlier mutation
    /// field: it would be committed or lost); INTERNAL (database), the new transaction
    /// could not begin (the request then fails as a whole).
    pub async fn without_transaction<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T, AppError> {
        let mut slot = self.inner.slot.write().await;
        let tx = slot.take().ok_or_else(finished)?;
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
            Ok(false) => tx.rollback().await?,
            Ok(true) => {
                *slot = Some(tx);
                return Err(AppError::bad_input(
                    "mutation",
                    "this field calls the payment provider and must come first in its request",
                ));
            }
            Err(e) => {
                *slot = Some(tx);
                return Err(e.into());
            }
        }
        let out = call.await;
        let fresh = self.inner.pool.begin().await?;
        let p = &self.inner.principal;
        let worker = p.worker().map(|w| w.worker_id);
        super::set_identity(&fresh, p.db_role(), p.user_id(), worker, Some(self.inner.statement_timeout_ms)).await?;
        *slot = Some(fresh);
        Ok(out)
    }

    /// Commits, then publishes the events the work caused. Idempotent: a second call
    /// (or one after `rollback`) does nothing.
    ///
    /// Errors: the commit's, as `DbErr` (nothing is published then).
    pub async fn commit(&self, bus: &EventBus) -> Result<(), DbErr> {
        let Some(tx) = self.inner.slot.write().await.take() else { return Ok(()) };
        tx.commit().await?;
        let events = std::mem::take(&mut *self.inner.events.lock().expect("pending events"));
        bus.publish(&events).await;
        Ok(())
    }

    /// Commits work that emits no events (a claim, a read-and-write with no live
    /// consequence). Events emitted anyway are a bug: logged and dropped.
    ///
    /// Errors: the commit's, as `DbErr`.
    pub async fn commit_without_events(&self) -> Result<(), DbErr> {
        let Some(tx) = self.inner.slot.write().await.take() else { return Ok(()) };
        tx.commit().await?;
        let dropped = std::mem::take(&mut *self.inner.events.lock().expect("pending events"));
        if !dropped.is_empty() {
            tracing::error!(events = dropped.len(), "events emitted in a transaction committed without a bus");
        }
        Ok(())
    }

    /// Rolls back; the pending events are dropped. Idempotent.
    pub async fn rollback(&self) {
        let Some(tx) = self.inner.slot.write().await.take() else { return };
        self.inner.events.lock().expect("pending events").clear();
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "rollback failed");
        }
    }
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
        let slot = self.inner.slot.read().await;
        slot.as_ref().ok_or_else(finished)?.execute(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let slot = self.inner.slot.read().await;
        slot.as_ref().ok_or_else(finished)?.execute_unprepared(sql).await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let slot = self.inner.slot.read().await;
        slot.as_ref().ok_or_else(finished)?.query_one(stmt).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let slot = self.inner.slot.read().await;
        slot.as_ref().ok_or_else(finished)?.query_all(stmt).await
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
