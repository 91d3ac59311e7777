//! A local HTTP server speaking Stripe's wire format for the calls Plinth makes
//! (form-encoded requests, JSON answers, Stripe's error bodies), recording every
//! request; and helpers that build Stripe events and deliver them to an app's webhook,
//! signed with Stripe's real scheme.
//!
//! Like Stripe, it answers a repeated idempotency key with the first answer (and refuses
//! the key with other parameters), answers `resource_missing` for customers it does not
//! have (404 on reads, 400 on a create that names one), keeps customers (deleted ones
//! included), sessions, tax ids, invoices, charges and subscriptions (a `trial_end` update
//! applies to the one listed); and a test can make the next requests to a route fail
//! (429, 5xx) or hold them until released.
use super::{TestApp, TestUser};
use api::billing::signature::sign;
use poem::{
    handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
    Body, EndpointExt, IntoResponse, Request, Response, Route, Server,
};
use serde_json::{json, Value};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};
use tokio::sync::{mpsc, Semaphore};

/// The API version events are rendered in unless a test says otherwise: Plinth's pin.
pub const API_VERSION: &str = api::billing::stripe::API_VERSION;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method and path, e.g. `POST /v1/customers`.
    pub route: String,
    /// The form body and query, decoded into pairs (keys like `line_items[0][price]`).
    pub form: Vec<(String, String)>,
    /// The Idempotency-Key header.
    pub idempotency_key: Option<String>,
    /// The bearer secret.
    pub authorization: Option<String>,
    /// The Stripe-Version header.
    pub stripe_version: Option<String>,
}

impl Recorded {
    /// The value of form key `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Requests held at a route until released: see [`FakeStripe::hold`].
pub struct Hold {
    arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

impl Hold {
    /// Waits until a held request arrived.
    pub async fn arrived(&mut self) {
        self.arrived.recv().await.expect("the fake Stripe is gone");
    }

    /// Lets every held request (and later ones) through.
    pub fn release(&self) {
        self.release.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// A first answer to an idempotency key: the form it came with, its status and body.
type Reply = (Vec<(String, String)>, u16, Value);

/// Where a held request says it arrived, and what releases it.
type Gate = (mpsc::UnboundedSender<()>, Arc<Semaphore>);

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    subscriptions: Mutex<Vec<Value>>,
    customers: Mutex<HashMap<String, Value>>,
    sessions: Mutex<Vec<Value>>,
    invoices: Mutex<Vec<Value>>,
    charges: Mutex<HashMap<String, Value>>,
    anonymous: Mutex<u32>,
    /// (route, key) → (form, status, body) of the first answer; None while it is
    /// being answered (a concurrent request with the key gets Stripe's 409).
    replies: Mutex<HashMap<(String, String), Option<Reply>>>,
    failures: Mutex<HashMap<String, VecDeque<u16>>>,
    holds: Mutex<HashMap<String, Gate>>,
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
        let app = Route::new().at("/v1/*rest", stripe_api).data(state.clone());
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

    /// What `GET /v1/invoices` lists (filtered by its `customer`).
    pub fn set_invoices(&self, invoices: Vec<Value>) {
        *self.state.invoices.lock().unwrap() = invoices;
    }

    /// Makes `GET /v1/charges/{id}` answer a charge of `customer`.
    pub fn add_charge(&self, id: &str, customer: &str) {
        let charge = json!({ "id": id, "object": "charge", "customer": customer, "amount": 5880 });
        self.state.charges.lock().unwrap().insert(id.to_owned(), charge);
    }

    /// Deletes a customer, as the dashboard would: reads answer `deleted: true`, calls
    /// naming it answer `resource_missing`. Plinth is not told.
    pub fn delete_customer(&self, id: &str) {
        let mut customers = self.state.customers.lock().unwrap();
        customers.insert(id.to_owned(), json!({ "id": id, "object": "customer", "deleted": true }));
    }

    /// Sets a customer's tax ids (tax id objects) and billing country, as Stripe has them.
    pub fn set_customer_details(&self, id: &str, tax_ids: Vec<Value>, country: Option<&str>) {
        let mut customers = self.state.customers.lock().unwrap();
        let c = customers.entry(id.to_owned()).or_insert_with(|| json!({ "id": id, "object": "customer" }));
        c["tax_ids"] = json!({ "object": "list", "data": tax_ids, "has_more": false });
        c["address"] = json!({ "country": country });
    }

    /// The Checkout Sessions created so far, as Stripe has them.
    pub fn sessions(&self) -> Vec<Value> {
        self.state.sessions.lock().unwrap().clone()
    }

    /// Marks a session paid, as Stripe does when its customer completes it.
    pub fn complete_session(&self, id: &str) {
        for s in self.state.sessions.lock().unwrap().iter_mut().filter(|s| s["id"] == id) {
            s["status"] = json!("complete");
        }
    }

    /// Answers the next requests to `route` with `statuses` (429: `rate_limit_error`,
    /// 5xx: `api_error`), one each, before answering normally again.
    pub fn fail_next(&self, route: &str, statuses: &[u16]) {
        self.state.failures.lock().unwrap().entry(route.to_owned()).or_default().extend(statuses);
    }

    /// Holds every request to `route` until the returned handle releases them.
    pub fn hold(&self, route: &str) -> Hold {
        let (tx, rx) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        self.state.holds.lock().unwrap().insert(route.to_owned(), (tx, release.clone()));
        Hold { arrived: rx, release }
    }
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut body = json!({ "error": { "type": kind, "message": message } });
    if let Some(code) = code {
        body["error"]["code"] = json!(code);
        body["error"]["param"] = json!("customer");
    }
    (status, poem::web::Json(body)).into_response()
}

fn missing(what: &str, id: &str) -> (u16, Value) {
    (
        404,
        json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "param": "id",
        "message": format!("No such {what}: '{id}'") } }),
    )
}

