//! Token revocations: written once (a row and a bus event) by whoever ends a user's
//! tokens, loaded by every instance at start, and applied by every instance as the
//! events arrive.
use super::{store, tokens::TokenService};
use crate::{
    db::{RequestMeta, RequestTx},
    error::AppResult,
    events::{Event, EventBus},
    principal::Principal,
};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use uuid::Uuid;

/// Refuses `user_id`'s access tokens issued before `before` on every instance: the row
/// is written in `tx` and the event published when it commits (a plan or account-state
/// change: the next refresh carries the new claims).
///
/// Errors: INTERNAL (database).
pub async fn revoke_user_tokens(tx: &RequestTx, user_id: Uuid, before: DateTime<Utc>) -> AppResult<()> {
    store::insert_user_revocation(tx, user_id, before).await?;
    tx.emit(Event::TokensRevoked { user_id, before });
    Ok(())
}

/// Loads the revocations still relevant (younger than a token's lifetime) into `tokens`.
///
/// Errors: the database's.
pub async fn load(pool: &DatabaseConnection, tokens: &TokenService, statement_timeout_ms: u64) -> anyhow::Result<()> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("startup"), statement_timeout_ms).await?;
    let since = Utc::now() - chrono::Duration::from_std(tokens.ttl())?;
    let users = store::user_revocations(&tx, since).await.map_err(|e| e.into_anyhow())?;
    let mut api = store::revoked_api_tokens(&tx).await.map_err(|e| e.into_anyhow())?;
    api.extend(store::revoked_worker_tokens(&tx).await.map_err(|e| e.into_anyhow())?);
    let sessions = store::revoked_sessions(&tx, since).await.map_err(|e| e.into_anyhow())?;
    tx.rollback().await;
    for id in api {
        tokens.revoke_api(&id);
    }
    for id in sessions {
        tokens.revoke_session(id);
    }
    for (user_id, before) in users {
        tokens.revoke(user_id, before);
    }
    Ok(())
}

/// Applies revocations announced on the bus by any instance, until the bus closes; and
/// each time this instance subscribes to Redis again after an outage (when revocations
/// other instances published meanwhile were missed), reloads them from Postgres.
pub async fn follow(
    bus: Arc<EventBus>,
    tokens: Arc<TokenService>,
    pool: DatabaseConnection,
    statement_timeout_ms: u64,
) {
    let mut rx = bus.subscribe();
    let mut subscriptions = bus.resubscriptions();
    let mut seen = *subscriptions.borrow_and_update();
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(Event::TokensRevoked { user_id, before }) => tokens.revoke(user_id, before),
                Ok(Event::ApiTokenRevoked { revocation_id } | Event::WorkerTokenRevoked { revocation_id }) => {
                    tokens.revoke_api(&revocation_id)
                }
                Ok(Event::SessionsRevoked { session_id: Some(session_id), .. }) => tokens.revoke_session(session_id),
                // Every session of the user (an account closed by billing): what was
                // issued until now.
                Ok(Event::SessionsRevoked { user_id, session_id: None }) => tokens.revoke(user_id, Utc::now()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            changed = subscriptions.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *subscriptions.borrow_and_update();
                // A subscription after the one the start found (or after a start without
                // Redis) means events were missed meanwhile.
                if now > seen {
                    match load(&pool, &tokens, statement_timeout_ms).await {
                        Ok(()) => tracing::info!("revocations reloaded after a Redis outage"),
                        Err(e) => tracing::warn!(error = format!("{e:#}"), "reloading revocations after a Redis outage"),
                    }
                }
                seen = now;
            }
        }
    }
}

/// Whether `event` revokes what authenticated `principal` (a socket's caller): its
/// session, its API token, its worker token, or (a plan or account change) every access
/// token of its user issued before the event's instant.
pub fn ends(event: &Event, principal: &Principal) -> bool {
    match (event, principal) {
        (Event::SessionsRevoked { user_id, session_id }, Principal::User(c)) => {
            c.api.is_none() && c.user_id == *user_id && session_id.is_none_or(|s| s == c.session_id)
        }
        (Event::TokensRevoked { user_id, before }, Principal::User(c)) => {
            c.api.is_none() && c.user_id == *user_id && c.issued_at < *before
        }
        (Event::ApiTokenRevoked { revocation_id }, Principal::User(c)) => {
            c.api.as_ref().is_some_and(|a| a.revocation_id == *revocation_id)
        }
        (Event::WorkerTokenRevoked { revocation_id }, Principal::Worker(w)) => w.revocation_id == *revocation_id,
        _ => false,
    }
}
