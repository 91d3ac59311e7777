//! The queue's background loops: jobs whose worker stopped reporting go back to the
//! queue, and their owners' subscriptions hear it; the queue's gauges are refreshed.
use super::service;
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    events::EventBus,
    principal::Principal,
    tasks::{Runs, Task},
};
use std::{sync::Arc, time::Duration};

/// Requeues expired leases every `every`, on the leader (the function takes rows with
/// SKIP LOCKED, so an overlap at a handover is harmless too).
pub fn requeue_expired(pool: RuntimePool, bus: Arc<EventBus>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("jobs.requeue_expired", every, Runs::OneInstance, move || {
        let (pool, bus) = (pool.clone(), bus.clone());
        async move {
            let tx =
                RequestTx::begin(&pool, Principal::System, RequestMeta::internal("lease-sweeper"), timeout_ms).await?;
            let changed = service::requeue_expired(&tx).await.map_err(|e| e.into_anyhow())?;
            tx.commit(&bus).await?;
            crate::metrics::shared().lease_expiries.inc_by(changed.len() as u64);
            Ok(changed.len())
        }
    })
}

/// Refreshes the queue's gauges (`plinth_jobs_queued`, `plinth_jobs_running`,
/// `plinth_jobs_oldest_queued_seconds`) every `every`, on every instance: a loop rather
/// than at scrape time, so a scrape sends no statement of its own.
pub fn observe_queue(pool: RuntimePool, metrics: crate::metrics::Metrics, every: Duration, timeout_ms: u64) -> Task {
    Task::new("jobs.observe_queue", every, Runs::EveryInstance, move || {
        let (pool, metrics) = (pool.clone(), metrics.clone());
        async move {
            metrics.job_queue(&service::queue_stats(&pool, timeout_ms).await?);
            Ok(0)
        }
    })
}
