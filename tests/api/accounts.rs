//! Accounts over the wire: every auth path and its bad inputs.

use crate::helpers::{code, redacted, TestApp};
use serde_json::{json, Value};

const REGISTER: &str =
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken expiresAt user { id email role plan emailVerified } } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken user { id role } } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
const ME: &str = "{ me { id email role plan emailVerified } }";

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, LOGIN, json!({ "i": { "email": email, "password": password } })).await
}

#[tokio::test]
async fn register_signs_in_and_queues_a_verification_mail() {
    let app = TestApp::spawn().await;
    let r = app.gql(None, REGISTER, json!({ "i": { "email": "Ann@Example.com", "password": "long enough pw" } })).await;
    let p = &r["data"]["register"];
    assert_eq!(p["user"]["email"], "ann@example.com");
    assert_eq!(p["user"]["role"], "USER");
    assert_eq!(p["user"]["plan"], "FREE");
    assert_eq!(p["user"]["emailVerified"], false);
    let me = app.gql(p["accessToken"].as_str(), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["id"], p["user"]["id"]);
    assert!(app.last_mail("ann@example.com", "verify_email").await.is_some());
    let anon = app.gql(None, ME, json!({})).await;
    assert_eq!(anon["data"]["me"], Value::Null);
}

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        ("not-an-email", "long enough pw", "email"),
        ("", "long enough pw", "email"),
        ("ann@example.com", "short", "password"),
        ("ann@example.com", &"x".repeat(200), "password"),
    ];
    let mut answers = Vec::new();
    for (email, password, field) in cases {
        let r = app.gql(None, REGISTER, json!({ "i": { "email": email, "password": password } })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
        assert_eq!(r["data"], Value::Null);
        answers.push(r);
    }
    // What a client reads, whole: the message it may show and the field to mark.
    insta::assert_json_snapshot!("bad_registrations", redacted(&Value::Array(answers)));
    let missing = app.gql(None, REGISTER, json!({ "i": { "email": "a@example.com" } })).await;
    assert!(missing["errors"].is_array());
    assert_eq!(app.count("users").await, 0);
    assert_eq!(app.count("email_outbox").await, 0);
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let r = app
        .gql(None, REGISTER, json!({ "i": { "email": ann.email.to_uppercase(), "password": "another password" } }))
        .await;
    assert_eq!(code(&r), "CONFLICT");
    // The message is the one registered for the constraint's name (users_email_key).
    assert_eq!(r["errors"][0]["message"], "an account with this e-mail already exists");
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn login_accepts_the_password_and_answers_unknowns_like_wrong_passwords() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let ok = login(&app, &ann.email.to_uppercase(), &ann.password).await;
    assert_eq!(ok["data"]["login"]["user"]["id"], ann.id.to_string());
    let token = ok["data"]["login"]["accessToken"].as_str().unwrap();
    assert_eq!(app.gql(Some(token), ME, json!({})).await["data"]["me"]["email"], ann.email);

    let wrong = login(&app, &ann.email, "wrong password").await;
    let unknown = login(&app, "nobody@example.com", "wrong password").await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    assert_eq!(wrong["errors"][0]["message"], unknown["errors"][0]["message"]);
    assert_eq!(code(&unknown), "UNAUTHENTICATED");
    assert_eq!(code(&login(&app, "bad email", "x").await), "BAD_USER_INPUT");
}

