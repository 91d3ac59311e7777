//! WebSocket fan-out benchmark: the commit-to-client latency of `jobUpdated` events
//! with many concurrent subscribers, and the server's memory per idle subscriber.
//!
//! Registers `--users` users, opens `--subscribers` graphql-transport-ws sockets spread
//! round-robin over them (subscriber `i` belongs to user `i % users`), each subscribed
//! to `jobUpdated`, then performs `--events` `createJob` mutations one after another
//! (round-robin over the users). For every event and every subscriber of the job's
//! owner it measures the delay from the moment the mutation's HTTP response was read
//! (the transaction committed and the event was published just before the response
//! was written) to the moment the event's frame was read by that subscriber.
//!
//! By default each mutation waits until the previous event reached all live
//! subscribers of its owner (or `--event-timeout-ms` passed), so every sample is one
//! event's fan-out on an otherwise idle server; `--back-to-back` sends the next
//! mutation as soon as the previous response arrives (queueing included).
//!
//! With `--server-pid`, the server's VmRSS is read before the sockets open and after
//! all subscriptions are established and idle for 2 s.
//!
//! Usage: `cargo run -p bench --release -- fanout --users 10 --subscribers 1000
//! --events 200 [--redis]` (the bench starts the server; `--external --url` targets one).
use crate::dist::{self, ms};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }";
const CREATE_JOB: &str = "mutation { createJob(input: {kind: SCAN}) { id } }";
const SUBSCRIPTION: &str = "subscription { jobUpdated { id status updatedAt } }";
/// Sockets being opened at once (the server's accept backlog is finite).
const CONNECT_CONCURRENCY: usize = 64;
/// Time one socket has to connect, be acknowledged and send its subscription.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time before the second memory reading.
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(2);
/// Access tokens live 15 minutes at most; the whole run must stay well under that.
const MAX_RUN_SECS: u64 = 600;

#[derive(clap::Args, Debug, Clone)]
#[command(about = "jobUpdated fan-out latency and memory per idle subscriber")]
pub struct Args {
    /// Base URL of the server (GraphQL at /graphql, WebSocket at /graphql/ws).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Users to register; subscribers and mutations are spread over them.
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// WebSocket subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Measured `createJob` mutations.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// The server's pid, for VmRSS readings from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Send each mutation as soon as the previous response arrived instead of waiting
    /// for the previous event's fan-out to finish.
    #[arg(long)]
    pub back_to_back: bool,
    /// How long one event may take to reach all its subscribers.
    #[arg(long, default_value_t = 10_000)]
    pub event_timeout_ms: u64,
    /// Hard limit of the whole run, in seconds (at most 600: tokens expire after 900).
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
}

/// What a subscriber task reports.
enum SubMsg {
    /// Connected, acknowledged, subscription sent.
    Ready(usize),
    /// Setup failed.
    SetupFailed(usize, String),
    /// A `jobUpdated` event arrived.
    Delivery(Delivery),
    /// A `next` with errors, an `error` or a `complete` message.
    ProtocolError(usize, String),
    /// The socket closed (code, or the transport error).
    Closed(usize, String),
}

struct Delivery {
    sub: usize,
    job: String,
    updated_at: Option<String>,
    at: Instant,
    wall: DateTime<Utc>,
}

/// One measured mutation.
struct Sent {
    job: String,
    owner: usize,
    sent: Instant,
    answered: Instant,
}

/// Everything the subscribers reported so far.
#[derive(Default)]
struct State {
    ready: HashSet<usize>,
    acknowledged: usize,
    setup_failures: Vec<(usize, String)>,
    closed: Vec<(usize, String)>,
    protocol_errors: Vec<(usize, String)>,
    deliveries: HashMap<String, Vec<Delivery>>,
    total_frames: usize,
}

impl State {
    fn apply(&mut self, msg: SubMsg) {
        match msg {
            SubMsg::Ready(i) => {
                self.acknowledged += 1;
                self.ready.insert(i);
            }
            SubMsg::SetupFailed(i, e) => self.setup_failures.push((i, e)),
            SubMsg::Delivery(d) => {
                self.total_frames += 1;
                self.deliveries.entry(d.job.clone()).or_default().push(d);
            }
            SubMsg::ProtocolError(i, e) => self.protocol_errors.push((i, e)),
            SubMsg::Closed(i, why) => {
                self.ready.remove(&i);
                self.closed.push((i, why));
            }
        }
    }

