//! A local HTTP server speaking Stripe's wire format for the calls Plinth makes
//! (form-encoded requests, JSON answers), recording every request; and helpers that
//! build Stripe events and deliver them to an app's webhook, signed with Stripe's real
//! scheme.
use super::{TestApp, TestUser};
use api::billing::signature::sign;
use poem::{
    handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Path},
    Body, EndpointExt, IntoResponse, Request, Response, Route, Server,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method and path, e.g. `POST /v1/customers`.
    pub route: String,
    /// The form body, decoded into pairs (keys like `line_items[0][price]`).
    pub form: Vec<(String, String)>,
    /// The Idempotency-Key header.
    pub idempotency_key: Option<String>,
    /// The bearer secret.
    pub authorization: Option<String>,
}

impl Recorded {
    /// The value of form key `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    subscriptions: Mutex<Vec<Value>>,
    customers: Mutex<u32>,
}

/// The fake Stripe API.
pub struct FakeStripe {
    /// Its base URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    state: Arc<State>,
}

impl FakeStripe {
    /// The API key apps built `with_stripe` call the fake with.
    pub const SECRET_KEY: &'static str = "sk_test_plinth";
    /// The webhook signing secret apps built `with_stripe` verify with.
    pub const WEBHOOK_SECRET: &'static str = "whsec_test_current";
    /// The secret being rotated out, which those apps still accept.
    pub const PREVIOUS_WEBHOOK_SECRET: &'static str = "whsec_test_previous";

    /// Starts the fake on a random loopback port.
    pub async fn start() -> FakeStripe {
        let state = Arc::new(State::default());
        let app = Route::new()
            .at("/v1/customers", poem::post(create_customer))
            .at("/v1/checkout/sessions", poem::post(create_session))
            .at("/v1/billing_portal/sessions", poem::post(create_portal))
            .at("/v1/subscriptions", poem::get(list_subscriptions))
            .at("/v1/*rest", poem::get(not_found).post(not_found))
            .data(state.clone());
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        FakeStripe { url: format!("http://{addr}/"), state }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests to `route` (e.g. `POST /v1/checkout/sessions`).
    pub fn requests_to(&self, route: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.route == route).collect()
    }

    /// What `GET /v1/subscriptions` lists.
    pub fn set_subscriptions(&self, subs: Vec<Value>) {
        *self.state.subscriptions.lock().unwrap() = subs;
    }
}

async fn record(req: &Request, body: Body, state: &State) -> Recorded {
    let bytes = body.into_vec().await.unwrap_or_default();
    let mut form: Vec<(String, String)> = url::form_urlencoded::parse(&bytes).into_owned().collect();
    if let Some(q) = req.uri().query() {
        form.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let rec = Recorded {
        route: format!("{} {}", req.method(), req.uri().path()),
        form,
        idempotency_key: req.header("idempotency-key").map(str::to_owned),
        authorization: req.header("authorization").map(str::to_owned),
    };
    state.requests.lock().unwrap().push(rec.clone());
    rec
}

#[handler]
async fn create_customer(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let rec = record(req, body, state).await;
    // The same idempotency key answers the same customer, as Stripe does.
    let id = match rec.idempotency_key.as_deref() {
        Some(key) => format!("cus_{}", key.trim_start_matches("customer-").replace('-', "")),
        None => {
            let mut n = state.customers.lock().unwrap();
            *n += 1;
            format!("cus_anon{n}")
        }
    };
    poem::web::Json(json!({ "id": id, "object": "customer", "email": rec.get("email"), "livemode": false }))
        .into_response()
}

#[handler]
async fn create_session(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let rec = record(req, body, state).await;
    let id = format!("cs_test_{}", state.requests.lock().unwrap().len());
    poem::web::Json(json!({
        "id": id, "object": "checkout.session", "mode": "subscription", "customer": rec.get("customer"),
        "url": format!("https://checkout.stripe.test/c/pay/{id}"), "livemode": false,
    }))
    .into_response()
}

#[handler]
async fn create_portal(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let rec = record(req, body, state).await;
    poem::web::Json(json!({
        "id": "bps_test_1", "object": "billing_portal.session", "customer": rec.get("customer"),
        "return_url": rec.get("return_url"), "url": "https://billing.stripe.test/p/session/test_1",
    }))
    .into_response()
}

#[handler]
async fn list_subscriptions(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let rec = record(req, body, state).await;
    let subs = state.subscriptions.lock().unwrap().clone();
    let start = match rec.get("starting_after") {
        Some(after) => subs.iter().position(|s| s["id"] == after).map_or(subs.len(), |i| i + 1),
        None => 0,
    };
    let limit: usize = rec.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let page: Vec<Value> = subs.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < subs.len();
    poem::web::Json(json!({ "object": "list", "url": "/v1/subscriptions", "has_more": has_more, "data": page }))
        .into_response()
}

#[handler]
async fn not_found(Path(rest): Path<String>) -> Response {
    (
        StatusCode::NOT_FOUND,
        poem::web::Json(
            json!({ "error": { "type": "invalid_request_error", "message": format!("no route /v1/{rest}") } }),
        ),
    )
        .into_response()
}

/// A subscription object as Stripe sends it (the fields Plinth reads, and a few more).
pub fn subscription(id: &str, customer: &str, status: &str, price: &str, now: i64) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "created": now, "livemode": false,
        "current_period_start": now, "current_period_end": now + 30 * 86_400,
        "trial_end": if status == "trialing" { json!(now + 14 * 86_400) } else { Value::Null },
        "items": { "object": "list", "data": [{ "id": format!("si_{id}"), "object": "subscription_item",
            "price": { "id": price, "object": "price", "currency": "eur", "unit_amount": 4900 } }] },
    })
}

/// An invoice object.
pub fn invoice(id: &str, customer: &str, status: &str, paid: i64, now: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": customer, "number": format!("PL-{id}"), "status": status,
        "currency": "eur", "subtotal": 4900, "total": 5880, "amount_paid": paid, "amount_due": 5880 - paid,
        "total_taxes": [{ "amount": 980, "taxability_reason": "standard_rated" }],
        "hosted_invoice_url": format!("https://invoice.stripe.test/{id}"),
        "invoice_pdf": format!("https://invoice.stripe.test/{id}/pdf"),
        "period_start": now, "period_end": now + 30 * 86_400, "created": now,
    })
}

/// An event wrapping `object`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "created": created, "livemode": false,
            "api_version": "2024-06-20", "data": { "object": object } })
}

impl TestApp {
    /// Delivers `event` to the Stripe webhook as Stripe would, signed now with the
    /// current secret; returns the status and body of the answer.
    pub async fn deliver_webhook(&self, event: &Value) -> (u16, String) {
        self.deliver_webhook_signed(event, FakeStripe::WEBHOOK_SECRET, chrono::Utc::now().timestamp()).await
    }

    /// Delivers `event` signed with `secret` at time `t` (seconds since the epoch).
    pub async fn deliver_webhook_signed(&self, event: &Value, secret: &str, t: i64) -> (u16, String) {
        let raw = serde_json::to_vec(event).unwrap();
        let resp = self
            .http()
            .post(self.url("/webhooks/stripe"))
            .header("stripe-signature", sign(&raw, secret, t))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The Stripe customer id recorded for `user` (after a checkout created it).
    pub async fn stripe_customer(&self, user: &TestUser) -> String {
        sqlx::query_scalar("SELECT stripe_customer_id FROM billing_accounts WHERE user_id = $1")
            .bind(user.id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no Stripe customer recorded for {}: no checkout started", user.email))
    }
}
