//! CORS for third-party web frontends (`PLINTH_CORS_ORIGINS`), on poem's middleware.
//!
//! A request from a configured origin gets the CORS headers (preflights answered: GET
//! and POST, with `Authorization`, `Content-Type`, `Accept` and `X-Request-Id`; no
//! cookies); any other request passes without them, so a browser keeps a foreign page
//! from reading answers or sending `Authorization`. Same-origin pages (the web app)
//! need no CORS. Nothing is allowed by default.
use poem::{
    http::{header, Method},
    middleware::{Cors, CorsEndpoint},
    Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response,
};
use std::{collections::HashSet, sync::Arc};

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: i32 = 600;

/// `ep` answering CORS requests from `origins` (exact `scheme://host[:port]`).
pub fn for_origins<E: Endpoint + 'static>(ep: E, origins: &[String]) -> poem::endpoint::BoxEndpoint<'static> {
    if origins.is_empty() {
        return ep.map_to_response().boxed();
    }
    let plain = Arc::new(ep);
    let cors = Cors::new()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allow_header("x-request-id")
        .expose_headers([header::RETRY_AFTER])
        .expose_header("x-request-id")
        .allow_credentials(false)
        .max_age(PREFLIGHT_MAX_AGE_SECS)
        .transform(plain.clone());
    CorsFor { plain, cors, origins: origins.iter().cloned().collect() }.boxed()
}

struct CorsFor<E> {
    plain: Arc<E>,
    cors: CorsEndpoint<Arc<E>>,
    origins: HashSet<String>,
}

impl<E: Endpoint> Endpoint for CorsFor<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allowed = req.header(header::ORIGIN).is_some_and(|o| self.origins.contains(o));
        if allowed {
            self.cors.call(req).await
        } else {
            self.plain.call(req).await.map(IntoResponse::into_response)
        }
    }
}
