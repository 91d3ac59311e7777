//! GET /metrics: the Prometheus text exposition of `crate::metrics`, with the pool's
//! gauges and the statement counter read at scrape time (a scrape sends no statement:
//! the job queue's gauges come from `jobs.observe_queue`). Served on the metrics
//! listener (`PLINTH_METRICS_ADDR`), and in development on the API's too.
use super::HttpState;
use poem::{handler, web::Data, IntoResponse};
use std::sync::Arc;

/// The Prometheus text exposition.
#[handler]
pub async fn metrics(Data(state): Data<&Arc<HttpState>>) -> impl IntoResponse {
    let pool = &state.pool;
    state.metrics.pool_size.set(i64::from(pool.size()));
    state.metrics.pool_idle.set(pool.num_idle() as i64);
    state.metrics.sync_statements(crate::db::STATEMENTS.load(std::sync::atomic::Ordering::Relaxed));
    if let Some(redis) = &state.redis {
        state.metrics.dependency_up.with_label_values(&["redis"]).set(i64::from(redis.is_up()));
    }
    state.metrics.encode().with_content_type("text/plain; version=0.0.4")
}
