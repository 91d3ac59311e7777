//! GET /graphql/ws: GraphQL over WebSocket (graphql-transport-ws, and the older
//! graphql-ws). Browsers cannot set headers on a WebSocket, so the token rides in
//! `connection_init`; it is checked here, before async-graphql sees the socket, so the
//! close codes are the protocol's: 4408 when no init arrives in time, 4400 for a
//! malformed message (not JSON, or not a message of the protocol) at any time, 4401
//! when a well-formed message other than `connection_init` comes first, 4403 for a bad
//! token. Afterwards the socket closes with 4401 when its token expires (unless the
//! client sent a fresh one in a `ping` payload: `{"authorization": "Bearer ..."}`), and
//! with 4403 when the token that opened it is revoked (its session ended, the API token
//! or worker token revoked, a plan change).
//!
//! Queries and mutations sent over the socket run like HTTP ones, each in its own
//! transaction ([`SocketExecutor`]). A socket that has been silent for
//! half of `PLINTH_WS_KEEPALIVE_SECS` gets a WebSocket ping frame at the next tick (one
//! per `PLINTH_WS_KEEPALIVE_SECS`; RFC 6455 §5.5.2: every client answers with a pong by
//! itself); a ping not answered by the next tick closes the socket with 3008 (IANA's
//! "Timeout"), so a dead mobile connection is freed within two intervals. When the
//! instance drains (SIGTERM), every socket closes with 1012 ("Service restart"): the
//! client reconnects, to another instance.
use super::HttpState;
use crate::{
    auth::{authenticate, revocations, tokens::TokenService},
    db::RequestMeta,
    events::RecvError,
    graphql::execute::SocketExecutor,
    principal::Principal,
};
use async_graphql::http::{ClientMessage, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use poem::{
    handler,
    http::header,
    web::{
        websocket::{CloseCode, Message, WebSocket, WebSocketConfig},
        Data, RemoteAddr,
    },
    IntoResponse, Request,
};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::watch;

/// The close of a draining instance: 1012, "Service Restart" (IANA's registry), which
/// clients treat as "reconnect".
const RESTART: (u16, &str) = (1012, "Service restart: reconnect");

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Outgoing messages buffered per socket; a client that reads slower than its
/// subscriptions produce is dropped instead of buffered without bound.
const OUTGOING_BUFFER: usize = 64;

/// GET /graphql/ws: [`graphql_ws`] on header values of its own.
pub fn endpoint() -> impl poem::Endpoint {
    use poem::EndpointExt;
    graphql_ws.before(own_upgrade_headers)
}

/// Copies the upgrade headers poem's `WebSocket` keeps for the socket's whole life (the
/// key and the protocols) out of the request: hyper's parsed header values share the
/// connection's 8 KiB read buffer, which every idle socket would otherwise hold.
async fn own_upgrade_headers(mut req: Request) -> poem::Result<Request> {
    for name in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_PROTOCOL] {
        let owned = req.headers().get(&name).and_then(|v| header::HeaderValue::from_bytes(v.as_bytes()).ok());
        if let Some(owned) = owned {
            req.headers_mut().insert(name, owned);
        }
    }
    Ok(req)
}

