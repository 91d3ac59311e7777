//! Stripe webhook throughput on loopback: distinct events per second applied by the
//! server, the latency of one delivery (request sent to answer read) with
//! `--concurrency` deliveries in flight, and the throughput of redeliveries (the same
//! event id again, answered "duplicate").
//!
//! Set-up. Events are only applied for a known Stripe customer, and a user's customer
//! is created by the `startCheckout` mutation, which calls Stripe. So this program
//! first starts its own minimal fake Stripe (the customer and checkout-session
//! handlers of `tests/common/stripe.rs`, which another crate cannot import) on the
//! loopback port `--stripe-port`. The server must have been started with
//! `PLINTH_STRIPE_API_BASE=http://127.0.0.1:<stripe-port>/` and any
//! `PLINTH_STRIPE_SECRET_KEY`: it calls Stripe only when a checkout starts, never at
//! start-up, so it can start before this program binds the port (one process, no
//! background mode; the bench's `webhook` command does exactly this). It then registers `--users`
//! users and calls `startCheckout` for each; the fake records the customer id it
//! assigned to each e-mail, which is how the events find their customer.
//!
//! Phases, every delivery signed with `--webhook-secret` at the moment it is sent:
//! 1. warm-up (not measured): one `customer.subscription.created` (active, PRO) per
//!    user; every answer must be "applied", else the set-up is wrong and the run stops;
//! 2. measured: `--events` distinct events, event `i` for user `i % users`; the user's
//!    even-numbered events are `customer.subscription.updated` alternating past_due and
//!    active (each one flips the account between grace and active: state row, activity
//!    row, notification, e-mail, token revocation), the odd-numbered ones `invoice.paid`
//!    with a new invoice id (invoice row, receipt notification and e-mail). `created`
//!    increases with `i`. They are started in order, `--concurrency` at a time, so a
//!    user's previous event was started `users` events earlier;
//! 3. redeliveries: `--redeliveries` of the applied events, spread evenly, sent again
//!    (re-signed) at the same concurrency; each should answer "duplicate".
//!
//! With `--database-url` (a superuser URL of the server's database) the recorded
//! events, state changes and invoices are counted afterwards, to check that "applied"
//! meant the work was done.
//!
//! Usage: `cargo run -p bench --release -- webhook [--users 64 --events 20000
//! --concurrency 16 --redeliveries 5000]` (the bench starts the server with its Stripe
//! settings and picks the fake's port; `--external --url` targets a running one).
use crate::dist;
use api::billing::signature::sign;
use futures::StreamExt;
use poem::{
    handler,
    http::StatusCode,
    listener::{Listener, TcpListener},
    web::{Data, Path},
    Body, EndpointExt, IntoResponse, Request, Response, Route, Server,
};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }";
const CHECKOUT: &str = "mutation($i: StartCheckoutInput!) { startCheckout(input: $i) { url } }";
/// The price of the subscriptions sent (in the built-in plans.toml).
const PRICE: &str = "price_pro_monthly";
/// Hard limit of `--max-secs`.
const MAX_RUN_SECS: u64 = 600;

#[derive(clap::Args, Debug, Clone)]
#[command(about = "Stripe webhook throughput and latency, and redelivery throughput")]
pub struct Args {
    /// Base URL of the server (GraphQL at /graphql, webhooks at /webhooks/stripe).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Loopback port of the fake Stripe this program starts; the server's
    /// PLINTH_STRIPE_API_BASE must be http://127.0.0.1:<this port>/.
    #[arg(long, default_value_t = 18184)]
    pub stripe_port: u16,
    /// A webhook signing secret the server accepts (PLINTH_STRIPE_WEBHOOK_SECRET).
    #[arg(long, default_value = "whsec_bench")]
    pub webhook_secret: String,
    /// Users (Stripe customers) the events are spread over.
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// Measured distinct events.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Deliveries in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Applied events sent again (capped at the number applied).
    #[arg(long, default_value_t = 5000)]
    pub redeliveries: usize,
    /// Registrations and checkouts in flight during the set-up.
    #[arg(long, default_value_t = 8)]
    pub setup_concurrency: usize,
    /// Superuser URL of the server's database, to count what was written.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Hard limit of the whole run, in seconds; no delivery starts after it.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
}

// ---------------------------------------------------------------- the fake Stripe

