//! Billing's background loop: accounts whose grace period ended without payment are
//! suspended, with their notification, e-mail and token revocation.
use super::{service::BillingService, state, store};
use crate::{
    error::AppResult,
    tasks::{Runs, Task},
};
use chrono::Utc;
use std::{sync::Arc, time::Duration};

impl BillingService {
    /// Suspends accounts whose grace ended without payment; returns how many.
    ///
    /// Errors: INTERNAL (database).
    pub async fn expire_grace(&self) -> AppResult<usize> {
        let tx = self.begin("grace-sweeper").await?;
        let due = store::grace_expired(&tx).await?;
        tx.rollback().await;
        let mut n = 0;
        for user_id in due {
            let tx = self.begin("grace-sweeper").await?;
            self.act_for(&tx, user_id).await?;
            let Some(before) = store::read_account(&tx, user_id).await? else { continue };
            let Some(t) = state::expire_grace(&before, Utc::now()) else { continue };
            store::suspend_after_grace(&tx, user_id).await?;
            self.carry_out(&tx, user_id, before.plan, &t).await?;
            tx.commit(&self.bus).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Suspends accounts whose grace period ended, every `every`, on one instance per
/// interval.
pub fn expire_grace(billing: Arc<BillingService>, every: Duration) -> Task {
    Task::new("billing.expire_grace", every, Runs::OneInstance, move || {
        let billing = billing.clone();
        async move { billing.expire_grace().await.map_err(|e| e.into_anyhow()) }
    })
}
