//! Issue 12, "identity that holds", over the wire: no field of a document runs under an
//! identity a token presented in it claims; ended sessions and revoked tokens are
//! refused at once by every instance and close the sockets they opened; every
//! subscription field is authorized like an HTTP field, and again before each event.

use crate::helpers::{code, connect_ws, TestApp, TestUser, WsClient, WsEvent};
use biscuit_auth::{builder::BlockBuilder, UnverifiedBiscuit};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const ME: &str = "{ me { id } }";
const LOGOUT: &str = "mutation($t: String!) { logout(refreshToken: $t) }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
const JOBS_SUB: &str = "subscription { jobUpdated { id status } }";
const SCAN: &str = "mutation { createJob(input: {kind: SCAN}) { id } }";
const WAIT: Duration = Duration::from_secs(3);

async fn me(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), ME, json!({})).await
}

async fn api_token(app: &TestApp, user: &TestUser, scopes: &[&str]) -> (String, String) {
    let r = app
        .gql(
            Some(&user.access),
            "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token apiToken { id } } }",
            json!({ "i": { "name": "integration", "scopes": scopes } }),
        )
        .await;
    let c = &r["data"]["createApiToken"];
    assert!(c.is_object(), "{r}");
    (c["token"].as_str().unwrap().to_owned(), c["apiToken"]["id"].as_str().unwrap().to_owned())
}

/// Signs `user` in again: a second session (access, refresh).
async fn second_session(app: &TestApp, user: &TestUser) -> (String, String) {
    let r = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
            json!({ "i": { "email": user.email, "password": user.password } }),
        )
        .await;
    let p = &r["data"]["login"];
    assert!(p.is_object(), "{r}");
    (p["accessToken"].as_str().unwrap().to_owned(), p["refreshToken"].as_str().unwrap().to_owned())
}