    /// Live subscribers of `owner` that have not seen `job` yet.
    fn missing(&self, job: &str, owner: usize, users: usize) -> usize {
        let seen: HashSet<usize> =
            self.deliveries.get(job).map(|v| v.iter().map(|d| d.sub).collect()).unwrap_or_default();
        self.ready.iter().filter(|&&s| s % users == owner && !seen.contains(&s)).count()
    }
}

/// Applies reports until `done` holds or `deadline` passes; false on timeout.
async fn drain_until(
    state: &mut State,
    rx: &mut mpsc::UnboundedReceiver<SubMsg>,
    deadline: Instant,
    mut done: impl FnMut(&State) -> bool,
) -> bool {
    loop {
        while let Ok(m) = rx.try_recv() {
            state.apply(m);
        }
        if done(state) {
            return true;
        }
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(m)) => state.apply(m),
            Ok(None) | Err(_) => return done(state),
        }
    }
}

struct Client {
    http: reqwest::Client,
    graphql: String,
}

impl Client {
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Result<Value, String> {
        let mut req = self.http.post(&self.graphql).json(&json!({ "query": query, "variables": variables }));
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
}

/// One subscriber: connects, authenticates, subscribes, then reports every frame.
async fn subscriber(
    idx: usize,
    ws_url: String,
    token: String,
    tx: mpsc::UnboundedSender<SubMsg>,
    mut stop: watch::Receiver<bool>,
    gate: Arc<Semaphore>,
) {
    let setup = async {
        let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut req = ws_url.as_str().into_client_request().map_err(|e| e.to_string())?;
        req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| format!("connect: {e}"))?;
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
        ws.send(Message::Text(init.to_string().into())).await.map_err(|e| format!("connection_init: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                    match v["type"].as_str() {
                        Some("connection_ack") => break,
                        Some("ping") => {
                            let pong = json!({ "type": "pong" }).to_string();
                            ws.send(Message::Text(pong.into())).await.map_err(|e| e.to_string())?;
                        }
                        _ => return Err(format!("expected connection_ack, got {v}")),
                    }
                }
                Some(Ok(Message::Close(f))) => return Err(format!("closed before the ack: {f:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("before the ack: {e}")),
                None => return Err("closed before the ack".into()),
            }
        }
        let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION } });
        ws.send(Message::Text(sub.to_string().into())).await.map_err(|e| format!("subscribe: {e}"))?;
        Ok::<_, String>(ws)
    };
    let mut ws = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let _ = tx.send(SubMsg::SetupFailed(idx, e));
            return;
        }
        Err(_) => {
            let _ = tx.send(SubMsg::SetupFailed(idx, "setup timed out".into()));
            return;
        }
    };
    let _ = tx.send(SubMsg::Ready(idx));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => {
                let at = Instant::now();
                let wall = Utc::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = match serde_json::from_str(t.as_str()) {
                            Ok(v) => v,
                            Err(e) => {
                                let _ = tx.send(SubMsg::ProtocolError(idx, format!("bad JSON: {e}")));
                                continue;
                            }
                        };
                        match v["type"].as_str() {
                            Some("next") => {
                                let job = &v["payload"]["data"]["jobUpdated"];
                                match job["id"].as_str() {
                                    Some(id) => {
                                        let _ = tx.send(SubMsg::Delivery(Delivery {
                                            sub: idx,
                                            job: id.to_owned(),
                                            updated_at: job["updatedAt"].as_str().map(str::to_owned),
                                            at,
                                            wall,
                                        }));
                                    }
                                    None => {
                                        let _ = tx.send(SubMsg::ProtocolError(idx, v["payload"].to_string()));
                                    }
                                }
                            }
                            Some("ping") => {
                                let pong = json!({ "type": "pong" }).to_string();
                                let _ = ws.send(Message::Text(pong.into())).await;
                            }
                            Some("pong") => {}
                            _ => {
                                let _ = tx.send(SubMsg::ProtocolError(idx, v.to_string()));
                            }
                        }
                    }
                    Some(Ok(Message::Close(f))) => {
                        let why = f.map(|f| format!("close {} {}", u16::from(f.code), f.reason)).unwrap_or("close".into());
                        let _ = tx.send(SubMsg::Closed(idx, why));
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = tx.send(SubMsg::Closed(idx, format!("transport error: {e}")));
                        return;
                    }
                    None => {
                        let _ = tx.send(SubMsg::Closed(idx, "end of stream".into()));
                        return;
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Runs the benchmark with `args`; the process exit code (0: every check passed).
pub async fn main(args: Args) -> i32 {
    if args.users == 0 || args.subscribers == 0 {
        eprintln!("fanout: --users and --subscribers must be positive");
        return 2;
    }
    if args.max_secs > MAX_RUN_SECS {
        eprintln!("fanout: --max-secs is at most {MAX_RUN_SECS} (access tokens expire after 15 minutes)");
        return 2;
    }
    crate::exit_after("fanout", args.max_secs + 30);
    run(args).await
}

async fn run(args: Args) -> i32 {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_secs);
    let base = args.url.trim_end_matches('/').to_owned();
    let ws_url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
    let client = Client {
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("HTTP client"),
        graphql: format!("{base}/graphql"),
    };
    println!(
        "fanout: {} users, {} subscribers, {} events, {} against {base}",
        args.users,
        args.subscribers,
        args.events,
        if args.back_to_back { "back-to-back" } else { "each after the previous fan-out" }
    );

    // Users.
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut tokens = Vec::with_capacity(args.users);
    for u in 0..args.users {
        let email = format!("ws-fanout-{run_id}-{u}@example.com");
        let r = client.gql(None, REGISTER, json!({ "i": { "email": email, "password": "ws fanout password" } })).await;
        match r.as_ref().ok().and_then(|r| r["data"]["register"]["accessToken"].as_str()) {
            Some(t) => tokens.push(t.to_owned()),
            None => {
                eprintln!("fanout: registering {email} failed: {r:?}");
                return 1;
            }
        }
    }
    println!("registered {} users in {:.1}s", args.users, start.elapsed().as_secs_f64());

    // Warm the mutation path (no subscribers yet), so the memory baseline includes it.
    for token in &tokens {
        if let Err(e) = create_job(&client, token).await {
            eprintln!("fanout: warm-up createJob failed: {e}");
            return 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = args.server_pid.and_then(crate::server::rss_kib);

    // Subscribers, in two halves: the RSS between them gives the marginal cost of a
    // subscriber as a cross-check of (after - before) / S, which also carries whatever
    // the first sockets warm up once.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let all = args.subscribers;
    let half = all / 2;
    let mut state = State::default();
    let mut tasks = Vec::with_capacity(all);
    let mut rss_half = None;
    let mut setup_time = Duration::ZERO;
    for (from, to) in [(0, half), (half, all)] {
        let opening = Instant::now();
        for i in from..to {
            tasks.push(tokio::spawn(subscriber(
                i,
                ws_url.clone(),
                tokens[i % args.users].clone(),
                tx.clone(),
                stop_rx.clone(),
                gate.clone(),
            )));
        }
        let setup_deadline = (Instant::now() + Duration::from_secs(120)).min(deadline);
        drain_until(&mut state, &mut rx, setup_deadline, |s| s.acknowledged + s.setup_failures.len() >= to).await;
        setup_time += opening.elapsed();
        // Idle, then a memory reading.
        let idle_until = Instant::now() + IDLE_BEFORE_RSS;
        drain_until(&mut state, &mut rx, idle_until, |_| false).await;
        if to == half {
            rss_half = args.server_pid.and_then(crate::server::rss_kib);
        }
    }
    drop(tx);
    let rss_idle = args.server_pid.and_then(crate::server::rss_kib);
    println!(
        "{} of {} subscriptions acknowledged and sent in {:.2}s ({} failed)",
        state.ready.len(),
        all,
        setup_time.as_secs_f64(),
        state.setup_failures.len()
    );
    for (i, e) in state.setup_failures.iter().take(5) {
        println!("  subscriber {i}: {e}");
    }

    // Every subscription is live: one event per user must reach all its subscribers.
    let mut probes = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        match create_job(&client, token).await {
            Ok((id, _, _)) => probes.push((id, u)),
            Err(e) => {
                eprintln!("fanout: probe createJob failed: {e}");
                return 1;
            }
        }
    }
    let probe_deadline = (Instant::now() + Duration::from_millis(args.event_timeout_ms)).min(deadline);
    let users = args.users;
    let probe_target = state.ready.len();
    let delivered = |s: &State, jobs: &mut dyn Iterator<Item = &String>| -> usize {
        jobs.map(|j| s.deliveries.get(j).map_or(0, Vec::len)).sum()
    };
    drain_until(&mut state, &mut rx, probe_deadline, |s| {
        delivered(s, &mut probes.iter().map(|(j, _)| j)) >= probe_target
    })
    .await;
    let live: HashSet<usize> =
        probes.iter().flat_map(|(j, _)| state.deliveries.get(j).into_iter().flatten().map(|d| d.sub)).collect();
    println!("{} of {} subscribers received the probe event of their user", live.len(), state.ready.len());

    // Measured events.
    let mut sent: Vec<Sent> = Vec::with_capacity(args.events);
    let mut timed_out_events = 0usize;
    let mut mutation_errors = 0usize;
    let phase = Instant::now();
    for e in 0..args.events {
        if Instant::now() >= deadline {
            println!("run deadline reached after {e} events");
            break;
        }
        let owner = e % args.users;
        match create_job(&client, &tokens[owner]).await {
            Ok((job, t0, t1)) => {
                sent.push(Sent { job: job.clone(), owner, sent: t0, answered: t1 });
                if args.back_to_back {
                    while let Ok(m) = rx.try_recv() {
                        state.apply(m);
                    }
                } else {
                    let until = (t1 + Duration::from_millis(args.event_timeout_ms)).min(deadline);
                    if !drain_until(&mut state, &mut rx, until, |s| s.missing(&job, owner, users) == 0).await {
                        timed_out_events += 1;
                    }
                }
            }
            Err(err) => {
                mutation_errors += 1;
                if mutation_errors <= 5 {
                    eprintln!("createJob failed: {err}");
                }
            }
        }
    }
    let sending_done = Instant::now();
    // Stragglers.
    let grace = (Instant::now() + Duration::from_millis(args.event_timeout_ms)).min(deadline + Duration::from_secs(5));
    let target: usize = sent.iter().map(|m| state.ready.iter().filter(|&&r| r % users == m.owner).count()).sum();
    drain_until(&mut state, &mut rx, grace, |s| delivered(s, &mut sent.iter().map(|m| &m.job)) >= target).await;
    let rss_after_events = args.server_pid.and_then(crate::server::rss_kib);

    // Stop the subscribers.
    let _ = stop_tx.send(true);
    let joined = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(tasks)).await;
    while let Ok(m) = rx.try_recv() {
        state.apply(m);
    }

    // Results.
    let per_user: Vec<usize> = (0..users).map(|u| (0..all).filter(|s| s % users == u).count()).collect();
    let expected: usize = sent.iter().map(|m| per_user[m.owner]).sum();
    let mut received = 0usize;
    let mut misrouted = 0usize;
    let mut duplicates = 0usize;
    let mut early = 0usize;
    let mut since_response = Vec::new();
    let mut since_request = Vec::new();
    let mut since_updated_at = Vec::new();
    let mut fanout_complete = Vec::new();
    let mut last_delivery = phase;
    let mut slowest_events = Vec::new();
    for (n, m) in sent.iter().enumerate() {
        let mut seen = HashSet::new();
        let mut slowest = Duration::ZERO;
        for d in state.deliveries.get(&m.job).into_iter().flatten() {
            if d.sub % users != m.owner {
                misrouted += 1;
                continue;
            }
            if !seen.insert(d.sub) {
                duplicates += 1;
                continue;
            }
            received += 1;
            last_delivery = last_delivery.max(d.at);
            if d.at < m.answered {
                early += 1;
            }
            let lat = d.at.saturating_duration_since(m.answered);
            slowest = slowest.max(lat);
            since_response.push(lat);
            since_request.push(d.at.saturating_duration_since(m.sent));
            if let Some(u) = d.updated_at.as_deref().and_then(|u| DateTime::parse_from_rfc3339(u).ok()) {
                if let Ok(l) = (d.wall - u.with_timezone(&Utc)).to_std() {
                    since_updated_at.push(l);
                }
            }
        }
        if seen.len() == per_user[m.owner] {
            fanout_complete.push(slowest);
            slowest_events.push((slowest, n));
        }
    }
    let mut round_trips: Vec<Duration> = sent.iter().map(|m| m.answered - m.sent).collect();

    println!();
    println!("== jobUpdated fan-out on loopback");
    println!(
        "events: {} sent ({} createJob errors, {} waits timed out); deliveries: {received} received of {expected} expected, {} missing, {misrouted} misrouted, {duplicates} duplicate",
        sent.len(),
        mutation_errors,
        timed_out_events,
        expected - received
    );
    dist::print("latency from the createJob response", 44, &mut since_response);
    dist::print("latency from sending createJob", 44, &mut since_request);
    dist::print("latency from the job's updatedAt (wall)", 44, &mut since_updated_at);
    dist::print("createJob round trip", 44, &mut round_trips);
    dist::print("event fully fanned out (slowest subscriber)", 44, &mut fanout_complete);
    slowest_events.sort_unstable_by(|a, b| b.cmp(a));
    let top: Vec<String> =
        slowest_events.iter().take(3).map(|(d, n)| format!("#{} ({:.1} ms)", n + 1, ms(*d))).collect();
    println!("slowest fan-outs: {}", top.join(", "));
    if early > 0 {
        println!("({early} deliveries arrived before the createJob response was read; counted as 0 ms)");
    }
    let span = last_delivery.max(sending_done) - phase;
    println!(
        "throughput: {:.1} createJob/s, {:.0} deliveries/s over {:.2}s",
        sent.len() as f64 / span.as_secs_f64(),
        received as f64 / span.as_secs_f64(),
        span.as_secs_f64()
    );
    println!(
        "subscribers: {} set up, {} failed setup, {} closed by the server during the run, {} protocol errors",
        all - state.setup_failures.len(),
        state.setup_failures.len(),
        state.closed.len(),
        state.protocol_errors.len()
    );
    for (i, why) in state.closed.iter().take(5) {
        println!("  subscriber {i} closed: {why}");
    }
    for (i, e) in state.protocol_errors.iter().take(5) {
        println!("  subscriber {i}: {e}");
    }
    if joined.is_err() {
        println!("(some subscriber tasks did not stop within 10 s)");
    }

    println!();
    println!("== server memory (VmRSS)");
    match (rss_before, rss_idle) {
        (Some(b), Some(a)) => {
            let n = all - state.setup_failures.len();
            println!(
                "before sockets {b} KiB, {n} idle subscriptions {a} KiB: {:.1} KiB per idle subscriber",
                (a as f64 - b as f64) / n.max(1) as f64
            );
            if let Some(h) = rss_half.filter(|_| all - half > 0) {
                println!(
                    "cross-check: {half} idle subscriptions {h} KiB, {all}: {a} KiB: {:.1} KiB per added subscriber",
                    (a as f64 - h as f64) / (all - half) as f64
                );
            }
            if let Some(e) = rss_after_events {
                println!("after the events {e} KiB");
            }
        }
        _ if args.server_pid.is_some() => println!("could not read /proc/<pid>/status"),
        _ => println!("not measured (no --server-pid)"),
    }
    println!("total run time {:.1}s", start.elapsed().as_secs_f64());

    let ok = mutation_errors == 0
        && received == expected
        && misrouted == 0
        && duplicates == 0
        && state.setup_failures.is_empty()
        && state.closed.is_empty();
    if ok {
        0
    } else {
        1
    }
}

/// Creates a SCAN job; returns its id, when the request left and when the answer was read.
async fn create_job(client: &Client, token: &str) -> Result<(String, Instant, Instant), String> {
    let t0 = Instant::now();
    let r = client.gql(Some(token), CREATE_JOB, json!({})).await?;
    let t1 = Instant::now();
    match r["data"]["createJob"]["id"].as_str() {
        Some(id) => Ok((id.to_owned(), t0, t1)),
        None => Err(format!("createJob answered {r}")),
    }
}
