//! Span export (OpenTelemetry over OTLP/HTTP, `OTEL_EXPORTER_OTLP_ENDPOINT`): one trace
//! per request, its request span over its GraphQL operation's over its statements', with
//! names and ids and never a secret; what is still buffered leaves at the drain.
use crate::helpers::{otlp::ExportedSpan, otlp::FakeCollector, TestApp, TestUser};
use serde_json::{json, Value};
use std::time::Duration;

/// A server of its own (the span export is process-wide) exporting to `collector`,
/// batches sent every `delay_ms`.
async fn traced_app(collector: &FakeCollector, delay_ms: u64) -> TestApp {
    TestApp::builder()
        .with_env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)
        .with_env("OTEL_SERVICE_NAME", "plinth-test")
        .with_env("OTEL_BSP_SCHEDULE_DELAY", &delay_ms.to_string())
        .with_env("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k%3D1")
        .in_its_own_process()
        .spawn()
        .await
}

/// `query Me`, as `user`: the request id the server answered with.
async fn query_me(app: &TestApp, user: &TestUser) -> String {
    let resp = app
        .http()
        .post(app.url("/graphql"))
        .bearer_auth(&user.access)
        .json(&json!({ "query": "query Me { me { id email } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["me"]["email"], user.email.as_str(), "{body}");
    request_id
}

/// The spans of the trace whose operation is `Me`, once its root arrived: (root,
/// operation, statements under the operation).
fn me_trace(spans: &[ExportedSpan]) -> Option<(ExportedSpan, ExportedSpan, Vec<ExportedSpan>)> {
    let op = spans.iter().find(|s| s.attr("graphql.operation.name") == Some("Me"))?;
    let root = spans.iter().find(|s| s.trace_id == op.trace_id && s.parent_span_id.is_empty())?;
    let statements = spans.iter().filter(|s| s.parent_span_id == op.span_id).cloned().collect();
    Some((root.clone(), op.clone(), statements))
}

/// What one trace of `query Me` must be, whatever else arrived.
fn assert_me_trace(spans: &[ExportedSpan], request_id: &str) {
    let (root, op, statements) = me_trace(spans).expect("the trace of query Me");
    // The request's span: the trace's root, named by method and route, with the request id.
    assert_eq!(root.name, "POST /graphql");
    assert_eq!(root.kind, 2, "server");
    assert_eq!(root.service, "plinth-test");
    assert_eq!(root.attr("request_id"), Some(request_id));
    assert_eq!(root.attr("http.route"), Some("/graphql"));
    assert_eq!(root.attr("http.response.status_code"), Some("200"));
    // The operation's span: the request's child, named as OpenTelemetry's GraphQL
    // conventions say.
    assert_eq!(op.parent_span_id, root.span_id, "the operation is the request's child");
    assert_eq!(op.name, "query Me");
    assert_eq!(op.attr("graphql.operation.type"), Some("query"));
    // The statements: the operation's children, in the same trace, named by keyword.
    assert!(
        statements.iter().any(|s| s.name == "SELECT"),
        "no SELECT under the operation: {:?}",
        statements.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for s in &statements {
        assert_eq!(s.trace_id, root.trace_id);
        assert_eq!(s.kind, 3, "client: {s:?}");
        assert_eq!(s.attr("db.system"), Some("postgresql"), "{s:?}");
        assert_eq!(s.attr("db.operation.name"), Some(s.name.as_str()), "{s:?}");
        assert!(s.name.chars().all(|c| c.is_ascii_uppercase()), "a statement's span is its keyword only: {s:?}");
    }
    // Every span of the trace hangs from the request's.
    let trace: Vec<&ExportedSpan> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    for s in &trace {
        let parent_known = s.parent_span_id.is_empty() || trace.iter().any(|p| p.span_id == s.parent_span_id);
        assert!(parent_known, "{s:?} has no parent in its trace");
    }
    assert_eq!(trace.iter().filter(|s| s.parent_span_id.is_empty()).count(), 1, "one root per trace");
}

/// No exported byte holds a secret of `user`'s: neither tokens nor the password nor the
/// e-mail address (also searched URL-encoded).
fn assert_no_secret(collector: &FakeCollector, user: &TestUser) {
    let bodies = collector.bodies();
    assert!(!bodies.is_empty());
    let local = user.email.split('@').next().unwrap();
    for secret in [user.access.as_str(), user.refresh.as_str(), user.password.as_str(), user.email.as_str(), local] {
        for body in &bodies {
            assert!(!body.windows(secret.len()).any(|w| w == secret.as_bytes()), "an exported span carries {secret:?}");
        }
    }
}

#[tokio::test]
async fn a_graphql_request_exports_one_trace_request_over_operation_over_statements_without_secrets() {
    let collector = FakeCollector::start().await;
    let app = traced_app(&collector, 50).await;
    // Registration sends the e-mail address and the password, and answers tokens.
    let user = app.register("traced").await;
    let request_id = query_me(&app, &user).await;

    let spans = collector.wait_for(|spans| me_trace(spans).map(|_| spans.to_vec())).await;
    assert_me_trace(&spans, &request_id);
    // The registration's trace has its operation and its INSERT too.
    let register = collector
        .wait_for(|spans| {
            let op = spans.iter().find(|s| s.name == "mutation anonymous")?;
            spans.iter().any(|s| s.parent_span_id == op.span_id && s.name == "INSERT").then_some(op.clone())
        })
        .await;
    assert_eq!(register.attr("graphql.operation.type"), Some("mutation"));
    assert_eq!(register.attr("graphql.operation.name"), None);
    assert_no_secret(&collector, &user);
    // The configured headers go with every export (a hosted collector's key).
    let headers = collector.headers();
    assert!(headers.iter().all(|h| h.get("x-collector-key").map(String::as_str) == Some("k=1")), "{headers:?}");
    assert!(headers.iter().all(|h| h.get("content-type").map(String::as_str) == Some("application/x-protobuf")));
}

#[tokio::test]
async fn the_drain_sends_the_spans_still_buffered_before_the_process_exits() {
    let collector = FakeCollector::start().await;
    // Batches every 10 minutes: only the flush at the drain can send these.
    let mut app = traced_app(&collector, 600_000).await;
    let user = app.register("flushed").await;
    let request_id = query_me(&app, &user).await;
    assert!(collector.bodies().is_empty(), "nothing leaves before the batch is due");

    let pid = app.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = app.wait_exit(Duration::from_secs(30)).await.expect("the process exited after draining");
    assert!(status.success(), "exit status {status}");
    assert_me_trace(&collector.spans(), &request_id);
    assert_no_secret(&collector, &user);
}

#[tokio::test]
async fn doctor_checks_the_collector_only_when_spans_are_exported() {
    let traces = |checks: &[(String, bool, String)]| checks.iter().find(|c| c.0 == "traces").cloned().unwrap();
    let collector = FakeCollector::start().await;
    let app = TestApp::spawn().await;
    let mut env = app.env();
    let (_, checks) = crate::release::doctor_checks(&env).await;
    let (_, ok, detail) = traces(&checks);
    assert!(ok && detail.contains("off"), "{detail}");

    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.url.clone());
    env.insert("OTEL_EXPORTER_OTLP_HEADERS".into(), "x-collector-key=hunter2".into());
    let (_, checks) = crate::release::doctor_checks(&env).await;
    let (_, ok, detail) = traces(&checks);
    assert!(ok, "{detail}");
    assert!(detail.contains(&format!("{}/v1/traces", collector.url)), "{detail}");
    assert_eq!(collector.headers().last().unwrap()["x-collector-key"], "hunter2");

    // A collector that is not there fails the check, naming where, not the key.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://{closed}"));
    let (_, checks) = crate::release::doctor_checks(&env).await;
    let (_, ok, detail) = traces(&checks);
    assert!(!ok, "{detail}");
    assert!(detail.contains(&closed.to_string()) && !detail.contains("hunter2"), "{detail}");
}
