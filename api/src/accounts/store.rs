//! The statements of `users`, `sessions`, `refresh_tokens` and `one_time_tokens`, and
//! the two cross-tenant lookups by e-mail (`priv.*` functions, for sign-in and reset).
use crate::{error::AppResult, model::Role};
use chrono::{DateTime, Utc};
use entity::sessions;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// What sign-in needs of an account found by e-mail.
#[derive(Debug)]
pub struct LoginRow {
    /// The account.
    pub id: Uuid,
    /// Its argon2id hash.
    pub password_hash: String,
    /// Its role.
    pub role: Role,
}

/// The account with this e-mail, for sign-in (`priv.login_lookup`, executable by the
/// anonymous role only).
///
/// Errors: INTERNAL (database).
pub async fn login_lookup(db: &impl ConnectionTrait, email: &str) -> AppResult<Option<LoginRow>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, password_hash, role FROM priv.login_lookup($1::citext)",
            [email.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(LoginRow {
        id: r.try_get("", "id")?,
        password_hash: r.try_get("", "password_hash")?,
        role: r.try_get("", "role")?,
    }))
}

/// The id of the account with this e-mail, for password reset
/// (`priv.user_id_for_email`).
///
/// Errors: INTERNAL (database).
pub async fn user_id_for_email(db: &impl ConnectionTrait, email: &str) -> AppResult<Option<Uuid>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.user_id_for_email($1::citext) AS id",
            [email.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Option<Uuid>>("", "id")).transpose()?.flatten())
}

/// Marks the address verified (keeping the first verification time).
///
/// Errors: INTERNAL (database).
pub async fn mark_email_verified(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
        [user_id.into()],
    ))
    .await?;
    Ok(())
}

/// Sets the password hash.
///
/// Errors: INTERNAL (database).
pub async fn set_password_hash(db: &impl ConnectionTrait, user_id: Uuid, hash: &str) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        [user_id.into(), hash.into()],
    ))
    .await?;
    Ok(())
}

/// Opens a session.
///
/// Errors: INTERNAL (database).
pub async fn insert_session(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5)",
        [session_id.into(), user_id.into(), expires_at.into(), user_agent.into(), ip.into()],
    ))
    .await?;
    Ok(())
}

/// Records that a live session was used; false when it is revoked or expired.
///
/// Errors: INTERNAL (database).
pub async fn touch_live_session(db: &impl ConnectionTrait, user_id: Uuid, session_id: Uuid) -> AppResult<bool> {
    let live = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE sessions SET last_used_at = now()
             WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > now() RETURNING id",
            [user_id.into(), session_id.into()],
        ))
        .await?;
    Ok(live.is_some())
}

/// The user's live sessions (neither revoked nor expired), most recently used first,
/// at most `limit`.
///
/// Errors: INTERNAL (database).
pub async fn live_sessions(db: &impl ConnectionTrait, user_id: Uuid, limit: u64) -> AppResult<Vec<sessions::Model>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    Ok(sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
        .order_by_desc(sessions::Column::LastUsedAt)
        .order_by_desc(sessions::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Revokes the user's live sessions, all of them or one, except `keep`; returns the ids
/// revoked.
///
/// Errors: INTERNAL (database).
pub async fn revoke_sessions(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    only: Option<Uuid>,
    keep: Option<Uuid>,
    reason: &str,
) -> AppResult<Vec<Uuid>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH revoked AS (
               UPDATE sessions SET revoked_at = now(), revoked_reason = $4
               WHERE user_id = $1 AND ($2::uuid IS NULL OR id = $2) AND id IS DISTINCT FROM $3 AND revoked_at IS NULL
               RETURNING id
             ), forgotten AS (
               -- An ended session's sealed successor pairs serve no one any more.
               UPDATE refresh_tokens SET successor_sealed = NULL
               WHERE user_id = $1 AND successor_sealed IS NOT NULL AND session_id IN (SELECT id FROM revoked)
             )
             SELECT id FROM revoked",
            [user_id.into(), only.into(), keep.into(), reason.into()],
        ))
        .await?;
    rows.iter().map(|r| Ok(r.try_get::<Uuid>("", "id")?)).collect()
}

/// Stores a refresh token's hash in its session.
///
/// Errors: INTERNAL (database).
pub async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: Vec<u8>,
    session_id: Uuid,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO refresh_tokens (user_id, token_hash, session_id) VALUES ($1, $2, $3)",
        [user_id.into(), hash.into(), session_id.into()],
    ))
    .await?;
    Ok(())
}

/// Spends an unused refresh token; its session, or None when unknown or already spent.
///
/// Errors: INTERNAL (database).
pub async fn spend_refresh_token(db: &impl ConnectionTrait, user_id: Uuid, hash: Vec<u8>) -> AppResult<Option<Uuid>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE refresh_tokens SET used_at = now()
             WHERE user_id = $1 AND token_hash = $2 AND used_at IS NULL RETURNING session_id",
            [user_id.into(), hash.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Uuid>("", "session_id")).transpose()?)
}

/// The session of a refresh token, spent or not.
///
/// Errors: INTERNAL (database).
pub async fn refresh_token_session(db: &impl ConnectionTrait, user_id: Uuid, hash: Vec<u8>) -> AppResult<Option<Uuid>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT session_id FROM refresh_tokens WHERE user_id = $1 AND token_hash = $2",
            [user_id.into(), hash.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Uuid>("", "session_id")).transpose()?)
}