/// Every call: recorded, then a failure or a hold if a test asked for one, then a
/// replayed answer for a key seen before, else the route's answer.
#[handler]
async fn stripe_api(req: &Request, body: Body, Data(state): Data<&Arc<State>>) -> Response {
    let bytes = body.into_vec().await.unwrap_or_default();
    let mut form: Vec<(String, String)> = url::form_urlencoded::parse(&bytes).into_owned().collect();
    if let Some(q) = req.uri().query() {
        form.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let route = format!("{} {}", req.method(), req.uri().path());
    let rec = Recorded {
        route: route.clone(),
        form,
        idempotency_key: req.header("idempotency-key").map(str::to_owned),
        authorization: req.header("authorization").map(str::to_owned),
        stripe_version: req.header("stripe-version").map(str::to_owned),
    };
    state.requests.lock().unwrap().push(rec.clone());
    let hold = state.holds.lock().unwrap().get(&route).cloned();
    if let Some((arrived, release)) = hold {
        let _ = arrived.send(());
        release.acquire().await.unwrap().forget();
    }
    let failure = state.failures.lock().unwrap().get_mut(&route).and_then(VecDeque::pop_front);
    if let Some(status) = failure {
        let s = StatusCode::from_u16(status).unwrap();
        return match status {
            429 => error(s, "rate_limit_error", None, "Too many requests"),
            _ => error(s, "api_error", None, "Something went wrong on Stripe's end"),
        };
    }
    let key = rec.idempotency_key.clone().map(|k| (route.clone(), k));
    if let Some(key) = &key {
        let mut replies = state.replies.lock().unwrap();
        match replies.get(key) {
            Some(Some((form, status, body))) => {
                // Parameters, not their order (metadata is a map: its order varies).
                let sorted = |f: &[(String, String)]| {
                    let mut f = f.to_vec();
                    f.sort();
                    f
                };
                if sorted(form) != sorted(&rec.form) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be used with the same parameters they were first \
                         used with",
                    );
                }
                return (StatusCode::from_u16(*status).unwrap(), poem::web::Json(body.clone())).into_response();
            }
            Some(None) => {
                let body = json!({ "error": { "type": "idempotency_error", "code": "idempotency_key_in_use",
                    "message": "There is currently another in-progress request using this Idempotent Key" } });
                return (StatusCode::CONFLICT, poem::web::Json(body)).into_response();
            }
            None => {
                replies.insert(key.clone(), None);
            }
        }
    }
    let (status, body) = answer(&rec, state);
    if let Some(key) = key {
        state.replies.lock().unwrap().insert(key, Some((rec.form.clone(), status, body.clone())));
    }
    (StatusCode::from_u16(status).unwrap(), poem::web::Json(body)).into_response()
}

