//! The web app's cookie endpoints over real HTTP (web/README.md, "Cookie endpoints"):
//! the refresh token lives in an HttpOnly cookie, rotates on every refresh, and a
//! reused one ends its session; only same-origin requests with `X-Plinth-CSRF: 1` pass.
use crate::helpers::{code, TestApp};
use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};

const ME: &str = "{ me { email } }";

/// A cookie endpoint's answer: its status, body (JSON or null) and `Set-Cookie`.
struct Answer {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
    retry_after: Option<String>,
}

impl Answer {
    async fn of(resp: Response) -> Answer {
        let status = resp.status();
        let set_cookie = resp.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_owned());
        let retry_after = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        Answer { status, body, set_cookie, retry_after }
    }

    /// The `plinth_refresh` value the answer sets (empty when it clears it).
    fn cookie(&self) -> String {
        let set = self.set_cookie.as_deref().expect("a Set-Cookie");
        let value = set.split(';').next().unwrap().strip_prefix("plinth_refresh=").expect("the refresh cookie");
        value.to_owned()
    }

    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error>")
    }
}

/// POSTs to a cookie endpoint as the web app does: JSON, `X-Plinth-CSRF: 1`, the
/// server's own Origin, and the cookie when given.
async fn post(app: &TestApp, path: &str, body: Value, cookie: Option<&str>) -> Answer {
    let mut req =
        app.http().post(app.url(path)).header("x-plinth-csrf", "1").header(header::ORIGIN, app.url("")).json(&body);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("plinth_refresh={c}"));
    }
    Answer::of(req.send().await.unwrap()).await
}

