//! What one GraphQL request carries to its resolvers: its transaction, its caller,
//! and where it came from.
use crate::{
    error::AppError,
    events::Event,
    principal::{Principal, WorkerClaims},
};
use sea_orm::DatabaseTransaction;
use std::sync::Arc;

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

/// Events a request caused, published only after it commits.
pub type PendingEvents = Arc<std::sync::Mutex<Vec<Event>>>;

/// The per-request scope every resolver reads: one transaction, one principal.
#[derive(Clone)]
pub struct RequestScope {
    /// The request's only transaction, already switched to the principal's role.
    pub tx: Arc<DatabaseTransaction>,
    /// The caller.
    pub principal: Principal,
    /// Where the request came from.
    pub meta: RequestMeta,
    /// Events to publish after commit.
    pub events: PendingEvents,
}

impl RequestScope {
    /// A scope over `tx` for `principal`.
    pub fn new(tx: Arc<DatabaseTransaction>, principal: Principal, meta: RequestMeta) -> Self {
        RequestScope { tx, principal, meta, events: Arc::default() }
    }

    /// Queues an event for after the commit; dropped if the request rolls back.
    pub fn emit(&self, event: Event) {
        self.events.lock().expect("pending events").push(event);
    }

    /// Refuses premium operations of a suspended account (SUBSCRIPTION_INACTIVE).
    pub fn require_active(&self) -> Result<uuid::Uuid, AppError> {
        let claims = self.principal.claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
        if claims.account_state == "suspended" {
            return Err(AppError::SubscriptionInactive);
        }
        Ok(claims.user_id)
    }

    /// The worker's claims, or FORBIDDEN for any other caller.
    pub fn require_worker(&self) -> Result<&WorkerClaims, AppError> {
        self.principal.worker().ok_or_else(|| AppError::Forbidden("only a worker token may do this".into()))
    }

    /// The caller's account id, or UNAUTHENTICATED.
    pub fn require_user(&self) -> Result<uuid::Uuid, AppError> {
        self.principal.user_id().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
    }
}

/// Reads a piece of per-request or schema data; a missing one is a bug, reported as
/// INTERNAL with a log line rather than a panic.
pub fn data<'a, T: Send + Sync + 'static>(ctx: &async_graphql::Context<'a>) -> Result<&'a T, AppError> {
    ctx.data::<T>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("missing context data: {}", std::any::type_name::<T>())))
}
