//! Apollo's automatic persisted queries (issue 18): a hash alone runs a text the server
//! holds, under the same limits, rate and row-level security as a sent one.
use crate::helpers::{code, TestApp, WsClient, WsEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn extension(text: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(text) } })
}

/// The hash alone, as an Apollo client sends it first.
async fn by_hash(app: &TestApp, token: Option<&str>, text: &str, variables: Value) -> Value {
    app.post_graphql(token, json!({ "extensions": extension(text), "variables": variables })).await
}

/// The text with its hash, as an Apollo client sends it after PERSISTED_QUERY_NOT_FOUND.
async fn registering(app: &TestApp, token: Option<&str>, text: &str, variables: Value) -> Value {
    app.post_graphql(token, json!({ "query": text, "extensions": extension(text), "variables": variables })).await
}

#[tokio::test]
async fn a_hash_runs_once_its_text_was_sent_and_a_wrong_hash_is_refused() {
    let app = TestApp::spawn().await;
    let ann = app.register("apq").await;
    app.create_draft(&ann.access, "persisted").await;
    // Unique per run: the store is the process's.
    let text =
        format!("query Mine {{ me {{ id }} drafts {{ edges {{ node {{ title }} }} }} }} # {}", uuid::Uuid::new_v4());
    let unknown = by_hash(&app, Some(&ann.access), &text, json!({})).await;
    assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_FOUND", "{unknown}");
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    // GraphQL over HTTP: a request that failed as a whole.
    let strict = app
        .http()
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "extensions": extension(&text) }))
        .send()
        .await
        .unwrap();
    // 200 even under application/graphql-response+json: Apollo's link disables persisted
    // queries for good on a 400.
    assert_eq!(strict.status(), 200);
    // A text with another text's hash: refused, and nothing is kept under that hash.
    let wrong = app
        .post_graphql(Some(&ann.access), json!({ "query": "{ me { email } }", "extensions": extension(&text) }))
        .await;
    assert_eq!(code(&wrong), "PERSISTED_QUERY_HASH_MISMATCH", "{wrong}");
    assert_eq!(code(&by_hash(&app, Some(&ann.access), &text, json!({})).await), "PERSISTED_QUERY_NOT_FOUND");
    let bad = app
        .post_graphql(
            Some(&ann.access),
            json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": sha(&text) } } }),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "extensions.persistedQuery");
    // The text with its hash runs and registers; the hash alone then answers the same.
    let sent = registering(&app, Some(&ann.access), &text, json!({})).await;
    assert!(sent.get("errors").is_none(), "{sent}");
    assert_eq!(sent["data"]["me"]["id"], ann.id.to_string());
    let hashed = by_hash(&app, Some(&ann.access), &text, json!({})).await;
    assert_eq!(hashed, sent);
    // Over the WebSocket too.
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "extensions": extension(&text) } })).await;
    match ws.next(Duration::from_secs(10)).await {
        WsEvent::Next(payload) => assert_eq!(payload, sent),
        other => panic!("expected the answer, got {other:?}"),
    }
    // A query registered over the socket, then run by its hash over HTTP.
    let over_ws = format!("{{ me {{ id email }} }} # {}", uuid::Uuid::new_v4());
    ws.send(
        json!({ "id": "2", "type": "subscribe", "payload": { "query": over_ws, "extensions": extension(&over_ws) } }),
    )
    .await;
    // (The first operation's `complete` may come first.)
    let answered = loop {
        match ws.next(Duration::from_secs(10)).await {
            WsEvent::Next(payload) => break payload,
            WsEvent::Other(_) => continue,
            other => panic!("expected the answer, got {other:?}"),
        }
    };
    assert_eq!(answered["data"]["me"]["id"], ann.id.to_string(), "{answered}");
    assert_eq!(by_hash(&app, Some(&ann.access), &over_ws, json!({})).await, answered);
    // A subscription is kept once it starts waiting for its first event (none comes).
    let live = format!("subscription {{ jobUpdated {{ id }} }} # {}", uuid::Uuid::new_v4());
    ws.send(json!({ "id": "3", "type": "subscribe", "payload": { "query": live, "extensions": extension(&live) } }))
        .await;
    let mut other = WsClient::connect(&app, Some(&ann.access)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        other.send(json!({ "id": "4", "type": "subscribe", "payload": { "extensions": extension(&live) } })).await;
        match other.next(Duration::from_millis(500)).await {
            WsEvent::Next(payload) if code(&payload) == "PERSISTED_QUERY_NOT_FOUND" => {
                assert!(tokio::time::Instant::now() < deadline, "the subscription's text was never kept");
                // Its `complete`, before the id is used again.
                assert!(matches!(other.next(Duration::from_secs(5)).await, WsEvent::Other(_)));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Running, by its hash alone: no answer until an event.
            WsEvent::Timeout => break,
            other => panic!("expected the subscription to run, got {other:?}"),
        }
    }
    // Anonymous callers keep nothing (they could push everyone's texts out).
    let anonymous = format!("{{ plans {{ code }} }} # {}", uuid::Uuid::new_v4());
    let r = registering(&app, None, &anonymous, json!({})).await;
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(code(&by_hash(&app, Some(&ann.access), &anonymous, json!({})).await), "PERSISTED_QUERY_NOT_FOUND");
}

