//! Jobs over the wire: the whole loop seen live by its owner's subscription and by
//! nobody else's, leases that expire, retries, cancellation, worker confinement, two
//! instances on one Redis, and sockets that close when their token expires or their
//! session is revoked.

use crate::helpers::{code, png, TestApp, WsClient, WsEvent};
use serde_json::{json, Value};
use std::time::Duration;

const CREATE_JOB: &str = "mutation($i: CreateJobInput!) { createJob(input: $i) { id status kind } }";
const SUB: &str = "subscription($id: ID) { jobUpdated(id: $id) { id status progress } }";
const WAIT: Duration = Duration::from_secs(10);

async fn create_job(app: &TestApp, token: &str, kind: &str, draft: Option<&str>) -> String {
    let r = app.gql(Some(token), CREATE_JOB, json!({ "i": { "kind": kind, "draftId": draft } })).await;
    r["data"]["createJob"]["id"].as_str().unwrap_or_else(|| panic!("createJob: {r}")).to_owned()
}

async fn job(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .gql(
            Some(token),
            "query($id: ID!) { job(id: $id) { id status progress attempts error result cancelRequested logs { level message } } }",
            json!({ "id": id }),
        )
        .await;
    r["data"]["job"].clone()
}

/// Collects statuses from a subscription until `last` arrives.
async fn statuses_until(ws: &mut WsClient, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match ws.next(WAIT).await {
            WsEvent::Next(p) => {
                let s = p["data"]["jobUpdated"]["status"].as_str().unwrap_or_else(|| panic!("{p}")).to_owned();
                let done = s == last;
                seen.push(s);
                if done {
                    return seen;
                }
            }
            other => panic!("expected {last}, got {other:?} after {seen:?}"),
        }
    }
}

#[tokio::test]
async fn the_whole_loop_is_seen_live_by_its_owner_only() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let draft = app.create_draft(&ann.access, "Jacket").await;
    let photo = app.upload_photo(&ann.access, Some(&draft), "image/png", &png(4, 3)).await;
    sqlx::query("UPDATE photos SET width = NULL, height = NULL, sha256 = NULL").execute(&app.db).await.unwrap();

    let mut owner = WsClient::connect(&app, Some(&ann.access)).await;
    owner.subscribe("all", SUB, json!({})).await;
    let mut other = WsClient::connect(&app, Some(&bob.access)).await;
    other.subscribe("all", SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let id = create_job(&app, &ann.access, "SCAN", Some(&draft)).await;
    // Each event is re-read when delivered, so wait for the queued state before a
    // worker can move the job on.
    assert_eq!(statuses_until(&mut owner, "QUEUED").await, ["QUEUED"]);
    let worker = app.worker(&app.worker_token(&["scan"]), &["scan"]);
    assert!(worker.run_once().await.unwrap(), "the worker found the job");

    // Later states may be coalesced (a re-read can already see a newer state), but the
    // owner sees the end, and nothing else.
    let seen = statuses_until(&mut owner, "SUCCEEDED").await;
    assert!(seen.iter().all(|s| s == "RUNNING" || s == "SUCCEEDED"), "{seen:?}");
    assert!(matches!(other.next(Duration::from_millis(500)).await, WsEvent::Timeout), "Bob saw Ann's job");

    let done = job(&app, &ann.access, &id).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["progress"], 1.0);
    let logs: Vec<_> = done["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert!(logs.iter().any(|l| l.starts_with("claimed")) && logs.contains(&"completed"), "{logs:?}");
    // SCAN recorded the photo's dimensions and hash.
    let r = app
        .gql(Some(&ann.access), "query($p: ID!) { photo(id: $p) { width height sha256 } }", json!({ "p": photo["id"] }))
        .await;
    assert_eq!(r["data"]["photo"]["width"], 4);
    assert_eq!(r["data"]["photo"]["sha256"], photo["sha256"]);
    // Bob cannot read it either way.
    assert_eq!(job(&app, &bob.access, &id).await, Value::Null);

    // PREPARE then PUBLISH on the same draft.
    create_job(&app, &ann.access, "PREPARE", Some(&draft)).await;
    create_job(&app, &ann.access, "PUBLISH", Some(&draft)).await;
    let all = app.worker(&app.worker_token(&["prepare", "publish"]), &["prepare", "publish"]);
    assert!(all.run_once().await.unwrap());
    assert!(all.run_once().await.unwrap());
    assert!(!all.run_once().await.unwrap(), "the queue is empty");
    let d = app
        .gql(Some(&ann.access), "query($d: ID!) { draft(id: $d) { status description } }", json!({ "d": draft }))
        .await;
    assert_eq!(d["data"]["draft"]["status"], "PUBLISHED");
    assert!(d["data"]["draft"]["description"].as_str().unwrap().contains("4×3"), "{d}");
    let dash = app.gql(Some(&ann.access), "{ dashboard { jobs { succeeded queued } } }", json!({})).await;
    assert_eq!(dash["data"]["dashboard"]["jobs"], json!({ "succeeded": 3, "queued": 0 }));
}

