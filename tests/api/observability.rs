//! Observability over the wire: the metrics listener (`PLINTH_METRICS_ADDR`), what
//! production keeps off the public listener (/metrics, GraphiQL, introspection), every
//! metric the dashboard and the alerts use exported by a running server, and the one
//! log line per request.
use crate::helpers::{
    code, connect_ws,
    sendgrid::FakeSendGrid,
    stripe::{event, FakeStripe},
    TestApp,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// GET `url` with `Accept: text/html` (as a browser opening GraphiQL): the status.
async fn get_status(app: &TestApp, url: String) -> u16 {
    app.http().get(url).header("accept", "text/html").send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_nothing_else() {
    let app = TestApp::builder().with_env("PLINTH_METRICS_ADDR", "127.0.0.1:0").spawn().await;
    let listener = app.metrics_addr.expect("a metrics listener");
    assert_ne!(listener.port(), app.addr.port());
    assert_eq!(get_status(&app, app.url("/healthz")).await, 200);
    assert!(app
        .scrape()
        .await
        .contains("plinth_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"));
    for path in ["/graphql", "/healthz", "/readyz", "/", "/metrics/x"] {
        assert_eq!(get_status(&app, format!("http://{listener}{path}")).await, 404, "{path} on the metrics listener");
    }
    // Development keeps /metrics on the API's listener too, and GraphiQL.
    assert_eq!(get_status(&app, app.url("/metrics")).await, 200);
    let graphiql = app.http().get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.unwrap().to_lowercase().contains("graphiql"));
}

#[tokio::test]
async fn graphiql_and_everything_its_page_loads_come_from_this_server() {
    let app = TestApp::spawn().await;
    let page = app.http().get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200);
    // The browser itself refuses anything from another host.
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'self';", "connect-src 'self';", "font-src 'self' data:;"] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    let html = page.text().await.unwrap();
    let urls: Vec<&str> = html.split(['"', '\'']).filter(|s| s.starts_with('/') || s.contains("://")).collect();
    let scripts = html.matches("<script src=").count();
    let styles = html.matches("rel=\"stylesheet\"").count();
    assert!(scripts >= 4 && styles >= 1, "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    for url in &urls {
        assert!(url.starts_with('/') && !url.starts_with("//"), "{url} is not this server's");
        let resp = app.http().get(app.url(url)).header("accept-encoding", "br, gzip").send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{url} is empty");
    }
    // GraphiQL's own stylesheet names no other host either (its fonts are data: URLs).
    let css = app.http().get(app.url("/graphiql/vendor/graphiql.min.css")).send().await.unwrap().text().await.unwrap();
    assert!(css.contains("@font-face") && !css.contains("@import"), "GraphiQL's CSS changed shape");
    for (i, _) in css.match_indices("url(") {
        let target = css[i + 4..].trim_start_matches(['"', '\'']);
        assert!(
            target.starts_with("data:") || (target.starts_with('/') && !target.starts_with("//")),
            "{}",
            css[i..].chars().take(60).collect::<String>()
        );
    }
}