/// What the fake Stripe keeps.
#[derive(Default)]
struct FakeState {
    /// Customer id by e-mail, as assigned.
    customers: Mutex<HashMap<String, String>>,
    sessions: AtomicUsize,
    /// Requests to routes it does not serve.
    unknown: AtomicUsize,
}

/// Starts the fake on 127.0.0.1:`port`.
async fn start_fake_stripe(port: u16) -> Result<Arc<FakeState>, String> {
    let state = Arc::new(FakeState::default());
    let app = Route::new()
        .at("/v1/customers", poem::post(create_customer))
        .at("/v1/checkout/sessions", poem::post(create_session))
        .at("/v1/*rest", poem::get(not_found).post(not_found))
        .data(state.clone());
    let acceptor = TcpListener::bind(format!("127.0.0.1:{port}"))
        .into_acceptor()
        .await
        .map_err(|e| format!("binding the fake Stripe to 127.0.0.1:{port}: {e}"))?;
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Ok(state)
}

async fn form(body: Body) -> Vec<(String, String)> {
    let bytes = body.into_vec().await.unwrap_or_default();
    url::form_urlencoded::parse(&bytes).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[handler]
async fn create_customer(req: &Request, body: Body, Data(state): Data<&Arc<FakeState>>) -> Response {
    let form = form(body).await;
    let email = field(&form, "email").unwrap_or_default().to_owned();
    // The same idempotency key (`customer-<user id>`) answers the same customer, as
    // Stripe does.
    let id = match req.header("idempotency-key") {
        Some(key) => format!("cus_{}", key.trim_start_matches("customer-").replace('-', "")),
        None => format!("cus_anon{}", uuid::Uuid::new_v4().simple()),
    };
    state.customers.lock().unwrap().insert(email.clone(), id.clone());
    poem::web::Json(json!({ "id": id, "object": "customer", "email": email, "livemode": false })).into_response()
}

#[handler]
async fn create_session(body: Body, Data(state): Data<&Arc<FakeState>>) -> Response {
    let form = form(body).await;
    let n = state.sessions.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("cs_test_{n}");
    poem::web::Json(json!({
        "id": id, "object": "checkout.session", "mode": "subscription", "customer": field(&form, "customer"),
        "url": format!("https://checkout.stripe.test/c/pay/{id}"), "livemode": false,
    }))
    .into_response()
}

#[handler]
async fn not_found(Path(rest): Path<String>, Data(state): Data<&Arc<FakeState>>) -> Response {
    state.unknown.fetch_add(1, Ordering::Relaxed);
    let error = json!({ "error": { "type": "invalid_request_error", "message": format!("no route /v1/{rest}") } });
    (StatusCode::NOT_FOUND, poem::web::Json(error)).into_response()
}

// ---------------------------------------------------------------- Stripe objects

/// A subscription object as Stripe sends it (the fields Plinth reads, and a few more).
fn subscription(id: &str, customer: &str, status: &str, now: i64) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "created": now, "livemode": false,
        "current_period_start": now, "current_period_end": now + 30 * 86_400, "trial_end": null,
        "items": { "object": "list", "data": [{ "id": format!("si_{id}"), "object": "subscription_item",
            "price": { "id": PRICE, "object": "price", "currency": "eur", "unit_amount": 4900 } }] },
    })
}

/// A paid invoice object.
fn invoice(id: &str, customer: &str, now: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": customer, "number": format!("PL-{id}"), "status": "paid",
        "currency": "eur", "subtotal": 4900, "total": 5880, "amount_paid": 5880, "amount_due": 0,
        "total_taxes": [{ "amount": 980, "taxability_reason": "standard_rated" }],
        "hosted_invoice_url": format!("https://invoice.stripe.test/{id}"),
        "invoice_pdf": format!("https://invoice.stripe.test/{id}/pdf"),
        "period_start": now, "period_end": now + 30 * 86_400, "created": now,
    })
}

/// An event wrapping `object`.
fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "created": created, "livemode": false,
            "api_version": "2024-06-20", "data": { "object": object } })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subscription,
    Invoice,
}

/// One event, serialized once.
struct Planned {
    kind: Kind,
    body: Vec<u8>,
}

// ---------------------------------------------------------------- deliveries

/// The server's answer to one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Applied,
    Duplicate,
    Ignored,
    /// 200 with another body.
    OtherOk(String),
    /// Any other status (400 refused, 500 failed, ...), with the body's start.
    Status(u16, String),
    /// No answer (connection error or the 30 s client timeout).
    Transport(String),
}