fn answer(rec: &Recorded, state: &State) -> (u16, Value) {
    let path: Vec<&str> = rec.route.split(['/', ' ']).filter(|s| !s.is_empty()).collect();
    let customer_gone = |id: Option<&str>| {
        let customers = state.customers.lock().unwrap();
        id.is_some_and(|id| customers.get(id).is_none_or(|c| c["deleted"] == true))
    };
    let no_such_customer = |id: &str| {
        (
            400,
            json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "param": "customer",
            "message": format!("No such customer: '{id}'") } }),
        )
    };
    match path.as_slice() {
        ["POST", "v1", "customers"] => {
            // The same idempotency key answers the same customer, as Stripe does.
            let id = match rec.idempotency_key.as_deref() {
                Some(key) => format!("cus_{}", key.trim_start_matches("customer-").replace(['-', '_'], "")),
                None => {
                    let mut n = state.anonymous.lock().unwrap();
                    *n += 1;
                    format!("cus_anon{n}")
                }
            };
            let c = json!({ "id": id, "object": "customer", "email": rec.get("email"), "livemode": false });
            state.customers.lock().unwrap().insert(id, c.clone());
            (200, c)
        }
        ["GET", "v1", "customers", id] => match state.customers.lock().unwrap().get(*id) {
            None => missing("customer", id),
            Some(c) => {
                let mut c = c.clone();
                let expanded = rec.form.iter().any(|(k, v)| k.starts_with("expand[") && v == "tax_ids");
                if !expanded {
                    c.as_object_mut().unwrap().remove("tax_ids");
                } else if c.get("tax_ids").is_none() && c["deleted"] != true {
                    c["tax_ids"] = json!({ "object": "list", "data": [], "has_more": false });
                }
                (200, c)
            }
        },
        ["POST", "v1", "checkout", "sessions"] => {
            let customer = rec.get("customer").unwrap_or_default();
            if customer_gone(Some(customer)) {
                return no_such_customer(customer);
            }
            let mut sessions = state.sessions.lock().unwrap();
            let id = format!("cs_test_{}", sessions.len() + 1);
            let s = json!({
                "id": id, "object": "checkout.session", "mode": "subscription", "customer": customer,
                "status": "open", "expires_at": rec.get("expires_at").and_then(|e| e.parse::<i64>().ok()),
                "url": format!("https://checkout.stripe.test/c/pay/{id}"), "livemode": false,
            });
            sessions.push(s.clone());
            (200, s)
        }
        ["GET", "v1", "checkout", "sessions", id] => {
            let sessions = state.sessions.lock().unwrap();
            match sessions.iter().find(|s| s["id"] == *id) {
                Some(s) => (200, s.clone()),
                None => missing("checkout.session", id),
            }
        }
        ["POST", "v1", "checkout", "sessions", id, "expire"] => {
            let mut sessions = state.sessions.lock().unwrap();
            let Some(s) = sessions.iter_mut().find(|s| s["id"] == *id) else { return missing("checkout.session", id) };
            if s["status"] != "open" {
                let message = "Only Checkout Sessions with a status in [\"open\"] can be expired.";
                return (400, json!({ "error": { "type": "invalid_request_error", "message": message } }));
            }
            s["status"] = json!("expired");
            (200, s.clone())
        }
        ["POST", "v1", "billing_portal", "sessions"] => {
            let customer = rec.get("customer").unwrap_or_default();
            if customer_gone(Some(customer)) {
                return no_such_customer(customer);
            }
            (
                200,
                json!({
                    "id": "bps_test_1", "object": "billing_portal.session", "customer": customer,
                    "return_url": rec.get("return_url"), "url": "https://billing.stripe.test/p/session/test_1",
                }),
            )
        }
        ["GET", "v1", "subscriptions"] => {
            let subs = state.subscriptions.lock().unwrap().clone();
            let subs: Vec<Value> =
                subs.into_iter().filter(|s| rec.get("customer").is_none_or(|c| s["customer"] == c)).collect();
            list(rec, subs, "/v1/subscriptions")
        }
        ["POST", "v1", "subscriptions", id] => {
            let mut subs = state.subscriptions.lock().unwrap();
            match subs.iter_mut().find(|s| s["id"] == *id) {
                Some(s) => {
                    if let Some(end) = rec.get("trial_end").and_then(|t| t.parse::<i64>().ok()) {
                        s["trial_end"] = json!(end);
                    }
                    (200, s.clone())
                }
                None => missing("subscription", id),
            }
        }
        ["DELETE", "v1", "subscriptions", id] => {
            let mut subs = state.subscriptions.lock().unwrap();
            match subs.iter_mut().find(|s| s["id"] == *id) {
                Some(s) => {
                    s["status"] = json!("canceled");
                    (200, s.clone())
                }
                None => missing("subscription", id),
            }
        }
        ["GET", "v1", "invoices"] => {
            let all = state.invoices.lock().unwrap().clone();
            let mine: Vec<Value> =
                all.into_iter().filter(|i| rec.get("customer").is_none_or(|c| i["customer"] == c)).collect();
            list(rec, mine, "/v1/invoices")
        }
        ["GET", "v1", "charges", id] => match state.charges.lock().unwrap().get(*id) {
            Some(c) => (200, c.clone()),
            None => missing("charge", id),
        },
        _ => {
            (404, json!({ "error": { "type": "invalid_request_error", "message": format!("no route {}", rec.route) } }))
        }
    }
}

