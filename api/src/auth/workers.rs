//! Worker tokens as the command line manages them: issued (`plinth admin
//! worker-token --kinds ...`) and recorded with their kinds, expiry, root key id and
//! revocation id; listed; revoked, which every instance applies like an API token's
//! revocation (the bus now, Postgres at start and after a Redis outage) and which closes
//! the worker's sockets.
use super::tokens::TokenService;
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppError,
    events::{Event, EventBus},
    model::JobKind,
    principal::Principal,
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// A recorded worker token (never the token itself).
#[derive(Clone, Debug)]
pub struct WorkerToken {
    /// The worker's id (the token's `worker` fact).
    pub id: Uuid,
    /// Job kinds it may claim.
    pub kinds: Vec<String>,
    /// The root key id it was signed with.
    pub key_id: i32,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

async fn begin(pool: &RuntimePool, statement_timeout_ms: u64) -> anyhow::Result<RequestTx> {
    Ok(RequestTx::begin(pool, Principal::System, RequestMeta::internal("cli"), statement_timeout_ms).await?)
}

/// Issues a worker token for `kinds`, valid for `ttl`, and records it; returns the
/// worker id and the token (shown once, never stored).
///
/// Errors: the database's; a token that cannot be built (a bug).
pub async fn issue(
    pool: &RuntimePool,
    tokens: &TokenService,
    statement_timeout_ms: u64,
    kinds: &[JobKind],
    ttl: std::time::Duration,
) -> anyhow::Result<(Uuid, String)> {
    let worker_id = Uuid::now_v7();
    let token = tokens.issue_worker(worker_id, kinds, ttl)?;
    let principal = tokens.verify(&token).map_err(|e| anyhow::anyhow!("a new worker token does not verify: {e:?}"))?;
    let claims = principal.worker().ok_or_else(|| anyhow::anyhow!("a new worker token is not a worker's"))?;
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let tx = begin(pool, statement_timeout_ms).await?;
    tx.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO worker_tokens (id, kinds, revocation_id, key_id, expires_at)
         VALUES ($1, string_to_array($2, ','), $3, $4, $5)",
        [
            worker_id.into(),
            names.join(",").into(),
            claims.revocation_id.clone().into(),
            (tokens.key_id() as i32).into(),
            claims.expires_at.into(),
        ],
    ))
    .await?;
    tx.commit_without_events().await?;
    Ok((worker_id, token))
}

/// Every recorded worker token, newest first.
///
/// Errors: the database's.
pub async fn list(pool: &RuntimePool, statement_timeout_ms: u64) -> anyhow::Result<Vec<WorkerToken>> {
    let tx = begin(pool, statement_timeout_ms).await?;
    let rows = tx
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id, array_to_string(kinds, ',') AS kinds, key_id, created_at, expires_at, revoked_at
             FROM worker_tokens ORDER BY created_at DESC",
        ))
        .await?;
    tx.rollback().await;
    let at = |v: Option<DateTime<chrono::FixedOffset>>| v.map(|t| t.with_timezone(&Utc));
    rows.iter()
        .map(|r| -> anyhow::Result<WorkerToken> {
            Ok(WorkerToken {
                id: r.try_get("", "id")?,
                kinds: r.try_get::<String>("", "kinds")?.split(',').map(str::to_owned).collect(),
                key_id: r.try_get("", "key_id")?,
                created_at: at(Some(r.try_get("", "created_at")?)).unwrap_or_default(),
                expires_at: at(Some(r.try_get("", "expires_at")?)).unwrap_or_default(),
                revoked_at: at(r.try_get("", "revoked_at")?),
            })
        })
        .collect()
}

/// Revokes worker token `id` on every instance (through `bus`); false when there is no
/// such token or it was already revoked.
///
/// Errors: the database's.
pub async fn revoke(pool: &RuntimePool, bus: &EventBus, statement_timeout_ms: u64, id: Uuid) -> Result<bool, AppError> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("cli"), statement_timeout_ms).await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE worker_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING revocation_id",
            [id.into()],
        ))
        .await?;
    let Some(row) = row else {
        tx.rollback().await;
        return Ok(false);
    };
    tx.emit(Event::WorkerTokenRevoked { revocation_id: row.try_get("", "revocation_id")? });
    tx.commit(bus).await?;
    Ok(true)
}