#[tokio::test]
async fn following_one_job_starts_with_its_current_state_and_only_for_its_owner() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let draft = app.create_draft(&ann.access, "Jacket").await;
    app.upload_photo(&ann.access, Some(&draft), "image/png", &png(4, 3)).await;
    let id = create_job(&app, &ann.access, "SCAN", Some(&draft)).await;
    // The job ends before anyone follows it (a client that subscribes just after
    // `createJob` returns can be that late).
    let worker = app.worker(&app.worker_token(&["scan"]), &["scan"]);
    assert!(worker.run_once().await.unwrap());

    let mut late = WsClient::connect(&app, Some(&ann.access)).await;
    late.subscribe("one", SUB, json!({ "id": id })).await;
    match late.next(WAIT).await {
        WsEvent::Next(p) => {
            assert_eq!(p["data"]["jobUpdated"]["id"], id.as_str());
            assert_eq!(p["data"]["jobUpdated"]["status"], "SUCCEEDED", "{p}");
        }
        other => panic!("the job's current state first, got {other:?}"),
    }
    // Following all jobs sends nothing until something changes.
    let mut all = WsClient::connect(&app, Some(&ann.access)).await;
    all.subscribe("all", SUB, json!({})).await;
    assert!(matches!(all.next(Duration::from_millis(500)).await, WsEvent::Timeout));
    // Bob following Ann's job by its id learns nothing, not even that it exists.
    let mut other = WsClient::connect(&app, Some(&bob.access)).await;
    other.subscribe("one", SUB, json!({ "id": id })).await;
    assert!(matches!(other.next(Duration::from_millis(500)).await, WsEvent::Timeout), "Bob saw Ann's job");
    // Then each change, as before.
    let next = create_job(&app, &ann.access, "PREPARE", Some(&draft)).await;
    let mut follow = WsClient::connect(&app, Some(&ann.access)).await;
    follow.subscribe("one", SUB, json!({ "id": next })).await;
    assert_eq!(statuses_until(&mut follow, "QUEUED").await, ["QUEUED"]);
    assert!(app.worker(&app.worker_token(&["prepare"]), &["prepare"]).run_once().await.unwrap());
    let seen = statuses_until(&mut follow, "SUCCEEDED").await;
    assert!(seen.iter().all(|s| s == "RUNNING" || s == "SUCCEEDED"), "{seen:?}");
}

