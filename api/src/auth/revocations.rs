//! Token revocations: written once (a row and a bus event) by whoever ends a user's
//! tokens, loaded by every instance at start, and applied by every instance as the
//! events arrive.
use super::{store, tokens::TokenService};
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppResult,
    events::{Event, EventBus, RecvError, Topic},
    principal::Principal,
};
use chrono::{DateTime, Utc};
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
pub async fn load(pool: &RuntimePool, tokens: &TokenService, statement_timeout_ms: u64) -> anyhow::Result<()> {
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
pub async fn follow(bus: Arc<EventBus>, tokens: Arc<TokenService>, pool: RuntimePool, statement_timeout_ms: u64) {
    let mut rx = bus.subscribe(Some(Topic::Revocations));
    let mut subscriptions = bus.resubscriptions();
    let mut seen = *subscriptions.borrow_and_update();
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(Event::TokensRevoked { user_id, before }) => tokens.revoke(user_id, before),
                Ok(Event::ApiTokenRevoked { revocation_id } | Event::WorkerTokenRevoked { revocation_id }) => {
                    tokens.revoke_api(&revocation_id)
                }
                // (Every session at once, `session_id: None`, is billing closing a
                // suspended account's sockets: its tokens go through TokensRevoked.)
                Ok(Event::SessionsRevoked { session_id: Some(session_id), .. }) => tokens.revoke_session(session_id),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
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

/// The topic a socket opened by `principal` listens to for [`ends`]: every event that
/// ends it is published to this topic (none for a caller no revocation ends).
pub fn topic(principal: &Principal) -> Option<Topic> {
    match principal {
        Principal::User(c) => Some(match &c.api {
            Some(api) => Topic::Token(api.revocation_id.clone()),
            None => Topic::Access(c.user_id),
        }),
        Principal::Worker(w) => Some(Topic::Token(w.revocation_id.clone())),
        Principal::Anonymous | Principal::System => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{AccountState, PlanCode, Role},
        principal::{Limits, UserClaims, WorkerClaims},
    };

    fn session(user_id: Uuid, session_id: Uuid, issued_at: DateTime<Utc>) -> Principal {
        Principal::User(UserClaims {
            user_id,
            role: Role::User,
            session_id,
            expires_at: issued_at + chrono::Duration::minutes(15),
            issued_at,
            plan: PlanCode::Free,
            account_state: AccountState::Free,
            quotas: Limits::default(),
            api: None,
        })
    }

    #[test]
    fn each_revocation_ends_exactly_what_it_revokes() {
        let (ann, bob, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let p = session(ann, s1, now);
        assert!(ends(&Event::SessionsRevoked { user_id: ann, session_id: Some(s1) }, &p));
        assert!(ends(&Event::SessionsRevoked { user_id: ann, session_id: None }, &p));
        assert!(!ends(&Event::SessionsRevoked { user_id: ann, session_id: Some(s2) }, &p));
        assert!(!ends(&Event::SessionsRevoked { user_id: bob, session_id: None }, &p));
        let later = now + chrono::Duration::seconds(1);
        assert!(ends(&Event::TokensRevoked { user_id: ann, before: later }, &p), "a plan change");
        assert!(!ends(&Event::TokensRevoked { user_id: ann, before: now - chrono::Duration::seconds(1) }, &p));
        assert!(!ends(&Event::TokensRevoked { user_id: bob, before: later }, &p));
        assert!(!ends(&Event::ApiTokenRevoked { revocation_id: "ab".into() }, &p));
        let worker = Principal::Worker(WorkerClaims {
            worker_id: Uuid::new_v4(),
            kinds: vec![],
            expires_at: later,
            revocation_id: "ab".into(),
        });
        assert!(ends(&Event::WorkerTokenRevoked { revocation_id: "ab".into() }, &worker));
        assert!(!ends(&Event::WorkerTokenRevoked { revocation_id: "cd".into() }, &worker));
        assert!(!ends(&Event::ApiTokenRevoked { revocation_id: "ab".into() }, &worker));
        assert!(!ends(&Event::JobChanged { user_id: ann, job_id: s1 }, &p));
    }

    #[test]
    fn whatever_ends_a_socket_is_published_to_its_topic() {
        let (ann, s1) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(1);
        let p = session(ann, s1, now);
        let mut api = session(ann, s1, now);
        if let Principal::User(c) = &mut api {
            let biscuit = biscuit_auth::Biscuit::builder().build(&biscuit_auth::KeyPair::new()).expect("a biscuit");
            c.api = Some(crate::principal::ApiAuth {
                token_id: Uuid::new_v4(),
                revocation_id: "ab".into(),
                biscuit: Arc::new(biscuit),
            });
        }
        let worker = Principal::Worker(WorkerClaims {
            worker_id: Uuid::new_v4(),
            kinds: vec![],
            expires_at: later,
            revocation_id: "cd".into(),
        });
        let events = [
            Event::SessionsRevoked { user_id: ann, session_id: Some(s1) },
            Event::SessionsRevoked { user_id: ann, session_id: None },
            Event::TokensRevoked { user_id: ann, before: later },
            Event::ApiTokenRevoked { revocation_id: "ab".into() },
            Event::WorkerTokenRevoked { revocation_id: "cd".into() },
        ];
        let mut ended = 0;
        for principal in [&p, &api, &worker] {
            let topic = topic(principal).expect("a topic");
            for event in &events {
                if ends(event, principal) {
                    ended += 1;
                    assert!(event.topics().contains(&Some(topic.clone())), "{event:?} reaches {topic:?}");
                }
                assert!(event.topics().contains(&Some(Topic::Revocations)), "the revocation list hears {event:?}");
            }
        }
        assert_eq!(ended, 5);
        assert_eq!(topic(&Principal::Anonymous), None);
    }
}
