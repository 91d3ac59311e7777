//! Authentication and authorization: passwords, opaque secrets, biscuit access tokens,
//! turning an `Authorization` header (or a WebSocket `connection_init` payload) into a
//! principal, completing an API token's entitlements, the guards resolvers declare,
//! rate limits, and token revocations.
pub mod entitlements;
pub mod guards;
pub mod opaque;
pub mod password;
pub mod ratelimit;
pub mod revocations;
pub mod store;
pub mod tokens;
pub mod workers;

use crate::{error::AppError, principal::Principal};
use tokens::TokenService;

/// Reads `Bearer <token>`: none is anonymous; anything else that does not verify is an
/// error (never silently anonymous, so a client learns its token is bad).
///
/// Errors: UNAUTHENTICATED.
pub fn authenticate(tokens: &TokenService, header: Option<&str>) -> Result<Principal, AppError> {
    let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Principal::Anonymous);
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| AppError::Unauthenticated("expected Authorization: Bearer <token>".into()))?;
    tokens.verify(token)
}
