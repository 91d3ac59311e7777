//! Creating, listing and revoking API tokens; the scope every root field needs.
use crate::{
    activity::service::{self as activity, Entry},
    auth::tokens::TokenService,
    db::RequestScope,
    error::{AppError, AppResult},
    events::Event,
};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde_json::json;
use uuid::Uuid;

/// Scopes a token can be granted.
pub const SCOPES: &[&str] = &[
    "drafts:read",
    "drafts:write",
    "jobs:read",
    "jobs:write",
    "accounts:read",
    "accounts:write",
    "usage:read",
    "billing:read",
];

/// The scope each root field needs from an API token; a field missing here (sign-in,
/// passwords, billing changes, token management) is never callable with one.
pub const FIELD_SCOPES: &[(&str, &str)] = &[
    ("drafts", "drafts:read"),
    ("draft", "drafts:read"),
    ("photo", "drafts:read"),
    ("activity", "drafts:read"),
    ("dashboard", "drafts:read"),
    ("createDraft", "drafts:write"),
    ("updateDraft", "drafts:write"),
    ("deleteDraft", "drafts:write"),
    ("restoreDraft", "drafts:write"),
    ("createUpload", "drafts:write"),
    ("confirmUpload", "drafts:write"),
    ("deletePhoto", "drafts:write"),
    ("jobs", "jobs:read"),
    ("job", "jobs:read"),
    ("jobUpdated", "jobs:read"),
    ("createJob", "jobs:write"),
    ("cancelJob", "jobs:write"),
    ("marketplaceAccounts", "accounts:read"),
    ("marketplaceAccount", "accounts:read"),
    ("connectMarketplaceAccount", "accounts:write"),
    ("renameMarketplaceAccount", "accounts:write"),
    ("disconnectMarketplaceAccount", "accounts:write"),
    ("me", "usage:read"),
    ("usage", "usage:read"),
    ("plans", "usage:read"),
    ("billing", "billing:read"),
    ("invoices", "billing:read"),
];

/// The scope `field` needs, if API tokens may call it at all.
pub fn scope_of(field: &str) -> Option<&'static str> {
    FIELD_SCOPES.iter().find(|(f, _)| *f == field).map(|(_, s)| *s)
}

/// Longest lifetime of an API token.
pub const MAX_DAYS: i64 = 366;

/// A token's row.
#[derive(Clone, Debug)]
pub struct ApiTokenRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn session_user(scope: &RequestScope) -> AppResult<Uuid> {
    let claims = scope.principal.claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))?;
    if claims.api.is_some() {
        return Err(AppError::Forbidden("API tokens cannot manage API tokens".into()));
    }
    Ok(claims.user_id)
}

/// Creates a token; the biscuit is returned once and never stored.
pub async fn create(
    scope: &RequestScope,
    tokens: &TokenService,
    name: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<(String, ApiTokenRow)> {
    let user_id = session_user(scope)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("input.name", "must be 1 to 100 characters"));
    }
    if scopes.is_empty() {
        return Err(AppError::bad_input("input.scopes", "must name at least one scope"));
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(AppError::bad_input(
            "input.scopes",
            format!("unknown scope {bad:?}; known: {}", SCOPES.join(", ")),
        ));
    }
    let now = Utc::now();
    let expires_at = expires_at.unwrap_or(now + Duration::days(90));
    if expires_at <= now || expires_at > now + Duration::days(MAX_DAYS) {
        return Err(AppError::bad_input("input.expiresAt", format!("must be in the next {MAX_DAYS} days")));
    }
    let mut scopes: Vec<String> = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let id = Uuid::now_v7();
    let (token, revocation_id) = tokens.issue_api(user_id, id, &scopes, expires_at)?;
    scope
        .tx
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO api_tokens (id, user_id, name, scopes, revocation_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            [id.into(), user_id.into(), name.into(), scopes.clone().into(), revocation_id.into(), expires_at.into()],
        ))
        .await?;
    activity::record(
        scope.tx.as_ref(),
        &scope.meta,
        Entry {
            user_id,
            actor_id: Some(user_id),
            action: "api_token.create",
            subject_type: Some("api_token"),
            subject_id: Some(id),
            data: json!({ "name": name, "scopes": scopes }),
        },
    )
    .await?;
    let row = ApiTokenRow {
        id,
        name: name.to_owned(),
        scopes,
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    Ok((token, row))
}

/// The caller's tokens, newest first.
pub async fn list(scope: &RequestScope) -> AppResult<Vec<ApiTokenRow>> {
    let user_id = session_user(scope)?;
    let rows = scope
        .tx
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at FROM api_tokens
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
            [user_id.into()],
        ))
        .await?;
    rows.iter().map(row).collect()
}

/// Revokes one of the caller's tokens; every instance refuses it once the event lands.
pub async fn revoke(scope: &RequestScope, id: Uuid) -> AppResult<bool> {
    let user_id = session_user(scope)?;
    let found = scope
        .tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1 AND id = $2
             RETURNING revocation_id",
            [user_id.into(), id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::NotFound("API token not found".into()))?;
    let revocation_id: String = found.try_get("", "revocation_id")?;
    activity::record(
        scope.tx.as_ref(),
        &scope.meta,
        Entry {
            user_id,
            actor_id: Some(user_id),
            action: "api_token.revoke",
            subject_type: Some("api_token"),
            subject_id: Some(id),
            data: json!({}),
        },
    )
    .await?;
    scope.emit(Event::ApiTokenRevoked { revocation_id });
    Ok(true)
}

/// Records a use of the token, at most once a minute.
pub async fn touch(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE api_tokens SET last_used_at = now()
         WHERE user_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        [user_id.into(), id.into()],
    ))
    .await?;
    Ok(())
}

fn row(r: &QueryResult) -> AppResult<ApiTokenRow> {
    let utc = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
    };
    Ok(ApiTokenRow {
        id: r.try_get("", "id")?,
        name: r.try_get("", "name")?,
        scopes: r.try_get("", "scopes")?,
        created_at: utc("created_at")?.unwrap_or_default(),
        last_used_at: utc("last_used_at")?,
        expires_at: utc("expires_at")?.unwrap_or_default(),
        revoked_at: utc("revoked_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_scope_is_a_known_scope() {
        for (field, scope) in FIELD_SCOPES {
            assert!(SCOPES.contains(scope), "{field}: {scope}");
        }
        assert_eq!(scope_of("createApiToken"), None);
        assert_eq!(scope_of("login"), None);
    }
}
