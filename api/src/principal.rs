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
}

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No token.
    Anonymous,
    /// A signed-in account (user, support or admin).
    User(UserClaims),
}

impl Principal {
    /// The database role the request's transaction switches to.
    pub fn db_role(&self) -> &'static str {
        match self {
            Principal::Anonymous => "plinth_anon",
            Principal::User(c) => c.role.db_role(),
        }
    }

    /// The account the request acts for, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Principal::Anonymous => None,
            Principal::User(c) => Some(c.user_id),
        }
    }

    /// The claims of a signed-in caller.
    pub fn claims(&self) -> Option<&UserClaims> {
        match self {
            Principal::Anonymous => None,
            Principal::User(c) => Some(c),
        }
    }
}
