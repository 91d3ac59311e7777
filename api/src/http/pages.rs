//! The pages the links of e-mails open: `/verify-email?token=` and
//! `/reset-password?token=`. Minimal HTML that calls the public mutations with `fetch`
//! and a JSON body (the GraphQL endpoint refuses form posts); the web app restyles
//! them later. The token stays in the page's URL and is never logged by Plinth.
use poem::{handler, http::header, IntoResponse, Response};

const VERIFY: &str = include_str!("../../templates/pages/verify_email.html");
const RESET: &str = include_str!("../../templates/pages/reset_password.html");

fn page(body: &'static str) -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; base-uri 'none'")
        .body(body)
}

/// `GET /verify-email?token=`: confirms the address on load.
#[handler]
pub async fn verify_email() -> impl IntoResponse {
    page(VERIFY)
}

/// `GET /reset-password?token=`: a form for the new password.
#[handler]
pub async fn reset_password() -> impl IntoResponse {
    page(RESET)
}
