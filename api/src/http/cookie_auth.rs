//! The cookie endpoints of Plinth's own web app (web/README.md, "Cookie endpoints"):
//! `POST /auth/login`, `/auth/register`, `/auth/refresh` and `/auth/logout`. The web app
//! keeps its refresh token in a cookie JavaScript cannot read; other clients use the
//! contract's GraphQL operations (`login`, `refreshSession` ...), which stay as they are.
//! Both go through the same account service: the same throttles, the same rotation,
//! reuse detection and grace interval.
//!
//! Each endpoint is same-origin only: it needs the header `X-Plinth-CSRF: 1` (a
//! cross-site form cannot set it, and a cross-site `fetch` with it needs a CORS
//! preflight no route grants) and, when the browser sends `Origin`, the server's own:
//! `PLINTH_PUBLIC_URL`'s origin or the request's `Host`. Else 403, before anything is
//! read.
//!
//! The cookie: `plinth_refresh=<opaque>; HttpOnly; Secure; SameSite=Strict; Path=/auth;
//! Max-Age=<PLINTH_REFRESH_TOKEN_TTL_DAYS>`. `Secure` is left out only in development
//! when the public URL is plain `http://` on a loopback host (`cargo run`: browsers
//! treat those as secure anyway, and some would drop a `Secure` cookie there).
//!
//! Answers: `AuthBody` = `{accessToken, expiresAt, user: {id, email, role, plan}}` (the
//! refresh token never in a body); errors `{"error": {"code", "message", ...}}` with the
//! GraphQL extensions (`field`, `retryAfter`, `requestId`) and the status of the code:
//! BAD_USER_INPUT 400, UNAUTHENTICATED 401, ACCOUNT_SUSPENDED and FORBIDDEN 403,
//! CONFLICT 409, RATE_LIMITED 429 (with `Retry-After`), SERVICE_UNAVAILABLE 503,
//! INTERNAL 500.
use super::{graphql::client_ip, HttpState, RequestId};
use crate::{
    accounts::service::SignedIn,
    db::{RequestMeta, RequestTx},
    error::{AppError, AppResult},
    model::{Locale, PlanCode, Role},
    principal::Principal,
};
use async_graphql::InputType;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, RemoteAddr},
    Request, Response,
};
use serde_json::{json, Value};
use std::{future::Future, sync::Arc};

/// The refresh cookie's name.
pub const COOKIE: &str = "plinth_refresh";

/// The header that proves a same-origin script sent the request.
pub const CSRF_HEADER: &str = "x-plinth-csrf";

/// The body of `/auth/login` and `/auth/register`.
#[derive(serde::Deserialize)]
struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    locale: Option<String>,
}

