//! What SIGTERM's drain finishes besides requests and sockets (release.rs has those): the
//! mail batch under way is recorded as sent, and the in-process worker's job under way
//! ends (or is left to its lease), never lost and never run twice.
use crate::helpers::{png, proxy::SlowProxy, sendgrid::FakeSendGrid, TestApp};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Sends SIGTERM to `app`'s own process and waits for it to exit 0.
async fn terminate(app: &mut TestApp) {
    let pid = app.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = app.wait_exit(Duration::from_secs(40)).await.expect("the process exited after draining");
    assert!(status.success(), "exit status {status}:\n{}", serve_log(app));
}

fn serve_log(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join("serve.log")).unwrap_or_default()
}

/// Waits up to 20 s for `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigterm_records_the_mail_batch_in_flight_as_sent() {
    let sendgrid = FakeSendGrid::start().await;
    let mut app = TestApp::builder().with_sendgrid(&sendgrid).in_its_own_process().spawn().await;
    // A slow provider: the batch is still under way when the drain starts.
    sendgrid.set_delay(Duration::from_millis(2500));
    let ann = app.register("flushed").await;
    until("a mail reaching the provider", || !sendgrid.received().is_empty()).await;
    let first = sendgrid.received()[0].outbox_id().to_owned();

    terminate(&mut app).await;
    let received = sendgrid.received();
    assert!(received.iter().any(|r| r.outbox_id() == first));
    // Every mail the provider got is recorded as sent, once: none is left pending to be
    // sent again after its lease.
    for r in &received {
        let id: Uuid = r.outbox_id().parse().unwrap();
        let (status, attempts): (String, i32) =
            sqlx::query_as("SELECT status, attempts FROM email_outbox WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!((status.as_str(), attempts), ("sent", 1), "outbox row {id} (to {})", r.to());
        assert_eq!(received.iter().filter(|o| o.outbox_id() == r.outbox_id()).count(), 1, "sent once: {id}");
    }
    assert!(received.iter().any(|r| r.to() == ann.email));
}

/// A user's token and a draft of theirs with a photo.
async fn draft_with_photo(app: &TestApp) -> (String, String) {
    let ann = app.register("scanned").await;
    let draft = app.create_draft(&ann.access, "Jacket").await;
    app.upload_photo(&ann.access, Some(&draft), "image/png", &png(5, 2)).await;
    (ann.access, draft)
}

/// A SCAN job of `draft`'s photos.
async fn scan_job(app: &TestApp, token: &str, draft: &str) -> Uuid {
    let r = app
        .gql(
            Some(token),
            "mutation($i: CreateJobInput!) { createJob(input: $i) { id } }",
            json!({ "i": { "kind": "SCAN", "draftId": draft } }),
        )
        .await;
    r["data"]["createJob"]["id"].as_str().unwrap_or_else(|| panic!("createJob: {r}")).parse().unwrap()
}

/// The job's status, attempts, whether it has a result, and whether its lease runs.
async fn job_row(app: &TestApp, id: Uuid) -> (String, i32, bool, bool) {
    sqlx::query_as(
        "SELECT status, attempts, result IS NOT NULL, coalesce(lease_expires_at > now(), false) FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// A server running its own worker, whose photos are fetched through `door` (the public
/// URL), so a test can slow the job's download down.
async fn with_worker_behind(door: &SlowProxy) -> TestApp {
    let app = TestApp::builder()
        .with_env("PLINTH_IN_PROCESS_WORKER", "true")
        .with_env("PLINTH_PUBLIC_URL", &format!("http://{}", door.addr))
        .in_its_own_process()
        .spawn()
        .await;
    door.set_target(app.addr);
    app
}

#[tokio::test]
async fn sigterm_lets_the_in_process_workers_job_under_way_end_succeeded_once() {
    let door = SlowProxy::start().await;
    let mut app = with_worker_behind(&door).await;
    let (token, draft) = draft_with_photo(&app).await;
    // The worker's download of the photo takes 2 s: SIGTERM arrives in the middle of it.
    door.set_delay(Duration::from_secs(2));
    let id = scan_job(&app, &token, &draft).await;
    until("the worker's download starting", || door.delayed() > 0).await;
    let (status, attempts, _, leased) = job_row(&app, id).await;
    assert_eq!((status.as_str(), attempts, leased), ("running", 1, true));

    terminate(&mut app).await;
    let (status, attempts, result, leased) = job_row(&app, id).await;
    assert_eq!((status.as_str(), attempts, result, leased), ("succeeded", 1, true, false), "{}", serve_log(&app));
}

#[tokio::test]
async fn sigterm_leaves_a_job_that_outlasts_the_grace_to_its_lease_then_it_is_claimed_once_more() {
    let door = SlowProxy::start().await;
    let mut app = TestApp::builder()
        .with_env("PLINTH_IN_PROCESS_WORKER", "true")
        .with_env("PLINTH_PUBLIC_URL", &format!("http://{}", door.addr))
        .with_env("PLINTH_JOB_SWEEP_SECS", "1")
        .in_its_own_process()
        .spawn()
        .await;
    door.set_target(app.addr);
    let (token, draft) = draft_with_photo(&app).await;
    // The download outlasts the drain's patience with the worker (10 s).
    door.set_delay(Duration::from_secs(15));
    let id = scan_job(&app, &token, &draft).await;
    until("the worker's download starting", || door.delayed() > 0).await;

    terminate(&mut app).await;
    door.set_delay(Duration::ZERO);
    let (status, attempts, result, leased) = job_row(&app, id).await;
    assert_eq!((status.as_str(), attempts, result, leased), ("running", 1, false, true), "{}", serve_log(&app));
    assert!(serve_log(&app).contains("left to its lease"), "{}", serve_log(&app));

    // Not run twice at once: while its lease runs, no other worker can claim it.
    let next = app.another_instance().await;
    let worker = next.worker_token(&["scan"]);
    let claim = "mutation { claimJob(kinds: [SCAN]) { id attempts } }";
    let r = next.gql(Some(&worker), claim, json!({})).await;
    assert_eq!(r["data"]["claimJob"], serde_json::Value::Null, "a leased job was claimed again: {r}");
    // Not lost: once the lease is over (brought forward here: 60 s), the sweeper queues
    // it again, as after a crashed worker (with the retry backoff, 10 s, brought forward
    // too), and the next claim gets it.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&next.db)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_row(&next, id).await.0 != "queued" {
        assert!(Instant::now() < deadline, "the expired lease was not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query("UPDATE jobs SET run_after = now() WHERE id = $1").bind(id).execute(&next.db).await.unwrap();
    let r = next.gql(Some(&worker), claim, json!({})).await;
    assert_eq!(r["data"]["claimJob"], json!({ "id": id.to_string(), "attempts": 2 }), "{r}");
    let done = "mutation($id: ID!) { completeJob(id: $id, result: {photos: []}) { status } }";
    let r = next.gql(Some(&worker), done, json!({ "id": id })).await;
    assert_eq!(r["data"]["completeJob"]["status"], "SUCCEEDED", "{r}");
    let (status, attempts, result, leased) = job_row(&next, id).await;
    assert_eq!((status.as_str(), attempts, result, leased), ("succeeded", 2, true, false));
}