fn list(rec: &Recorded, items: Vec<Value>, url: &str) -> (u16, Value) {
    let start = match rec.get("starting_after") {
        Some(after) => items.iter().position(|s| s["id"] == after).map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let limit: usize = rec.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    (200, json!({ "object": "list", "url": url, "has_more": has_more, "data": page }))
}

/// A subscription object as Stripe sends it (the fields Plinth reads, and a few more):
/// one item of `price`, the period starting at `now`, anchored there.
pub fn subscription(id: &str, customer: &str, status: &str, price: &str, now: i64) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "cancel_at": null, "created": now, "livemode": false,
        "billing_cycle_anchor": now,
        "current_period_start": now, "current_period_end": now + 30 * 86_400,
        "trial_end": if status == "trialing" { json!(now + 14 * 86_400) } else { Value::Null },
        "items": { "object": "list", "data": [item(id, price, 0)] },
    })
}

/// One subscription item of `price`.
pub fn item(subscription: &str, price: &str, n: usize) -> Value {
    json!({ "id": format!("si_{subscription}_{n}"), "object": "subscription_item", "quantity": 1,
            "price": { "id": price, "object": "price", "currency": "eur", "unit_amount": 4900 } })
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

/// A tax id object.
pub fn tax_id(id: &str, customer: &str, value: &str, status: &str) -> Value {
    json!({ "id": id, "object": "tax_id", "customer": customer, "type": "eu_vat", "value": value,
            "country": &value[..2], "created": 1, "livemode": false,
            "verification": { "status": status, "verified_name": null, "verified_address": null } })
}

/// An event wrapping `object`, rendered in Plinth's pinned API version.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    event_in_version(id, kind, created, object, API_VERSION)
}

/// An event wrapping `object`, rendered in API version `version`.
pub fn event_in_version(id: &str, kind: &str, created: i64, object: Value, version: &str) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "created": created, "livemode": false,
            "api_version": version, "data": { "object": object } })
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
        sqlx::query_scalar::<_, Option<String>>("SELECT stripe_customer_id FROM billing_accounts WHERE user_id = $1")
            .bind(user.id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
            .flatten()
            .unwrap_or_else(|| panic!("no Stripe customer recorded for {}: no checkout started", user.email))
    }
}

impl TestApp {
    /// Puts `user` on Pro, monthly, as Stripe would: a checkout (which creates its
    /// customer), then the `customer.subscription.created` of `sub_<name>` in `status`
    /// (`active`, `trialing`), dated `t` and listed by the stand-in; then a fresh session
    /// (the plan change revoked the user's tokens). The customer's id.
    pub async fn subscribe_to_pro(
        &self,
        stripe: &FakeStripe,
        user: &mut TestUser,
        subscription_id: &str,
        status: &str,
        t: i64,
    ) -> String {
        let r = self
            .gql(
                Some(&user.access),
                "mutation { startCheckout(input: {plan: PRO, interval: MONTH}) { url } }",
                json!({}),
            )
            .await;
        assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
        let customer = self.stripe_customer(user).await;
        let sub = subscription(subscription_id, &customer, status, "price_pro_monthly", t);
        stripe.set_subscriptions(vec![sub.clone()]);
        let created = event(&format!("evt_{subscription_id}"), "customer.subscription.created", t, sub);
        assert_eq!(self.deliver_webhook(&created).await.0, 200);
        self.refresh_session(user).await;
        customer
    }
}