#[tokio::test]
async fn in_development_the_server_runs_the_worker_itself() {
    let app = TestApp::builder().with_env("PLINTH_IN_PROCESS_WORKER", "true").spawn().await;
    let ann = app.register("ann").await;
    let draft = app.create_draft(&ann.access, "Jacket").await;
    let photo = app.upload_photo(&ann.access, Some(&draft), "image/png", &png(5, 2)).await;
    sqlx::query("UPDATE photos SET width = NULL, height = NULL").execute(&app.db).await.unwrap();
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("all", SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Nothing else runs: the server's own worker claims, scans and completes it.
    let id = create_job(&app, &ann.access, "SCAN", Some(&draft)).await;
    let seen = statuses_until(&mut ws, "SUCCEEDED").await;
    assert!(seen.iter().all(|s| ["QUEUED", "RUNNING", "SUCCEEDED"].contains(&s.as_str())), "{seen:?}");
    assert_eq!(job(&app, &ann.access, &id).await["progress"], 1.0);
    let r = app
        .gql(Some(&ann.access), "query($p: ID!) { photo(id: $p) { width height } }", json!({ "p": photo["id"] }))
        .await;
    assert_eq!(r["data"]["photo"], json!({ "width": 5, "height": 2 }));
}

#[tokio::test]
async fn workers_are_confined_to_their_jobs_and_kinds() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let draft = app.create_draft(&ann.access, "x").await;
    let id = create_job(&app, &ann.access, "PREPARE", Some(&draft)).await;
    let scan_only = app.worker_token(&["scan"]);
    let r = app.gql(Some(&scan_only), "mutation { claimJob(kinds: [PREPARE]) { id } }", json!({})).await;
    assert_eq!(code(&r), "FORBIDDEN");
    let user = app.gql(Some(&ann.access), "mutation { claimJob(kinds: [PREPARE]) { id } }", json!({})).await;
    assert_eq!(code(&user), "FORBIDDEN");

    let one = app.worker_token(&["prepare"]);
    let two = app.worker_token(&["prepare"]);
    let claimed = app.gql(Some(&one), "mutation { claimJob(kinds: [PREPARE]) { id status input } }", json!({})).await;
    assert_eq!(claimed["data"]["claimJob"]["id"], id.as_str());
    assert_eq!(claimed["data"]["claimJob"]["input"]["draft"]["title"], "x");
    let nothing = app.gql(Some(&two), "mutation { claimJob(kinds: [PREPARE]) { id } }", json!({})).await;
    assert_eq!(nothing["data"]["claimJob"], Value::Null, "a held job is not claimed twice");
    for q in [
        "mutation($id: ID!) { reportJobProgress(id: $id, progress: 0.5) { id } }",
        "mutation($id: ID!) { completeJob(id: $id) { id } }",
        "mutation($id: ID!) { failJob(id: $id, error: \"x\") { id } }",
    ] {
        let r = app.gql(Some(&two), q, json!({ "id": id })).await;
        assert_eq!(code(&r), "NOT_FOUND", "another worker's job: {r}");
    }
    assert_eq!(
        app.gql(Some(&two), "query($id: ID!) { job(id: $id) { id } }", json!({ "id": id })).await["data"]["job"],
        Value::Null
    );
    let bad = app
        .gql(Some(&one), "mutation($id: ID!) { reportJobProgress(id: $id, progress: 1.5) { id } }", json!({ "id": id }))
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
    // Users cannot complete jobs.
    let r = app.gql(Some(&ann.access), "mutation($id: ID!) { completeJob(id: $id) { id } }", json!({ "id": id })).await;
    assert_eq!(code(&r), "FORBIDDEN");
}

#[tokio::test]
async fn bad_job_requests_are_refused() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let bobs = app.create_draft(&bob.access, "bob's").await;
    let no_draft = app.gql(Some(&ann.access), CREATE_JOB, json!({ "i": { "kind": "PREPARE" } })).await;
    assert_eq!(code(&no_draft), "BAD_USER_INPUT");
    let foreign = app.gql(Some(&ann.access), CREATE_JOB, json!({ "i": { "kind": "PUBLISH", "draftId": bobs } })).await;
    assert_eq!(code(&foreign), "NOT_FOUND");
    let anon = app.gql(None, CREATE_JOB, json!({ "i": { "kind": "SCAN" } })).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
    assert_eq!(app.count("jobs").await, 0);
}

#[tokio::test]
async fn expired_leases_are_retried_then_failed() {
    let app =
        TestApp::builder().with_env("PLINTH_JOB_LEASE_SECS", "1").with_env("PLINTH_JOB_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let r = app.gql(Some(&ann.access), CREATE_JOB, json!({ "i": { "kind": "SCAN", "maxAttempts": 2 } })).await;
    let id = r["data"]["createJob"]["id"].as_str().unwrap().to_owned();
    let token = app.worker_token(&["scan"]);
    // Each expiry counts in plinth_job_lease_expiries_total (counted once its sweep committed).
    let expiries = |t: &str| crate::observability::value(t, "plinth_job_lease_expiries_total").unwrap_or(0.0);
    let before = expiries(&app.scrape().await);
    let claim = "mutation { claimJob(kinds: [SCAN]) { id attempts } }";
    assert_eq!(app.gql(Some(&token), claim, json!({})).await["data"]["claimJob"]["attempts"], 1);
    // The worker goes silent: the sweeper returns the job to the queue with backoff.
    let mut j = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        j = job(&app, &ann.access, &id).await;
        if j["status"] == "QUEUED" {
            break;
        }
    }
    assert_eq!(j["status"], "QUEUED", "{j}");
    assert!(j["error"].as_str().unwrap().contains("lease expired"));
    let text = crate::observability::scrape_until(&app, |t| expiries(t) >= before + 1.0).await;
    assert!(expiries(&text) >= before + 1.0, "the requeue is not counted: {before} then {}", expiries(&text));
    assert_eq!(app.gql(Some(&token), claim, json!({})).await["data"]["claimJob"], Value::Null, "backoff holds it");
    sqlx::query("UPDATE jobs SET run_after = now()").execute(&app.db).await.unwrap();
    assert_eq!(app.gql(Some(&token), claim, json!({})).await["data"]["claimJob"]["attempts"], 2);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        j = job(&app, &ann.access, &id).await;
        if j["status"] == "FAILED" {
            break;
        }
    }
    assert_eq!(j["status"], "FAILED", "out of attempts: {j}");
    let text = crate::observability::scrape_until(&app, |t| expiries(t) >= before + 2.0).await;
    assert!(expiries(&text) >= before + 2.0, "the last expiry is not counted: {before} then {}", expiries(&text));
}

