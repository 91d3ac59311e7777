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
    let api = store::revoked_api_tokens(&tx).await.map_err(|e| e.into_anyhow())?;
    tx.rollback().await;
    for id in api {
        tokens.revoke_api(&id);
    }
    for (user_id, before) in users {
        tokens.revoke(user_id, before);
    }
    Ok(())
}

/// Applies revocations announced on the bus by any instance, until the bus closes.
pub async fn follow(bus: Arc<EventBus>, tokens: Arc<TokenService>) {
    let mut rx = bus.subscribe();
    loop {
        match rx.recv().await {
            Ok(Event::TokensRevoked { user_id, before }) => tokens.revoke(user_id, before),
            Ok(Event::ApiTokenRevoked { revocation_id }) => tokens.revoke_api(&revocation_id),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
