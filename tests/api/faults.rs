//! Faults survived: a TCP proxy between the server and Redis, PostgreSQL or the object
//! store passes traffic, blackholes it (accepts, never answers) or refuses it. For each
//! fault: requests that do not need the dependency keep working, those that do fail fast
//! with a code, the next ones succeed once the fault ends (polled, never a fixed sleep
//! asserted as a timing), nothing is half-written, and the process stops on SIGTERM.
//! A small load runs throughout; each test prints what it saw (answered / failed fast /
//! hung, and the time to recover) for the closing note.
use crate::helpers::{
    admin_url, code,
    proxy::{Mode, Proxy},
    redis_url,
    stripe::FakeStripe,
    TestApp, TestUser,
};
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The request budget the faulty apps run with (`PLINTH_REQUEST_TIMEOUT_MS`).
const BUDGET: Duration = Duration::from_millis(1500);
/// A request unanswered this long counts as hung.
const HUNG: Duration = Duration::from_secs(5);

fn addr_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()).parse().unwrap()
}

/// One request of the load.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    latency: Duration,
    /// `ok`, an error code, or `hung`.
    outcome: String,
}

/// Sends one GraphQL request after another (every 20 ms) until dropped.
struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(app: &TestApp, token: Option<&str>, query: &'static str) -> Load {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let (url, token, out) = (app.url("/graphql"), token.map(str::to_owned), samples.clone());
        let client = reqwest::Client::builder().no_proxy().timeout(HUNG).build().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let at = Instant::now();
                let mut req = client.post(&url).json(&json!({ "query": query }));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let outcome = match req.send().await {
                    Ok(resp) => match resp.json::<Value>().await {
                        Ok(body) if body.get("errors").is_none() => "ok".to_owned(),
                        Ok(body) => code(&body).to_owned(),
                        Err(_) => "unreadable".to_owned(),
                    },
                    Err(e) if e.is_timeout() => "hung".to_owned(),
                    Err(_) => "refused".to_owned(),
                };
                out.lock().unwrap().push(Sample { at, latency: at.elapsed(), outcome });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Load { samples, task }
    }

    /// The samples sent between `from` and `to`.
    fn between(&self, from: Instant, to: Instant) -> Vec<Sample> {
        self.samples.lock().unwrap().iter().filter(|s| s.at >= from && s.at < to).cloned().collect()
    }

    /// The first success sent at or after `from`, when it answered.
    fn first_ok_after(&self, from: Instant) -> Option<Instant> {
        self.samples.lock().unwrap().iter().find(|s| s.at >= from && s.outcome == "ok").map(|s| s.at + s.latency)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One line of the closing note's table: answered / failed fast / hung during the
/// fault, and the time from its end to the first success.
fn report(fault: &str, what: &str, during: &[Sample], recovered: Option<Duration>) {
    let ok = during.iter().filter(|s| s.outcome == "ok").count();
    let hung = during.iter().filter(|s| s.outcome == "hung").count();
    let failed = during.len() - ok - hung;
    let slowest = during.iter().map(|s| s.latency).max().unwrap_or_default();
    let codes: std::collections::BTreeSet<_> =
        during.iter().filter(|s| s.outcome != "ok").map(|s| s.outcome.as_str()).collect();
    println!(
        "FAULT {fault:<22} {what:<18} answered {ok:>4}  failed fast {failed:>4} {codes:?}  hung {hung}  slowest {:>5} ms  recovered in {}",
        slowest.as_millis(),
        recovered.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis())),
    );
}

/// Polls `check` every 50 ms for up to `within`; true once it holds.
async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, mut check: impl FnMut() -> F) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn readiness(app: &TestApp) -> (u16, String) {
    match app.http().get(app.url("/readyz")).timeout(HUNG).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, "no answer".into()),
    }
}

