//! The request edge (issue 11): what a request may cost, how bad input is answered,
//! which bodies and origins are accepted, the WebSocket protocol's details. Each test
//! sends over the wire what an attacker or a broken client would.
use crate::helpers::{code, connect_ws, TestApp, WsClient, WsEvent};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `query { ...F0 }` where each fragment spreads the next twice: 2^levels fields once
/// expanded, in about 60 bytes per level.
pub fn fragment_bomb(levels: usize) -> String {
    let mut doc = String::from("query { ...F0 }\n");
    for i in 0..levels {
        doc.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
    }
    doc.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
    doc
}

fn limit_of(r: &Value) -> &str {
    r["errors"][0]["extensions"]["limit"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_before_validation() {
    let app = TestApp::spawn().await;
    let bomb = fragment_bomb(22);
    assert!(bomb.len() < 1500, "the document is small: {} bytes", bomb.len());
    let r = app.gql(None, &bomb, json!({})).await;
    assert_eq!(code(&r), "QUERY_TOO_COMPLEX", "{r}");
    assert_eq!(limit_of(&r), "expandedFields", "{r}");
    assert_eq!(r["errors"][0]["extensions"]["max"], 5000);
    assert!(r["errors"][0].get("locations").is_none(), "no zero locations: {r}");
    // A document that is only long.
    let long = format!("{{ me {{ id }} }} #{}", "x".repeat(40 * 1024));
    let r = app.gql(None, &long, json!({})).await;
    assert_eq!((code(&r), limit_of(&r)), ("QUERY_TOO_COMPLEX", "documentBytes"), "{r}");
    // Two bombs at once leave the server answering.
    let (a, b, health) = tokio::join!(
        app.gql(None, &bomb, json!({})),
        app.gql(None, &bomb, json!({})),
        app.http().get(app.url("/healthz")).send()
    );
    assert_eq!((code(&a), code(&b)), ("QUERY_TOO_COMPLEX", "QUERY_TOO_COMPLEX"));
    assert_eq!(health.unwrap().status(), 200);
}

#[tokio::test]
async fn lists_count_by_their_size_and_answers_are_bounded() {
    let app = TestApp::builder().with_env("PLINTH_MAX_RESPONSE_BYTES", "20000").spawn().await;
    let ann = app.register("lists").await;
    // 30 aliases of a full page: each 100 × its selection.
    let aliased: String = (0..30)
        .map(|i| format!("d{i}: drafts(first: 100) {{ edges {{ node {{ id title description }} }} }} "))
        .collect();
    let r = app.gql(Some(&ann.access), &format!("{{ {aliased} }}"), json!({})).await;
    assert_eq!((code(&r), limit_of(&r)), ("QUERY_TOO_COMPLEX", "complexity"), "{r}");
    // Through variables as well.
    let page = "drafts(first: $n) { edges { node { id title description photos { id url } } } }";
    let q = format!("query($n: Int) {{ a: {page} b: {page} c: {page} d: {page} }}");
    let q = q.as_str();
    let r = app.gql(Some(&ann.access), q, json!({ "n": 100 })).await;
    assert_eq!((code(&r), limit_of(&r)), ("QUERY_TOO_COMPLEX", "complexity"), "{r}");
    let r = app.gql(Some(&ann.access), q, json!({ "n": 10 })).await;
    assert!(r.get("errors").is_none(), "a normal page passes: {r}");
    // More than 100 aliases, whatever they cost.
    let typenames: String = (0..150).map(|i| format!("t{i}: __typename ")).collect();
    let r = app.gql(None, &format!("{{ {typenames} }}"), json!({})).await;
    assert_eq!((code(&r), limit_of(&r)), ("QUERY_TOO_COMPLEX", "aliases"), "{r}");
    // An answer larger than the limit is refused as a whole, and rolled back.
    for i in 0..40 {
        let title = format!("{i} {}", "t".repeat(100));
        app.gql(
            Some(&ann.access),
            "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id } }",
            json!({ "i": { "title": title, "description": "d".repeat(400) } }),
        )
        .await;
    }
    let r = app
        .gql(Some(&ann.access), "{ drafts(first: 100) { edges { node { id title description } } } }", json!({}))
        .await;
    assert_eq!(code(&r), "RESPONSE_TOO_LARGE", "{}", &r.to_string()[..300.min(r.to_string().len())]);
    assert_eq!(r["data"], Value::Null);
    assert_eq!(r["errors"][0]["extensions"]["max"], 20000);
    let big_write =
        "mutation { createDraft(input: {title: \"x\"}) { id } a: createDraft(input: {title: \"x\"}) { id } }";
    let before = app.count("drafts").await;
    let _ = app.gql(Some(&ann.access), big_write, json!({})).await;
    assert_eq!(app.count("drafts").await, before + 2, "small answers commit");
}

#[tokio::test]
async fn aliases_are_counted_against_the_rate_and_authentication_is_one_per_document() {
    let plan = ("api_requests_per_minute = 60", "api_requests_per_minute = 60");
    let app = TestApp::builder().with_free_plan_edits(&[plan]).spawn().await;
    let ann = app.register("aliases").await;
    // A plan of 60 requests a minute: 100 aliased mutations are refused before any runs.
    let creates: String = (0..100).map(|i| format!("c{i}: createDraft(input: {{title: \"{i}\"}}) {{ id }} ")).collect();
    let r = app.gql(Some(&ann.access), &format!("mutation {{ {creates} }}"), json!({})).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    assert_eq!(app.count("drafts").await, 0, "none of it ran");
    // 40 aliased registrations: refused as a document, no account made.
    let users = app.count("users").await;
    let registers: String = (0..40)
        .map(|i| format!("r{i}: register(input: {{email: \"flood{i}@example.com\", password: \"long enough pass\"}}) {{ accessToken }} "))
        .collect();
    let r = app.gql(None, &format!("mutation {{ {registers} }}"), json!({})).await;
    assert_eq!((code(&r), limit_of(&r)), ("QUERY_TOO_COMPLEX", "authenticationFieldsPerDocument"), "{r}");
    assert_eq!(app.count("users").await, users);
    let two_logins = format!(
        "mutation {{ a: login(input: {{email: \"{e}\", password: \"{p}\"}}) {{ accessToken }}
                     b: login(input: {{email: \"{e}\", password: \"{p}\"}}) {{ accessToken }} }}",
        e = ann.email,
        p = ann.password
    );
    let r = app.gql(None, &two_logins, json!({})).await;
    assert_eq!(code(&r), "QUERY_TOO_COMPLEX", "{r}");
}

#[tokio::test]
async fn graphql_errors_carry_their_codes() {
    let app = TestApp::spawn().await;
    let parse = app.gql(None, "{ me { id ", json!({})).await;
    assert_eq!(code(&parse), "GRAPHQL_PARSE_FAILED", "{parse}");
    let unknown = app.gql(None, "{ nope }", json!({})).await;
    assert_eq!(code(&unknown), "GRAPHQL_VALIDATION_FAILED", "{unknown}");
    let coercion =
        app.gql(None, "query($n: Int) { drafts(first: $n) { edges { cursor } } }", json!({ "n": "ten" })).await;
    assert_eq!(code(&coercion), "BAD_USER_INPUT", "{coercion}");
    let no_op = app.gql(None, "query A { me { id } } query B { me { id } }", json!({})).await;
    assert_eq!(code(&no_op), "GRAPHQL_VALIDATION_FAILED", "{no_op}");
    for r in [&parse, &unknown, &coercion, &no_op] {
        assert!(r["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn text_with_nul_or_control_characters_is_bad_input_naming_the_field() {
    let app = TestApp::builder().with_unlimited_free_plan().spawn().await;
    let ann = app.register("nul").await;
    let t = Some(ann.access.as_str());
    let cases = [
        ("query($s: String) { drafts(search: $s) { edges { cursor } } }", json!({ "s": "a\u{0}b" }), "search"),
        (
            "mutation($n: String!) { createApiToken(input: {name: $n, scopes: [\"drafts:read\"]}) { token } }",
            json!({ "n": "tok\u{0}" }),
            "name",
        ),
        (
            "mutation($n: String!) { connectMarketplaceAccount(input: {platform: VINTED, displayName: $n, credentials: {}}) { id } }",
            json!({ "n": "shop\u{0}" }),
            "displayName",
        ),
        ("mutation { createDraft(input: {title: \"bell\\u0007\"}) { id } }", json!({}), "title"),
    ];
    for (q, vars, field) in cases {
        let r = app.gql(t, q, vars).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{q}: {r}");
        let message = r["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "the error names {field}: {r}");
    }
    assert_eq!(app.count("api_tokens").await + app.count("marketplace_accounts").await + app.count("drafts").await, 0);
    // A worker's progress message, error and result.
    let draft = app.create_draft(&ann.access, "scan me").await;
    let job = app
        .gql(t, "mutation($d: ID!) { createJob(input: {kind: SCAN, draftId: $d}) { id } }", json!({ "d": draft }))
        .await["data"]["createJob"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let worker = app.worker_token(&["scan"]);
    let claimed = app.gql(Some(&worker), "mutation { claimJob(kinds: [SCAN]) { id } }", json!({})).await;
    assert_eq!(claimed["data"]["claimJob"]["id"], job.as_str(), "{claimed}");
    for (q, vars) in [
        (
            "mutation($id: ID!, $m: String) { reportJobProgress(id: $id, progress: 0.5, message: $m) { id } }",
            json!({ "id": job, "m": "half\u{0}" }),
        ),
        (
            "mutation($id: ID!, $e: String!) { failJob(id: $id, error: $e) { id } }",
            json!({ "id": job, "e": "bad\u{0}" }),
        ),
        (
            "mutation($id: ID!, $r: JSON) { completeJob(id: $id, result: $r) { id } }",
            json!({ "id": job, "r": { "k": "v\u{0}" } }),
        ),
    ] {
        let r = app.gql(Some(&worker), q, vars).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{q}: {r}");
    }
}

#[tokio::test]
async fn cursors_out_of_range_are_bad_input() {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let app = TestApp::spawn().await;
    let ann = app.register("cursor").await;
    let id = uuid::Uuid::new_v4();
    for micros in ["-210000000000000000", "253402300800000000", "99999999999999999999"] {
        let after = URL_SAFE_NO_PAD.encode(format!("{micros}:{id}"));
        for field in ["drafts", "jobs", "activity", "invoices"] {
            let q = format!("query($a: String) {{ {field}(after: $a) {{ edges {{ cursor }} }} }}");
            let r = app.gql(Some(&ann.access), &q, json!({ "a": after })).await;
            assert_eq!(code(&r), "BAD_USER_INPUT", "{field} after {micros}: {r}");
        }
    }
}

#[tokio::test]
async fn signed_in_callers_can_use_every_authentication_mutation() {
    let app = TestApp::spawn().await;
    let ann = app.register("signedin").await;
    let bob = app.register("other").await;
    let t = Some(ann.access.as_str());
    let login = app
        .gql(
            t,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken user { id } } }",
            json!({ "i": { "email": bob.email, "password": bob.password } }),
        )
        .await;
    assert_eq!(login["data"]["login"]["user"]["id"], bob.id.to_string(), "{login}");
    let reset =
        app.gql(t, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": bob.email })).await;
    assert_eq!(reset["data"]["requestPasswordReset"], true, "{reset}");
    let unknown = app.gql(t, "mutation { requestPasswordReset(email: \"nobody-here@example.com\") }", json!({})).await;
    assert_eq!(unknown["data"]["requestPasswordReset"], true, "{unknown}");
    let register = app
        .gql(
            t,
            "mutation { register(input: {email: \"third-signed-in@example.com\", password: \"long enough pass\"}) { user { id } } }",
            json!({}),
        )
        .await;
    assert!(register["data"]["register"]["user"]["id"].is_string(), "{register}");
    let refresh = app
        .gql(
            t,
            "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }",
            json!({ "r": bob.refresh }),
        )
        .await;
    assert!(refresh["data"]["refreshSession"]["accessToken"].is_string(), "{refresh}");
    // The caller's own account is untouched.
    let me = app.gql(t, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], ann.id.to_string());
}

#[tokio::test]
async fn only_json_bodies_are_executed() {
    let app = TestApp::spawn().await;
    let body = json!({ "query": "mutation { register(input: {email: \"csrf@example.com\", password: \"long enough pass\"}) { accessToken } }" })
        .to_string();
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let mut req = app.http().post(app.url("/graphql")).body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 415, "{content_type:?}");
        let r: Value = resp.json().await.unwrap();
        assert_eq!(code(&r), "UNSUPPORTED_MEDIA_TYPE", "{r}");
    }
    assert_eq!(app.count("users").await, 0, "nothing ran");
    let charset = app
        .http()
        .post(app.url("/graphql"))
        .header("content-type", "application/json; charset=utf-8")
        .header("accept", "text/html")
        .body(json!({ "query": "{ __typename }" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(charset.status(), 200);
    assert_eq!(charset.headers()["content-type"], "application/json", "an Accept it cannot serve falls back to JSON");
    let garbage = app
        .http()
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let r: Value = garbage.json().await.unwrap();
    assert_eq!(code(&r), "GRAPHQL_PARSE_FAILED", "{r}");
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let app = TestApp::builder()
        .with_env("PLINTH_CORS_ORIGINS", "https://shop.example.com, https://other.example")
        .spawn()
        .await;
    let preflight = |origin: &str| {
        app.http()
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight("https://shop.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example.com");
    let allowed = ok.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert!(ok.headers().get("access-control-allow-credentials").is_none(), "no cookies cross-origin");
    let foreign = preflight("https://evil.example").await.unwrap();
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
    let post = app
        .http()
        .post(app.url("/graphql"))
        .header("origin", "https://other.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(post.headers()["access-control-allow-origin"], "https://other.example");
    let exposed = post.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    // Nothing by default.
    let plain = TestApp::spawn().await;
    let r = plain
        .http()
        .request(reqwest::Method::OPTIONS, plain.url("/graphql"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// The close code a raw socket ends with (0 without a close frame), answering pings
/// the way a live client's library does.
async fn close_code(ws: &mut crate::helpers::RawSocket) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()).unwrap_or(0),
            Ok(Some(Ok(_))) => continue,
            _ => return 0,
        }
    }
}

#[tokio::test]
async fn websocket_malformed_frames_close_4400_and_a_non_init_first_message_4401() {
    let app = TestApp::spawn().await;
    let ann = app.register("wsproto").await;
    for first in ["not json", "{\"type\": 7}", "{\"type\": \"connection_init\", \"payload\": 5}", "{\"no\": \"type\"}"]
    {
        let mut ws = connect_ws(&app).await;
        ws.send(Message::Text(first.into())).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 4400, "{first}");
    }
    let mut ws = connect_ws(&app).await;
    ws.send(Message::Text(json!({ "type": "ping" }).to_string().into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4401);
    // After the init, a malformed message still closes 4400.
    let mut client = WsClient::connect(&app, Some(&ann.access)).await;
    client.send(json!({ "type": "subscribe", "id": 1 })).await;
    assert!(matches!(client.next(Duration::from_secs(10)).await, WsEvent::Closed(4400)));
}

/// Sends `query` as operation `id` and returns its one answer, after which the
/// operation completes.
async fn answer(ws: &mut WsClient, id: &str, query: &str) -> Value {
    ws.subscribe(id, query, json!({})).await;
    let payload = match ws.next(Duration::from_secs(10)).await {
        WsEvent::Next(v) => v,
        other => panic!("expected a next message, got {other:?}"),
    };
    match ws.next(Duration::from_secs(10)).await {
        WsEvent::Other(v) if v["type"] == "complete" && v["id"] == id => payload,
        other => panic!("expected {id} to complete, got {other:?}"),
    }
}

#[tokio::test]
async fn queries_and_mutations_run_over_the_websocket_in_their_own_transaction() {
    let app = TestApp::spawn().await;
    let ann = app.register("wsops").await;
    let bob = app.register("wsother").await;
    let bobs = app.create_draft(&bob.access, "bob's").await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    let created = answer(&mut ws, "1", "mutation { createDraft(input: {title: \"over ws\"}) { id title } }").await;
    assert_eq!(created["data"]["createDraft"]["title"], "over ws", "{created}");
    let read = answer(&mut ws, "2", "{ me { id } drafts { edges { node { id title } } } }").await;
    assert_eq!(read["data"]["me"]["id"], ann.id.to_string(), "{read}");
    assert_eq!(read["data"]["drafts"]["edges"].as_array().unwrap().len(), 1, "only ann's draft: {read}");
    assert!(!read.to_string().contains(&bobs));
    // Errors carry their codes, and a failed mutation leaves nothing.
    let two = "mutation { a: createDraft(input: {title: \"x\"}) { id } b: createDraft(input: {title: \"\"}) { id } }";
    let failed = answer(&mut ws, "3", two).await;
    assert_eq!(code(&failed), "BAD_USER_INPUT", "{failed}");
    assert_eq!(app.count(&format!("drafts WHERE user_id = '{}'", ann.id)).await, 1, "rolled back");
    let bomb = answer(&mut ws, "4", &fragment_bomb(22)).await;
    assert_eq!(code(&bomb), "QUERY_TOO_COMPLEX", "{bomb}");
    // The socket still follows subscriptions.
    ws.subscribe("5", "subscription { jobUpdated { id } }", json!({})).await;
    assert!(matches!(ws.next(Duration::from_millis(300)).await, WsEvent::Timeout));
}

/// Reads `ws` until `deadline`, as a live client's library does (answering pings);
/// returns the pings seen and the close code if the server closed it.
async fn read_until(ws: &mut crate::helpers::RawSocket, deadline: tokio::time::Instant) -> (u32, Option<u16>) {
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return (pings, None),
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(frame)))) => return (pings, Some(frame.map(|f| u16::from(f.code)).unwrap_or(0))),
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return (pings, Some(0)),
        }
    }
}

async fn initialised(app: &TestApp, token: &str) -> crate::helpers::RawSocket {
    let mut ws = connect_ws(app).await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    ws
}

#[tokio::test]
async fn silent_sockets_get_pings_and_dead_ones_are_closed() {
    let app = TestApp::builder().with_env("PLINTH_WS_KEEPALIVE_SECS", "1").spawn().await;
    let ann = app.register("keepalive").await;
    // A live client (its library answers pings) stays open past several intervals.
    let mut live = initialised(&app, &ann.access).await;
    let (pings, closed) = read_until(&mut live, tokio::time::Instant::now() + Duration::from_millis(4500)).await;
    assert_eq!(closed, None, "a live socket stays open");
    assert!(pings >= 2, "idle sockets are pinged: {pings}");
    // A dead one (reads nothing, so answers nothing) is closed with 3008.
    let mut dead = initialised(&app, &ann.access).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (pings, closed) = read_until(&mut dead, tokio::time::Instant::now() + Duration::from_secs(5)).await;
    assert!(pings >= 1, "pinged before closing");
    assert_eq!(closed, Some(3008));
}
