//! Creating, listing and revoking API tokens. The scope each field needs is declared
//! at the field (`auth::guards::scope`).
use super::store::{self, ApiTokenRow};
use crate::{
    activity::service::{self as activity, Entry},
    auth::tokens::TokenService,
    db::RequestTx,
    error::{AppError, AppResult},
    events::Event,
    model::ApiScope,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

/// Longest lifetime of an API token.
pub const MAX_DAYS: i64 = 366;

fn session_user(tx: &RequestTx) -> AppResult<Uuid> {
    let claims = tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    if claims.api.is_some() {
        return Err(AppError::Forbidden("API tokens cannot manage API tokens".into()));
    }
    Ok(claims.user_id)
}

/// Creates a token; the biscuit is returned once and never stored.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (an API token); BAD_USER_INPUT (`input.name`,
/// `input.scopes`, `input.expiresAt`); INTERNAL.
pub async fn create(
    tx: &RequestTx,
    tokens: &TokenService,
    name: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<(String, ApiTokenRow)> {
    let user_id = session_user(tx)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("input.name", "must be 1 to 100 characters"));
    }
    if scopes.is_empty() {
        return Err(AppError::bad_input("input.scopes", "must name at least one scope"));
    }
    let mut parsed: Vec<ApiScope> = scopes
        .iter()
        .map(|s| {
            s.parse::<ApiScope>().map_err(|_| {
                let known: Vec<&str> = ApiScope::ALL.iter().map(|s| s.as_str()).collect();
                AppError::bad_input("input.scopes", format!("unknown scope {s:?}; known: {}", known.join(", ")))
            })
        })
        .collect::<AppResult<_>>()?;
    let now = Utc::now();
    let expires_at = expires_at.unwrap_or(now + Duration::days(90));
    if expires_at <= now || expires_at > now + Duration::days(MAX_DAYS) {
        return Err(AppError::bad_input("input.expiresAt", format!("must be in the next {MAX_DAYS} days")));
    }
    // Sorted by spelling, as they are listed back.
    parsed.sort_by_key(|s| s.as_str());
    parsed.dedup();
    let scopes: Vec<String> = parsed.iter().map(|s| s.as_str().to_owned()).collect();
    let id = Uuid::now_v7();
    let (token, revocation_id) = tokens.issue_api(user_id, id, &parsed, expires_at)?;
    let row = store::insert(tx, id, user_id, name, &scopes, &revocation_id, expires_at).await?;
    let data = json!({ "name": name, "scopes": scopes });
    activity::record(tx, Entry::by_user(user_id, "api_token.create", Some(("api_token", id)), data)).await?;
    Ok((token, row))
}

/// The caller's tokens, newest first.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (an API token); INTERNAL.
pub async fn list(tx: &RequestTx) -> AppResult<Vec<ApiTokenRow>> {
    store::list(tx, session_user(tx)?).await
}

/// Revokes one of the caller's tokens; every instance refuses it once the event lands.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (an API token); NOT_FOUND; INTERNAL.
pub async fn revoke(tx: &RequestTx, id: Uuid) -> AppResult<bool> {
    let user_id = session_user(tx)?;
    let revocation_id =
        store::revoke(tx, user_id, id).await?.ok_or_else(|| AppError::NotFound("API token not found".into()))?;
    activity::record(tx, Entry::by_user(user_id, "api_token.revoke", Some(("api_token", id)), json!({}))).await?;
    tx.emit(Event::ApiTokenRevoked { revocation_id });
    Ok(true)
}

/// Records a use of the caller's API token (at most once a minute), in its request's
/// transaction; other callers: nothing.
///
/// Errors: INTERNAL.
pub async fn touch(tx: &RequestTx) -> AppResult<()> {
    let (Some(user_id), Some(api)) = (tx.principal().user_id(), tx.principal().api()) else { return Ok(()) };
    store::touch(tx, user_id, api.token_id).await
}
