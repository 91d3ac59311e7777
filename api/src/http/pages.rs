//! The unsubscribe link of onboarding mail: `GET /unsubscribe` shows one button, `POST
//! /unsubscribe` (RFC 8058 one-click) does it. The other links of mail
//! (`/verify-email?token=`, `/reset-password?token=`) open the web app's pages
//! (`http::webapp`), which call `verifyEmail` and `resetPassword` over `POST /graphql`.
use poem::{handler, http::header, IntoResponse, Response};

fn page(body: &'static str) -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; base-uri 'none'")
        .body(body)
}

const UNSUBSCRIBE: &str = include_str!("../../templates/pages/unsubscribe.html");

/// The query of an unsubscribe link: user, category, signature.
#[derive(serde::Deserialize)]
pub struct UnsubscribeQuery {
    u: Option<String>,
    c: Option<String>,
    s: Option<String>,
}

/// `GET /unsubscribe?u=&c=&s=`: a page with one button (the POST below); a GET changes
/// nothing, since mail scanners follow links.
#[handler]
pub async fn unsubscribe_page() -> impl IntoResponse {
    page(UNSUBSCRIBE)
}

/// `POST /unsubscribe?u=&c=&s=`: RFC 8058 one-click unsubscribe (the mailbox provider
/// posts `List-Unsubscribe=One-Click`; the page's button posts too). No session: the
/// signature is the proof. 200 when done, 400 for a bad link (nothing written).
#[handler]
pub async fn unsubscribe(
    poem::web::Query(q): poem::web::Query<UnsubscribeQuery>,
    poem::web::Data(state): poem::web::Data<&std::sync::Arc<super::HttpState>>,
) -> Response {
    use crate::{
        db::{RequestMeta, RequestTx},
        principal::Principal,
    };
    let plain = |status: poem::http::StatusCode, text: &str| {
        Response::builder().status(status).content_type("text/plain; charset=utf-8").body(text.to_owned())
    };
    let Some(user_id) = q.u.as_deref().and_then(|u| uuid::Uuid::parse_str(u).ok()) else {
        return plain(poem::http::StatusCode::BAD_REQUEST, "This unsubscribe link is not valid.");
    };
    let tx = RequestTx::new(
        &state.pool,
        Principal::Anonymous,
        RequestMeta::internal("unsubscribe"),
        state.config.database.statement_timeout_ms,
    );
    let category = q.c.as_deref().unwrap_or_default();
    let signature = q.s.as_deref().unwrap_or_default();
    let done = crate::email::preferences::unsubscribe(&tx, &state.sealer, user_id, category, signature).await;
    match done {
        Ok(()) => match tx.commit(&state.bus).await {
            Ok(()) => {
                tracing::info!(user_id = %user_id, category, "unsubscribed by link");
                plain(poem::http::StatusCode::OK, "Vous êtes désabonné. / You are unsubscribed.")
            }
            Err(e) => {
                tracing::error!(error = %e, "committing an unsubscription");
                plain(poem::http::StatusCode::SERVICE_UNAVAILABLE, "Try again later.")
            }
        },
        Err(e) => {
            tx.rollback().await;
            let status = match e.code() {
                "BAD_USER_INPUT" | "NOT_FOUND" => poem::http::StatusCode::BAD_REQUEST,
                _ => poem::http::StatusCode::SERVICE_UNAVAILABLE,
            };
            plain(status, "This unsubscribe link is not valid.")
        }
    }
}
