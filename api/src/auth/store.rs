//! The statements of the authentication floor: what an access token should carry now,
//! and the revocations every instance applies.
use crate::{
    error::{AppError, AppResult},
    model::{AccountState, PlanCode},
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// The plan and account state an access token should carry now: a grace period that
/// ended counts as suspended even before the sweeper records it.
///
/// Errors: UNAUTHENTICATED when the account no longer exists; INTERNAL otherwise.
pub async fn plan_and_state(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<(PlanCode, AccountState)> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT u.plan, CASE WHEN b.account_state = $2 AND b.grace_until < now() THEN $3
                                 ELSE coalesce(b.account_state, $4) END AS state
             FROM users u LEFT JOIN billing_accounts b ON b.user_id = u.id WHERE u.id = $1",
            [user_id.into(), AccountState::Grace.into(), AccountState::Suspended.into(), AccountState::Free.into()],
        ))
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))?;
    Ok((row.try_get("", "plan")?, row.try_get("", "state")?))
}

/// Users whose access tokens issued before an instant are refused, for revocations
/// younger than `since` (older ones concern only expired tokens); erased accounts
/// (`erased_accounts`, whose own revocation rows went with them) refuse every token
/// issued up to their erasure.
///
/// Errors: INTERNAL (database).
pub async fn user_revocations(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> AppResult<Vec<(Uuid, DateTime<Utc>)>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, revoked_before FROM token_revocations WHERE revoked_before > $1
             UNION ALL
             SELECT account_id, erased_at + interval '1 second' FROM erased_accounts WHERE erased_at > $1",
            [since.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let at: DateTime<chrono::FixedOffset> = r.try_get("", "revoked_before")?;
            Ok((r.try_get("", "user_id")?, at.with_timezone(&Utc)))
        })
        .collect()
}

/// Revocation ids of revoked API tokens that have not expired yet.
///
/// Errors: INTERNAL (database).
pub async fn revoked_api_tokens(db: &impl ConnectionTrait) -> AppResult<Vec<String>> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT revocation_id FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > now()",
        ))
        .await?;
    rows.iter().map(|r| Ok(r.try_get("", "revocation_id")?)).collect()
}

/// Records that `user_id`'s access tokens issued before `before` are refused (the
/// later of two revocations wins).
///
/// Errors: INTERNAL (database).
pub async fn insert_user_revocation(db: &impl ConnectionTrait, user_id: Uuid, before: DateTime<Utc>) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO token_revocations (user_id, revoked_before) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE
           SET revoked_before = greatest(token_revocations.revoked_before, EXCLUDED.revoked_before)",
        [user_id.into(), before.into()],
    ))
    .await?;
    Ok(())
}

/// Sessions ended since `since` (older ones concern only expired access tokens).
///
/// Errors: INTERNAL (database).
pub async fn revoked_sessions(db: &impl ConnectionTrait, since: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM sessions WHERE revoked_at > $1",
            [since.into()],
        ))
        .await?;
    rows.iter().map(|r| Ok(r.try_get("", "id")?)).collect()
}

/// Revocation ids of revoked worker tokens that have not expired yet.
///
/// Errors: INTERNAL (database).
pub async fn revoked_worker_tokens(db: &impl ConnectionTrait) -> AppResult<Vec<String>> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT revocation_id FROM worker_tokens WHERE revoked_at IS NOT NULL AND expires_at > now()",
        ))
        .await?;
    rows.iter().map(|r| Ok(r.try_get("", "revocation_id")?)).collect()
}
