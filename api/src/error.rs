//! The one error type. Its `code` is what clients see in `extensions.code`; the detail
//! of an INTERNAL error goes to the log with the request id, never to the client.
use crate::model::QuotaMetric;
use async_graphql::ErrorExtensions as _;
use sea_orm::{DbErr, RuntimeErr};

/// Every failure a request can end with.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type into an error
/// without an `extensions.code`, and this type must only leave through the conversion
/// below, which sets it.
#[derive(Debug)]
pub enum AppError {
    /// No valid token, or a bad, tampered or expired one.
    Unauthenticated(String),
    /// A valid caller without the right to do this.
    Forbidden(String),
    /// Absent, or not the caller's.
    NotFound(String),
    /// Input that fails validation; `field` names the input path at fault.
    BadUserInput {
        /// The input field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A plan limit would be exceeded.
    QuotaExceeded {
        /// The metric.
        metric: QuotaMetric,
        /// The plan's limit.
        limit: i64,
        /// When the period resets (None for gauges, which free up as things are removed).
        resets_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The subscription is suspended (billing): premium operations are refused, data
    /// stays readable.
    SubscriptionInactive,
    /// An admin suspended the account (`suspendUser`): it cannot sign in or refresh
    /// its session until the suspension is lifted. The message carries the reason.
    AccountSuspended(String),
    /// Too many attempts; retry after the given number of seconds.
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The change collides with existing state (a unique key, a stale version).
    Conflict(String),
    /// The document asks for more than a request may: `limit` names the bound
    /// (`bodyBytes`, `documentBytes`, `expandedFields`, `aliases`, `authenticationFieldsPerDocument`,
    /// `complexity`, `depth`), `max` its value.
    QueryTooComplex {
        /// Which bound.
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// The answer would be larger than `max` bytes: nothing was done; ask for less.
    ResponseTooLarge {
        /// The largest answer, in bytes.
        max: u64,
    },
    /// A persisted query's hash (`extensions.persistedQuery.sha256Hash`) this server
    /// does not know: send the query text with the hash (Apollo's automatic persisted
    /// queries). The message is `PersistedQueryNotFound`, which Apollo clients look for.
    PersistedQueryNotFound,
    /// A query text sent with a persisted query hash that is not the text's SHA-256.
    PersistedQueryHashMismatch,
    /// The query text is not GraphQL.
    GraphqlParseFailed(String),
    /// The query does not validate against the schema (an unknown field or operation, a
    /// wrong argument type).
    GraphqlValidationFailed(String),
    /// A request body in another format than the endpoint takes (HTTP 415).
    UnsupportedMediaType(String),
    /// A dependency (the database, Stripe, the mail provider, the object store) did not
    /// answer in time or refused the connection: nothing was done; retry later.
    ServiceUnavailable(String),
    /// Anything else: a bug or an unavailable dependency.
    Internal(anyhow::Error),
}

/// Shorthand for results of services.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::SubscriptionInactive => "SUBSCRIPTION_INACTIVE",
            AppError::AccountSuspended(_) => "ACCOUNT_SUSPENDED",
            AppError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            AppError::Conflict(_) => "CONFLICT",
            AppError::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            AppError::QueryTooComplex { .. } => "QUERY_TOO_COMPLEX",
            AppError::ResponseTooLarge { .. } => "RESPONSE_TOO_LARGE",
            AppError::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            AppError::PersistedQueryHashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            AppError::GraphqlParseFailed(_) => "GRAPHQL_PARSE_FAILED",
            AppError::GraphqlValidationFailed(_) => "GRAPHQL_VALIDATION_FAILED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The message a client may read.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::ServiceUnavailable(m)
            | AppError::UnsupportedMediaType(m)
            | AppError::GraphqlParseFailed(m)
            | AppError::GraphqlValidationFailed(m) => m.clone(),
            AppError::QueryTooComplex { limit, max } => {
                format!("the query asks for too much: {limit} is limited to {max}; ask for less or split it")
            }
            AppError::ResponseTooLarge { max } => {
                format!("the answer would exceed {max} bytes; ask for fewer items (first) or fewer fields")
            }
            AppError::PersistedQueryNotFound => "PersistedQueryNotFound".into(),
            AppError::PersistedQueryHashMismatch => {
                "provided sha does not match query: sha256Hash must be the SHA-256 of the query text".into()
            }
            AppError::BadUserInput { field, message } => format!("{field}: {message}"),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests, retry in {retry_after_secs} s")
            }
            AppError::QuotaExceeded { metric, limit, .. } => {
                format!(
                    "your plan allows {limit} {}; upgrade or wait for the next period",
                    metric.as_str().replace('_', " ")
                )
            }
            AppError::SubscriptionInactive => {
                "your subscription is suspended; pay the open invoice in the billing portal to resume".into()
            }
            AppError::AccountSuspended(reason) => {
                format!("this account is suspended ({reason}); contact support to have it lifted")
            }
            AppError::Internal(_) => "internal error".into(),
        }
    }

    /// Turns the error into an `anyhow::Error` for code outside a request (background
    /// tasks, the CLI), keeping an INTERNAL error's cause.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            AppError::Internal(e) => e,
            other => anyhow::anyhow!("{}: {}", other.code(), other.message()),
        }
    }

    /// Builds a BAD_USER_INPUT error for `field`.
    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        AppError::BadUserInput { field: field.to_string(), message: message.into() }
    }

    /// Maps a database error: a unique violation becomes CONFLICT, with the message
    /// registered for its constraint's name (as PostgreSQL reports it, never matched in
    /// the message text); an unreachable, restarting or timed-out database
    /// SERVICE_UNAVAILABLE (logged); everything else INTERNAL (logged, never shown).
    pub fn from_db(err: DbErr) -> Self {
        if unavailable(&err) {
            tracing::warn!(error = %err, "the database is unavailable");
            return AppError::ServiceUnavailable("the database is unavailable; nothing was done, retry shortly".into());
        }
        if let Some(db) = database_error(&err) {
            if db.is_unique_violation() {
                let message = db
                    .constraint()
                    .and_then(|name| UNIQUE_MESSAGES.iter().find(|(c, _)| *c == name))
                    .map_or("this already exists", |(_, m)| m);
                return AppError::Conflict(message.to_string());
            }
        }
        AppError::Internal(anyhow::Error::new(err))
    }
}

