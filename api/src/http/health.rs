//! Liveness and readiness.
use super::HttpState;
use poem::{handler, http::StatusCode, web::Data, IntoResponse};
use std::sync::Arc;

/// 200 while the process runs.
#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 only when the database answers and the instance is not draining (503
/// `draining` after SIGTERM); the body says `ready (degraded: redis)` while a configured
/// Redis does not (the instance serves, with limits and events of its own).
#[handler]
pub async fn readyz(Data(state): Data<&Arc<HttpState>>) -> impl IntoResponse {
    // A draining instance leaves the proxy's rotation.
    if state.drain.is_started() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), crate::db::ping(&state.pool)).await;
    match ping {
        Ok(Ok(_)) if state.redis.as_ref().is_some_and(|r| !r.is_up()) => (StatusCode::OK, "ready (degraded: redis)"),
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timeout"),
    }
}