/// Production's settings on top of a development app's (same database, already
/// migrated): the keys, the public URL and a metrics listener; `extra` over them.
async fn production(dev: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    let key = biscuit_auth::KeyPair::new().private().to_prefixed_string();
    let mut vars = vec![
        ("PLINTH_ENV", "production"),
        ("PLINTH_TOKEN_KEY", key.as_str()),
        ("PLINTH_CREDENTIALS_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        ("PLINTH_PUBLIC_URL", "https://plinth.example"),
        ("PLINTH_METRICS_ADDR", "127.0.0.1:0"),
    ];
    vars.extend_from_slice(extra);
    dev.another_instance_with(&vars).await
}

#[tokio::test]
async fn production_keeps_metrics_graphiql_and_introspection_off_the_public_listener() {
    let (stripe, sendgrid) = (FakeStripe::start().await, FakeSendGrid::start().await);
    let dev = TestApp::builder().with_redis().with_s3().with_stripe(&stripe).with_sendgrid(&sendgrid).spawn().await;
    let prod = production(&dev, &[]).await;
    assert_eq!(get_status(&prod, prod.url("/metrics")).await, 404, "/metrics on the public listener");
    assert!(prod.scrape().await.contains("plinth_http_requests_total"), "/metrics on the metrics listener");
    assert_eq!(get_status(&prod, prod.url("/graphql")).await, 404, "GraphiQL");
    assert_eq!(get_status(&prod, prod.url("/graphiql/vendor/graphiql.min.js")).await, 404, "GraphiQL's files");
    let schema = prod.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert!(schema["data"]["__schema"].is_null(), "introspection: {schema}");
    let plans = prod.gql(None, "{ plans { code } }", json!({})).await;
    assert!(plans["data"]["plans"].as_array().is_some_and(|p| !p.is_empty()), "{plans}");

    // Both turned on explicitly.
    let open = production(&dev, &[("PLINTH_GRAPHIQL", "true"), ("PLINTH_GRAPHQL_INTROSPECTION", "true")]).await;
    assert_eq!(get_status(&open, open.url("/graphql")).await, 200, "GraphiQL");
    assert_eq!(get_status(&open, open.url("/graphiql/vendor/graphiql.min.js")).await, 200, "GraphiQL's files");
    let schema = open.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query", "{schema}");
    assert_eq!(get_status(&open, open.url("/metrics")).await, 404, "/metrics stays off the public listener");
}

/// The value of the series `series` (name and labels, as printed) in a scrape.
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes until `ready` holds (background loops and mail delivery run on their own
/// time), up to 30 s; the last scrape.
pub(crate) async fn scrape_until(app: &TestApp, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        let text = app.scrape().await;
        if ready(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.scrape().await
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_use_is_exported_by_a_running_server() {
    let stripe = FakeStripe::start().await;
    let app = TestApp::builder()
        .with_redis()
        .with_stripe(&stripe)
        .with_env("PLINTH_METRICS_ADDR", "127.0.0.1:0")
        .with_env("PLINTH_JOB_SWEEP_SECS", "1")
        .with_free_plan_edits(&[
            ("scans = 20", "scans = 1"),
            ("api_requests_per_minute = 60", "api_requests_per_minute = 5"),
        ])
        .spawn()
        .await;
    // Traffic: a named operation, a GraphQL error, a quota and a rate refusal, a Stripe
    // event, a socket, a mail (the verification mail of each sign-up).
    let ann = app.register("ann").await;
    let me = app.gql(Some(&ann.access), "query Me { me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], ann.id.to_string(), "{me}");
    assert_eq!(code(&app.gql(Some("bad"), "{ me { id } }", json!({})).await), "UNAUTHENTICATED");
    let scan = "mutation { createJob(input: {kind: SCAN}) { id } }";
    assert!(app.gql(Some(&ann.access), scan, json!({})).await["data"]["createJob"].is_object());
    assert_eq!(code(&app.gql(Some(&ann.access), scan, json!({})).await), "QUOTA_EXCEEDED");
    let bob = app.register("bob").await;
    let mut limited = false;
    for _ in 0..10 {
        limited |= code(&app.gql(Some(&bob.access), "{ me { id } }", json!({})).await) == "RATE_LIMITED";
    }
    assert!(limited, "bob's sixth request in a minute is refused");
    let now = chrono::Utc::now().timestamp();
    let (status, _) =
        app.deliver_webhook(&event("evt_obs", "customer.updated", now - 2, json!({ "id": "cus_nobody" }))).await;
    assert_eq!(status, 200);
    let mut ws = connect_ws(&app).await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", ann.access) } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(ack.to_text().unwrap()).unwrap()["type"], "connection_ack");

    let text = scrape_until(&app, |t| {
        t.contains("plinth_mail_deliveries_total{") && value(t, "plinth_jobs_queued{kind=\"scan\"}") == Some(1.0)
    })
    .await;
    // The socket is open while the scrape runs; the queued scan is waiting.
    assert_eq!(value(&text, "plinth_websockets_open"), Some(1.0), "{text}");
    assert_eq!(value(&text, "plinth_jobs_queued{kind=\"scan\"}"), Some(1.0), "{text}");
    assert_eq!(value(&text, "plinth_quota_refusals_total{metric=\"scans\"}"), Some(1.0), "{text}");
    assert!(value(&text, "plinth_rate_limit_refusals_total{limit=\"api\"}") >= Some(1.0), "{text}");
    assert_eq!(value(&text, "plinth_graphql_operations_total{operation=\"Me\",outcome=\"ok\"}"), Some(1.0), "{text}");
    assert_eq!(
        value(&text, "plinth_stripe_webhooks_total{event_type=\"customer\",outcome=\"ignored\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "plinth_stripe_webhook_lag_seconds_count"), Some(1.0), "{text}");
    assert!(value(&text, "plinth_token_cache_requests_total{result=\"hit\"}") >= Some(1.0), "{text}");
    assert!(text.contains("# TYPE plinth_db_statements_total counter"), "{text}");
    for name in [
        "plinth_build_info{git_sha=",
        "plinth_jobs_oldest_queued_seconds{kind=\"scan\"}",
        "plinth_jobs_running{kind=\"scan\"}",
        "plinth_job_lease_expiries_total",
        "plinth_db_pool_acquire_duration_seconds_bucket",
        "plinth_db_pool_waiting",
        "plinth_task_last_success_timestamp_seconds{task=\"email.delivery\"}",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }

    // Every name ops/grafana/plinth.json and ops/prometheus/alerts.yml use, by the
    // script CI and operators run (ops/metric_names.py check).
    let saved = app.data_dir.join("metrics.txt");
    std::fs::write(&saved, &text).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/metric_names.py"))
        .arg("check")
        .arg(&saved)
        .output()
        .expect("python3 runs ops/metric_names.py");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn each_request_logs_one_info_line_with_status_duration_operation_and_user() {
    let app = TestApp::builder()
        .in_its_own_process()
        .with_env("PLINTH_LOG_FORMAT", "json")
        .with_env("RUST_LOG", "info")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let resp = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(&ann.access)
        .json(&json!({ "query": "query Me { me { id email } }" }))
        .send()
        .await
        .unwrap();
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.status(), 200);
    let anonymous = app.http().get(app.url("/healthz")).send().await.unwrap();
    let health_id = anonymous.headers()["x-request-id"].to_str().unwrap().to_owned();

    // The lines are written as the responses leave: wait for both.
    let log = app.data_dir.join("serve.log");
    let lines_of = |id: &str| -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["span"]["request_id"] == id && l["fields"]["message"] == "request done")
            .collect()
    };
    for _ in 0..100 {
        if !lines_of(&request_id).is_empty() && !lines_of(&health_id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = lines_of(&request_id);
    assert_eq!(lines.len(), 1, "one line for the request: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["status"], 200);
    assert!(line["fields"]["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    assert_eq!(line["fields"]["operation"], "Me");
    assert_eq!(line["fields"]["user_id"], ann.id.to_string());
    assert_eq!((&line["span"]["method"], &line["span"]["route"]), (&json!("POST"), &json!("/graphql")));
    let health = lines_of(&health_id);
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0]["fields"]["status"], 200);
    assert!(health[0]["fields"].get("user_id").is_none(), "{health:?}");
    // Neither the token nor the address is in any line.
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(!all.contains(&ann.access), "a token in the logs");
    assert!(!all.contains(&ann.refresh), "a refresh token in the logs");
    let requests: Vec<&str> = all.lines().filter(|l| l.contains("request done")).collect();
    assert!(requests.len() >= 3, "sign-up, query, health: {requests:?}");
    assert!(requests.iter().all(|l| !l.contains(&ann.email)), "an e-mail address in a request line");
}

#[tokio::test]
async fn pool_waits_show_in_the_pool_metrics_with_one_connection_and_concurrent_requests() {
    let app = TestApp::builder()
        .with_env("PLINTH_DB_POOL_SIZE", "1")
        .with_env("PLINTH_DB_ACQUIRE_TIMEOUT_MS", "10000")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let count = |t: &str| value(t, "plinth_db_pool_acquire_duration_seconds_count").unwrap_or(0.0);
    let fast = |t: &str| value(t, "plinth_db_pool_acquire_duration_seconds_bucket{le=\"0.25\"}").unwrap_or(0.0);
    let waiting = |t: &str| value(t, "plinth_db_pool_waiting").unwrap_or(0.0);
    let before = app.scrape().await;

    // The one connection is held: a createDraft waits on a lock the test holds, inside
    // its transaction. Three reads then wait for the connection.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE drafts IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let holder = app.gql(
        Some(&ann.access),
        "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id } }",
        json!({ "i": { "title": "held" } }),
    );
    // The reads are sent once the createDraft waits on the lock (holding the connection);
    // the lock is released 500 ms after they were sent and seen waiting.
    let sent = std::sync::atomic::AtomicBool::new(false);
    let reads = async {
        for _ in 0..200 {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reads = futures::future::join_all((0..3).map(|_| app.gql(Some(&ann.access), "{ me { id } }", json!({}))));
        sent.store(true, std::sync::atomic::Ordering::SeqCst);
        reads.await
    };
    let release = async {
        while !sent.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let during = scrape_until(&app, |t| waiting(t) >= 3.0).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock.commit().await.unwrap();
        during
    };
    let (held, reads, during) = tokio::join!(holder, reads, release);
    assert!(waiting(&during) >= 3.0, "three reads waiting for the one connection: {during}");
    assert!(held["data"]["createDraft"]["id"].is_string(), "{held}");
    for r in &reads {
        assert_eq!(r["data"]["me"]["id"], ann.id.to_string(), "{r}");
    }
    let after = scrape_until(&app, |t| waiting(t) == 0.0).await;
    assert_eq!(waiting(&after), 0.0, "{after}");
    assert!(count(&after) >= count(&before) + 4.0, "four acquisitions: {} then {}", count(&before), count(&after));
    // The reads waited past the lock's 500 ms: slower than the 0.25 s bucket.
    assert!(count(&after) - fast(&after) >= count(&before) - fast(&before) + 3.0, "three waits over 0.25 s: {after}");
}