struct Outcome {
    idx: usize,
    answer: Answer,
    latency: Duration,
}

struct Sender {
    http: reqwest::Client,
    webhook: String,
    secret: String,
}

impl Sender {
    /// Signs `body` now and POSTs it; the latency runs from just before sending to the
    /// answer's last byte.
    async fn deliver(&self, body: &[u8]) -> (Answer, Duration) {
        let header = sign(body, &self.secret, chrono::Utc::now().timestamp());
        let req = self
            .http
            .post(&self.webhook)
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body.to_vec());
        let t0 = Instant::now();
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(text) => match (status, text.as_str()) {
                        (200, "applied") => Answer::Applied,
                        (200, "duplicate") => Answer::Duplicate,
                        (200, "ignored") => Answer::Ignored,
                        (200, other) => Answer::OtherOk(other.chars().take(120).collect()),
                        (s, other) => Answer::Status(s, other.chars().take(120).collect()),
                    },
                    Err(e) => Answer::Transport(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Answer::Transport(e.to_string()),
        };
        (answer, t0.elapsed())
    }

    /// Delivers `events[i]` for every `i` of `order`, `concurrency` at a time, started in
    /// that order; none starts after `deadline`. Returns the outcomes (in completion
    /// order) and the time from the first start to the last answer.
    async fn run(
        &self,
        events: &[Planned],
        order: &[usize],
        concurrency: usize,
        deadline: Instant,
    ) -> (Vec<Outcome>, Duration) {
        let start = Instant::now();
        let outcomes: Vec<Outcome> = futures::stream::iter(order.iter().copied())
            .map(|idx| async move {
                if Instant::now() >= deadline {
                    return None;
                }
                let (answer, latency) = self.deliver(&events[idx].body).await;
                Some(Outcome { idx, answer, latency })
            })
            .buffer_unordered(concurrency.max(1))
            .filter_map(|o| async move { o })
            .collect()
            .await;
        (outcomes, start.elapsed())
    }
}

/// Answers counted by kind.
#[derive(Default)]
struct Tally {
    applied: usize,
    duplicate: usize,
    ignored: usize,
    other_ok: usize,
    statuses: BTreeMap<u16, usize>,
    transport: usize,
    /// The first few unexpected answers.
    examples: Vec<String>,
}

impl Tally {
    fn of(outcomes: &[Outcome]) -> Tally {
        let mut t = Tally::default();
        for o in outcomes {
            match &o.answer {
                Answer::Applied => t.applied += 1,
                Answer::Duplicate => t.duplicate += 1,
                Answer::Ignored => t.ignored += 1,
                a => {
                    match a {
                        Answer::OtherOk(_) => t.other_ok += 1,
                        Answer::Status(s, _) => *t.statuses.entry(*s).or_default() += 1,
                        _ => t.transport += 1,
                    }
                    if t.examples.len() < 5 {
                        t.examples.push(format!("{a:?}"));
                    }
                }
            }
        }
        t
    }

    fn line(&self) -> String {
        let statuses: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{n}x{s}")).collect();
        format!(
            "applied {}, duplicate {}, ignored {}, other 200 {}, other statuses [{}], no answer {}",
            self.applied,
            self.duplicate,
            self.ignored,
            self.other_ok,
            statuses.join(" "),
            self.transport
        )
    }
}

// ---------------------------------------------------------------- GraphQL set-up

struct Gql {
    http: reqwest::Client,
    url: String,
}