/// Waits up to `within` for `token` to be refused by `app`; how long it took.
async fn refused_within(app: &TestApp, token: &str, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if code(&me(app, token).await) == "UNAUTHENTICATED" {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The close code a socket opened with `token` gets right after `connection_init`.
async fn opening_close_code(app: &TestApp, token: &str) -> Option<u16> {
    let mut ws = connect_ws(app).await;
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => Some(frame.code.into()),
        _ => None,
    }
}

async fn expect_close(ws: &mut WsClient, expected: u16, what: &str) {
    match ws.next(WAIT).await {
        WsEvent::Closed(code) => assert_eq!(code, expected, "{what}"),
        other => panic!("{what}: expected a close {expected}, got {other:?}"),
    }
}

/// The error code a subscription answered with, or None when it was accepted (nothing
/// within a short wait).
async fn subscription_refusal(ws: &mut WsClient) -> Option<String> {
    match ws.next(Duration::from_millis(400)).await {
        WsEvent::Next(p) => Some(p["errors"][0]["extensions"]["code"].as_str().unwrap_or("?").to_owned()),
        WsEvent::Other(v) if v["type"] == "error" => {
            Some(v["payload"][0]["extensions"]["code"].as_str().unwrap_or("?").to_owned())
        }
        WsEvent::Timeout => None,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn no_later_field_of_a_document_runs_as_the_user_of_a_presented_token() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut bob = app.register("bob").await;
    let draft = app.create_draft(&ann.access, "ann's").await;
    let verify = app.mailed_token(&bob.email, "verify_email").await;
    let (_, bob_other_refresh) = second_session(&app, &bob).await;

    // Ann, signed in, presents Bob's tokens (valid ones: he gave them away, or a shared
    // device) in front of her own fields. Each of Bob's operations acts for Bob alone.
    let doc = "mutation($r: String!, $v: String!, $o: String!, $d: ID!) {
        bob: refreshSession(refreshToken: $r) { accessToken }
        verified: verifyEmail(token: $v)
        out: logout(refreshToken: $o)
        mine: updateDraft(id: $d, input: {title: \"renamed\"}) { id title }
        token: createApiToken(input: {name: \"after\", scopes: [\"drafts:read\"]}) { apiToken { id } }
    }";
    let vars = json!({ "r": bob.refresh, "v": verify, "o": bob_other_refresh, "d": draft });
    let r = app.gql(Some(&ann.access), doc, vars).await;
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(r["data"]["mine"]["title"], "renamed", "Ann's draft is Ann's to the end of the document");
    let (owner,): (uuid::Uuid,) = sqlx::query_as("SELECT user_id FROM api_tokens WHERE id = $1::uuid")
        .bind(r["data"]["token"]["apiToken"]["id"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(owner, ann.id, "the token is Ann's, not Bob's");

    // Reset and sign-in in front of a field that needs the caller: still the caller.
    app.refresh_session(&mut bob).await;
    app.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": bob.email })).await;
    let reset = app.mailed_token(&bob.email, "reset_password").await;
    let doc = "mutation($t: String!, $d: ID!, $e: String!) {
        r: resetPassword(token: $t, newPassword: \"bob's new password\")
        l: login(input: {email: $e, password: \"bob's new password\"}) { user { id } }
        mine: updateDraft(id: $d, input: {title: \"again\"}) { title }
    }";
    let r = app.gql(Some(&ann.access), doc, json!({ "t": reset, "d": draft, "e": bob.email })).await;
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(r["data"]["mine"]["title"], "again");

    // Anonymous: a sign-in does not make a later field the signed-in user's.
    let doc = "mutation($e: String!) {
        l: login(input: {email: $e, password: \"bob's new password\"}) { accessToken }
        d: createDraft(input: {title: \"as bob?\"}) { id }
    }";
    let r = app.gql(None, doc, json!({ "e": bob.email })).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert_eq!(app.count(&format!("drafts WHERE user_id = '{}'", bob.id)).await, 0);

    // A token naming Bob with a wrong secret: refused, and nothing ran as Bob.
    let mut forged = bob.refresh.clone();
    forged.replace_range(forged.len() - 6.., "AAAAAA");
    let doc = "mutation($t: String!, $d: ID!) {
        f: logout(refreshToken: $t)
        mine: updateDraft(id: $d, input: {title: \"third\"}) { title }
    }";
    let r = app.gql(Some(&ann.access), doc, json!({ "t": forged, "d": draft })).await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");
    assert!(me(&app, &ann.access).await["data"]["me"].is_object());
}

#[tokio::test]
async fn an_ended_session_is_refused_at_once_by_every_instance_and_closes_its_sockets() {
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    // Verified (and cached) by the other instance before the session ends.
    assert!(me(&two, &ann.access).await["data"]["me"].is_object());
    let mut ws = WsClient::connect(&two, Some(&ann.access)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(one.gql(None, LOGOUT, json!({ "t": ann.refresh })).await["data"]["logout"], true);
    let took = refused_within(&two, &ann.access, Duration::from_secs(1)).await;
    eprintln!("the ended session's access token refused by the other instance {took:?} after logout answered");
    assert!(took.is_some_and(|t| t < Duration::from_millis(500)), "the other instance took {took:?}");
    assert_eq!(code(&me(&one, &ann.access).await), "UNAUTHENTICATED");
    expect_close(&mut ws, 4403, "the socket of the ended session").await;
    assert_eq!(opening_close_code(&two, &ann.access).await, Some(4403), "no new socket either");
    // An instance started afterwards refuses it too (loaded from Postgres).
    let three = one.another_instance().await;
    assert_eq!(code(&me(&three, &ann.access).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn password_changes_resets_and_refresh_reuse_end_access_tokens_everywhere() {
    let one = TestApp::builder().with_redis().with_env("PLINTH_REFRESH_REUSE_GRACE_SECS", "0").spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    let (other_access, _) = second_session(&one, &ann).await;
    assert!(me(&two, &other_access).await["data"]["me"].is_object());

    // changePassword ends the other sessions, keeps this one.
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let r = one.gql(Some(&ann.access), change, json!({ "c": ann.password, "n": "new password 1" })).await;
    assert_eq!(r["data"]["changePassword"], true, "{r}");
    assert!(refused_within(&two, &other_access, Duration::from_secs(1)).await.is_some());
    assert!(me(&two, &ann.access).await["data"]["me"].is_object(), "this session stays");

    // resetPassword ends every session.
    one.gql(None, "mutation($e: String!) { requestPasswordReset(email: $e) }", json!({ "e": ann.email })).await;
    let reset = one.mailed_token(&ann.email, "reset_password").await;
    let r = one
        .gql(
            None,
            "mutation($t: String!) { resetPassword(token: $t, newPassword: \"new password 2\") }",
            json!({ "t": reset }),
        )
        .await;
    assert_eq!(r["data"]["resetPassword"], true, "{r}");
    assert!(refused_within(&two, &ann.access, Duration::from_secs(1)).await.is_some());

    // A reused refresh token ends its session, access token included.
    let bob = one.register("bob").await;
    let rotated = one.gql(None, REFRESH, json!({ "t": bob.refresh })).await;
    let access = rotated["data"]["refreshSession"]["accessToken"].as_str().unwrap().to_owned();
    assert!(me(&two, &access).await["data"]["me"].is_object());
    assert_eq!(code(&one.gql(None, REFRESH, json!({ "t": bob.refresh })).await), "UNAUTHENTICATED");
    assert!(refused_within(&two, &access, Duration::from_secs(1)).await.is_some());
    assert_eq!(code(&me(&two, &bob.access).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_revoked_api_token_loses_its_socket_on_every_instance() {
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    let ann = one.register("ann").await;
    let (token, id) = api_token(&one, &ann, &["jobs:read"]).await;
    let mut ws = WsClient::connect(&two, Some(&token)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    one.create_job_as(&ann.access).await;
    assert!(matches!(ws.next(WAIT).await, WsEvent::Next(p) if p["data"]["jobUpdated"].is_object()));

    let r = one.gql(Some(&ann.access), "mutation($id: ID!) { revokeApiToken(id: $id) }", json!({ "id": id })).await;
    assert_eq!(r["data"]["revokeApiToken"], true);
    expect_close(&mut ws, 4403, "the revoked API token's socket").await;
    assert_eq!(opening_close_code(&two, &token).await, Some(4403));
}

#[tokio::test]
async fn each_event_is_checked_against_the_subscribers_rights_before_it_is_sent() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let (token, _) = api_token(&app, &ann, &["jobs:read"]).await;
    // The holder narrowed the token to the next two seconds.
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let t = UnverifiedBiscuit::from_base64(&token).unwrap();
    let short = t
        .append(BlockBuilder::new().code(format!("check if time($t), $t <= {until};")).unwrap())
        .unwrap()
        .to_base64()
        .unwrap();
    let mut ws = WsClient::connect(&app, Some(&short)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.create_job_as(&ann.access).await;
    assert!(matches!(ws.next(WAIT).await, WsEvent::Next(p) if p["data"]["jobUpdated"].is_object()));

    tokio::time::sleep(Duration::from_millis(3000)).await;
    app.create_job_as(&ann.access).await;
    match ws.next(WAIT).await {
        WsEvent::Next(p) => {
            assert!(p["data"].is_null(), "nothing is sent past the token's rights: {p}");
            assert_eq!(p["errors"][0]["extensions"]["code"], "FORBIDDEN", "{p}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Which API scope each subscription field needs (None: no API token may follow it).
/// A new subscription field fails the sweep until it is listed here.
const SUBSCRIPTION_SCOPES: &[(&str, &str, Option<&str>)] = &[
    ("importUpdated", "subscription { importUpdated(id: \"00000000-0000-7000-8000-000000000000\") { id } }", None),
    ("jobQueued", "subscription { jobQueued(kinds: [SCAN]) { jobId } }", None),
    ("jobUpdated", "subscription { jobUpdated { id } }", Some("jobs:read")),
    ("notificationAdded", "subscription { notificationAdded { id } }", None),
    ("supportInboxUpdated", "subscription { supportInboxUpdated { ticketId } }", None),
    ("ticketUpdated", "subscription { ticketUpdated { ticket { id } } }", None),
];

/// Subscriptions a user's session is refused too: staff's (the inbox) and workers'
/// (`jobQueued`, for worker tokens only).
const STAFF_SUBSCRIPTIONS: &[&str] = &["jobQueued", "supportInboxUpdated"];

const SCOPES: &[&str] = &[
    "drafts:read",
    "drafts:write",
    "jobs:read",
    "jobs:write",
    "accounts:read",
    "accounts:write",
    "usage:read",
    "billing:read",
    "activity:read",
];

#[tokio::test]
async fn every_subscription_field_is_swept_with_every_scope_over_the_socket() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let r = app.gql(None, "{ __schema { subscriptionType { fields { name } } } }", json!({})).await;
    let mut fields: Vec<String> = r["data"]["__schema"]["subscriptionType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    let mut listed: Vec<String> = SUBSCRIPTION_SCOPES.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(fields, listed, "every subscription field has a row in SUBSCRIPTION_SCOPES");

    for scope in SCOPES {
        let (token, _) = api_token(&app, &ann, &[scope]).await;
        for (field, doc, needs) in SUBSCRIPTION_SCOPES {
            let mut ws = WsClient::connect(&app, Some(&token)).await;
            ws.subscribe("s", doc, json!({})).await;
            let refusal = subscription_refusal(&mut ws).await;
            let allowed = needs.is_some_and(|n| n == *scope);
            if allowed {
                assert_eq!(refusal, None, "{field} with {scope}");
            } else {
                assert_eq!(refusal.as_deref(), Some("FORBIDDEN"), "{field} with {scope}");
            }
        }
    }
    // A session token follows each (staff-only ones: a staff session).
    for (field, doc, _) in SUBSCRIPTION_SCOPES {
        let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
        ws.subscribe("s", doc, json!({})).await;
        let expected = STAFF_SUBSCRIPTIONS.contains(field).then(|| "FORBIDDEN".to_owned());
        assert_eq!(subscription_refusal(&mut ws).await, expected, "{field} with a session");
    }
}

impl TestApp {
    /// Creates a scan job as `token` (an event for its owner's subscribers).
    async fn create_job_as(&self, token: &str) -> String {
        let r = self.gql(Some(token), SCAN, json!({})).await;
        r["data"]["createJob"]["id"].as_str().unwrap_or_else(|| panic!("createJob failed: {r}")).to_owned()
    }
}

/// POSTs `query` from client address `ip` (through the trusted proxy header).
async fn gql_from(app: &TestApp, ip: &str, query: &str, variables: Value) -> Value {
    app.http()
        .post(app.url("/graphql"))
        .header("x-client-ip", ip)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const REGISTER_TWO: &str = "mutation($a: String!, $b: String!) {
    a: register(input: {email: $a, password: \"long enough pw\"}) { user { id } }
    b: register(input: {email: $b, password: \"long enough pw\"}) { user { id } }
}";
const REGISTER_ONE: &str =
    "mutation($a: String!) { register(input: {email: $a, password: \"long enough pw\"}) { user { id } } }";
const LOGIN_ONE: &str =
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { user { id } } }";

fn fresh(name: &str) -> String {
    format!("{name}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn sign_up_is_throttled_per_address_and_globally() {
    let app = TestApp::builder()
        .with_env("PLINTH_CLIENT_IP_HEADER", "x-client-ip")
        .with_env("PLINTH_SIGNUP_LIMIT_PER_IP", "3")
        .with_env("PLINTH_SIGNUP_LIMIT_GLOBAL", "5")
        .with_env("PLINTH_SIGNUP_WINDOW_SECS", "600")
        .spawn()
        .await;
    // Aliases cannot multiply one request's attempts: one register per document.
    let r = gql_from(&app, "10.0.0.1", REGISTER_TWO, json!({ "a": fresh("a"), "b": fresh("b") })).await;
    assert_eq!(code(&r), "QUERY_TOO_COMPLEX", "{r}");
    let taken = fresh("taken");
    for (email, expected) in [(taken.as_str(), None), (&fresh("b"), None), (&taken, Some("CONFLICT"))] {
        let r = gql_from(&app, "10.0.0.1", REGISTER_ONE, json!({ "a": email })).await;
        assert_eq!(r["errors"][0]["extensions"]["code"].as_str(), expected, "{r}");
    }
    // Probing for taken addresses is throttled like guessing passwords.
    let r = gql_from(&app, "10.0.0.1", REGISTER_ONE, json!({ "a": taken })).await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    assert!(r["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    // Another address has its own budget, within everyone's (4 counted so far).
    let r = gql_from(&app, "10.0.0.2", REGISTER_ONE, json!({ "a": fresh("g") })).await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = gql_from(&app, "10.0.0.3", REGISTER_ONE, json!({ "a": fresh("h") })).await;
    assert_eq!(code(&r), "RATE_LIMITED", "the global budget is spent: {r}");
    assert_eq!(app.count("users").await, 3);
}

#[tokio::test]
async fn a_burst_of_sign_ups_hashes_at_most_the_configured_number_at_once() {
    // Bigger hashes than the suite's (4 MiB), two at a time: 8 sign-ups at once
    // complete, each waiting its turn instead of all allocating together (the unit test
    // password::no_more_hashes_than_permits_run_at_once counts them).
    let app = TestApp::builder()
        .with_env("PLINTH_ARGON2_MEMORY_KIB", "4096")
        .with_env("PLINTH_ARGON2_CONCURRENCY", "2")
        .spawn()
        .await;
    let started = Instant::now();
    let burst = (0..8).map(|_| app.gql(None, REGISTER_ONE, json!({ "a": fresh("burst") })));
    for r in futures::future::join_all(burst).await {
        assert!(r.get("errors").is_none(), "{r}");
    }
    eprintln!("8 sign-ups with 4 MiB hashes, 2 at a time: {:?}", started.elapsed());
    assert_eq!(app.count("users").await, 8);
}

#[tokio::test]
async fn failed_sign_ins_slow_and_stop_their_client_but_never_lock_out_the_owner() {
    let app = TestApp::builder()
        .with_env("PLINTH_CLIENT_IP_HEADER", "x-client-ip")
        .with_env("PLINTH_LOGIN_LIMIT_PER_EMAIL", "5")
        .with_env("PLINTH_LOGIN_CEILING_PER_EMAIL", "40")
        .spawn()
        .await;
    let ann = app.register("ann").await;
    let wrong = json!({ "e": ann.email, "p": "not the password" });

    // One request with 11 aliased wrong passwords is refused whole (one sign-in per
    // document); one by one, the attacker's client is slowed down, then refused.
    let aliases: String =
        (0..11).map(|i| format!("a{i}: login(input: {{email: $e, password: $p}}) {{ user {{ id }} }} ")).collect();
    let doc = format!("mutation($e: String!, $p: String!) {{ {aliases} }}");
    let r = gql_from(&app, "10.6.6.6", &doc, wrong.clone()).await;
    assert_eq!(code(&r), "QUERY_TOO_COMPLEX", "{r}");
    let mut took = Vec::new();
    let mut last = String::new();
    for _ in 0..6 {
        let t = Instant::now();
        last = code(&gql_from(&app, "10.6.6.6", LOGIN_ONE, wrong.clone()).await).to_owned();
        took.push(t.elapsed());
    }
    assert_eq!(last, "RATE_LIMITED", "the attacker's client is stopped");
    let first_refusals: Vec<_> = took.iter().map(|d| d.as_millis()).collect();
    eprintln!("attacker's answers (ms): {first_refusals:?}");

    // The owner, from her own client, with her password: signed in.
    let ok = gql_from(&app, "10.0.0.7", LOGIN_ONE, json!({ "e": ann.email, "p": ann.password })).await;
    assert_eq!(ok["data"]["login"]["user"]["id"], ann.id.to_string(), "{ok}");

    // Progressive delays for one client: each failure waits longer.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(code(&gql_from(&app, "10.0.0.9", LOGIN_ONE, wrong.clone()).await), "UNAUTHENTICATED");
        waits.push(t.elapsed());
    }
    eprintln!("one client's failures (ms): {:?}", waits.iter().map(|d| d.as_millis()).collect::<Vec<_>>());
    // The waits are 0, 50, 100, 200 and 400 ms before the work: the floors hold
    // whatever the machine's load adds.
    for (i, floor) in [0, 50, 100, 200, 400].into_iter().enumerate() {
        assert!(waits[i] >= Duration::from_millis(floor), "failure {i} waits {floor} ms: {waits:?}");
    }
    assert!(waits[4] > waits[0], "{waits:?}");

    // Past the address's ceiling (failures from many clients), everyone is refused.
    for i in 0..40 {
        gql_from(&app, &format!("10.1.{}.{}", i / 200, i % 200), LOGIN_ONE, wrong.clone()).await;
    }
    let ceiling = gql_from(&app, "10.0.0.8", LOGIN_ONE, json!({ "e": ann.email, "p": ann.password })).await;
    assert_eq!(code(&ceiling), "RATE_LIMITED", "{ceiling}");
    // Another address is not affected.
    let bob = app.register("bob").await;
    let ok = gql_from(&app, "10.0.0.8", LOGIN_ONE, json!({ "e": bob.email, "p": bob.password })).await;
    assert!(ok["data"]["login"].is_object(), "{ok}");
}

#[tokio::test]
async fn two_refreshes_in_flight_get_the_same_pair_and_a_late_reuse_still_revokes() {
    let app = TestApp::builder().with_env("PLINTH_REFRESH_REUSE_GRACE_SECS", "2").spawn().await;
    let ann = app.register("ann").await;
    let (a, b) = tokio::join!(
        app.gql(None, REFRESH, json!({ "t": ann.refresh })),
        app.gql(None, REFRESH, json!({ "t": ann.refresh }))
    );
    let (a, b) = (&a["data"]["refreshSession"], &b["data"]["refreshSession"]);
    assert!(a.is_object() && b.is_object(), "{a} {b}");
    assert_eq!(a["refreshToken"], b["refreshToken"], "the same successor");
    assert_eq!(a["accessToken"], b["accessToken"]);
    let next = a["refreshToken"].as_str().unwrap().to_owned();
    assert!(me(&app, a["accessToken"].as_str().unwrap()).await["data"]["me"].is_object());
    // Kept sealed, never in clear.
    let (sealed,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT successor_sealed FROM refresh_tokens WHERE user_id = $1 AND used_at IS NOT NULL")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let sealed = sealed.expect("a sealed successor");
    assert!(!sealed.windows(16).any(|w| next.as_bytes().windows(16).any(|n| n == w)));

    // After the interval, the reuse revokes the session, successor included.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": ann.refresh })).await), "UNAUTHENTICATED");
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": next })).await), "UNAUTHENTICATED");
    let (reason,): (Option<String>,) = sqlx::query_as("SELECT revoked_reason FROM sessions WHERE user_id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("refresh_token_reuse"));
    assert_eq!(
        app.count(&format!("refresh_tokens WHERE user_id = '{}' AND successor_sealed IS NOT NULL", ann.id)).await,
        0,
        "an ended session keeps no sealed pair"
    );
}

#[tokio::test]
async fn one_address_is_one_account_whatever_its_unicode_form() {
    let app = TestApp::spawn().await;
    let nfc = "jos\u{e9}@b\u{fc}cher.example";
    let r = app.gql(None, REGISTER_ONE, json!({ "a": nfc })).await;
    assert!(r.get("errors").is_none(), "{r}");
    let stored = "jos\u{e9}@xn--bcher-kva.example";
    for twin in
        ["jose\u{301}@bu\u{308}cher.example", "JOS\u{c9}@XN--BCHER-KVA.example", " Jose\u{301}@B\u{fc}cher.Example "]
    {
        let r = app.gql(None, REGISTER_ONE, json!({ "a": twin })).await;
        assert_eq!(code(&r), "CONFLICT", "{twin}: {r}");
    }
    let r = app
        .gql(
            None,
            "mutation($e: String!) { login(input: {email: $e, password: \"long enough pw\"}) { user { email } } }",
            json!({ "e": "jose\u{301}@bu\u{308}cher.example" }),
        )
        .await;
    assert_eq!(r["data"]["login"]["user"]["email"], stored, "{r}");
    let r = app
        .gql(
            None,
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": "JOSE\u{301}@b\u{fc}cher.example" }),
        )
        .await;
    assert_eq!(r["data"]["requestPasswordReset"], true);
    assert!(app.last_mail(stored, "reset_password").await.is_some());
    assert_eq!(app.count("users").await, 1);

    // Rows stored before normalization are migrated: the older of two twins keeps the
    // address, the newer is left as it was.
    for (email, age) in [("Ren\u{e9}e@Example.com", "2 days"), ("rene\u{301}e@example.com", "1 day")] {
        sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')")
            .bind(uuid::Uuid::now_v7())
            .bind(email)
            .execute(&app.db)
            .await
            .unwrap();
        sqlx::query(&format!("UPDATE users SET created_at = now() - interval '{age}' WHERE email = $1"))
            .bind(email)
            .execute(&app.db)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM seaql_migrations WHERE version = 'm20261201_000103_normalize_email_addresses'")
        .execute(&app.db)
        .await
        .unwrap();
    let out = app.cli(&["migrate"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let emails: Vec<(String,)> =
        sqlx::query_as("SELECT email::text FROM users ORDER BY created_at").fetch_all(&app.db).await.unwrap();
    let emails: Vec<_> = emails.into_iter().map(|e| e.0).collect();
    assert_eq!(emails, ["ren\u{e9}e@example.com", "rene\u{301}e@example.com", stored]);
}

#[tokio::test]
async fn the_activity_log_and_dashboard_need_their_own_scope() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    api_token(&app, &ann, &["billing:read"]).await;
    let activity = "{ activity(first: 10) { edges { node { action data } } } }";
    let dashboard = "{ dashboard { recentActivity { action } } }";
    for scopes in [&["drafts:read"][..], &["drafts:read", "jobs:read", "usage:read", "billing:read"]] {
        let (token, _) = api_token(&app, &ann, scopes).await;
        for q in [activity, dashboard] {
            let r = app.gql(Some(&token), q, json!({})).await;
            assert_eq!(code(&r), "FORBIDDEN", "{scopes:?} {q}: {r}");
            assert_eq!(r["data"], Value::Null);
        }
    }
    let (token, _) = api_token(&app, &ann, &["activity:read"]).await;
    let r = app.gql(Some(&token), activity, json!({})).await;
    let actions: Vec<&str> = r["data"]["activity"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["action"].as_str())
        .collect();
    assert!(actions.contains(&"account.register"), "{r}");
    assert!(app.gql(Some(&token), dashboard, json!({})).await["data"]["dashboard"].is_object());
    // activity:read opens nothing else.
    assert_eq!(code(&app.gql(Some(&token), "{ drafts { edges { node { id } } } }", json!({})).await), "FORBIDDEN");
}

/// Runs `plinth admin worker-token ...args` for `app`, with its Redis; (success, stdout).
async fn worker_token_cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let mut all = vec!["admin", "worker-token"];
    all.extend(args);
    let out = app.cli(&all).env("REDIS_URL", crate::helpers::redis_url()).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), stdout)
}

const CLAIM: &str = "mutation { claimJob(kinds: [SCAN]) { id } }";

#[tokio::test]
async fn worker_tokens_are_listed_and_revoked_on_every_instance_with_their_sockets() {
    let one = TestApp::builder().with_redis().spawn().await;
    let two = one.another_instance().await;
    // Standard output is the token alone; its id is the list's one row.
    let (ok, out) = worker_token_cli(&one, &["--kinds", "scan"]).await;
    assert!(ok, "{out}");
    let token = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(two.gql(Some(&token), CLAIM, json!({})).await.get("errors").is_none());
    let mut ws = WsClient::connect(&two, Some(&token)).await;

    let (ok, list) = worker_token_cli(&one, &["list"]).await;
    assert!(ok);
    assert_eq!(list.lines().count(), 1, "{list}");
    let row = list.lines().next().unwrap();
    let id = row.split('\t').next().unwrap().to_owned();
    assert!(row.contains("\tscan\t") && row.ends_with("revoked -"), "{row}");
    assert!(!list.contains(&token), "the token itself is never stored");

    let (ok, out) = worker_token_cli(&one, &["revoke", &id]).await;
    assert!(ok, "{out}");
    let started = Instant::now();
    while code(&two.gql(Some(&token), CLAIM, json!({})).await) != "UNAUTHENTICATED" {
        assert!(started.elapsed() < Duration::from_secs(1), "the other instance still accepts the worker token");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("worker token refused by the other instance {:?} after the command returned", started.elapsed());
    expect_close(&mut ws, 4403, "the revoked worker's socket").await;
    let (_, list) = worker_token_cli(&one, &["list"]).await;
    assert!(!list.lines().find(|l| l.starts_with(&id)).unwrap().ends_with("revoked -"), "{list}");
    let three = one.another_instance().await;
    assert_eq!(code(&three.gql(Some(&token), CLAIM, json!({})).await), "UNAUTHENTICATED");
    assert!(!worker_token_cli(&one, &["revoke", &id]).await.0, "a second revocation is refused");
    assert!(!worker_token_cli(&one, &["revoke", "not-an-id"]).await.0);
}

#[tokio::test]
async fn the_signing_key_rotates_with_old_tokens_accepted_during_the_window() {
    use biscuit_auth::{KeyPair, PrivateKey};
    use std::str::FromStr;
    let one = TestApp::spawn().await;
    let ann = one.register("ann").await;
    let (api, _) = api_token(&one, &ann, &["usage:read"]).await;
    let old = std::fs::read_to_string(one.data_dir.join("token_key")).unwrap();
    let old = KeyPair::from(&PrivateKey::from_str(old.trim()).unwrap());
    let new = KeyPair::new();
    let new_key = new.private().to_prefixed_string();
    let previous = format!("0:{}", old.public());

    let rotating = one
        .another_instance_with(&[
            ("PLINTH_TOKEN_KEY", &new_key),
            ("PLINTH_TOKEN_KEY_ID", "1"),
            ("PLINTH_TOKEN_PREVIOUS_KEYS", &previous),
        ])
        .await;
    assert!(me(&rotating, &ann.access).await["data"]["me"].is_object(), "old session tokens still verify");
    assert!(me(&rotating, &api).await["data"]["me"].is_object(), "old API tokens still verify");
    let r = rotating
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": ann.email, "password": ann.password } }),
        )
        .await;
    let fresh = r["data"]["login"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(UnverifiedBiscuit::from_base64(&fresh).unwrap().root_key_id(), Some(1));
    assert_eq!(UnverifiedBiscuit::from_base64(&ann.access).unwrap().root_key_id(), Some(0));
    assert_eq!(code(&me(&one, &fresh).await), "UNAUTHENTICATED", "an instance without the new key");

    // The window closed: the old key is dropped from the list.
    let rotated = one.another_instance_with(&[("PLINTH_TOKEN_KEY", &new_key), ("PLINTH_TOKEN_KEY_ID", "1")]).await;
    assert_eq!(code(&me(&rotated, &ann.access).await), "UNAUTHENTICATED");
    assert!(me(&rotated, &fresh).await["data"]["me"].is_object());
}

#[tokio::test]
async fn a_plan_change_closes_the_sockets_its_old_tokens_opened_on_every_instance() {
    use crate::helpers::stripe::{event, subscription, FakeStripe};
    let stripe = FakeStripe::start().await;
    let one = TestApp::builder().with_redis().with_stripe(&stripe).spawn().await;
    let two = one.another_instance().await;
    let mut ann = one.register("ann").await;
    let r = one.gql(Some(&ann.access), "mutation { startCheckout(input: {plan: PRO}) { url } }", json!({})).await;
    assert!(r["data"]["startCheckout"]["url"].is_string(), "{r}");
    let mut ws = WsClient::connect(&two, Some(&ann.access)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let customer = one.stripe_customer(&ann).await;
    let t = chrono::Utc::now().timestamp() - 60;
    one.deliver_webhook(&event(
        "e1",
        "customer.subscription.created",
        t,
        subscription("sub_1", &customer, "active", "price_pro_monthly", t),
    ))
    .await;
    expect_close(&mut ws, 4403, "a socket opened with a token of the old plan").await;
    assert_eq!(code(&me(&two, &ann.access).await), "UNAUTHENTICATED");
    // A fresh token carries the new plan and opens a socket again.
    one.refresh_session(&mut ann).await;
    let mut ws = WsClient::connect(&two, Some(&ann.access)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    assert!(matches!(ws.next(Duration::from_millis(300)).await, WsEvent::Timeout));
}

#[tokio::test]
async fn a_socket_renewed_in_band_keeps_delivering_past_its_first_tokens_expiry() {
    let app = TestApp::builder().with_env("PLINTH_ACCESS_TOKEN_TTL_SECS", "10").spawn().await;
    let mut ann = app.register("ann").await;
    let mut ws = WsClient::connect(&app, Some(&ann.access)).await;
    ws.subscribe("s", JOBS_SUB, json!({})).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    app.refresh_session(&mut ann).await;
    ws.send(json!({ "type": "ping", "payload": { "authorization": format!("Bearer {}", ann.access) } })).await;
    assert!(matches!(ws.next(Duration::from_secs(1)).await, WsEvent::Other(v) if v["type"] == "pong"));
    // Past the first token's expiry (10 s), within the second's (13 s, a margin for a
    // loaded machine): each event is re-checked, and still sent.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    let mut other = ann.clone();
    app.refresh_session(&mut other).await;
    let id = app.create_job_as(&other.access).await;
    match ws.next(WAIT).await {
        WsEvent::Next(p) => assert_eq!(p["data"]["jobUpdated"]["id"], id.as_str(), "{p}"),
        other => panic!("the renewed socket should deliver, got {other:?}"),
    }
}
