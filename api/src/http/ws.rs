//! GET /graphql/ws: GraphQL over WebSocket (graphql-transport-ws). Browsers cannot set
//! headers on a WebSocket, so the token rides in `connection_init`; it is checked here,
//! before async-graphql sees the socket, so the close codes are the protocol's:
//! 4408 when no init arrives in time, 4401 when something else comes first, 4403 for a
//! bad token.
use super::HttpState;
use crate::auth::principal_from_authorization;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
use futures_util::{SinkExt, StreamExt};
use poem::{
    handler,
    web::{
        websocket::{CloseCode, Message, WebSocket},
        Data,
    },
    IntoResponse,
};
use std::{sync::Arc, time::Duration};

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upgrades to a GraphQL WebSocket for the caller named in `connection_init`.
#[handler]
pub async fn graphql_ws(
    Data(state): Data<&Arc<HttpState>>,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
) -> impl IntoResponse {
    let state = state.clone();
    websocket.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
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
        let authorization = payload.get("authorization").or_else(|| payload.get("Authorization"));
        let principal = match principal_from_authorization(&state.tokens, authorization.and_then(|v| v.as_str())) {
            Ok(p) => p,
            Err(_) => {
                let _ = sink.send(close(4403, "Forbidden")).await;
                return;
            }
        };
        let mut data = async_graphql::Data::default();
        data.insert(principal);
        let replay = futures_util::stream::once(async move { Ok(first) }).chain(stream);
        GraphQLWebSocket::new_with_pair(sink, replay, state.schema.clone(), protocol)
            .on_connection_init(move |_| async move { Ok(data) })
            .serve()
            .await;
    })
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