/// Upgrades to a GraphQL WebSocket for the caller named in `connection_init`.
#[handler]
pub async fn graphql_ws(
    req: &Request,
    remote: &RemoteAddr,
    Data(state): Data<&Arc<HttpState>>,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
) -> impl IntoResponse {
    let state = state.clone();
    let meta = RequestMeta {
        request_id: String::new(),
        ip: super::graphql::client_ip(req, remote, state.config.server.client_ip_header.as_deref()),
        user_agent: req.header(header::USER_AGENT).map(|ua| ua.chars().take(256).collect()),
        accept_language: req.header(header::ACCEPT_LANGUAGE).map(|l| l.chars().take(256).collect()),
        operator: None,
    };
    let keepalive = Duration::from_secs(state.config.server.ws_keepalive_secs);
    // Small buffers: clients send a few short messages (an init with its token, a
    // subscribe: well under 1 KiB each; a longer one is read in several chunks), and an
    // idle subscriber's memory is dominated by the default 128 KiB read buffer otherwise
    // (the chunk is zero-filled, so resident: 1 KiB rather than 4 saves 3 KiB a socket).
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    websocket.config(config).protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let _open = OpenSocket::count(&state.metrics.websockets_open);
        let _draining = state.drain.socket();
        let drain = state.drain.clone();
        let (mut sink, mut stream) = socket.split();
        let first = tokio::select! {
            first = tokio::time::timeout(INIT_TIMEOUT, stream.next()) => first,
            _ = drain.started() => {
                let _ = sink.send(close(RESTART.0, RESTART.1)).await;
                return;
            }
        };
        let first = match first {
            Err(_) => {
                let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                return;
            }
            Ok(Some(Ok(msg))) => msg,
            Ok(_) => return,
        };
        let payload = match init_payload(&first) {
            Ok(payload) => payload,
            Err(First::Malformed(why)) => {
                let _ = sink.send(close(4400, &why)).await;
                return;
            }
            Err(First::NotInit) => {
                let _ = sink.send(close(4401, "Unauthorized")).await;
                return;
            }
        };
        let principal = match authenticate(&state.tokens, authorization(&payload)) {
            Ok(p) => p,
            Err(_) => {
                let _ = sink.send(close(4403, "Forbidden")).await;
                return;
            }
        };
        // What a socket's caller may do is decided per field by the fields' guards, as
        // over HTTP (one authorization path): nothing is decided here about scopes.
        let (expiry_tx, mut expiry_rx) = watch::channel(principal.expires_at());
        let reauth = Reauth { tokens: state.tokens.clone(), user_id: principal.user_id(), expiry: Arc::new(expiry_tx) };
        let authenticated = principal.clone();
        let executor = SocketExecutor::new(state.executor.clone(), principal.clone(), meta, state.metrics.clone());
        let mut data = async_graphql::Data::default();
        data.insert(principal);

        // Every message from the client proves it alive; a malformed one ends the socket.
        let last_heard = Arc::new(Mutex::new(Instant::now()));
        // (A oneshot, not an mpsc channel: that allocates a block of 32 slots per socket.)
        let (malformed_tx, mut malformed_rx) = tokio::sync::oneshot::channel::<String>();
        let mut malformed_tx = Some(malformed_tx);
        let heard = last_heard.clone();
        let incoming = futures_util::stream::once(async move { Ok(first) }).chain(stream).take_while(move |msg| {
            *heard.lock().unwrap() = Instant::now();
            let verdict = match msg {
                Ok(m) => check_message(m),
                Err(_) => Ok(()),
            };
            let go_on = match verdict {
                Ok(()) => true,
                Err(why) => {
                    if let Some(tx) = malformed_tx.take() {
                        let _ = tx.send(why);
                    }
                    false
                }
            };
            std::future::ready(go_on)
        });
        let (out_tx, mut out_rx) = futures_channel::mpsc::channel::<Message>(OUTGOING_BUFFER);
        let serve = GraphQLWebSocket::new_with_pair(out_tx, incoming, executor, protocol)
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
        // Only the events that could revoke this socket's token wake it.
        let mut events = state.bus.subscribe(revocations::topic(&authenticated));
        let mut served = false;
        let mut keepalive_tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut ping_sent: Option<Instant> = None;
        // The protocol's side holds the expiry's sender (in-band renewal): once it ended,
        // no renewal can come, and the socket ends through `out_rx` with its close code.
        let mut renewals_over = false;
        // The incoming side ended without a malformed message.
        let mut malformed_over = false;
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
                    // The protocol's side ended: after a malformed message, say so.
                    None => break malformed_rx.try_recv().ok().map(|why| (4400, why)),
                },
                _ = until_expiry => break Some((4401, "Unauthorized: the token expired".to_owned())),
                _ = drain.started() => break Some((RESTART.0, RESTART.1.to_owned())),
                why = &mut malformed_rx, if !malformed_over => match why {
                    Ok(why) => break Some((4400, why)),
                    Err(_) => malformed_over = true,
                },
                _ = keepalive_tick.tick() => {
                    // A revocation this instance learnt without an event (reloaded from
                    // Postgres after a Redis outage) closes the socket by the next tick.
                    if state.tokens.not_revoked(&authenticated).is_err() {
                        break Some((4403, "Forbidden: the token was revoked".to_owned()));
                    }
                    let heard = *last_heard.lock().unwrap();
                    // The last ping had a whole interval to be answered.
                    if ping_sent.take().is_some_and(|sent| heard < sent) {
                        break Some((3008, "Timeout: no answer to the keep-alive ping".to_owned()));
                    }
                    if heard.elapsed() >= keepalive / 2 {
                        if sink.send(Message::Ping(Vec::new())).await.is_err() {
                            break None;
                        }
                        ping_sent = Some(Instant::now());
                    }
                }
                changed = expiry_rx.changed(), if !renewals_over => if changed.is_err() { renewals_over = true },
                event = events.recv() => match event {
                    // Whatever revokes the token that opened the socket closes it.
                    Ok(event) if revocations::ends(&event, &authenticated) => {
                        break Some((4403, "Forbidden: the token was revoked".to_owned()));
                    }
                    Ok(_) => {}
                    // Revocations may be among the missed events: check the token itself.
                    Err(RecvError::Lagged(_)) => {
                        if state.tokens.not_revoked(&authenticated).is_err() {
                            break Some((4403, "Forbidden: the token was revoked".to_owned()));
                        }
                    }
                    Err(RecvError::Closed) => break None,
                },
            }
        };
        if let Some((code, reason)) = verdict {
            let _ = sink.send(close(code, &reason)).await;
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

/// A close frame; its reason cut to the 123 bytes a close frame can carry.
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some((CloseCode::from(code), reason[..end].to_owned())))
}

