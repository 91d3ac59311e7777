//! A local HTTP server speaking SendGrid's v3 mail send wire format: `POST
//! /v3/mail/send` with a bearer key and a JSON body, answered `202` with an
//! `X-Message-Id` header (no body); `401` for another key; `400` with SendGrid's error
//! body for a malformed one. A test can queue answers for the next requests (429 with
//! `Retry-After`, 500, 400) and read every request it received, accepted or not.
use poem::{
    handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
    Body, EndpointExt, Request, Response, Route, Server,
};
use serde_json::{json, Value};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The JSON body.
    pub body: Value,
    /// The Authorization header.
    pub authorization: Option<String>,
    /// The status it was answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The recipient of the first personalization.
    pub fn to(&self) -> &str {
        self.body["personalizations"][0]["to"][0]["email"].as_str().unwrap_or_default()
    }

    /// The outbox id carried as a custom arg.
    pub fn outbox_id(&self) -> &str {
        self.body["custom_args"]["outbox_id"].as_str().unwrap_or_default()
    }

    /// The content of `kind` (`text/plain`, `text/html`).
    pub fn content(&self, kind: &str) -> String {
        self.body["content"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["type"] == kind))
            .and_then(|p| p["value"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    /// Answers for the next requests: status and Retry-After seconds.
    scripted: Mutex<VecDeque<(u16, Option<u64>)>>,
    /// A delay before answering each request (a slow provider).
    delay: Mutex<Option<Duration>>,
}

/// The running stand-in.
pub struct FakeSendGrid {
    /// Its base URL (`PLINTH_SENDGRID_API_BASE`).
    pub url: String,
    state: Arc<State>,
}

impl FakeSendGrid {
    /// The API key it accepts.
    pub const API_KEY: &'static str = "SG.test-key";

    /// Starts on a random port.
    pub async fn start() -> FakeSendGrid {
        let state = Arc::new(State::default());
        let app = Route::new()
            .at("/v3/mail/send", poem::post(mail_send))
            .at("/v3/scopes", poem::get(scopes))
            .data(state.clone());
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        FakeSendGrid { url: format!("http://{addr}"), state }
    }

    /// Answers the next request with `status` (and `Retry-After: secs`) instead of 202.
    pub fn fail_next(&self, status: u16, retry_after: Option<u64>) {
        self.state.scripted.lock().unwrap().push_back((status, retry_after));
    }

    /// Waits `delay` before answering each request.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = Some(delay);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The accepted (202) requests so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.status == 202).collect()
    }

    /// Waits up to 15 s until `n` requests were accepted; panics otherwise.
    pub async fn wait_accepted(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {} of {n} mails reached the SendGrid stand-in", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first accepted mail of `template` to `to`, waiting up to 15 s for it.
    pub async fn mail_of(&self, to: &str, template: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(r) = self.accepted().into_iter().find(|r| r.to() == to && r.body["categories"][0] == template) {
                return r;
            }
            assert!(Instant::now() < deadline, "no {template} mail to {to} reached the SendGrid stand-in");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `GET /v3/scopes`: the key's scopes, or 401 for another key (what `plinth doctor` asks).
#[handler]
async fn scopes(req: &Request) -> Response {
    if req.header("authorization") != Some(&format!("Bearer {}", FakeSendGrid::API_KEY)) {
        return Response::builder().status(poem::http::StatusCode::UNAUTHORIZED).body("{\"errors\":[]}");
    }
    Response::builder().content_type("application/json").body(json!({ "scopes": ["mail.send"] }).to_string())
}

#[handler]
async fn mail_send(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let authorization = req.header("authorization").map(str::to_owned);
    let body: Value = serde_json::from_slice(&body.into_vec().await.unwrap_or_default()).unwrap_or(Value::Null);
    let scripted = state.scripted.lock().unwrap().pop_front();
    let (status, retry_after) = if authorization.as_deref() != Some(&format!("Bearer {}", FakeSendGrid::API_KEY)) {
        (401, None)
    } else if let Some(s) = scripted {
        s
    } else if body["personalizations"][0]["to"][0]["email"].as_str().is_none()
        || body["from"]["email"].as_str().is_none()
        || body["subject"].as_str().is_none()
        || body["content"].as_array().is_none_or(|c| c.is_empty())
    {
        (400, None)
    } else {
        (202, None)
    };
    // Recorded on arrival, before a slow answer: the sender may die waiting for it.
    state.received.lock().unwrap().push(Received { body, authorization, status, at: Instant::now() });
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if status == 202 {
        return resp.header("X-Message-Id", format!("sg-{}", uuid::Uuid::new_v4().simple())).finish();
    }
    if let Some(secs) = retry_after {
        resp = resp.header("Retry-After", secs.to_string());
    }
    let message = match status {
        400 => "The to array is required for all personalization objects.",
        401 => "The provided authorization grant is invalid, expired, or revoked",
        429 => "Too many requests",
        _ => "Internal server error",
    };
    resp.content_type("application/json").body(json!({ "errors": [{ "message": message, "field": null }] }).to_string())
}