#[tokio::test]
async fn failures_retry_with_backoff_until_the_last_attempt() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let r = app.gql(Some(&ann.access), CREATE_JOB, json!({ "i": { "kind": "SCAN", "maxAttempts": 2 } })).await;
    let id = r["data"]["createJob"]["id"].as_str().unwrap().to_owned();
    let token = app.worker_token(&["scan"]);
    let claim = "mutation { claimJob(kinds: [SCAN]) { id } }";
    let fail = "mutation($id: ID!) { failJob(id: $id, error: \"boom\") { status runAfter } }";
    app.gql(Some(&token), claim, json!({})).await;
    let first = app.gql(Some(&token), fail, json!({ "id": id })).await;
    assert_eq!(first["data"]["failJob"]["status"], "QUEUED");
    sqlx::query("UPDATE jobs SET run_after = now()").execute(&app.db).await.unwrap();
    app.gql(Some(&token), claim, json!({})).await;
    let last = app.gql(Some(&token), fail, json!({ "id": id })).await;
    assert_eq!(last["data"]["failJob"]["status"], "FAILED");
    let again = app.gql(Some(&token), fail, json!({ "id": id })).await;
    assert_eq!(code(&again), "CONFLICT");
}

#[tokio::test]
async fn cancel_stops_a_queued_job_at_once_and_a_running_one_at_its_next_report() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let cancel = "mutation($id: ID!) { cancelJob(id: $id) { status cancelRequested } }";
    let queued = create_job(&app, &ann.access, "SCAN", None).await;
    let r = app.gql(Some(&ann.access), cancel, json!({ "id": queued })).await;
    assert_eq!(r["data"]["cancelJob"]["status"], "CANCELED");
    assert_eq!(code(&app.gql(Some(&ann.access), cancel, json!({ "id": queued })).await), "CONFLICT");

    let running = create_job(&app, &ann.access, "SCAN", None).await;
    let token = app.worker_token(&["scan"]);
    app.gql(Some(&token), "mutation { claimJob(kinds: [SCAN]) { id } }", json!({})).await;
    let r = app.gql(Some(&ann.access), cancel, json!({ "id": running })).await;
    assert_eq!(r["data"]["cancelJob"], json!({ "status": "RUNNING", "cancelRequested": true }));
    let report = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { reportJobProgress(id: $id, progress: 0.3) { status } }",
            json!({ "id": running }),
        )
        .await;
    assert_eq!(report["data"]["reportJobProgress"]["status"], "CANCELED", "the worker is told to stop");
    assert_eq!(job(&app, &ann.access, &running).await["status"], "CANCELED");
}