/// `POST /auth/login` `{email, password}`: 200 `AuthBody` and the cookie.
#[handler]
pub async fn login(req: &Request, Data(state): Data<&Arc<HttpState>>, remote: &RemoteAddr, body: Vec<u8>) -> Response {
    let (call, creds) = match Call::with_credentials(req, state, remote, &body) {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    call.sign_in(false, |tx| async move { state.accounts.login(&tx, &creds.email, &creds.password).await }).await
}

/// `POST /auth/register` `{email, password, locale?}`: 200 `AuthBody` and the cookie.
#[handler]
pub async fn register(
    req: &Request,
    Data(state): Data<&Arc<HttpState>>,
    remote: &RemoteAddr,
    body: Vec<u8>,
) -> Response {
    let (call, creds) = match Call::with_credentials(req, state, remote, &body) {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    let locale = match creds.locale.as_deref().map(Locale::parse).transpose() {
        Ok(l) => l,
        Err(_) => return call.error(AppError::bad_input("locale", "expected fr or en"), false),
    };
    let locale = locale
        .or_else(|| call.meta.accept_language.as_deref().and_then(Locale::from_accept_language))
        .unwrap_or(Locale::Fr);
    call.sign_in(false, |tx| async move { state.accounts.register(&tx, &creds.email, &creds.password, locale).await })
        .await
}

/// `POST /auth/refresh` (the cookie): 200 `AuthBody` and the next cookie; 401 and the
/// cookie cleared when it is missing, spent, revoked or expired.
#[handler]
pub async fn refresh(req: &Request, Data(state): Data<&Arc<HttpState>>, remote: &RemoteAddr) -> Response {
    let call = match Call::check(req, state, remote) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let Some(token) = refresh_cookie(req) else {
        return call.error(AppError::Unauthenticated("no session: sign in".into()), true);
    };
    call.sign_in(true, |tx| async move { state.accounts.refresh(&tx, &token).await }).await
}

/// `POST /auth/logout` (the cookie): ends its session; 204 and the cookie cleared,
/// also when there was no session.
#[handler]
pub async fn logout(req: &Request, Data(state): Data<&Arc<HttpState>>, remote: &RemoteAddr) -> Response {
    let call = match Call::check(req, state, remote) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    if let Some(token) = refresh_cookie(req) {
        let ended = call.run(|tx| async move { state.accounts.logout(&tx, &token).await }).await;
        match ended {
            Ok(_) | Err(AppError::Unauthenticated(_)) => {}
            // The browser signs out whatever happens; the session ends with its expiry
            // or from the sessions list.
            Err(e) => return call.error(e, true),
        }
    }
    let mut resp = Response::builder().status(StatusCode::NO_CONTENT).finish();
    resp.headers_mut().append(header::SET_COOKIE, call.cookie(None).parse().expect("a valid Set-Cookie"));
    resp
}

/// One checked call of a cookie endpoint.
struct Call<'a> {
    state: &'a HttpState,
    meta: RequestMeta,
}

impl<'a> Call<'a> {
    /// Refuses a request that is not provably same-origin (403).
    fn check(req: &Request, state: &'a HttpState, remote: &RemoteAddr) -> Result<Self, Box<Response>> {
        let csrf = req.header(CSRF_HEADER) == Some("1");
        if !csrf || !same_origin(req, state.config.server.public_url.as_deref()) {
            tracing::info!(csrf, "a cookie endpoint refused a request that is not same-origin");
            let reason =
                if csrf { "the Origin is not this server's" } else { "the X-Plinth-CSRF: 1 header is missing" };
            return Err(Box::new(error_response(
                StatusCode::FORBIDDEN,
                json!({ "code": "FORBIDDEN", "message": reason }),
            )));
        }
        let meta = RequestMeta {
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default(),
            ip: client_ip(req, remote, state.config.server.client_ip_header.as_deref()),
            user_agent: req.header(header::USER_AGENT).map(|ua| ua.chars().take(256).collect()),
            accept_language: req.header(header::ACCEPT_LANGUAGE).map(|l| l.chars().take(256).collect()),
            operator: None,
        };
        Ok(Call { state, meta })
    }

    /// [`Call::check`], then the body read as `{email, password, locale?}` (400 when it
    /// is not).
    fn with_credentials(
        req: &Request,
        state: &'a HttpState,
        remote: &RemoteAddr,
        body: &[u8],
    ) -> Result<(Self, Credentials), Box<Response>> {
        let call = Self::check(req, state, remote)?;
        match serde_json::from_slice(body) {
            Ok(creds) => Ok((call, creds)),
            Err(_) => {
                let bad = AppError::bad_input("body", "expected a JSON object with email and password (strings)");
                Err(Box::new(call.error(bad, false)))
            }
        }
    }

    /// Runs `work` in an anonymous request transaction within the request's time
    /// budget: committed (and its events published) when it succeeds, else rolled back.
    async fn run<T, F, Fut>(&self, work: F) -> AppResult<T>
    where
        F: FnOnce(RequestTx) -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        let config = &self.state.config;
        let tx = RequestTx::new(
            &self.state.pool,
            Principal::Anonymous,
            self.meta.clone(),
            config.database.statement_timeout_ms,
        );
        let budget = std::time::Duration::from_millis(config.server.request_timeout_ms);
        let done = match tokio::time::timeout(budget, work(tx.clone())).await {
            Ok(done) => done,
            Err(_) => Err(AppError::ServiceUnavailable(format!(
                "the request did not finish within {} ms; nothing was done, retry shortly",
                budget.as_millis()
            ))),
        };
        match done {
            Ok(value) => {
                tx.commit(&self.state.bus).await.map_err(AppError::from_db)?;
                Ok(value)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Runs a sign-in (`work` answers a session) and answers `AuthBody` with the cookie;
    /// a refused refresh (`refreshing`) clears the cookie.
    async fn sign_in<F, Fut>(&self, refreshing: bool, work: F) -> Response
    where
        F: FnOnce(RequestTx) -> Fut,
        Fut: Future<Output = AppResult<SignedIn>>,
    {
        match self.run(work).await {
            Ok(signed_in) => match auth_body(&signed_in) {
                Ok(body) => {
                    let mut resp = Response::builder().content_type("application/json").body(body.to_string());
                    let cookie = self.cookie(Some(&signed_in.refresh_token));
                    resp.headers_mut().append(header::SET_COOKIE, cookie.parse().expect("a valid Set-Cookie"));
                    resp.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("a header value"));
                    resp
                }
                Err(e) => self.error(e, false),
            },
            Err(e) => {
                let dead = refreshing && matches!(e, AppError::Unauthenticated(_));
                self.error(e, dead)
            }
        }
    }

    /// The refresh cookie carrying `token`, or clearing it (None).
    fn cookie(&self, token: Option<&str>) -> String {
        let config = &self.state.config;
        let max_age = match token {
            Some(_) => config.auth.refresh_token_ttl.as_secs(),
            None => 0,
        };
        let secure =
            if secure_cookie(config.is_production(), &config.server.public_url_or_addr()) { "; Secure" } else { "" };
        format!("{COOKIE}={}; HttpOnly{secure}; SameSite=Strict; Path=/auth; Max-Age={max_age}", token.unwrap_or(""))
    }

    /// The error answer for `err`, clearing the cookie when `clear`.
    fn error(&self, err: AppError, clear: bool) -> Response {
        let status = status_of(&err);
        let code = err.code();
        let gql: async_graphql::Error = err.into();
        let mut body = serde_json::to_value(&gql.extensions).unwrap_or(Value::Null);
        if !body.is_object() {
            body = json!({});
        }
        body["code"] = json!(code);
        body["message"] = json!(gql.message);
        if code == "INTERNAL" {
            body["requestId"] = json!(self.meta.request_id);
        }
        let retry_after = body.get("retryAfter").and_then(Value::as_u64);
        let mut resp = error_response(status, body);
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        if clear {
            resp.headers_mut().append(header::SET_COOKIE, self.cookie(None).parse().expect("a valid Set-Cookie"));
        }
        resp
    }
}

fn error_response(status: StatusCode, error: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(json!({ "error": error }).to_string())
}

/// `{accessToken, expiresAt, user: {id, email, role, plan}}`, in the GraphQL spellings.
fn auth_body(s: &SignedIn) -> AppResult<Value> {
    let role = Role::parse(&s.user.role).map_err(|e| AppError::Internal(e.into()))?;
    let plan = PlanCode::parse(&s.user.plan).map_err(|e| AppError::Internal(e.into()))?;
    Ok(json!({
        "accessToken": s.access_token,
        "expiresAt": s.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "user": {
            "id": s.user.id,
            "email": s.user.email,
            "role": role.to_value().into_json().map_err(|e| AppError::Internal(e.into()))?,
            "plan": plan.to_value().into_json().map_err(|e| AppError::Internal(e.into()))?,
        },
    }))
}

/// The HTTP status of an error code.
fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) | AppError::AccountSuspended(_) => StatusCode::FORBIDDEN,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The refresh token of the request's cookie, if any.
fn refresh_cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Whether the request comes from this server's own pages: no `Origin` (not a
/// cross-origin browser request), or the public URL's origin, or the origin of the
/// `Host` the browser addressed (a development proxy, another local name).
fn same_origin(req: &Request, public_url: Option<&str>) -> bool {
    let Some(origin) = req.header(header::ORIGIN) else { return true };
    if public_url.and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| u.origin().ascii_serialization() == origin) {
        return true;
    }
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    matches!((authority, req.header(header::HOST)), (Some(a), Some(host)) if a.eq_ignore_ascii_case(host))
}

/// Whether the cookie is `Secure`: always, except in development behind a plain-HTTP
/// loopback public URL (unset, it is `http://<PLINTH_ADDR>`: loopback by default).
fn secure_cookie(production: bool, public_url: &str) -> bool {
    if production {
        return true;
    }
    let Ok(url) = url::Url::parse(public_url) else { return true };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    !(url.scheme() == "http" && loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_except_on_plain_http_loopback_in_development() {
        assert!(!secure_cookie(false, "http://127.0.0.1:8080"));
        assert!(!secure_cookie(false, "http://localhost:5173"));
        assert!(!secure_cookie(false, "http://[::1]:8080"));
        assert!(secure_cookie(false, "https://127.0.0.1:8080"));
        assert!(secure_cookie(false, "http://0.0.0.0:8080"));
        assert!(secure_cookie(false, "http://192.168.1.20:8080"));
        assert!(secure_cookie(true, "http://127.0.0.1:8080"));
    }
}
