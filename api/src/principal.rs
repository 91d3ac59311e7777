//! Who is calling. Every request has exactly one principal, decided from its token
//! before any resolver runs, and it picks the database role of the request.
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A signed-in account's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A customer.
    User,
    /// Staff who help customers.
    Support,
    /// Staff who run the service.
    Admin,
}

impl Role {
    /// The value stored in `users.role` and carried in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored value.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "support" => Some(Role::Support),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The database role a request of this account runs as.
    pub fn db_role(self) -> &'static str {
        match self {
            Role::User => "plinth_user",
            Role::Support => "plinth_support",
            Role::Admin => "plinth_admin",
        }
    }
}

/// What a verified access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserClaims {
    /// The account.
    pub user_id: Uuid,
    /// Its role when the token was issued.
    pub role: Role,
    /// The sign-in (refresh-token family) the token was issued for.
    pub session_id: Uuid,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was issued (revocations refuse tokens issued before them).
    pub issued_at: DateTime<Utc>,
    /// The plan when it was issued (`free`, `starter`, `pro`, `scale`).
    pub plan: String,
    /// The account state when it was issued (`free`, `active`, `grace`, `suspended`).
    pub account_state: String,
    /// The plan's limits when it was issued, by metric.
    pub quotas: Vec<(String, i64)>,
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
    pub fn quota(&self, metric: &str) -> Option<i64> {
        self.quotas.iter().find(|(m, _)| m == metric).map(|(_, l)| *l)
    }
}

/// What a verified worker token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerClaims {
    /// The worker's id; it holds the jobs it claims under this id.
    pub worker_id: Uuid,
    /// Job kinds (`scan`, `prepare`, `publish`) it may claim.
    pub kinds: Vec<String>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No token.
    Anonymous,
    /// A signed-in account (user, support or admin).
    User(UserClaims),
    /// A job worker.
    Worker(WorkerClaims),
    /// The server's own background tasks.
    System,
}

impl Principal {
    /// The database role the request's transaction switches to.
    pub fn db_role(&self) -> &'static str {
        match self {
            Principal::Anonymous => "plinth_anon",
            Principal::User(c) => c.role.db_role(),
            Principal::Worker(_) => "plinth_worker",
            Principal::System => "plinth_system",
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

    /// When the caller's token expires, if it has one.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Principal::User(c) => Some(c.expires_at),
            Principal::Worker(w) => Some(w.expires_at),
            _ => None,
        }
    }
}