/// Runs one fault for `length` under `loads`, then ends it and waits for every load to
/// succeed again; prints the table lines; returns the samples during the fault.
async fn run_fault(
    proxy: &Proxy,
    mode: Mode,
    fault: &str,
    length: Duration,
    loads: &[(&str, &Load)],
) -> Vec<Vec<Sample>> {
    let start = Instant::now();
    proxy.set(mode);
    tokio::time::sleep(length).await;
    let end = Instant::now();
    proxy.set(Mode::Pass);
    let mut recovered = vec![None; loads.len()];
    eventually(Duration::from_secs(30), || {
        let all = loads.iter().enumerate().all(|(i, (_, load))| {
            recovered[i] = load.first_ok_after(end).map(|t| t.saturating_duration_since(end));
            recovered[i].is_some()
        });
        async move { all }
    })
    .await;
    loads
        .iter()
        .zip(recovered)
        .map(|((what, load), rec)| {
            let during = load.between(start, end);
            report(fault, what, &during, rec);
            assert!(rec.is_some(), "{what} did not recover after {fault}");
            during
        })
        .collect()
}

async fn registered(app: &TestApp) -> TestUser {
    app.register("faulty").await
}

#[tokio::test]
async fn redis_refused_or_blackholed_degrades_to_this_instance_and_recovers() {
    let redis = Proxy::start(addr_of(&redis_url())).await;
    let app = TestApp::builder()
        .with_env("REDIS_URL", &redis.url_for(&redis_url()))
        .with_env("PLINTH_LOGIN_LIMIT_PER_IP", "1000000")
        .with_env("PLINTH_REQUEST_TIMEOUT_MS", &BUDGET.as_millis().to_string())
        .spawn()
        .await;
    let ann = registered(&app).await;
    assert_eq!(readiness(&app).await, (200, "ready".to_owned()));
    let signed_in = Load::start(&app, Some(&ann.access), "{ me { id } }");
    let anonymous = Load::start(&app, None, "{ plans { code } }");
    for (mode, fault) in [(Mode::Refuse, "redis refused"), (Mode::Blackhole, "redis blackholed")] {
        let loads = [("signed-in me", &signed_in), ("anonymous plans", &anonymous)];
        let proxy = &redis;
        let watcher = async {
            // While it lasts, readiness says the instance runs degraded.
            eventually(Duration::from_secs(3), || async { readiness(&app).await.1.contains("degraded: redis") }).await
        };
        let (during, degraded) = tokio::join!(run_fault(proxy, mode, fault, Duration::from_secs(3), &loads), watcher);
        assert!(degraded, "readiness never said degraded during {fault}");
        for samples in &during {
            assert!(!samples.is_empty());
            // Redis is optional: every request is answered, none waits on it.
            assert!(samples.iter().all(|s| s.outcome == "ok"), "{fault}: {samples:?}");
            assert!(samples.iter().all(|s| s.latency < BUDGET), "{fault}: a request waited on Redis");
        }
        let back = Instant::now();
        assert!(
            eventually(Duration::from_secs(10), || async { readiness(&app).await == (200, "ready".to_owned()) }).await,
            "readiness did not return to ready after {fault}"
        );
        println!("FAULT {fault:<22} shared limits and events again {} ms after it ended", back.elapsed().as_millis());
    }
    let metrics = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("plinth_dependency_up{dependency=\"redis\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_revocation_made_while_redis_was_away_reaches_the_instance_when_it_returns() {
    // A reaches Redis directly; B through the proxy, which is about to fail.
    let a = TestApp::builder().with_redis().spawn().await;
    let redis = Proxy::start(addr_of(&redis_url())).await;
    let b = a
        .another_instance_with(&[("REDIS_URL", &redis.url_for(&redis_url())), ("PLINTH_WS_KEEPALIVE_SECS", "1")])
        .await;
    let ann = registered(&a).await;
    let created = a
        .gql(
            Some(&ann.access),
            "mutation { createApiToken(input: {name: \"ci\", scopes: [\"drafts:read\"]}) { token apiToken { id } } }",
            json!({}),
        )
        .await;
    let token = created["data"]["createApiToken"]["token"].as_str().unwrap().to_owned();
    let id = created["data"]["createApiToken"]["apiToken"]["id"].as_str().unwrap().to_owned();
    let drafts = "{ drafts(first: 1) { edges { node { id } } } }";
    assert!(b.gql(Some(&token), drafts, json!({})).await.get("errors").is_none());
    let mut socket = crate::helpers::WsClient::connect(&b, Some(&token)).await;
    // A second session of Ann's, known to B, ended while Redis is away.
    let login = a
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
            json!({ "i": { "email": ann.email, "password": ann.password } }),
        )
        .await;
    let session_access = login["data"]["login"]["accessToken"].as_str().unwrap().to_owned();
    let session_refresh = login["data"]["login"]["refreshToken"].as_str().unwrap().to_owned();
    assert!(b.gql(Some(&session_access), drafts, json!({})).await.get("errors").is_none());
    redis.set(Mode::Refuse);
    assert!(eventually(Duration::from_secs(5), || async { readiness(&b).await.1.contains("degraded") }).await);
    let revoked = a.gql(Some(&ann.access), "mutation($id: ID!) { revokeApiToken(id: $id) }", json!({ "id": id })).await;
    assert_eq!(revoked["data"]["revokeApiToken"], true, "{revoked}");
    let out = b.gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": session_refresh })).await;
    assert_eq!(out["data"]["logout"], true, "B signs out without Redis: {out}");
    // A refuses the token at once; B missed the event while Redis was away. B refuses
    // the session it ended itself; A missed that one.
    assert_eq!(code(&a.gql(Some(&token), drafts, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(code(&b.gql(Some(&session_access), drafts, json!({})).await), "UNAUTHENTICATED");
    redis.set(Mode::Pass);
    // Back on Redis, B replays revocations from Postgres.
    assert!(
        eventually(Duration::from_secs(15), || async {
            code(&b.gql(Some(&token), drafts, json!({})).await) == "UNAUTHENTICATED"
        })
        .await,
        "B still accepts a token revoked while its Redis was away"
    );
    // The socket the revoked token opened on B closes by B's next keep-alive tick.
    loop {
        match socket.next(Duration::from_secs(5)).await {
            crate::helpers::WsEvent::Closed(code) => {
                assert_eq!(code, 4403);
                break;
            }
            crate::helpers::WsEvent::Timeout => panic!("the revoked token's socket on B stayed open"),
            _ => continue,
        }
    }
    // A never lost Redis and heard nothing of the session B ended meanwhile: B publishes
    // the revocations it could only apply locally as soon as Redis answers it again.
    assert!(
        eventually(Duration::from_secs(15), || async {
            code(&a.gql(Some(&session_access), drafts, json!({})).await) == "UNAUTHENTICATED"
        })
        .await,
        "A still accepts a session B ended while B's Redis was away"
    );
}

#[tokio::test]
async fn postgres_refused_or_blackholed_fails_fast_writes_nothing_and_recovers() {
    let pg = Proxy::start(addr_of(&admin_url("postgres"))).await;
    let app = TestApp::builder()
        .with_database_via(pg.addr)
        .with_env("PLINTH_DB_ACQUIRE_TIMEOUT_MS", "500")
        .with_env("PLINTH_REQUEST_TIMEOUT_MS", &BUDGET.as_millis().to_string())
        .spawn()
        .await;
    let ann = registered(&app).await;
    let signed_in = Load::start(&app, Some(&ann.access), "{ me { id } }");
    let anonymous = Load::start(&app, None, "{ plans { code } }");
    for (mode, fault) in [(Mode::Refuse, "postgres refused"), (Mode::Blackhole, "postgres blackholed")] {
        let loads = [("signed-in me", &signed_in), ("anonymous plans", &anonymous)];
        let title = format!("written during {fault}");
        let during_fault = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let started = Instant::now();
            let write = app
                .gql(
                    Some(&ann.access),
                    "mutation($t: String!) { createDraft(input: {title: $t}) { id } }",
                    json!({ "t": title }),
                )
                .await;
            let ready = readiness(&app).await;
            (write, started.elapsed(), ready)
        };
        let (during, (write, took, ready)) =
            tokio::join!(run_fault(&pg, mode, fault, Duration::from_secs(3), &loads), during_fault);
        // What needs the database fails fast with its code...
        assert_eq!(code(&write), "SERVICE_UNAVAILABLE", "{fault}: {write}");
        // Bounded by the request deadline (a blackholed connection would otherwise hang
        // for the kernel's TCP timeout); the margin is for a loaded 2-core CI, where the
        // whole suite runs beside this test (2.0 s seen once with 0.5 s of margin).
        assert!(took < BUDGET * 2, "{fault}: the write took {took:?}");
        assert_eq!(ready.0, 503, "{fault}: readiness {ready:?}");
        assert!(during[0].iter().all(|s| s.outcome != "hung"), "{fault}: a signed-in request hung");
        assert!(during[0].iter().any(|s| s.outcome == "SERVICE_UNAVAILABLE"), "{fault}: {:?}", during[0]);
        // ... what does not keeps working.
        assert!(during[1].iter().all(|s| s.outcome == "ok"), "{fault}: plans failed: {:?}", during[1]);
        // And nothing of the failed write remains.
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM drafts WHERE title = $1")
            .bind(&title)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(n, 0, "{fault}: a draft was half-written");
    }
    let after =
        app.gql(Some(&ann.access), "mutation { createDraft(input: {title: \"after\"}) { id } }", json!({})).await;
    assert!(after.get("errors").is_none(), "{after}");
}

#[tokio::test]
async fn a_stuck_object_store_costs_a_request_its_timeout() {
    let s3 = Proxy::start(addr_of(&crate::helpers::s3_endpoint())).await;
    let app = TestApp::builder()
        .with_s3()
        .with_env("PLINTH_S3_ENDPOINT", s3.url_for(&crate::helpers::s3_endpoint()).trim_end_matches('/'))
        .with_env("PLINTH_S3_TIMEOUT_MS", "500")
        .with_env("PLINTH_REQUEST_TIMEOUT_MS", &BUDGET.as_millis().to_string())
        .spawn()
        .await;
    let ann = registered(&app).await;
    let bytes = crate::helpers::png(4, 3);
    let r = app
        .gql(
            Some(&ann.access),
            "mutation($n: Int!) { createUpload(contentType: \"image/png\", byteSize: $n) {
               photo { id } uploadUrl headers { name value } } }",
            json!({ "n": bytes.len() }),
        )
        .await;
    let upload = &r["data"]["createUpload"];
    assert!(app.put_upload(upload, bytes).await.status().is_success(), "{r}");
    let photo = upload["photo"]["id"].as_str().unwrap().to_owned();
    let me = Load::start(&app, Some(&ann.access), "{ me { id } }");
    s3.set(Mode::Blackhole);
    let started = Instant::now();
    let confirm = "mutation($p: ID!) { confirmUpload(photoId: $p) { id status } }";
    let stuck = app.gql(Some(&ann.access), confirm, json!({ "p": photo })).await;
    let took = started.elapsed();
    assert_eq!(code(&stuck), "SERVICE_UNAVAILABLE", "{stuck}");
    assert!(took < Duration::from_millis(500) * 3, "confirmUpload waited {took:?} on a stuck store");
    let end = Instant::now();
    s3.set(Mode::Pass);
    let during = me.between(started, end);
    assert!(during.iter().all(|s| s.outcome == "ok"), "requests that need no store kept working: {during:?}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.gql(Some(&ann.access), confirm, json!({ "p": photo })).await["data"]["confirmUpload"]["status"]
                == "READY"
        })
        .await,
        "confirmUpload did not recover"
    );
    println!(
        "FAULT {:<22} {:<18} confirmUpload SERVICE_UNAVAILABLE in {} ms; other requests answered {}",
        "s3 blackholed",
        "signed-in me",
        took.as_millis(),
        during.len()
    );
}