#[tokio::test]
async fn login_is_throttled_per_email() {
    let app = TestApp::builder().with_env("PLINTH_LOGIN_LIMIT_PER_EMAIL", "3").spawn().await;
    let ann = app.register("ann").await;
    for _ in 0..3 {
        assert_eq!(code(&login(&app, &ann.email, "wrong password").await), "UNAUTHENTICATED");
    }
    let limited = login(&app, &ann.email, &ann.password).await;
    assert_eq!(code(&limited), "RATE_LIMITED");
    assert!(limited["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    // Another address is not affected.
    let bob = app.register("bob").await;
    assert!(login(&app, &bob.email, &bob.password).await["data"]["login"].is_object());
}

#[tokio::test]
async fn login_is_throttled_per_ip() {
    let app = TestApp::builder().with_env("PLINTH_LOGIN_LIMIT_PER_IP", "2").spawn().await;
    login(&app, "a@example.com", "whatever pw").await;
    login(&app, "b@example.com", "whatever pw").await;
    assert_eq!(code(&login(&app, "c@example.com", "whatever pw").await), "RATE_LIMITED");
}

#[tokio::test]
async fn the_throttle_is_shared_by_instances_through_redis() {
    let one = TestApp::builder().with_redis().with_env("PLINTH_LOGIN_LIMIT_PER_EMAIL", "2").spawn().await;
    let two = one.another_instance().await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    login(&one, &email, "wrong password").await;
    login(&two, &email, "wrong password").await;
    assert_eq!(code(&login(&one, &email, "wrong password").await), "RATE_LIMITED");
    assert_eq!(code(&login(&two, &email, "wrong password").await), "RATE_LIMITED");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    // No grace interval: any reuse is a reuse (identity::two_refreshes_in_flight_...
    // covers the interval).
    let app = TestApp::builder().with_env("PLINTH_REFRESH_REUSE_GRACE_SECS", "0").spawn().await;
    let ann = app.register("ann").await;
    let first = app.gql(None, REFRESH, json!({ "t": ann.refresh })).await;
    let rotated = first["data"]["refreshSession"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(rotated, ann.refresh);
    let access = first["data"]["refreshSession"]["accessToken"].as_str().unwrap();
    assert_eq!(app.gql(Some(access), ME, json!({})).await["data"]["me"]["id"], ann.id.to_string());

    // The spent token comes back: the whole session dies, the rotated token with it.
    let reuse = app.gql(None, REFRESH, json!({ "t": ann.refresh })).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED");
    let after = app.gql(None, REFRESH, json!({ "t": rotated })).await;
    assert_eq!(code(&after), "UNAUTHENTICATED");
    let (reason,): (Option<String>,) = sqlx::query_as("SELECT revoked_reason FROM sessions WHERE user_id = $1")
        .bind(ann.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("refresh_token_reuse"));
}

#[tokio::test]
async fn malformed_and_foreign_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    // Bob's secret under Ann's id: the hash is not among Ann's rows.
    let mut forged = ann.refresh.clone();
    forged.replace_range(30.., &bob.refresh[30..]);
    for t in ["", "garbage", "plr_AAAA", forged.as_str(), bob.access.as_str()] {
        assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": t })).await), "UNAUTHENTICATED", "{t}");
    }
    // Bob's session is untouched.
    assert!(app.gql(None, REFRESH, json!({ "t": bob.refresh })).await["data"]["refreshSession"].is_object());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let out = app.gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": ann.refresh })).await;
    assert_eq!(out["data"]["logout"], true);
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": ann.refresh })).await), "UNAUTHENTICATED");
    let again = app.gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": ann.refresh })).await;
    assert_eq!(again["data"]["logout"], true);
    let bad = app.gql(None, "mutation { logout(refreshToken: \"nope\") }", json!({})).await;
    assert_eq!(code(&bad), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_tampered_and_expired_access_tokens_are_unauthenticated() {
    let app = TestApp::builder().with_env("PLINTH_ACCESS_TOKEN_TTL_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let mut tampered = ann.access.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for token in ["garbage", tampered.as_str(), ""] {
        let r = app.gql(Some(token), ME, json!({})).await;
        if token.is_empty() {
            continue;
        }
        assert_eq!(code(&r), "UNAUTHENTICATED", "{token}");
        assert_eq!(r["data"], Value::Null);
    }
    let scheme = app
        .http()
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {}", ann.access))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&scheme), "UNAUTHENTICATED");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = app.gql(Some(&ann.access), ME, json!({})).await;
    assert_eq!(code(&expired), "UNAUTHENTICATED");
    insta::assert_json_snapshot!("expired_access_token", redacted(&expired));
}

#[tokio::test]
async fn email_verification_is_single_use() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let token = app.mailed_token(&ann.email, "verify_email").await;
    let verify = "mutation($t: String!) { verifyEmail(token: $t) }";
    assert_eq!(app.gql(None, verify, json!({ "t": token })).await["data"]["verifyEmail"], true);
    assert_eq!(app.gql(Some(&ann.access), ME, json!({})).await["data"]["me"]["emailVerified"], true);
    let again = app.gql(None, verify, json!({ "t": token })).await;
    assert_eq!(code(&again), "BAD_USER_INPUT");
    assert_eq!(code(&app.gql(None, verify, json!({ "t": "plv_x" })).await), "BAD_USER_INPUT");
    // A reset token is not a verification token.
    let resend = app.gql(Some(&ann.access), "mutation { requestEmailVerification }", json!({})).await;
    assert_eq!(resend["data"]["requestEmailVerification"], true);
    let anon = app.gql(None, "mutation { requestEmailVerification }", json!({})).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
}

#[tokio::test]
async fn password_reset_changes_the_password_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    let unknown = app.gql(None, request, json!({ "e": "nobody@example.com" })).await;
    assert_eq!(unknown["data"]["requestPasswordReset"], true);
    assert_eq!(app.count("email_outbox WHERE template = 'reset_password'").await, 0);
    assert_eq!(app.gql(None, request, json!({ "e": ann.email })).await["data"]["requestPasswordReset"], true);
    let token = app.mailed_token(&ann.email, "reset_password").await;

    let reset = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";
    let weak = app.gql(None, reset, json!({ "t": token, "p": "short" })).await;
    assert_eq!(code(&weak), "BAD_USER_INPUT");
    assert_eq!(weak["errors"][0]["extensions"]["field"], "newPassword");
    // The refused attempt did not spend the token.
    let ok = app.gql(None, reset, json!({ "t": token, "p": "brand new password" })).await;
    assert_eq!(ok["data"]["resetPassword"], true, "{ok}");
    assert_eq!(code(&app.gql(None, reset, json!({ "t": token, "p": "another new one" })).await), "BAD_USER_INPUT");

    assert_eq!(code(&login(&app, &ann.email, &ann.password).await), "UNAUTHENTICATED");
    assert!(login(&app, &ann.email, "brand new password").await["data"]["login"].is_object());
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": ann.refresh })).await), "UNAUTHENTICATED");
    assert!(app.last_mail(&ann.email, "password_changed").await.is_some());
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_keeps_this_session() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let other = login(&app, &ann.email, &ann.password).await;
    let other_refresh = other["data"]["login"]["refreshToken"].as_str().unwrap().to_owned();
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let wrong = app.gql(Some(&ann.access), change, json!({ "c": "not it at all", "n": "new password 1" })).await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT");
    assert_eq!(wrong["errors"][0]["extensions"]["field"], "currentPassword");
    let anon = app.gql(None, change, json!({ "c": ann.password, "n": "new password 1" })).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
    let ok = app.gql(Some(&ann.access), change, json!({ "c": ann.password, "n": "new password 1" })).await;
    assert_eq!(ok["data"]["changePassword"], true, "{ok}");
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": other_refresh })).await), "UNAUTHENTICATED");
    assert!(app.gql(None, REFRESH, json!({ "t": ann.refresh })).await["data"]["refreshSession"].is_object());
    assert!(login(&app, &ann.email, "new password 1").await["data"]["login"].is_object());
}

#[tokio::test]
async fn activity_is_recorded_per_user() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    login(&app, &ann.email, &ann.password).await;
    let actions: Vec<(String,)> =
        sqlx::query_as("SELECT action FROM activity_log WHERE user_id = $1 ORDER BY created_at, id")
            .bind(ann.id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    let actions: Vec<_> = actions.into_iter().map(|a| a.0).collect();
    assert_eq!(actions, ["account.register", "session.login"]);
}

const SESSIONS: &str = "{ sessions { id createdAt lastUsedAt expiresAt userAgent ip current } }";
const REVOKE_SESSION: &str = "mutation($id: ID!) { revokeSession(id: $id) }";

/// Signs `user` in again from another client (its own User-Agent): the new session's
/// access and refresh tokens.
async fn sign_in_from(app: &TestApp, user: &crate::helpers::TestUser, user_agent: &str) -> (String, String) {
    let resp = app
        .http()
        .post(app.url("/graphql"))
        .header("user-agent", user_agent)
        .json(&json!({ "query": LOGIN, "variables": { "i": { "email": user.email, "password": user.password } } }))
        .send()
        .await
        .unwrap();
    let r: Value = resp.json().await.unwrap();
    let p = &r["data"]["login"];
    (p["accessToken"].as_str().expect("signed in").to_owned(), p["refreshToken"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn sessions_lists_the_live_sign_ins_and_marks_the_current_one() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let (phone, _) = sign_in_from(&app, &ann, "Phone/1.0 (test)").await;
    let (ended, ended_refresh) = sign_in_from(&app, &ann, "Old/1.0").await;
    app.gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", json!({ "t": ended_refresh })).await;
    drop(ended);

    let r = app.gql(Some(&ann.access), SESSIONS, json!({})).await;
    let list = r["data"]["sessions"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(list.len(), 2, "the ended session is not listed: {r}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["userAgent"], Value::Null, "registered without a User-Agent");
    let other = list.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!((other["userAgent"].as_str(), other["ip"].as_str()), (Some("Phone/1.0 (test)"), Some("127.0.0.1")));
    for field in ["createdAt", "lastUsedAt", "expiresAt"] {
        assert!(other[field].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{field}");
    }
    // From the phone, the phone's session is the current one; Bob sees only his own.
    let r = app.gql(Some(&phone), SESSIONS, json!({})).await;
    let mine = r["data"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).cloned().unwrap();
    assert_eq!(mine["id"], other["id"]);
    let bob = app.register("bob").await;
    let r = app.gql(Some(&bob.access), SESSIONS, json!({})).await;
    assert_eq!(r["data"]["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(code(&app.gql(None, SESSIONS, json!({})).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn revoking_a_session_refuses_its_tokens_at_once_and_only_its_owner_can() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let (phone, phone_refresh) = sign_in_from(&app, &ann, "Phone/1.0").await;
    let r = app.gql(Some(&ann.access), SESSIONS, json!({})).await;
    let phone_id = r["data"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Not Bob's to end, whether it exists or not; nor anyone's without a session.
    let bob = app.register("bob").await;
    let r = app.gql(Some(&bob.access), REVOKE_SESSION, json!({ "id": phone_id })).await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    assert_eq!(
        code(&app.gql(Some(&bob.access), REVOKE_SESSION, json!({ "id": uuid::Uuid::now_v7() })).await),
        "NOT_FOUND"
    );
    assert_eq!(code(&app.gql(Some(&bob.access), REVOKE_SESSION, json!({ "id": "nope" })).await), "BAD_USER_INPUT");
    assert_eq!(code(&app.gql(None, REVOKE_SESSION, json!({ "id": phone_id })).await), "UNAUTHENTICATED");
    assert!(app.gql(Some(&phone), ME, json!({})).await["data"]["me"].is_object(), "Bob's attempts changed nothing");

    let r = app.gql(Some(&ann.access), REVOKE_SESSION, json!({ "id": phone_id })).await;
    assert_eq!(r["data"]["revokeSession"], true, "{r}");
    assert_eq!(code(&app.gql(Some(&phone), ME, json!({})).await), "UNAUTHENTICATED", "refused at once");
    assert_eq!(code(&app.gql(None, REFRESH, json!({ "t": phone_refresh })).await), "UNAUTHENTICATED");
    assert_eq!(code(&app.gql(Some(&ann.access), REVOKE_SESSION, json!({ "id": phone_id })).await), "NOT_FOUND");
    let r = app.gql(Some(&ann.access), SESSIONS, json!({})).await;
    assert_eq!(r["data"]["sessions"].as_array().unwrap().len(), 1);
    assert!(app.gql(Some(&ann.access), ME, json!({})).await["data"]["me"].is_object(), "the other session lives on");
    let (action,): (String,) = sqlx::query_as(
        "SELECT action FROM activity_log WHERE user_id = $1 AND subject_id = $2::uuid ORDER BY created_at DESC LIMIT 1",
    )
    .bind(ann.id)
    .bind(&phone_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(action, "session.revoke");
}
