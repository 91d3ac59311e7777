//! GET /graphql/ws: GraphQL over WebSocket (graphql-transport-ws). Browsers cannot set
//! headers on a WebSocket, so the token rides in `connection_init`; it is checked here,
//! before async-graphql sees the socket, so the close codes are the protocol's: 4408
//! when no init arrives in time, 4401 when something else comes first, 4403 for a bad
//! token. Afterwards the socket closes with 4401 when its token expires (unless the
//! client sent a fresh one in a `ping` payload: `{"authorization": "Bearer ..."}`), and
//! with 4403 when its session is revoked.
use super::HttpState;
use crate::{
    auth::{authenticate, tokens::TokenService},
    events::Event,
    model::ApiScope,
    principal::Principal,
};
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use poem::{
    handler,
    web::{
        websocket::{CloseCode, Message, WebSocket, WebSocketConfig},
        Data,
    },
    IntoResponse,
};
use std::{sync::Arc, time::Duration};
use tokio::sync::{broadcast::error::RecvError, watch};

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Outgoing messages buffered per socket; a client that reads slower than its
/// subscriptions produce is dropped instead of buffered without bound.
const OUTGOING_BUFFER: usize = 64;

/// Upgrades to a GraphQL WebSocket for the caller named in `connection_init`.
#[handler]
pub async fn graphql_ws(
    Data(state): Data<&Arc<HttpState>>,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
) -> impl IntoResponse {
    let state = state.clone();
    // Small buffers: clients send a few short messages, and an idle subscriber's
    // memory is dominated by the default 128 KiB read buffer otherwise.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    websocket.config(config).protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let (mut sink, mut stream) = socket.split();
        let first = match tokio::time::timeout(INIT_TIMEOUT, stream.next()).await {
            Err(_) => {
                let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                return;
            }
            Ok(Some(Ok(msg))) => msg,
            Ok(_) => return,
        };
        let Some(payload) = init_payload(&first) else {
            let _ = sink.send(close(4401, "Unauthorized")).await;
            return;
        };
        let principal = match authenticate(&state.tokens, authorization(&payload)) {
            Ok(p) => p,
            Err(_) => {
                let _ = sink.send(close(4403, "Forbidden")).await;
                return;
            }
        };
        // An API token on a socket may only follow jobs, and only with jobs:read.
        if let Some(api) = principal.claims().and_then(|c| c.api.as_ref()) {
            if state.tokens.authorize_api(api, ApiScope::JobsRead, "jobUpdated", None).is_err() {
                let _ = sink.send(close(4403, "Forbidden")).await;
                return;
            }
        }
        let (expiry_tx, mut expiry_rx) = watch::channel(principal.expires_at());
        let reauth = Reauth { tokens: state.tokens.clone(), user_id: principal.user_id(), expiry: Arc::new(expiry_tx) };
        let session = principal.claims().map(|c| (c.user_id, c.session_id));
        let mut data = async_graphql::Data::default();
        data.insert(principal);

        let (out_tx, mut out_rx) = futures_channel::mpsc::channel::<Message>(OUTGOING_BUFFER);
        let replay = futures_util::stream::once(async move { Ok(first) }).chain(stream);
        let serve = GraphQLWebSocket::new_with_pair(out_tx, replay, state.executor.schema.clone(), protocol)
            .on_connection_init(move |_| async move { Ok(data) })
            .on_ping(move |_, payload| {
                let reauth = reauth.clone();
                async move {
                    reauth.apply(payload.as_ref());
                    Ok(None)
                }
            })
            .serve();
        tokio::pin!(serve);
        let mut events = state.bus.subscribe();
        let mut served = false;
        let verdict = loop {
            let deadline = *expiry_rx.borrow();
            let until_expiry = async move {
                match deadline {
                    Some(at) => tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut serve, if !served => served = true,
                msg = out_rx.next() => match msg {
                    Some(msg) => if sink.send(msg).await.is_err() { break None },
                    None => break None,
                },
                _ = until_expiry => break Some((4401, "Unauthorized: the token expired")),
                changed = expiry_rx.changed() => if changed.is_err() { break None },
                event = events.recv() => match event {
                    Ok(Event::SessionsRevoked { user_id, session_id }) => {
                        if session.is_some_and(|(u, s)| u == user_id && session_id.is_none_or(|r| r == s)) {
                            break Some((4403, "Forbidden: the session was revoked"));
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break None,
                },
            }
        };
        if let Some((code, reason)) = verdict {
            let _ = sink.send(close(code, reason)).await;
        }
    })
}

/// In-band re-authentication: a `ping` whose payload carries a fresh token for the same
/// user moves the socket's expiry.
#[derive(Clone)]
struct Reauth {
    tokens: Arc<TokenService>,
    user_id: Option<uuid::Uuid>,
    expiry: Arc<watch::Sender<Option<DateTime<Utc>>>>,
}

impl Reauth {
    fn apply(&self, payload: Option<&serde_json::Value>) {
        let Some(header) = payload.and_then(|p| p.as_object()).and_then(authorization) else { return };
        match authenticate(&self.tokens, Some(header)) {
            Ok(Principal::User(claims)) if Some(claims.user_id) == self.user_id => {
                let _ = self.expiry.send(Some(claims.expires_at));
            }
            _ => tracing::info!("a socket's re-authentication was refused"),
        }
    }
}

fn authorization(payload: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    payload.get("authorization").or_else(|| payload.get("Authorization")).and_then(|v| v.as_str())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some((CloseCode::from(code), reason.to_owned())))
}

/// The payload of a `connection_init` message, or None for any other message.
fn init_payload(msg: &Message) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = match msg {
        Message::Text(t) => t.as_str(),
        _ => return None,
    };
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "connection_init" {
        return None;
    }
    match value.get("payload") {
        None | Some(serde_json::Value::Null) => Some(Default::default()),
        Some(serde_json::Value::Object(map)) => Some(map.clone()),
        Some(_) => None,
    }
}
