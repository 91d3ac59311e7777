//! Operations: health, readiness, metrics, the SDL, request limits, WebSocket
//! authentication, and the command line.

use crate::helpers::{code, connect_ws, stripe::FakeStripe, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let health = app.http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(app.http().get(app.url("/readyz")).send().await.unwrap().status(), 200);
    app.gql(None, "{ me { id } }", json!({})).await;
    app.gql(Some("bad"), "{ me { id } }", json!({})).await;
    let metrics = app.http().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "plinth_http_requests_total",
        "plinth_http_request_duration_seconds_bucket",
        "plinth_graphql_errors_total{code=\"UNAUTHENTICATED\"}",
        "plinth_db_pool_connections",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

/// The value of one series in a Prometheus exposition (0 when absent).
fn series(metrics: &str, name: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

/// The scheduler's leaders on `app`'s database: the backends holding its advisory lock.
async fn leaders(app: &TestApp) -> Vec<i32> {
    let rows: Vec<(i32,)> = sqlx::query_as(
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(api::tasks::LEADER_APPLICATION_NAME)
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

/// The sum of a series over both instances' metrics.
async fn both(a: &TestApp, b: &TestApp, name: &str) -> f64 {
    let ma = a.http().get(a.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let mb = b.http().get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    series(&ma, name) + series(&mb, name)
}

/// Polls `done` every 100 ms, up to 30 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn scheduled_work_runs_once_per_interval_on_the_leader_across_instances() {
    // Two instances of one deployment. The lease sweeper runs every minute, the grace
    // sweeper every 12 minutes, the mail schedules every 5 and the reconciliation with
    // Stripe every hour, on whichever instance leads; the export builder (safe in
    // parallel) on both.
    let stripe = FakeStripe::start().await;
    let a = TestApp::builder()
        .with_stripe(&stripe)
        .with_env("PLINTH_JOB_SWEEP_SECS", "60")
        .with_env("PLINTH_BILLING_RECONCILE_SECS", "3600")
        .spawn()
        .await;
    let b = a.another_instance().await;
    let ok = |task: &str| format!("plinth_task_runs_total{{outcome=\"ok\",task=\"{task}\"}}");
    let skipped = |task: &str| format!("plinth_task_runs_total{{outcome=\"skipped\",task=\"{task}\"}}");
    eventually("one leader, its scheduled runs, the parallel task on both", || async {
        leaders(&a).await.len() == 1
            && both(&a, &b, &ok("billing.expire_grace")).await >= 1.0
            && both(&a, &b, &ok("jobs.requeue_expired")).await >= 1.0
            && !stripe.requests_to("GET /v1/subscriptions").is_empty()
            && series(
                &a.http().get(a.url("/metrics")).send().await.unwrap().text().await.unwrap(),
                &ok("accounts.build_exports"),
            ) >= 1.0
            && series(
                &b.http().get(b.url("/metrics")).send().await.unwrap().text().await.unwrap(),
                &ok("accounts.build_exports"),
            ) >= 1.0
    })
    .await;
    // Exactly one instance leads, and only it ran the scheduled work, once per interval
    // (the lease sweeper's is a minute, the others' far longer than this test): the
    // other never even tried to claim an interval.
    assert_eq!(leaders(&a).await.len(), 1);
    let ma = a.http().get(a.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let mb = b.http().get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let (led, other) = if series(&ma, &ok("billing.expire_grace")) > 0.0 { (&ma, &mb) } else { (&mb, &ma) };
    for task in
        ["billing.expire_grace", "jobs.requeue_expired", "email.sequences", "email.reminders", "billing.reconcile"]
    {
        assert!(series(led, &ok(task)) >= 1.0, "{task} ran on the leader");
        assert_eq!(series(other, &ok(task)) + series(other, &skipped(task)), 0.0, "{task} ran where no leader is");
    }
    for task in ["billing.expire_grace", "email.sequences", "email.reminders", "billing.reconcile"] {
        assert_eq!(series(led, &ok(task)), 1.0, "{task} ran once");
    }
    assert_eq!(
        stripe.requests_to("GET /v1/subscriptions").len(),
        1,
        "one reconciliation listed Stripe's subscriptions"
    );

    // The leader loses its connection: the server drops its lock, an instance (either)
    // wins it and ticks at once, but the interval was run: nothing runs twice.
    let leader = leaders(&a).await[0];
    sqlx::query("SELECT pg_terminate_backend($1)").bind(leader).execute(&a.db).await.unwrap();
    eventually("a new leader, which finds the reconciliation's interval taken", || async {
        leaders(&a).await.iter().any(|pid| *pid != leader) && both(&a, &b, &skipped("billing.reconcile")).await >= 1.0
    })
    .await;
    assert_eq!(leaders(&a).await.len(), 1, "one leader after the handover");
    assert_eq!(both(&a, &b, &ok("billing.reconcile")).await, 1.0, "the reconciliation ran again");
    assert_eq!(stripe.requests_to("GET /v1/subscriptions").len(), 1, "Stripe listed twice");
    let last_success = "plinth_task_last_success_timestamp_seconds{task=\"billing.expire_grace\"}";
    let ma = a.http().get(a.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let mb = b.http().get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(series(&ma, last_success).max(series(&mb, last_success)) > 1.7e9, "a last-success time is exported");
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&crate::helpers::admin_url("postgres")).await.unwrap();
    // Gone for the server: no new connections, the open ones ended. (Not DROP DATABASE: it
    // waits for a checkpoint, seconds on a busy disk.)
    let db = &app.database;
    sqlx::query(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")).execute(&mut conn).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(app.http().get(app.url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(app.http().get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn schema_graphql_is_what_plinth_schema_prints() {
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_plinth")).arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_same_sdl("`plinth schema`", &String::from_utf8(out.stdout).unwrap(), &checked_in);
    assert_same_sdl("api::graphql::sdl()", &api::graphql::sdl(), &checked_in);
}

/// Fails at the first line where `printed` and schema.graphql part, naming both lines:
/// the whole documents are thousands of lines.
fn assert_same_sdl(what: &str, printed: &str, checked_in: &str) {
    if printed == checked_in {
        return;
    }
    let (mut printed_lines, mut checked_lines) = (printed.lines(), checked_in.lines());
    let mut n = 1;
    let (p, c) = loop {
        match (printed_lines.next(), checked_lines.next()) {
            (p, c) if p == c && p.is_some() => n += 1,
            (p, c) => break (p, c),
        }
    };
    if (p, c) == (None, None) {
        panic!("schema.graphql differs from {what} in line endings or the final newline");
    }
    panic!(
        "schema.graphql differs from {what} at line {n}:\n  printed:        {p:?}\n  schema.graphql: {c:?}\n\
         run `cargo run -- schema > schema.graphql` and review the diff"
    );
}

#[tokio::test]
async fn graphql_over_http_content_negotiation_and_request_errors() {
    let app = TestApp::spawn().await;
    let resp = app
        .http()
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ nope }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/graphql-response+json");
    let plain = app.http().post(app.url("/graphql")).json(&json!({ "query": "{ nope }" })).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/json");
    let garbage = app
        .http()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let page = app.http().get(app.url("/graphql")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("graphiql"), "GraphiQL page expected");
}

#[tokio::test]
async fn depth_and_body_size_are_limited() {
    let app = TestApp::builder().with_env("PLINTH_MAX_BODY_BYTES", "4096").spawn().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(16),
        "} ".repeat(16)
    );
    let r = app.gql(None, &deep, json!({})).await;
    let message = r["errors"][0]["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(message.contains("too deep") || message.contains("depth"), "{r}");
    assert_eq!(r["data"], Value::Null);
    let big = json!({ "query": format!("{{ me {{ id }} }} #{}", "x".repeat(8192)) });
    let resp = app.http().post(app.url("/graphql")).json(&big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let app = TestApp::builder().with_env("PLINTH_GRAPHQL_INTROSPECTION", "false").spawn().await;
    let r = app.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(r["data"]["__schema"], Value::Null, "{r}");
    let on = TestApp::spawn().await;
    let r = on.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query", "{r}");
    // The query GraphiQL and code generators send (graphql-js 16, 15 deep) is answered
    // whole: the depth limit of ordinary fields does not apply under `__schema`.
    let standard = include_str!("fixtures/introspection-graphql-js-16.graphql");
    let r = on.gql(None, standard, json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    assert!(r["data"]["__schema"]["types"].as_array().is_some_and(|t| t.len() > 50), "{r}");
    let ok = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(ok["data"]["me"], Value::Null);
}

async fn close_code(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> u16 {
    while let Some(msg) = ws.next().await {
        if let Ok(Message::Close(Some(frame))) = msg {
            return frame.code.into();
        }
    }
    0
}

#[tokio::test]
async fn websocket_init_checks_the_token() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;

    let mut ws = connect_ws(&app).await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", ann.access) } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(ack.to_text().unwrap()).unwrap()["type"], "connection_ack");

    let mut ws = connect_ws(&app).await;
    let bad = json!({ "type": "connection_init", "payload": { "authorization": "Bearer garbage" } });
    ws.send(Message::Text(bad.to_string().into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4403);

    let mut ws = connect_ws(&app).await;
    let early = json!({ "type": "subscribe", "id": "1", "payload": { "query": "subscription { x }" } });
    ws.send(Message::Text(early.to_string().into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4401);

    // No token is an anonymous connection, acknowledged.
    let mut ws = connect_ws(&app).await;
    ws.send(Message::Text(json!({ "type": "connection_init" }).to_string().into())).await.unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(ack.to_text().unwrap()).unwrap()["type"], "connection_ack");
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_plinth")).env("PLINTH_ADDR", "not an address").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("plinth: PLINTH_ADDR: "), "{err}");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_plinth")).env("PLINTH_ENV", "production").output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("plinth: PLINTH_APP_DATABASE_URL or DATABASE_URL: "), "{err}");
}

#[tokio::test]
async fn schema_and_worker_read_none_of_the_server_settings() {
    let plinth = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", "not a url")
            .env("PLINTH_STRIPE_API_BASE", "not a url either")
            .env("RUST_LOG", "off");
        cmd
    };
    let out = plinth().arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = plinth().arg("worker").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("plinth: PLINTH_WORKER_TOKEN: "), "{err}");

    // With its token the worker starts and polls (here an API that is not there) until stopped.
    let mut worker = plinth()
        .arg("worker")
        .env("PLINTH_WORKER_TOKEN", "a-token")
        .env("PLINTH_API_URL", "http://127.0.0.1:9/graphql")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(worker.try_wait().unwrap().is_none(), "the worker stopped by itself");
    let pid = worker.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn admin_create_bootstraps_an_admin_who_can_sign_in() {
    let app = TestApp::spawn().await;
    let out = app.cli(&["admin", "create", "--email", "Root@Example.com"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The password alone on standard output; the sentence on standard error.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let password = stdout.trim();
    assert!(String::from_utf8_lossy(&out.stderr).contains("root@example.com created"));
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { user { role } } }",
            json!({ "i": { "email": "root@example.com", "password": password } }),
        )
        .await;
    assert_eq!(r["data"]["login"]["user"]["role"], "ADMIN", "{r}");
    let dup = app.cli(&["admin", "create", "--email", "root@example.com"]).output().await.unwrap();
    assert!(!dup.status.success());
    assert_eq!(code(&json!({})), "<no error>");
}

#[tokio::test]
async fn the_embedded_database_starts_migrates_and_is_reused() {
    let dir = std::env::temp_dir().join(format!("plinth-embedded-{}", uuid::Uuid::new_v4().simple()));
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
            .arg("migrate")
            .env("PLINTH_DATA_DIR", &dir)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // No result to print: standard output stays empty, the outcome is on standard error.
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stderr).contains("migrations applied"));
    }
    assert!(dir.join("postgres").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
