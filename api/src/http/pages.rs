//! The unsubscribe link of onboarding mail: `GET /unsubscribe` shows one button, `POST
//! /unsubscribe` (RFC 8058 one-click) does it. The page runs no script: its button is a
//! plain form posting the one-click body to the same URL, and its policy allows no script
//! at all. The other links of mail (`/verify-email?token=`, `/reset-password?token=`) open
//! the web app's pages (`http::webapp`), which call `verifyEmail` and `resetPassword` over
//! `POST /graphql`.
use poem::{handler, http::header, IntoResponse, Response};

/// The pages' policy: no script of any kind (`default-src 'none'` covers `script-src`),
/// their own inline style, forms posting to this origin only, never framed.
const PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn page(status: poem::http::StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("Content-Security-Policy", PAGE_POLICY)
        .header("X-Content-Type-Options", "nosniff")
        .body(body)
}

const UNSUBSCRIBE: &str = include_str!("../../templates/pages/unsubscribe.html");

/// The button: a plain form without `action`, so it posts the RFC 8058 body to the page's
/// own URL (query string included).
const FORM: &str = r#"<p>Ne plus recevoir ces e-mails ? / Stop these e-mails?</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Me désabonner / Unsubscribe me</button>
</form>"#;

/// The answer to a POST: a page for the person who pressed the button (mailbox providers'
/// one-click POSTs read only the status). `text` is one of the fixed messages below.
fn outcome(status: poem::http::StatusCode, text: &'static str) -> Response {
    page(status, UNSUBSCRIBE.replace("{body}", &format!(r#"<p role="status">{text}</p>"#)))
}

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
    page(poem::http::StatusCode::OK, UNSUBSCRIBE.replace("{body}", FORM))
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
    let Some(user_id) = q.u.as_deref().and_then(|u| uuid::Uuid::parse_str(u).ok()) else {
        return outcome(
            poem::http::StatusCode::BAD_REQUEST,
            "Ce lien de désabonnement n’est pas valide. / This unsubscribe link is not valid.",
        );
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
                outcome(poem::http::StatusCode::OK, "Vous êtes désabonné. / You are unsubscribed.")
            }
            Err(e) => {
                tracing::error!(error = %e, "committing an unsubscription");
                outcome(poem::http::StatusCode::SERVICE_UNAVAILABLE, "Réessayez plus tard. / Try again later.")
            }
        },
        Err(e) => {
            tx.rollback().await;
            let status = match e.code() {
                "BAD_USER_INPUT" | "NOT_FOUND" => poem::http::StatusCode::BAD_REQUEST,
                _ => poem::http::StatusCode::SERVICE_UNAVAILABLE,
            };
            outcome(status, "Ce lien de désabonnement n’est pas valide. / This unsubscribe link is not valid.")
        }
    }
}
