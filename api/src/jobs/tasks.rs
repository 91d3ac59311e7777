//! The queue's background loop: jobs whose worker stopped reporting go back to the
//! queue, and their owners' subscriptions hear it.
use super::service;
use crate::{
    db::{RequestMeta, RequestTx},
    events::EventBus,
    principal::Principal,
    tasks::{Runs, Task},
};
use sea_orm::DatabaseConnection;
use std::{sync::Arc, time::Duration};

/// Requeues expired leases every `every`; safe on any number of instances (the
/// function takes rows with SKIP LOCKED).
pub fn requeue_expired(pool: DatabaseConnection, bus: Arc<EventBus>, every: Duration, timeout_ms: u64) -> Task {
    Task::new("jobs.requeue_expired", every, Runs::EveryInstance, move || {
        let (pool, bus) = (pool.clone(), bus.clone());
        async move {
            let tx =
                RequestTx::begin(&pool, Principal::System, RequestMeta::internal("lease-sweeper"), timeout_ms).await?;
            let changed = service::requeue_expired(&tx).await.map_err(|e| e.into_anyhow())?;
            tx.commit(&bus).await?;
            Ok(changed.len())
        }
    })
}
