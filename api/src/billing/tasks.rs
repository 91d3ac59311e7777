//! Billing's background loop: accounts whose standing changes with time alone — a grace
//! period that ended without payment (suspended, with notification, e-mail and token
//! revocation), a cancellation whose date came (back to Free) — are derived again, so
//! neither waits for a webhook.
use super::{service::BillingService, store};
use crate::{
    error::AppResult,
    tasks::{Runs, Task},
};
use std::{sync::Arc, time::Duration};

impl BillingService {
    /// Derives again the accounts whose grace ended or whose cancellation came due;
    /// returns how many changed.
    ///
    /// Errors: INTERNAL (database).
    pub async fn expire_grace(&self) -> AppResult<usize> {
        let tx = self.begin("grace-sweeper").await?;
        let due = store::billing_due(&tx).await?;
        tx.rollback().await;
        let mut n = 0;
        for user_id in due {
            let tx = self.begin("grace-sweeper").await?;
            self.act_for(&tx, user_id).await?;
            // The customer's lock: the sweeper and that customer's webhooks take turns.
            let lock = match store::read_account(&tx, user_id).await?.and_then(|a| a.customer) {
                Some(c) => store::customer_lock(&c),
                None => store::user_lock(user_id),
            };
            store::lock(&tx, &lock).await?;
            let t = self.settle(&tx, user_id).await?;
            tx.commit(&self.bus).await?;
            n += usize::from(!t.effects.is_empty());
        }
        Ok(n)
    }
}

/// Reconciles with Stripe every `every` (a day: the nightly `plinth billing reconcile`),
/// on the leader: Stripe is the truth, and what a lost webhook left behind is repaired.
/// Returns the number of changes.
pub fn reconcile(billing: Arc<BillingService>, every: Duration) -> Task {
    Task::new("billing.reconcile", every, Runs::OneInstance, move || {
        let billing = billing.clone();
        async move {
            let changes = billing.reconcile().await.map_err(|e| e.into_anyhow())?;
            for change in &changes {
                tracing::info!(change = %change, "billing reconciled");
            }
            Ok(changes.len())
        }
    })
}

/// Derives again, every `every`, on one instance per interval, the accounts whose grace
/// ended or whose cancellation came due.
pub fn expire_grace(billing: Arc<BillingService>, every: Duration) -> Task {
    Task::new("billing.expire_grace", every, Runs::OneInstance, move || {
        let billing = billing.clone();
        async move { billing.expire_grace().await.map_err(|e| e.into_anyhow()) }
    })
}
