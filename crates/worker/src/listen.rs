//! The `jobQueued` listener: one WebSocket to `/graphql/ws` (graphql-transport-ws), the
//! worker token in `connection_init`, one subscription for the worker's kinds. Each
//! item wakes the worker's loop to claim; a socket that closes or stops answering is
//! opened again with backoff, the poll covering the gap.
use crate::WorkerSettings;
use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

/// First pause before opening the socket again; doubled after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A protocol `ping` is sent after this much silence from the server...
const PING_AFTER: Duration = Duration::from_secs(20);
/// ...and the socket is given up when nothing comes back this much later.
const PONG_WITHIN: Duration = Duration::from_secs(10);
/// Longest wait for the TCP connection, the handshake, and `connection_ack`.
const OPEN_WITHIN: Duration = Duration::from_secs(10);

/// Keeps a `jobQueued` subscription open for ever (the caller aborts the task),
/// notifying `wake` at each item; `listening` is true while the server confirmed it.
pub(crate) async fn listen(settings: WorkerSettings, wake: Arc<Notify>, listening: watch::Sender<bool>) {
    let url = match ws_url(&settings.api_url) {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "no jobQueued subscription; polling only");
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = session(&url, &settings, &wake, &listening).await;
        listening.send_replace(false);
        if let Err(e) = outcome {
            tracing::warn!(
                error = format!("{e:#}"),
                retry_in_ms = backoff.as_millis() as u64,
                "jobQueued socket down; polling meanwhile"
            );
        }
        // A socket that lived a while had worked: start the backoff over.
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `http://host/graphql` → `ws://host/graphql/ws` (https → wss).
fn ws_url(api_url: &str) -> anyhow::Result<String> {
    let rest = if let Some(rest) = api_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = api_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        bail!("the API URL {api_url:?} is neither http:// nor https://");
    };
    Ok(format!("{}/ws", rest.trim_end_matches('/')))
}

/// One socket's life: open, authenticate, subscribe, then wake the worker at each
/// item until the socket ends. Returns Ok when the server completed the subscription.
async fn session(
    url: &str,
    settings: &WorkerSettings,
    wake: &Notify,
    listening: &watch::Sender<bool>,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let init = json!({
        "type": "connection_init",
        "payload": { "authorization": format!("Bearer {}", settings.token.expose_secret()) },
    });
    let open = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("opening the socket")?;
        ws.send(Message::Text(init.to_string().into())).await?;
        loop {
            let msg = ws.next().await.context("the server closed the socket before its ack")??;
            match msg {
                Message::Text(text) => {
                    let v: Value = serde_json::from_str(&text)?;
                    match v["type"].as_str() {
                        Some("connection_ack") => return anyhow::Ok(ws),
                        Some("ping") => ws.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await?,
                        _ => bail!("unexpected before connection_ack: {}", v["type"]),
                    }
                }
                Message::Close(frame) => bail!("the server closed the socket: {frame:?}"),
                _ => {}
            }
        }
    };
    let mut ws = tokio::time::timeout(OPEN_WITHIN, open).await.context("the server did not ack in time")??;
    let subscribe = json!({
        "id": "job-queued",
        "type": "subscribe",
        "payload": {
            "query": "subscription JobQueued($kinds: [JobKind!]!) { jobQueued(kinds: $kinds) { jobId kind } }",
            "variables": { "kinds": settings.kinds },
        },
    });
    ws.send(Message::Text(subscribe.to_string().into())).await?;
    let mut pinged = false;
    loop {
        let wait = if pinged { PONG_WITHIN } else { PING_AFTER };
        let msg = match tokio::time::timeout(wait, ws.next()).await {
            Err(_) if pinged => bail!("the server stopped answering"),
            Err(_) => {
                ws.send(Message::Text(json!({ "type": "ping" }).to_string().into())).await?;
                pinged = true;
                continue;
            }
            Ok(None) => bail!("the socket ended"),
            Ok(Some(msg)) => msg?,
        };
        pinged = false;
        let text = match msg {
            Message::Text(text) => text,
            Message::Close(frame) => bail!("the server closed the socket: {frame:?}"),
            _ => continue,
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("next") => {
                if let Some(errors) = v["payload"]["errors"].as_array().filter(|e| !e.is_empty()) {
                    bail!("jobQueued answered {}: {}", errors[0]["extensions"]["code"], errors[0]["message"]);
                }
                let item = &v["payload"]["data"]["jobQueued"];
                if item["jobId"].is_null() {
                    // The first item: the server listens now; claim what was queued before.
                    listening.send_replace(true);
                }
                tracing::debug!(job_id = %item["jobId"], "jobQueued");
                wake.notify_one();
            }
            Some("error") => bail!("jobQueued refused: {}", v["payload"]),
            Some("complete") => return Ok(()),
            Some("ping") => ws.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await?,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn the_socket_is_beside_the_endpoint() {
        assert_eq!(ws_url("http://127.0.0.1:8080/graphql").unwrap(), "ws://127.0.0.1:8080/graphql/ws");
        assert_eq!(ws_url("https://api.example.com/graphql/").unwrap(), "wss://api.example.com/graphql/ws");
        assert!(ws_url("ftp://x/graphql").is_err());
    }
}