impl Gql {
    async fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Value, String> {
        let mut req = self.http.post(&self.url).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("POST /graphql: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("reading the response: {e}"))?;
        if !status.is_success() {
            return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("response is not JSON: {e}"))
    }

    /// Registers a user and starts a checkout, which creates the Stripe customer.
    async fn customer(&self, email: &str, stripe: &FakeState) -> Result<String, String> {
        let r = self.call(None, REGISTER, json!({ "i": { "email": email, "password": "webhook bench pw" } })).await?;
        let token = r["data"]["register"]["accessToken"].as_str().ok_or_else(|| format!("register: {r}"))?;
        let r = self.call(Some(token), CHECKOUT, json!({ "i": { "plan": "PRO", "interval": "MONTH" } })).await?;
        if !r["data"]["startCheckout"]["url"].is_string() {
            return Err(format!("startCheckout: {r}"));
        }
        stripe.customers.lock().unwrap().get(email).cloned().ok_or_else(|| "the fake saw no customer".into())
    }
}

// ---------------------------------------------------------------- main

/// Runs the benchmark with `args`; the process exit code (0: every check passed).
pub async fn main(args: Args) -> i32 {
    if args.users == 0 || args.concurrency == 0 || args.setup_concurrency == 0 {
        eprintln!("webhook: --users, --concurrency and --setup-concurrency must be positive");
        return 2;
    }
    if args.max_secs > MAX_RUN_SECS {
        eprintln!("webhook: --max-secs is at most {MAX_RUN_SECS}");
        return 2;
    }
    crate::exit_after("webhook", args.max_secs + 30);
    run(args).await
}

async fn run(args: Args) -> i32 {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_secs);
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency.max(args.setup_concurrency))
        .build()
        .expect("HTTP client");
    let stripe = match start_fake_stripe(args.stripe_port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("webhook: {e}");
            return 1;
        }
    };
    println!(
        "webhook: {} users, {} events, {} in flight, {} redeliveries against {base} (fake Stripe on 127.0.0.1:{})",
        args.users, args.events, args.concurrency, args.redeliveries, args.stripe_port
    );

    // Users and their Stripe customers.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let gql = Gql { http: http.clone(), url: format!("{base}/graphql") };
    let stripe_ref = &stripe;
    let gql_ref = &gql;
    let run_ref = &run_id;
    let made: Vec<(usize, Result<String, String>)> = futures::stream::iter(0..args.users)
        .map(|u| async move {
            let email = format!("webhooks-{run_ref}-{u}@example.com");
            (u, gql_ref.customer(&email, stripe_ref).await)
        })
        .buffer_unordered(args.setup_concurrency)
        .collect()
        .await;
    let mut customers = vec![String::new(); args.users];
    for (u, r) in made {
        match r {
            Ok(c) => customers[u] = c,
            Err(e) => {
                eprintln!("webhook: setting up user {u} failed: {e}");
                return 1;
            }
        }
    }
    println!(
        "registered {} users, each with a customer from startCheckout, in {:.1}s",
        args.users,
        start.elapsed().as_secs_f64()
    );

    // Every event, built once. Times are whole seconds as in Stripe; the warm-up's
    // subscriptions are older than every measured event.
    let t0 = chrono::Utc::now().timestamp() - 10;
    let warmup: Vec<Planned> = customers
        .iter()
        .enumerate()
        .map(|(u, c)| {
            let sub = subscription(&format!("sub_{run_id}_{u}"), c, "active", t0);
            let e = event(&format!("evt_{run_id}_w{u}"), "customer.subscription.created", t0, sub);
            Planned { kind: Kind::Subscription, body: serde_json::to_vec(&e).expect("JSON") }
        })
        .collect();
    let events: Vec<Planned> = (0..args.events)
        .map(|i| {
            let (u, k) = (i % args.users, i / args.users);
            let created = t0 + 1 + i as i64;
            let id = format!("evt_{run_id}_{i}");
            let c = &customers[u];
            let (kind, e) = if k % 2 == 0 {
                // The warm-up left it active: past_due, active, past_due, ...
                let status = if (k / 2) % 2 == 0 { "past_due" } else { "active" };
                let sub = subscription(&format!("sub_{run_id}_{u}"), c, status, created);
                (Kind::Subscription, event(&id, "customer.subscription.updated", created, sub))
            } else {
                let inv = invoice(&format!("in_{run_id}_{u}_{k}"), c, created);
                (Kind::Invoice, event(&id, "invoice.paid", created, inv))
            };
            Planned { kind, body: serde_json::to_vec(&e).expect("JSON") }
        })
        .collect();
    let sender = Sender { http, webhook: format!("{base}/webhooks/stripe"), secret: args.webhook_secret.clone() };

    // Warm-up: also proves the customers are known and the secret accepted.
    let all_warmup: Vec<usize> = (0..warmup.len()).collect();
    let (w, w_time) = sender.run(&warmup, &all_warmup, args.concurrency, deadline).await;
    let wt = Tally::of(&w);
    println!("warm-up: {} customer.subscription.created in {:.2}s: {}", warmup.len(), w_time.as_secs_f64(), wt.line());
    if wt.applied != warmup.len() {
        for e in &wt.examples {
            println!("  {e}");
        }
        eprintln!("webhook: the warm-up events were not all applied; is the secret or the fake Stripe wrong?");
        return 1;
    }

    // Measured distinct events.
    let order: Vec<usize> = (0..events.len()).collect();
    let (m, m_time) = sender.run(&events, &order, args.concurrency, deadline).await;
    let mt = Tally::of(&m);
    println!();
    println!("== distinct events ({} in flight)", args.concurrency);
    println!("sent {} of {} in {:.2}s: {}", m.len(), events.len(), m_time.as_secs_f64(), mt.line());
    for e in &mt.examples {
        println!("  {e}");
    }
    println!(
        "throughput: {:.0} events applied/s ({:.0} answered/s)",
        mt.applied as f64 / m_time.as_secs_f64(),
        m.len() as f64 / m_time.as_secs_f64()
    );
    dist::print("latency, all", 34, &mut m.iter().map(|o| o.latency).collect::<Vec<_>>());
    let of_kind = |k: Kind| m.iter().filter(|o| events[o.idx].kind == k).map(|o| o.latency).collect::<Vec<_>>();
    dist::print("  customer.subscription.updated", 34, &mut of_kind(Kind::Subscription));
    dist::print("  invoice.paid", 34, &mut of_kind(Kind::Invoice));

    // Redeliveries of applied events, spread evenly over them.
    let mut applied: Vec<usize> = m.iter().filter(|o| o.answer == Answer::Applied).map(|o| o.idx).collect();
    applied.sort_unstable();
    let n = args.redeliveries.min(applied.len());
    let sample: Vec<usize> = (0..n).map(|j| applied[j * applied.len() / n]).collect();
    let (r, r_time) = sender.run(&events, &sample, args.concurrency, deadline).await;
    let rt = Tally::of(&r);
    println!();
    println!("== redeliveries of applied events ({} in flight)", args.concurrency);
    println!("sent {} of {} in {:.2}s: {}", r.len(), sample.len(), r_time.as_secs_f64(), rt.line());
    for e in &rt.examples {
        println!("  {e}");
    }
    if !r.is_empty() {
        println!("throughput: {:.0} duplicates/s", rt.duplicate as f64 / r_time.as_secs_f64());
    }
    dist::print("latency, redeliveries", 34, &mut r.iter().map(|o| o.latency).collect::<Vec<_>>());

    // What was written.
    let mut written_ok = true;
    if let Some(db) = &args.database_url {
        let applied_subs =
            m.iter().filter(|o| o.answer == Answer::Applied && events[o.idx].kind == Kind::Subscription).count();
        let applied_invoices = mt.applied - applied_subs;
        match count_written(db, &run_id).await {
            Ok((recorded, changes, invoices)) => {
                println!();
                println!("== written (counted in the database)");
                let want_recorded = (warmup.len() + m.len()) as i64;
                // Each subscription event flips the state when it applies in order; one
                // applied after a newer event of its customer changes nothing.
                let want_changes = (warmup.len() + applied_subs) as i64;
                println!("stripe_events of this run: {recorded} (expected {want_recorded})");
                println!("billing.state_changed: {changes} (expected {want_changes} if every update applied in order)");
                println!("invoices: {invoices} (expected {applied_invoices})");
                written_ok =
                    recorded == want_recorded && changes == want_changes && invoices == applied_invoices as i64;
            }
            Err(e) => {
                println!("could not count what was written: {e}");
                written_ok = false;
            }
        }
    }
    println!();
    println!(
        "fake Stripe: {} customers, {} checkout sessions, {} unknown requests; total run time {:.1}s",
        stripe.customers.lock().unwrap().len(),
        stripe.sessions.load(Ordering::Relaxed),
        stripe.unknown.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    let ok = m.len() == events.len()
        && mt.applied == events.len()
        && r.len() == sample.len()
        && rt.duplicate == sample.len()
        && written_ok;
    if ok {
        0
    } else {
        1
    }
}

/// Recorded events of this run, state changes and invoices.
async fn count_written(url: &str, run_id: &str) -> Result<(i64, i64, i64), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE starts_with(id, $1)")
        .bind(format!("evt_{run_id}_"))
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity_log a JOIN users u ON u.id = a.user_id
         WHERE a.action = 'billing.state_changed' AND starts_with(u.email::text, $1)",
    )
    .bind(format!("webhooks-{run_id}-"))
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices WHERE starts_with(stripe_invoice_id, $1)")
        .bind(format!("in_{run_id}_"))
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok((recorded, changes, invoices))
}