#[tokio::test]
async fn an_event_crosses_instances_through_redis() {
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    let mut ws = WsClient::connect(&two, Some(&ann.access)).await;
    ws.subscribe("s", SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = create_job(&one, &ann.access, "SCAN", None).await;
    match ws.next(WAIT).await {
        WsEvent::Next(p) => assert_eq!(p["data"]["jobUpdated"]["id"], id.as_str()),
        other => panic!("no event on the other instance: {other:?}"),
    }
}

#[tokio::test]
async fn sockets_close_when_the_token_expires_unless_renewed() {
    let app = TestApp::builder().with_env("PLINTH_ACCESS_TOKEN_TTL_SECS", "2").spawn().await;
    let mut ann = app.register("ann").await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("s", SUB, json!({})).await;
    match ws.next(Duration::from_secs(5)).await {
        WsEvent::Closed(code) => assert_eq!(code, 4401),
        other => panic!("expected a close at expiry, got {other:?}"),
    }

    // Renewed in band with a fresh token: the socket outlives the first token.
    app.refresh_session(&mut ann).await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("s", SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.refresh_session(&mut ann).await;
    let token = ann.access.clone();
    ws.send(json!({ "type": "ping", "payload": { "authorization": format!("Bearer {token}") } })).await;
    match ws.next(Duration::from_millis(1500)).await {
        WsEvent::Other(v) => assert_eq!(v["type"], "pong"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // Past the first token's expiry, still open and delivering.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = create_job(&app, &token, "SCAN", None).await;
    match ws.next(Duration::from_secs(3)).await {
        WsEvent::Next(p) => assert_eq!(p["data"]["jobUpdated"]["id"], id.as_str()),
        other => panic!("the renewed socket should deliver, got {other:?}"),
    }
}

#[tokio::test]
async fn revoking_the_session_closes_its_sockets() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("s", SUB, json!({})).await;
    app.gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": ann.refresh })).await;
    match ws.next(WAIT).await {
        WsEvent::Closed(code) => assert_eq!(code, 4403),
        other => panic!("expected a close on revocation, got {other:?}"),
    }
}

#[tokio::test]
async fn anonymous_sockets_cannot_follow_jobs() {
    let app = TestApp::spawn().await;
    let mut ws = WsClient::connect(&app, None).await;
    ws.subscribe("s", SUB, json!({})).await;
    match ws.next(WAIT).await {
        WsEvent::Next(p) => assert_eq!(p["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{p}"),
        WsEvent::Other(v) => assert_eq!(v["payload"][0]["extensions"]["code"], "UNAUTHENTICATED", "{v}"),
        other => panic!("{other:?}"),
    }
}

const QUEUED_SUB: &str = "subscription($k: [JobKind!]!) { jobQueued(kinds: $k) { jobId kind } }";

/// The next `jobQueued` item on `ws`, or a panic naming what came instead.
async fn next_queued(ws: &mut WsClient) -> Value {
    match ws.next(WAIT).await {
        WsEvent::Next(p) if p["errors"].is_null() => p["data"]["jobQueued"].clone(),
        other => panic!("expected a jobQueued item, got {other:?}"),
    }
}

/// The `extensions.code` of a subscription refused at once.
async fn refusal(ws: &mut WsClient) -> String {
    match ws.next(WAIT).await {
        WsEvent::Next(p) => p["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("{p}")).to_owned(),
        WsEvent::Other(v) => v["payload"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("{v}")).to_owned(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_idle_worker_claims_a_queued_job_when_told_not_at_its_next_poll() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let token = app.worker_token(&["scan"]);
    // A poll far longer than this test's patience: only the event can wake it in time.
    let worker = plinth_worker::Worker::new(plinth_worker::WorkerSettings {
        api_url: app.url("/graphql"),
        token: token.into(),
        kinds: vec!["SCAN".into()],
        idle_poll: Duration::from_secs(60),
        listen: true,
    })
    .unwrap();
    let mut listening = worker.listening();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { worker.run(async move { stopped.await.unwrap_or(()) }).await });
    tokio::time::timeout(WAIT, listening.wait_for(|l| *l)).await.expect("the worker listens").unwrap();

    let mut owner = WsClient::connect(&app, Some(&ann.access)).await;
    owner.subscribe("all", SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = create_job(&app, &ann.access, "SCAN", None).await;
    let seen = statuses_until(&mut owner, "SUCCEEDED").await;
    assert!(seen.contains(&"SUCCEEDED".to_owned()), "{seen:?}");
    assert_eq!(job(&app, &ann.access, &id).await["status"], "SUCCEEDED");

    // The wait from queue to claim is measured once the claim committed.
    let text = app.scrape().await;
    let count = text
        .lines()
        .find(|l| l.starts_with("plinth_job_queue_wait_seconds_count{kind=\"scan\"}"))
        .unwrap_or_else(|| panic!("no queue-wait histogram:\n{text}"));
    assert!(count.ends_with(" 1"), "{count}");
    assert!(text.contains("plinth_job_queue_wait_seconds_count{kind=\"prepare\"} 0"), "every kind from the start");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn only_workers_hear_of_queued_jobs_and_only_of_their_kinds() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let draft = app.create_draft(&ann.access, "x").await;

    // A user token and an anonymous socket are refused, with a code.
    let mut user = WsClient::connect(&app, Some(&ann.access)).await;
    user.subscribe("q", QUEUED_SUB, json!({ "k": ["SCAN"] })).await;
    assert_eq!(refusal(&mut user).await, "FORBIDDEN");
    let mut anonymous = WsClient::connect(&app, None).await;
    anonymous.subscribe("q", QUEUED_SUB, json!({ "k": ["SCAN"] })).await;
    assert_eq!(refusal(&mut anonymous).await, "FORBIDDEN");
    // A worker cannot listen for kinds its token does not allow.
    let mut scan_only = WsClient::connect(&app, Some(&app.worker_token(&["scan"]))).await;
    scan_only.subscribe("q", QUEUED_SUB, json!({ "k": ["PREPARE"] })).await;
    assert_eq!(refusal(&mut scan_only).await, "FORBIDDEN");

    // A worker listening for SCAN (its token allows PREPARE too) hears of SCAN jobs only.
    let mut ws = WsClient::connect(&app, Some(&app.worker_token(&["scan", "prepare"]))).await;
    ws.subscribe("q", QUEUED_SUB, json!({ "k": ["SCAN"] })).await;
    assert_eq!(next_queued(&mut ws).await, json!({ "jobId": null, "kind": null }), "first: it listens");
    create_job(&app, &ann.access, "PREPARE", Some(&draft)).await;
    let scan = create_job(&app, &ann.access, "SCAN", None).await;
    assert_eq!(next_queued(&mut ws).await, json!({ "jobId": scan, "kind": "SCAN" }));
    assert!(matches!(ws.next(Duration::from_millis(500)).await, WsEvent::Timeout), "told of a PREPARE job");
}

#[tokio::test]
async fn a_worker_hears_the_queued_jobs_of_every_tenant_from_every_instance() {
    // Events are routed per user; JobQueued names no user and must still reach workers,
    // whichever instance published it.
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    let bob = one.register("bob").await;
    let mut ws = WsClient::connect(&two, Some(&one.worker_token(&["scan"]))).await;
    ws.subscribe("q", QUEUED_SUB, json!({ "k": ["SCAN"] })).await;
    assert!(next_queued(&mut ws).await["jobId"].is_null());
    for (app, user) in [(&one, &ann), (&two, &bob), (&one, &bob)] {
        let id = create_job(app, &user.access, "SCAN", None).await;
        assert_eq!(next_queued(&mut ws).await["jobId"], id.as_str());
    }
}

#[tokio::test]
async fn a_failed_attempt_is_announced_again_when_its_backoff_ends() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let worker = app.worker_token(&["scan"]);
    let mut ws = WsClient::connect(&app, Some(&worker)).await;
    ws.subscribe("q", QUEUED_SUB, json!({ "k": ["SCAN"] })).await;
    assert!(next_queued(&mut ws).await["jobId"].is_null());
    let id = create_job(&app, &ann.access, "SCAN", None).await;
    assert_eq!(next_queued(&mut ws).await["jobId"], id.as_str());

    let claimed = app.gql(Some(&worker), "mutation { claimJob(kinds: [SCAN]) { id } }", json!({})).await;
    assert_eq!(claimed["data"]["claimJob"]["id"], id.as_str());
    let failed = app
        .gql(
            Some(&worker),
            "mutation($id: ID!) { failJob(id: $id, error: \"x\") { status runAfter } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(failed["data"]["failJob"]["status"], "QUEUED", "{failed}");
    // Not told before it is due (the first backoff is 10 s), then told, and it is due.
    assert!(matches!(ws.next(Duration::from_secs(8)).await, WsEvent::Timeout), "told before the backoff ended");
    match ws.next(Duration::from_secs(10)).await {
        WsEvent::Next(p) => assert_eq!(p["data"]["jobQueued"], json!({ "jobId": id, "kind": "SCAN" })),
        other => panic!("the retry was not announced: {other:?}"),
    }
    let again = app.gql(Some(&worker), "mutation { claimJob(kinds: [SCAN]) { id } }", json!({})).await;
    assert_eq!(again["data"]["claimJob"]["id"], id.as_str(), "due when announced");
}