#[tokio::test]
async fn a_stuck_payment_provider_costs_a_checkout_its_timeout_and_nothing_else() {
    let stripe = FakeStripe::start().await;
    let proxy = Proxy::start(addr_of(&stripe.url)).await;
    let app = TestApp::builder()
        .with_stripe(&stripe)
        .with_env("PLINTH_STRIPE_API_BASE", proxy.url_for(&stripe.url).trim_end_matches('/'))
        .with_env("PLINTH_STRIPE_TIMEOUT_MS", "500")
        .with_env("PLINTH_REQUEST_TIMEOUT_MS", &BUDGET.as_millis().to_string())
        .spawn()
        .await;
    let ann = registered(&app).await;
    let me = Load::start(&app, Some(&ann.access), "{ me { id } billing { plan state } }");
    let checkout = "mutation { startCheckout(input: {plan: PRO, interval: MONTH}) { url } }";
    proxy.set(Mode::Blackhole);
    let started = Instant::now();
    let stuck = app.gql(Some(&ann.access), checkout, json!({})).await;
    let took = started.elapsed();
    assert_eq!(code(&stuck), "SERVICE_UNAVAILABLE", "{stuck}");
    assert!(took < BUDGET, "startCheckout waited {took:?} on a stuck provider");
    // Another request of the same user while the first is stuck is not queued behind it.
    let again = app.gql(Some(&ann.access), checkout, json!({})).await;
    assert_eq!(code(&again), "SERVICE_UNAVAILABLE", "{again}");
    let end = Instant::now();
    proxy.set(Mode::Pass);
    let during = me.between(started, end);
    assert!(during.iter().all(|s| s.outcome == "ok"), "requests that need no provider kept working: {during:?}");
    let billing = app.gql(Some(&ann.access), "{ billing { plan subscriptionStatus } }", json!({})).await;
    assert_eq!(billing["data"]["billing"]["plan"], "FREE", "nothing was half-written: {billing}");
    assert!(stripe.requests_to("POST /v1/checkout/sessions").is_empty(), "no session reached the provider");
    assert!(
        eventually(Duration::from_secs(10), || async {
            let r = app.gql(Some(&ann.access), checkout, json!({})).await;
            r["data"]["startCheckout"]["url"].is_string()
        })
        .await,
        "startCheckout did not recover"
    );
    assert_eq!(stripe.sessions().len(), 1, "one payable session after the retries");
    println!(
        "FAULT {:<22} {:<18} startCheckout SERVICE_UNAVAILABLE in {} ms; other requests answered {}; recovered in {} ms",
        "stripe blackholed",
        "signed-in me",
        took.as_millis(),
        during.len(),
        end.elapsed().as_millis()
    );
}

#[tokio::test]
async fn sigterm_stops_the_process_while_its_dependencies_hang() {
    let (pg, redis) = (Proxy::start(addr_of(&admin_url("postgres"))).await, Proxy::start(addr_of(&redis_url())).await);
    let mut app = TestApp::builder()
        .with_database_via(pg.addr)
        .with_env("REDIS_URL", &redis.url_for(&redis_url()))
        .in_its_own_process()
        .spawn()
        .await;
    let ann = registered(&app).await;
    pg.set(Mode::Blackhole);
    redis.set(Mode::Blackhole);
    // A request in flight, stuck on the database.
    let in_flight = {
        let (url, token) = (app.url("/graphql"), ann.access.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
            client.post(url).bearer_auth(token).json(&json!({ "query": "{ me { id } }" })).send().await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = app.pid().expect("its own process").to_string();
    let sent = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // The drain timeout is 10 s: the process ends within it, whatever the dependencies do.
    let status = app.wait_exit(Duration::from_secs(15)).await;
    println!("FAULT {:<22} SIGTERM to exit: {} ms", "postgres+redis stuck", sent.elapsed().as_millis());
    assert!(status.is_some(), "plinth serve still runs 15 s after SIGTERM");
    let _ = in_flight.await;
}
