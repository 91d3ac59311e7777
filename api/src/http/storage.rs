//! `/storage/<key>`: the local object store's signed URLs, used when no S3 is
//! configured. The signature covers operation, key, expiry, type and size, so a URL
//! opens exactly one object, one way, until it expires.
use super::HttpState;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Path, Query},
    Body, IntoResponse, Request, Response,
};
use std::{collections::HashMap, sync::Arc};
use tokio::io::AsyncReadExt;

/// Stores an upload made through a presigned PUT URL.
#[handler]
pub async fn put_object(
    req: &Request,
    Data(state): Data<&Arc<HttpState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let Some(local) = state.storage.as_local() else { return StatusCode::NOT_FOUND.into_response() };
    let query: Vec<(String, String)> = query.into_iter().collect();
    let Some(grant) = local.verify(&key, &query).filter(|g| g.op == "put") else {
        return (StatusCode::FORBIDDEN, "signature invalid or expired").into_response();
    };
    if req.header(header::CONTENT_TYPE) != Some(grant.content_type.as_str()) {
        return (StatusCode::BAD_REQUEST, "Content-Type differs from the signed one").into_response();
    }
    let mut bytes = Vec::with_capacity(grant.size as usize);
    if let Err(e) = body.into_async_read().take(grant.size + 1).read_to_end(&mut bytes).await {
        tracing::warn!(error = %e, "reading an upload");
        return StatusCode::BAD_REQUEST.into_response();
    }
    if bytes.len() as u64 != grant.size {
        return (StatusCode::BAD_REQUEST, "body size differs from the signed one").into_response();
    }
    match local.put(&key, &grant.content_type, &bytes).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "storing an upload");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves an object through a presigned GET URL, as the type the URL was signed for
/// (the checked one), never sniffed, inline under the object's name, or as a download
/// under the file name the URL was signed for.
#[handler]
pub async fn get_object(
    Data(state): Data<&Arc<HttpState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(local) = state.storage.as_local() else { return StatusCode::NOT_FOUND.into_response() };
    let query: Vec<(String, String)> = query.into_iter().collect();
    let Some(grant) = local.verify(&key, &query).filter(|g| g.op == "get") else {
        return (StatusCode::FORBIDDEN, "signature invalid or expired").into_response();
    };
    let Ok(path) = local.path(&key) else { return StatusCode::NOT_FOUND.into_response() };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let ct = match grant.content_type.as_str() {
                "" => local.content_type(&key).await.unwrap_or_else(|| "application/octet-stream".into()),
                signed => signed.to_owned(),
            };
            let name = key.rsplit('/').next().unwrap_or("object");
            let ext = ct.rsplit('/').next().unwrap_or("bin");
            bytes
                .with_content_type(ct.clone())
                .with_header(header::CACHE_CONTROL, "private, max-age=900")
                .with_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .with_header(
                    header::CONTENT_DISPOSITION,
                    match &grant.download_name {
                        Some(file) => crate::storage::attachment_disposition(file),
                        None => crate::storage::inline_disposition(&format!("{name}.{ext}")),
                    },
                )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
