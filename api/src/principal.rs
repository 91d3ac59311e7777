//! Who is calling. Every request has exactly one principal, decided from its token
//! before any resolver runs, and it picks the database role of the request.
use crate::model::{AccountState, DbRole, JobKind, PlanCode, QuotaMetric, Role};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A plan's limits, by metric, as a token carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits(pub Vec<(QuotaMetric, i64)>);

impl Limits {
    /// The limit of `metric`, if known.
    pub fn get(&self, metric: QuotaMetric) -> Option<i64> {
        self.0.iter().find(|(m, _)| *m == metric).map(|(_, l)| *l)
    }
}

/// What a verified access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserClaims {
    /// The account.
    pub user_id: Uuid,
    /// Its role when the token was issued.
    pub role: Role,
    /// The sign-in (refresh-token family) the token was issued for; an API token's id
    /// for API tokens.
    pub session_id: Uuid,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was issued (revocations refuse tokens issued before them).
    pub issued_at: DateTime<Utc>,
    /// The plan when it was issued (API tokens: read for each request).
    pub plan: PlanCode,
    /// The account state when it was issued (API tokens: read for each request).
    pub account_state: AccountState,
    /// The plan's limits when it was issued (API tokens: read for each request).
    pub quotas: Limits,
    /// Set when the token is an integrator's API token (scoped, checked per field).
    pub api: Option<ApiAuth>,
}

/// A verified API token: its id, revocation id, and the biscuit whose checks every
/// call must pass.
#[derive(Clone)]
pub struct ApiAuth {
    /// The token's row.
    pub token_id: Uuid,
    /// Revocation id of its authority block (hex).
    pub revocation_id: String,
    /// The token, attenuations included.
    pub biscuit: std::sync::Arc<biscuit_auth::Biscuit>,
}

impl PartialEq for ApiAuth {
    fn eq(&self, other: &Self) -> bool {
        self.revocation_id == other.revocation_id
    }
}

impl Eq for ApiAuth {}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth").field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

impl UserClaims {
    /// The limit of `metric`, if the token carries one.
    pub fn quota(&self, metric: QuotaMetric) -> Option<i64> {
        self.quotas.get(metric)
    }
}

/// What a verified worker token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerClaims {
    /// The worker's id; it holds the jobs it claims under this id.
    pub worker_id: Uuid,
    /// Job kinds it may claim.
    pub kinds: Vec<JobKind>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// Revocation id of its authority block (hex): `plinth admin worker-token revoke`.
    pub revocation_id: String,
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No token.
    Anonymous,
    /// A signed-in account (user, support or admin), or an API token acting for one.
    User(UserClaims),
    /// A job worker.
    Worker(WorkerClaims),
    /// The server's own background tasks and command-line tools.
    System,
}

impl Principal {
    /// The database role the request's transaction switches to.
    pub fn db_role(&self) -> DbRole {
        match self {
            Principal::Anonymous => DbRole::Anon,
            Principal::User(c) => c.role.db_role(),
            Principal::Worker(_) => DbRole::Worker,
            Principal::System => DbRole::System,
        }
    }

    /// The account the request acts for, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        self.claims().map(|c| c.user_id)
    }

    /// The claims of a signed-in caller.
    pub fn claims(&self) -> Option<&UserClaims> {
        match self {
            Principal::User(c) => Some(c),
            _ => None,
        }
    }

    /// The claims of a worker.
    pub fn worker(&self) -> Option<&WorkerClaims> {
        match self {
            Principal::Worker(w) => Some(w),
            _ => None,
        }
    }

    /// The API token the caller uses, if it is one.
    pub fn api(&self) -> Option<&ApiAuth> {
        self.claims().and_then(|c| c.api.as_ref())
    }

    /// When the caller's token expires, if it has one.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Principal::User(c) => Some(c.expires_at),
            Principal::Worker(w) => Some(w.expires_at),
            _ => None,
        }
    }
}