/// Why a first message does not open the socket.
enum First {
    /// Not a message of the protocol (4400).
    Malformed(String),
    /// A message of the protocol, but not `connection_init` (4401).
    NotInit,
}

/// A text or binary frame's message of the protocol.
fn parse(msg: &Message) -> Option<Result<ClientMessage, String>> {
    let bytes = match msg {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b.as_slice(),
        _ => return None,
    };
    Some(serde_json::from_slice::<ClientMessage>(bytes).map_err(|e| format!("Invalid message received: {e}")))
}

/// Whether a frame after the first may go on to async-graphql: a control frame, or a
/// well-formed message of the protocol.
fn check_message(msg: &Message) -> Result<(), String> {
    match parse(msg) {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(why)) => Err(why),
    }
}

/// The payload of a `connection_init` message (an object, or nothing).
fn init_payload(msg: &Message) -> Result<serde_json::Map<String, serde_json::Value>, First> {
    match parse(msg) {
        None => Err(First::NotInit),
        Some(Err(why)) => Err(First::Malformed(why)),
        Some(Ok(ClientMessage::ConnectionInit { payload })) => match payload {
            None | Some(serde_json::Value::Null) => Ok(Default::default()),
            Some(serde_json::Value::Object(map)) => Ok(map),
            Some(_) => Err(First::Malformed("Invalid message received: the payload is not an object".into())),
        },
        Some(Ok(_)) => Err(First::NotInit),
    }
}

/// One open socket in `plinth_websockets_open`, for as long as it lives.
struct OpenSocket(prometheus::IntGauge);

impl OpenSocket {
    fn count(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        OpenSocket(gauge.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}
