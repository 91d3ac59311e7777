//! GraphQL over WebSocket (graphql-transport-ws), as a mobile app speaks it.
use super::TestApp;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

/// A raw socket, for tests that speak the protocol message by message.
pub type RawSocket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` with the graphql-transport-ws subprotocol, which the server must
/// accept; nothing is sent yet.
pub async fn connect_ws(app: &TestApp) -> RawSocket {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    ws
}

/// A GraphQL WebSocket client past its `connection_ack`.
pub struct WsClient {
    ws: RawSocket,
}

/// What came next on a socket.
#[derive(Debug)]
pub enum WsEvent {
    /// A `next` payload (the subscription's data or errors).
    Next(Value),
    /// A protocol message other than `next` (`complete`, `pong`, `error`).
    Other(Value),
    /// The server closed the socket with this code.
    Closed(u16),
    /// Nothing within the wait.
    Timeout,
}

impl WsClient {
    /// Connects and sends `connection_init` with `token`; waits for the ack.
    pub async fn connect(app: &TestApp, token: Option<&str>) -> WsClient {
        let mut ws = connect_ws(app).await;
        let payload = token.map(|t| json!({ "authorization": format!("Bearer {t}") })).unwrap_or(json!({}));
        ws.send(Message::Text(json!({ "type": "connection_init", "payload": payload }).to_string().into()))
            .await
            .unwrap();
        let ack = ws.next().await.unwrap().unwrap();
        let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
        assert_eq!(ack["type"], "connection_ack");
        WsClient { ws }
    }

    /// Sends a message of the protocol.
    pub async fn send(&mut self, msg: Value) {
        self.ws.send(Message::Text(msg.to_string().into())).await.unwrap();
    }

    /// Starts subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next event within `wait`; pings are answered on the way.
    pub async fn next(&mut self, wait: std::time::Duration) -> WsEvent {
        loop {
            let msg = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return WsEvent::Closed(0),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    return match v["type"].as_str() {
                        Some("next") => WsEvent::Next(v["payload"].clone()),
                        Some("ping") => {
                            self.send(json!({ "type": "pong" })).await;
                            continue;
                        }
                        _ => WsEvent::Other(v),
                    };
                }
                Message::Close(frame) => return WsEvent::Closed(frame.map(|f| f.code.into()).unwrap_or(0)),
                _ => continue,
            }
        }
    }
}
