//! `GET /admin/metrics/<metric>.csv?from=&to=...`: a business metric as a CSV download
//! for administrators (`reports::service::export`), authenticated and run exactly as a
//! GraphQL request is (`Executor::transact`: the bearer token, the request rate, the
//! row-level-secured transaction, the time budget).
//!
//! Answers `200` with `text/csv; charset=utf-8` and `Content-Disposition: attachment`;
//! errors are the GraphQL error shape in JSON (`{"errors": [{"message", "extensions":
//! {"code", ...}}]}`) with the status of their code: `400` BAD_USER_INPUT (`field` names
//! the parameter), `401` UNAUTHENTICATED, `403` FORBIDDEN (anyone but an administrator
//! with a session, API tokens included), `404` NOT_FOUND (no such metric or
//! experiment), `429` RATE_LIMITED (with `Retry-After`), `503` SERVICE_UNAVAILABLE,
//! `500` INTERNAL (with the request id).
use super::{HttpState, RequestId};
use crate::{
    db::RequestMeta,
    error::AppError,
    graphql::execute::error_response,
    reports::service::{self as reports, Metric},
};
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Path},
    IntoResponse, Request, Response,
};
use std::sync::Arc;

/// Exports one metric as CSV.
#[handler]
pub async fn export(req: &Request, Data(state): Data<&Arc<HttpState>>, Path(file): Path<String>) -> Response {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let Some(metric) = file.strip_suffix(".csv").and_then(Metric::parse) else {
        let names: Vec<String> = Metric::ALL.iter().map(|m| format!("{}.csv", m.name())).collect();
        let err = AppError::NotFound(format!("no such export; there are {}", names.join(", ")));
        return refusal(err, &request_id);
    };
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let meta = RequestMeta { request_id: request_id.clone(), ..Default::default() };
    let catalog = state.executor.catalog.clone();
    let done = state
        .executor
        .transact(req.header(header::AUTHORIZATION), meta, |tx| async move {
            reports::export(&tx, &catalog, metric, &pairs).await
        })
        .await;
    match done {
        Ok(export) => {
            tracing::info!(metric = metric.name(), bytes = export.csv.len(), "metrics exported");
            export
                .csv
                .with_content_type("text/csv; charset=utf-8")
                .with_header(header::CONTENT_DISPOSITION, crate::storage::attachment_disposition(&export.file_name))
                .with_header(header::CACHE_CONTROL, "no-store")
                .with_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .into_response()
        }
        Err(e) => refusal(e, &request_id),
    }
}

/// An error as JSON with the status its code maps to.
fn refusal(err: AppError, request_id: &str) -> Response {
    let status = match &err {
        AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry_after = match &err {
        AppError::RateLimited { retry_after_secs } => Some(retry_after_secs.to_string()),
        _ => None,
    };
    let resp = super::graphql::with_request_id(error_response(err), request_id);
    let body = serde_json::to_vec(&resp).unwrap_or_default();
    let mut builder = Response::builder().status(status).content_type("application/json");
    if let Some(secs) = retry_after {
        builder = builder.header(header::RETRY_AFTER, secs);
    }
    builder.body(body)
}
