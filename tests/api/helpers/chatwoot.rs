//! A local HTTP server speaking Chatwoot's Application API wire format for the calls the
//! bridge makes (`/api/v1/accounts/{account}/contacts`, `contacts/search`,
//! `conversations`, `conversations/{id}/messages`, `conversations/{id}/toggle_status`,
//! JSON bodies, the `api_access_token` header), answering like Chatwoot (its response
//! shapes, 401 for another token, 422 for an identifier already taken) and recording every
//! request. Like Chatwoot, it posts a signed `message_created` webhook for every message
//! created, the bridge's own included (their echo), once a test points it at an app; and
//! a test can write an agent's reply or private note as Chatwoot would deliver it.
use super::TestApp;
use poem::{
    handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Json},
    Body, EndpointExt, IntoResponse, Request, Response, Route, Server,
};
use serde_json::{json, Value};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST /api/v1/accounts/1/conversations`.
    pub route: String,
    /// The `api_access_token` header.
    pub token: Option<String>,
    /// The JSON body (null for none).
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    contacts: Mutex<Vec<Value>>,
    conversations: Mutex<Vec<Value>>,
    messages: Mutex<Vec<Value>>,
    next_id: Mutex<i64>,
    /// Where message webhooks go, once a test says so.
    webhook: Mutex<Option<String>>,
    failures: Mutex<HashMap<String, VecDeque<u16>>>,
    /// How the app answered each webhook the stand-in sent: (message id, status, body).
    webhook_answers: Mutex<Vec<(i64, u16, String)>>,
}

impl State {
    fn id(&self) -> i64 {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        *n
    }
}

/// The running stand-in.
pub struct FakeChatwoot {
    /// Its base URL (`PLINTH_CHATWOOT_URL`).
    pub url: String,
    state: Arc<State>,
    client: reqwest::Client,
}

impl FakeChatwoot {
    /// The account apps built `with_chatwoot` use.
    pub const ACCOUNT_ID: i64 = 1;
    /// Their API inbox.
    pub const INBOX_ID: i64 = 3;
    /// Their access token.
    pub const TOKEN: &'static str = "cw-access-token";
    /// The webhook's secret.
    pub const WEBHOOK_SECRET: &'static str = "cw-webhook-secret";

    /// Starts on a random loopback port.
    pub async fn start() -> FakeChatwoot {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        Self::serve(acceptor, addr).await
    }

    async fn serve(acceptor: impl Acceptor + 'static, addr: std::net::SocketAddr) -> FakeChatwoot {
        let state = Arc::new(State::default());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let app =
            Route::new().at("/api/v1/accounts/:account/*rest", chatwoot_api).data((state.clone(), client.clone()));
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        FakeChatwoot { url: format!("http://{addr}"), state, client }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The routes of every request so far, in order (`POST conversations` ...), relative
    /// to the account.
    pub fn routes(&self) -> Vec<String> {
        let prefix = format!("/api/v1/accounts/{}/", Self::ACCOUNT_ID);
        self.requests().iter().map(|r| r.route.replacen(&prefix, "", 1)).collect()
    }

    /// The conversations it holds.
    pub fn conversations(&self) -> Vec<Value> {
        self.state.conversations.lock().unwrap().clone()
    }

    /// The messages it holds, in order (the bridge's and the agents').
    pub fn messages(&self) -> Vec<Value> {
        self.state.messages.lock().unwrap().clone()
    }

    /// How the app answered each webhook the stand-in sent on its own (the echoes of the
    /// bridge's messages): (Chatwoot message id, status, body), in the order they came.
    pub fn webhook_answers(&self) -> Vec<(i64, u16, String)> {
        self.state.webhook_answers.lock().unwrap().clone()
    }

    /// Posts a `message_created` webhook to `app` for every message created from now on,
    /// signed with the webhook's secret, as Chatwoot does.
    pub fn send_webhooks_to(&self, app: &TestApp) {
        *self.state.webhook.lock().unwrap() = Some(app.url("/webhooks/chatwoot"));
    }

    /// Answers the next requests to `route` (`POST conversations/7/messages`, relative to
    /// the account) with `statuses`, one each.
    pub fn fail_next(&self, route: &str, statuses: &[u16]) {
        let route = format!("POST /api/v1/accounts/{}/{}", Self::ACCOUNT_ID, route.trim_start_matches("POST "));
        self.state.failures.lock().unwrap().entry(route).or_default().extend(statuses);
    }

    /// An agent's message in `conversation` (`private`: a note), stored as Chatwoot stores
    /// it; returns the `message_created` payload Chatwoot's webhook carries.
    pub fn agent_writes(&self, conversation: i64, content: &str, private: bool) -> Value {
        let message = json!({
            "id": self.state.id(), "content": content, "message_type": "outgoing", "private": private,
            "content_type": "text", "content_attributes": {}, "source_id": null, "conversation_id": conversation,
            "sender": { "id": 9, "name": "Ada Agent", "available_name": "Ada Agent", "email": "ada@chatwoot.test",
                        "type": "user" },
        });
        self.state.messages.lock().unwrap().push(message.clone());
        webhook_payload(&self.state, &message)
    }

    /// POSTs `payload` to `app`'s Chatwoot webhook signed with `secret` at `t`; the status
    /// and body of the answer.
    pub async fn deliver_signed(&self, app: &TestApp, payload: &Value, secret: &str, t: i64) -> (u16, String) {
        post_webhook(&self.client, &app.url("/webhooks/chatwoot"), payload, Some((secret, t))).await
    }

    /// POSTs `payload` to `app`'s Chatwoot webhook as Chatwoot would, signed now.
    pub async fn deliver(&self, app: &TestApp, payload: &Value) -> (u16, String) {
        self.deliver_signed(app, payload, Self::WEBHOOK_SECRET, chrono::Utc::now().timestamp()).await
    }

    /// POSTs `payload` unsigned.
    pub async fn deliver_unsigned(&self, app: &TestApp, payload: &Value) -> (u16, String) {
        post_webhook(&self.client, &app.url("/webhooks/chatwoot"), payload, None).await
    }
}

async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    payload: &Value,
    signed: Option<(&str, i64)>,
) -> (u16, String) {
    let raw = serde_json::to_vec(payload).unwrap();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-chatwoot-delivery", uuid::Uuid::new_v4().to_string());
    if let Some((secret, t)) = signed {
        req = req
            .header("x-chatwoot-timestamp", t.to_string())
            .header("x-chatwoot-signature", api::support::chatwoot::webhook::sign(&raw, secret, t));
    }
    let resp = req.body(raw).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A stored message as `Message#webhook_data` renders it, with `event: message_created`.