async fn register(app: &TestApp, email: &str) -> Answer {
    let answer =
        post(app, "/auth/register", json!({ "email": email, "password": "a long enough password" }), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer
}

#[tokio::test]
async fn register_and_login_answer_the_access_token_and_set_an_httponly_cookie() {
    let app = TestApp::spawn().await;
    let signed_up = register(&app, "ann@example.com").await;
    let body = &signed_up.body;
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!((body["user"]["role"].as_str(), body["user"]["plan"].as_str()), (Some("USER"), Some("FREE")));
    assert!(body["expiresAt"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    assert!(body.get("refreshToken").is_none() && !body.to_string().contains(&signed_up.cookie()));
    let set = signed_up.set_cookie.as_deref().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/auth", &format!("Max-Age={}", 30 * 86_400)] {
        assert!(set.split("; ").any(|a| a == attribute), "{attribute} missing from {set}");
    }
    // Plain HTTP on loopback in development: not Secure, or browsers could drop it.
    assert!(!set.contains("Secure"), "{set}");
    let me = app.gql(body["accessToken"].as_str(), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["email"], "ann@example.com");

    let login =
        post(&app, "/auth/login", json!({ "email": "ann@example.com", "password": "a long enough password" }), None)
            .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_ne!(login.cookie(), signed_up.cookie(), "a new session, a new token");
    let me = app.gql(login.body["accessToken"].as_str(), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["email"], "ann@example.com");
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_secure() {
    let app = TestApp::builder().with_env("PLINTH_PUBLIC_URL", "https://app.example.com").spawn().await;
    let signed_up = register(&app, "ann@example.com").await;
    assert!(signed_up.set_cookie.unwrap().split("; ").any(|a| a == "Secure"));
}

#[tokio::test]
async fn failures_answer_their_code_and_status() {
    let app = TestApp::builder().with_env("PLINTH_SIGNUP_LIMIT_PER_IP", "3").spawn().await;
    register(&app, "ann@example.com").await;
    let wrong =
        post(&app, "/auth/login", json!({ "email": "ann@example.com", "password": "not it at all" }), None).await;
    assert_eq!((wrong.status, wrong.error_code()), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    assert!(wrong.set_cookie.is_none());
    let taken =
        post(&app, "/auth/register", json!({ "email": "ann@example.com", "password": "another password" }), None).await;
    assert_eq!((taken.status, taken.error_code()), (StatusCode::CONFLICT, "CONFLICT"));
    let short = post(&app, "/auth/register", json!({ "email": "bob@example.com", "password": "short" }), None).await;
    assert_eq!((short.status, short.error_code()), (StatusCode::BAD_REQUEST, "BAD_USER_INPUT"));
    assert_eq!(short.body["error"]["field"], "password");
    let garbage = post(&app, "/auth/login", json!(["not", "an", "object"]), None).await;
    assert_eq!((garbage.status, garbage.error_code()), (StatusCode::BAD_REQUEST, "BAD_USER_INPUT"));
    let locale = post(
        &app,
        "/auth/register",
        json!({ "email": "c@example.com", "password": "long enough", "locale": "de" }),
        None,
    )
    .await;
    assert_eq!((locale.status, locale.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("locale")));
    // The same sign-up throttle as the GraphQL mutation: three per IP here.
    let throttled =
        post(&app, "/auth/register", json!({ "email": "d@example.com", "password": "long enough" }), None).await;
    assert_eq!((throttled.status, throttled.error_code()), (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"));
    let wait = throttled.retry_after.expect("Retry-After");
    assert_eq!(throttled.body["error"]["retryAfter"].to_string(), wait);
}

#[tokio::test]
async fn refresh_rotates_the_cookie_and_a_reused_one_ends_the_session() {
    let app = TestApp::builder().with_env("PLINTH_REFRESH_REUSE_GRACE_SECS", "0").spawn().await;
    let first = register(&app, "ann@example.com").await.cookie();
    let rotated = post(&app, "/auth/refresh", json!({}), Some(&first)).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let second = rotated.cookie();
    assert_ne!(second, first);
    let access = rotated.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.gql(Some(&access), ME, json!({})).await["data"]["me"]["email"], "ann@example.com");

    // The first cookie again: reuse. Refused, cleared, and the whole session ends.
    let reused = post(&app, "/auth/refresh", json!({}), Some(&first)).await;
    assert_eq!((reused.status, reused.error_code()), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    assert_eq!(reused.cookie(), "");
    assert!(reused.set_cookie.unwrap().contains("Max-Age=0"));
    let after = post(&app, "/auth/refresh", json!({}), Some(&second)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the successor died with its session");
    assert_eq!(code(&app.gql(Some(&access), ME, json!({})).await), "UNAUTHENTICATED");

    // No cookie at all: 401, and the (absent) cookie cleared.
    let none = post(&app, "/auth/refresh", json!({}), None).await;
    assert_eq!((none.status, none.cookie().as_str()), (StatusCode::UNAUTHORIZED, ""));
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_get_the_same_successor_within_the_grace_interval() {
    let app = TestApp::spawn().await;
    let first = register(&app, "ann@example.com").await.cookie();
    let one = post(&app, "/auth/refresh", json!({}), Some(&first)).await;
    let two = post(&app, "/auth/refresh", json!({}), Some(&first)).await;
    assert_eq!((one.status, two.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(one.cookie(), two.cookie());
    assert_eq!(post(&app, "/auth/refresh", json!({}), Some(&one.cookie())).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = TestApp::spawn().await;
    let signed_up = register(&app, "ann@example.com").await;
    let (cookie, access) = (signed_up.cookie(), signed_up.body["accessToken"].as_str().unwrap().to_owned());
    let out = post(&app, "/auth/logout", json!({}), Some(&cookie)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(out.cookie(), "");
    assert!(out.set_cookie.as_deref().unwrap().contains("Max-Age=0"));
    assert_eq!(post(&app, "/auth/refresh", json!({}), Some(&cookie)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&app.gql(Some(&access), ME, json!({})).await), "UNAUTHENTICATED");
    // Again, and without any cookie: still 204.
    assert_eq!(post(&app, "/auth/logout", json!({}), Some(&cookie)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(post(&app, "/auth/logout", json!({}), None).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn requests_without_the_csrf_header_or_from_another_origin_are_refused() {
    let app = TestApp::spawn().await;
    let cookie = register(&app, "ann@example.com").await.cookie();
    let login = json!({ "email": "ann@example.com", "password": "a long enough password" });
    for path in ["/auth/login", "/auth/register", "/auth/refresh", "/auth/logout"] {
        let send = |csrf: Option<&str>, origin: Option<&str>| {
            let mut req =
                app.http().post(app.url(path)).header(header::COOKIE, format!("plinth_refresh={cookie}")).json(&login);
            if let Some(v) = csrf {
                req = req.header("x-plinth-csrf", v);
            }
            if let Some(o) = origin {
                req = req.header(header::ORIGIN, o);
            }
            async move { Answer::of(req.send().await.unwrap()).await }
        };
        let missing = send(None, Some(&app.url(""))).await;
        assert_eq!((missing.status, missing.error_code()), (StatusCode::FORBIDDEN, "FORBIDDEN"), "{path}");
        assert_eq!(send(Some("0"), None).await.status, StatusCode::FORBIDDEN, "{path}");
        let foreign = send(Some("1"), Some("https://evil.example")).await;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{path}");
        assert!(foreign.set_cookie.is_none(), "{path}: nothing changes");
        assert_eq!(send(Some("1"), Some("null")).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing was done for the refused requests: the session still refreshes.
    assert_eq!(post(&app, "/auth/refresh", json!({}), Some(&cookie)).await.status, StatusCode::OK);
    // A page of a configured public origin passes.
    let proxied = TestApp::builder().with_env("PLINTH_PUBLIC_URL", "https://app.example.com").spawn().await;
    let resp = proxied
        .http()
        .post(proxied.url("/auth/register"))
        .header("x-plinth-csrf", "1")
        .header(header::ORIGIN, "https://app.example.com")
        .json(&json!({ "email": "bob@example.com", "password": "long enough" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