/// Whether the error says the database could not be reached or did not answer in time
/// (rather than refusing a statement).
fn unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match e {
            Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_) => true,
            // Class 08 (connection exception), 57P01-57P03 (shutdown, crash, starting up),
            // 57014 (the statement timeout).
            Sqlx::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "57014")),
            _ => false,
        },
        _ => false,
    }
}

/// The driver's error under a sea-orm error, when the database answered one.
fn database_error(err: &DbErr) -> Option<&dyn sea_orm::sqlx::error::DatabaseError> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e.as_database_error(),
        _ => None,
    }
}

/// Client-facing messages for unique constraints, by constraint name.
const UNIQUE_MESSAGES: &[(&str, &str)] = &[
    ("users_email_key", "an account with this e-mail already exists"),
    ("imports_one_active", "an import of this account is already queued or running: wait for it to end"),
];

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        AppError::Internal(err)
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        AppError::from_db(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        let message = match &err {
            AppError::Internal(e) => {
                // The current span carries the request id; the client gets it back in
                // extensions.requestId (added by the HTTP layer).
                tracing::error!(error = format!("{e:#}"), "internal error");
                "internal error".to_string()
            }
            other => other.message(),
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code);
            match &err {
                AppError::BadUserInput { field, .. } => ext.set("field", field.as_str()),
                AppError::RateLimited { retry_after_secs } => ext.set("retryAfter", *retry_after_secs),
                AppError::QueryTooComplex { limit, max } => {
                    ext.set("limit", *limit);
                    ext.set("max", *max);
                }
                AppError::ResponseTooLarge { max } => ext.set("max", *max),
                AppError::QuotaExceeded { metric, limit, resets_at } => {
                    ext.set("metric", metric.as_str().to_uppercase());
                    ext.set("limit", *limit);
                    if let Some(r) = resets_at {
                        ext.set("resetsAt", r.to_rfc3339());
                    }
                }
                _ => {}
            }
        })
    }
}

/// Parses an `ID` argument.
///
/// Errors: BAD_USER_INPUT naming `field` when it is not a UUID.
pub fn parse_id(field: &str, raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw).map_err(|_| AppError::bad_input(field, "is not a valid id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let e: async_graphql::Error = AppError::Internal(anyhow::anyhow!("relation users: password=x")).into();
        assert_eq!(e.message, "internal error");
    }

    /// docs/errors.md names every code a client can see.
    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../docs/errors.md");
        let every = [
            AppError::Unauthenticated(String::new()),
            AppError::Forbidden(String::new()),
            AppError::NotFound(String::new()),
            AppError::bad_input("f", ""),
            AppError::RateLimited { retry_after_secs: 1 },
            AppError::SubscriptionInactive,
            AppError::AccountSuspended(String::new()),
            AppError::QuotaExceeded { metric: QuotaMetric::Scans, limit: 1, resets_at: None },
            AppError::Conflict(String::new()),
            AppError::ServiceUnavailable(String::new()),
            AppError::UnsupportedMediaType(String::new()),
            AppError::QueryTooComplex { limit: "depth", max: 1 },
            AppError::ResponseTooLarge { max: 1 },
            AppError::PersistedQueryNotFound,
            AppError::PersistedQueryHashMismatch,
            AppError::GraphqlParseFailed(String::new()),
            AppError::GraphqlValidationFailed(String::new()),
            AppError::Internal(anyhow::anyhow!("x")),
        ];
        for e in &every {
            // A new variant without a row here fails to compile below.
            match e {
                AppError::Unauthenticated(_)
                | AppError::Forbidden(_)
                | AppError::NotFound(_)
                | AppError::BadUserInput { .. }
                | AppError::RateLimited { .. }
                | AppError::SubscriptionInactive
                | AppError::AccountSuspended(_)
                | AppError::QuotaExceeded { .. }
                | AppError::Conflict(_)
                | AppError::ServiceUnavailable(_)
                | AppError::UnsupportedMediaType(_)
                | AppError::QueryTooComplex { .. }
                | AppError::ResponseTooLarge { .. }
                | AppError::PersistedQueryNotFound
                | AppError::PersistedQueryHashMismatch
                | AppError::GraphqlParseFailed(_)
                | AppError::GraphqlValidationFailed(_)
                | AppError::Internal(_) => {}
            }
            assert!(doc.contains(&format!("| `{}` |", e.code())), "docs/errors.md lacks {}", e.code());
        }
        for limit in [
            "documentBytes",
            "expandedFields",
            "aliases",
            "authenticationFieldsPerDocument",
            "complexity",
            "depth",
            "introspectionDepth",
        ] {
            assert!(doc.contains(&format!("`{limit}`")), "docs/errors.md lacks the limit {limit}");
        }
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(AppError::bad_input("email", "x").code(), "BAD_USER_INPUT");
        assert_eq!(AppError::RateLimited { retry_after_secs: 3 }.code(), "RATE_LIMITED");
    }
}