/// Stores a one-time token's hash for `purpose`, valid until `expires_at`.
///
/// Errors: INTERNAL (database).
pub async fn insert_one_time_token(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
    purpose: &str,
    hash: Vec<u8>,
    expires_at: DateTime<Utc>,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        [id.into(), user_id.into(), purpose.into(), hash.into(), expires_at.into()],
    ))
    .await?;
    Ok(())
}

/// Spends a one-time token atomically (two concurrent uses cannot both succeed); true
/// when it was valid, unused and unexpired.
///
/// Errors: INTERNAL (database).
pub async fn spend_one_time_token(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: Vec<u8>,
    purpose: &str,
) -> AppResult<bool> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE one_time_tokens SET used_at = now()
             WHERE user_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > now()
             RETURNING id",
            [user_id.into(), hash.into(), purpose.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// A spent refresh token presented again: its session, the successor pair it was
/// exchanged for (sealed) if any, and whether it was spent within `grace`.
#[derive(Debug)]
pub struct SpentRefresh {
    /// Its session.
    pub session_id: Uuid,
    /// The sealed successor pair, kept for the grace interval.
    pub successor_sealed: Option<Vec<u8>>,
    /// Whether it was spent less than `grace` ago.
    pub within_grace: bool,
}

/// The spent refresh token `hash` of `user_id`, if it exists.
///
/// Errors: INTERNAL (database).
pub async fn spent_refresh_token(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: Vec<u8>,
    grace: std::time::Duration,
) -> AppResult<Option<SpentRefresh>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT session_id, successor_sealed,
                    coalesce(used_at > now() - make_interval(secs => $3), false) AS within_grace
             FROM refresh_tokens WHERE user_id = $1 AND token_hash = $2",
            [user_id.into(), hash.into(), grace.as_secs_f64().into()],
        ))
        .await?;
    row.map(|r| {
        Ok(SpentRefresh {
            session_id: r.try_get("", "session_id")?,
            successor_sealed: r.try_get("", "successor_sealed")?,
            within_grace: r.try_get("", "within_grace")?,
        })
    })
    .transpose()
}

/// Keeps the sealed successor pair of the just spent refresh token `hash`, and forgets
/// the pairs of the session's tokens spent longer than `grace` ago.
///
/// Errors: INTERNAL (database).
pub async fn seal_refresh_successor(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    session_id: Uuid,
    hash: Vec<u8>,
    sealed: Vec<u8>,
    grace: std::time::Duration,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE refresh_tokens SET successor_sealed = CASE WHEN token_hash = $3 THEN $4::bytea END
         WHERE user_id = $1 AND session_id = $2
           AND (token_hash = $3 OR (successor_sealed IS NOT NULL AND used_at < now() - make_interval(secs => $5)))",
        [user_id.into(), session_id.into(), hash.into(), sealed.into(), grace.as_secs_f64().into()],
    ))
    .await?;
    Ok(())
}

/// Why the account is suspended, when an admin suspended it.
///
/// Errors: INTERNAL (database).
pub async fn suspension(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<String>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT suspension_reason FROM users WHERE id = $1 AND suspended_at IS NOT NULL",
            [user_id.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<String>("", "suspension_reason")).transpose()?)
}

/// Invalidates the account's pending change-of-address links.
///
/// Errors: INTERNAL (database).
pub async fn drop_email_change_tokens(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE one_time_tokens SET used_at = now() WHERE user_id = $1 AND purpose = 'change_email' AND used_at IS NULL",
        [user_id.into()],
    ))
    .await?;
    Ok(())
}

/// Spends every live one-time token of `user_id` for one of `purposes` (links already
/// mailed stop working): a password set anew kills pending changes of address and other
/// reset links, a change of address kills the links sent to the old one.
///
/// Errors: INTERNAL (database).
pub async fn spend_pending_tokens(db: &impl ConnectionTrait, user_id: Uuid, purposes: &[&str]) -> AppResult<()> {
    if purposes.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..purposes.len()).map(|i| format!("${}", i + 2)).collect();
    let mut values: Vec<sea_orm::Value> = vec![user_id.into()];
    values.extend(purposes.iter().map(|p| (*p).into()));
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "UPDATE one_time_tokens SET used_at = now()
              WHERE user_id = $1 AND used_at IS NULL AND purpose IN ({})",
            placeholders.join(", ")
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Stores a change-of-address link's hash with the new address and the session that
/// asked.
///
/// Errors: INTERNAL (database).
pub async fn insert_email_change_token(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
    hash: Vec<u8>,
    new_email: &str,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> AppResult<()> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, expires_at, new_email, session_id)
         VALUES ($1, $2, 'change_email', $3, $4, $5, $6)",
        [id.into(), user_id.into(), hash.into(), expires_at.into(), new_email.into(), session_id.into()],
    ))
    .await?;
    Ok(())
}

/// A confirmed change of address.
#[derive(Debug)]
pub struct EmailChanged {
    /// The address the account had.
    pub old_email: String,
    /// The address it has now.
    pub new_email: String,
    /// The session that asked for the change (kept signed in).
    pub session_id: Option<Uuid>,
}

/// Spends the change link `hash` of `user_id` and moves the account to its address
/// (`priv.confirm_email_change`); None when the link is not valid.
///
/// Errors: CONFLICT (the address got an account since); INTERNAL (database).
pub async fn confirm_email_change(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: Vec<u8>,
) -> AppResult<Option<EmailChanged>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT old_email, new_email, session_id FROM priv.confirm_email_change($1, $2)",
            [user_id.into(), hash.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(EmailChanged {
        old_email: r.try_get("", "old_email")?,
        new_email: r.try_get("", "new_email")?,
        session_id: r.try_get("", "session_id")?,
    }))
}