#[tokio::test]
async fn a_persisted_text_runs_under_the_limits_the_rate_and_the_callers_rows() {
    // The Free plan's request rate as shipped (tests lift it by default).
    let plan = ("api_requests_per_minute = 60", "api_requests_per_minute = 60");
    let app = TestApp::builder().with_free_plan_edits(&[plan]).spawn().await;
    let ann = app.register("apqann").await;
    let bob = app.register("apqbob").await;
    let anns = app.create_draft(&ann.access, "ann's draft").await;
    let bobs = app.create_draft(&bob.access, "bob's draft").await;
    let run = uuid::Uuid::new_v4();
    // Another user's registered hash runs on the caller's rows.
    let mine = format!("{{ me {{ id }} drafts {{ edges {{ node {{ id title }} }} }} }} # {run}");
    let a = registering(&app, Some(&ann.access), &mine, json!({})).await;
    assert_eq!(a["data"]["me"]["id"], ann.id.to_string(), "{a}");
    let b = by_hash(&app, Some(&bob.access), &mine, json!({})).await;
    assert_eq!(b["data"]["me"]["id"], bob.id.to_string(), "{b}");
    assert_eq!(b["data"]["drafts"]["edges"][0]["node"]["id"], bobs.as_str(), "{b}");
    assert!(!b.to_string().contains(&anns), "none of ann's rows: {b}");
    let anonymous = by_hash(&app, None, &mine, json!({})).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    // A text over the depth limit is refused when sent, and not kept.
    let nest = |n: usize| format!("{}id{}", "drafts { nodes { photos { ".repeat(n), " } } }".repeat(n));
    let deep = format!("{{ {} }} # {run}", nest(4));
    let r = registering(&app, Some(&ann.access), &deep, json!({})).await;
    assert_eq!((code(&r), r["errors"][0]["extensions"]["limit"].as_str()), ("QUERY_TOO_COMPLEX", Some("depth")), "{r}");
    assert_eq!(code(&by_hash(&app, Some(&ann.access), &deep, json!({})).await), "PERSISTED_QUERY_NOT_FOUND");
    // A kept text is bounded again with each request's variables (complexity: list
    // fields cost `first` × their selection).
    let page = "drafts(first: $n) { edges { node { id title description photos { id url } } } }";
    let lists = format!("query($n: Int) {{ a: {page} b: {page} c: {page} d: {page} }} # {run}");
    let r = registering(&app, Some(&ann.access), &lists, json!({ "n": 10 })).await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = by_hash(&app, Some(&ann.access), &lists, json!({ "n": 100 })).await;
    assert_eq!(
        (code(&r), r["errors"][0]["extensions"]["limit"].as_str()),
        ("QUERY_TOO_COMPLEX", Some("complexity")),
        "{r}"
    );
    // Each root field of a persisted text counts against the caller's rate (Free: 60 a
    // minute): 40 sent, then 40 by hash.
    let roots: String = (0..40).map(|i| format!("m{i}: me {{ id }} ")).collect();
    let many = format!("{{ {roots} }} # {run}");
    let r = registering(&app, Some(&bob.access), &many, json!({})).await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = by_hash(&app, Some(&bob.access), &many, json!({})).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    // A text whose request was not admitted (over the rate) is not kept...
    let refused = format!("{{ me {{ id email }} }} # {run}");
    let r = registering(&app, Some(&bob.access), &refused, json!({})).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    assert_eq!(code(&by_hash(&app, Some(&ann.access), &refused, json!({})).await), "PERSISTED_QUERY_NOT_FOUND");
    // ...nor one that does not validate against the schema.
    let invalid = format!("{{ me {{ id noSuchField }} }} # {run}");
    let r = registering(&app, Some(&ann.access), &invalid, json!({})).await;
    assert_eq!(code(&r), "GRAPHQL_VALIDATION_FAILED", "{r}");
    assert_eq!(code(&by_hash(&app, Some(&ann.access), &invalid, json!({})).await), "PERSISTED_QUERY_NOT_FOUND");
}