fn webhook_payload(state: &State, m: &Value) -> Value {
    let conversation = state
        .conversations
        .lock()
        .unwrap()
        .iter()
        .find(|c| c["id"] == m["conversation_id"])
        .cloned()
        .unwrap_or_else(|| json!({ "id": m["conversation_id"] }));
    json!({
        "event": "message_created",
        "id": m["id"], "content": m["content"], "created_at": chrono::Utc::now().to_rfc3339(),
        "message_type": m["message_type"], "content_type": "text", "content_attributes": m["content_attributes"],
        "additional_attributes": {}, "source_id": m["source_id"], "private": m["private"], "sender": m["sender"],
        "conversation": {
            "id": conversation["id"], "inbox_id": FakeChatwoot::INBOX_ID, "status": conversation["status"],
            "channel": "Channel::Api", "can_reply": true,
            "contact_inbox": { "source_id": conversation["contact_inbox"]["source_id"] },
            "additional_attributes": conversation["additional_attributes"],
            "custom_attributes": conversation["custom_attributes"],
        },
        "account": { "id": FakeChatwoot::ACCOUNT_ID, "name": "Plinth" },
        "inbox": { "id": FakeChatwoot::INBOX_ID, "name": "Plinth support" },
    })
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

#[handler]
async fn chatwoot_api(
    req: &Request,
    body: Body,
    Data((state, client)): Data<&(Arc<State>, reqwest::Client)>,
) -> Response {
    let bytes = body.into_vec().await.unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let route = format!("{} {}", req.method(), req.uri().path());
    let token = req.header("api_access_token").map(str::to_owned);
    state.requests.lock().unwrap().push(Recorded {
        route: route.clone(),
        token: token.clone(),
        body: json_body.clone(),
    });
    if token.as_deref() != Some(FakeChatwoot::TOKEN) {
        return error(StatusCode::UNAUTHORIZED, json!({ "error": "Invalid Access Token" }));
    }
    if let Some(status) = state.failures.lock().unwrap().get_mut(&route).and_then(VecDeque::pop_front) {
        return error(StatusCode::from_u16(status).unwrap(), json!({ "error": "Something went wrong" }));
    }
    let path: Vec<&str> = req.uri().path().split('/').filter(|s| !s.is_empty()).collect();
    if path.get(3) != Some(&FakeChatwoot::ACCOUNT_ID.to_string().as_str()) {
        return error(StatusCode::NOT_FOUND, json!({ "error": "Resource could not be found" }));
    }
    let b = &json_body;
    match (req.method().as_str(), &path[4..]) {
        ("POST", ["contacts"]) => {
            let mut contacts = state.contacts.lock().unwrap();
            if contacts.iter().any(|c| c["identifier"] == b["identifier"]) {
                let body = json!({ "message": "Identifier has already been taken", "attributes": ["identifier"] });
                return error(StatusCode::UNPROCESSABLE_ENTITY, body);
            }
            let inbox = json!({ "id": b["inbox_id"], "name": "Plinth support", "channel_type": "Channel::Api" });
            let contact = json!({
                "id": state.id(), "name": b["name"], "email": b["email"], "identifier": b["identifier"],
                "additional_attributes": {}, "custom_attributes": {},
                "contact_inboxes": [{ "source_id": b["source_id"], "inbox": inbox }],
            });
            contacts.push(contact.clone());
            let body = json!({ "payload": { "contact": contact,
                                            "contact_inbox": { "inbox": inbox, "source_id": b["source_id"] } } });
            Json(body).into_response()
        }
        ("GET", ["contacts", "search"]) => {
            let q = req.uri().query().unwrap_or_default();
            let q: String = url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let found: Vec<Value> = state
                .contacts
                .lock()
                .unwrap()
                .iter()
                .filter(|c| {
                    [&c["identifier"], &c["email"], &c["name"]]
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| s.contains(&q)))
                })
                .cloned()
                .collect();
            Json(json!({ "meta": { "count": found.len(), "current_page": 1 }, "payload": found })).into_response()
        }
        ("POST", ["conversations"]) => {
            let known = state.contacts.lock().unwrap().iter().any(|c| c["id"] == b["contact_id"]);
            if !known || b["source_id"].as_str().is_none() {
                return error(StatusCode::NOT_FOUND, json!({ "error": "Resource could not be found" }));
            }
            let id = state.id();
            let conversation = json!({
                "id": id, "account_id": FakeChatwoot::ACCOUNT_ID, "inbox_id": b["inbox_id"], "status": b["status"],
                "uuid": uuid::Uuid::new_v4().to_string(), "contact_inbox": { "source_id": b["source_id"] },
                "additional_attributes": b["additional_attributes"], "custom_attributes": b["custom_attributes"],
                "meta": { "sender": { "id": b["contact_id"], "type": "contact" }, "assignee": null },
                "messages": [], "unread_count": 0, "timestamp": chrono::Utc::now().timestamp(),
            });
            state.conversations.lock().unwrap().push(conversation.clone());
            Json(conversation).into_response()
        }
        ("POST", ["conversations", id, "messages"]) => {
            let Some(conversation) =
                state.conversations.lock().unwrap().iter().find(|c| c["id"].as_i64() == id.parse().ok()).cloned()
            else {
                return error(StatusCode::NOT_FOUND, json!({ "error": "Resource could not be found" }));
            };
            let incoming = b["message_type"] == "incoming";
            let sender = if incoming {
                conversation["meta"]["sender"].clone()
            } else {
                json!({ "id": 1, "name": "Plinth bridge", "available_name": "Plinth bridge", "type": "user" })
            };
            let message = json!({
                "id": state.id(), "content": b["content"], "message_type": if incoming { "incoming" } else { "outgoing" },
                "private": b["private"].as_bool().unwrap_or(false), "content_type": b["content_type"],
                "content_attributes": b["content_attributes"], "source_id": b["source_id"],
                "conversation_id": conversation["id"], "sender": sender,
            });
            state.messages.lock().unwrap().push(message.clone());
            // The REST answer carries the type as its number, as Chatwoot's message partial does.
            let mut answer = message.clone();
            answer["message_type"] = json!(if incoming { 0 } else { 1 });
            answer["created_at"] = json!(chrono::Utc::now().timestamp());
            let hook = state.webhook.lock().unwrap().clone();
            if let Some(url) = hook {
                // Chatwoot's webhook job runs after the answer.
                let (payload, client, state) = (webhook_payload(state, &message), client.clone(), state.clone());
                tokio::spawn(async move {
                    let now = chrono::Utc::now().timestamp();
                    let (status, body) =
                        post_webhook(&client, &url, &payload, Some((FakeChatwoot::WEBHOOK_SECRET, now))).await;
                    let id = payload["id"].as_i64().unwrap_or_default();
                    state.webhook_answers.lock().unwrap().push((id, status, body));
                });
            }
            Json(answer).into_response()
        }
        ("POST", ["conversations", id, "toggle_status"]) => {
            let mut conversations = state.conversations.lock().unwrap();
            let Some(c) = conversations.iter_mut().find(|c| c["id"].as_i64() == id.parse().ok()) else {
                return error(StatusCode::NOT_FOUND, json!({ "error": "Resource could not be found" }));
            };
            c["status"] = b["status"].clone();
            let body = json!({ "meta": {}, "payload": { "success": true, "current_status": b["status"],
                                                         "conversation_id": c["id"] } });
            Json(body).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, json!({ "error": format!("no route {route}") })),
    }
}

impl super::TestAppBuilder {
    /// The Chatwoot bridge against the stand-in.
    pub fn with_chatwoot(self, chatwoot: &FakeChatwoot) -> Self {
        self.with_chatwoot_at(&chatwoot.url)
    }

    /// The Chatwoot bridge against whatever listens at `url` (a black hole, a proxy).
    pub fn with_chatwoot_at(self, url: &str) -> Self {
        self.with_env("PLINTH_CHATWOOT_URL", url)
            .with_env("PLINTH_CHATWOOT_API_TOKEN", FakeChatwoot::TOKEN)
            .with_env("PLINTH_CHATWOOT_ACCOUNT_ID", &FakeChatwoot::ACCOUNT_ID.to_string())
            .with_env("PLINTH_CHATWOOT_INBOX_ID", &FakeChatwoot::INBOX_ID.to_string())
            .with_env("PLINTH_CHATWOOT_WEBHOOK_SECRET", FakeChatwoot::WEBHOOK_SECRET)
            .with_env("PLINTH_CHATWOOT_BACKOFF_MS", "100")
            .with_env("PLINTH_CHATWOOT_MAX_BACKOFF_MS", "1000")
            .with_env("PLINTH_CHATWOOT_POLL_MS", "200")
    }
}
