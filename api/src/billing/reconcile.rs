//! `plinth billing reconcile`: Stripe's list of subscriptions is the truth; every one
//! that differs from what is stored (a missed or failed webhook) is applied as newer
//! than anything stored.
use super::{events::StripeSubscription, service::BillingService, store};
use crate::error::AppResult;
use chrono::Utc;

impl BillingService {
    /// Lists every subscription from Stripe and applies those that differ from what is
    /// stored. Returns one line per change (and per subscription of an unknown customer).
    ///
    /// Errors: FORBIDDEN (billing not configured); INTERNAL (Stripe, database).
    pub async fn reconcile(&self) -> AppResult<Vec<String>> {
        let stripe = self.stripe()?;
        let mut changes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = stripe.list_subscriptions(after.as_deref()).await?;
            for sub in &page.data {
                if let Some(line) = self.reconcile_one(sub).await? {
                    changes.push(line);
                }
            }
            after = page.data.last().map(|s| s.id.clone());
            if !page.has_more || after.is_none() {
                break;
            }
        }
        Ok(changes)
    }

    async fn reconcile_one(&self, sub: &StripeSubscription) -> AppResult<Option<String>> {
        let Some(customer) = sub.customer.as_deref() else { return Ok(None) };
        let tx = self.begin("billing-reconcile").await?;
        store::lock(&tx, &store::customer_lock(customer)).await?;
        let Some(user_id) = store::user_for_customer(&tx, customer).await? else {
            tx.rollback().await;
            return Ok(Some(format!("{customer}: no Plinth user has this customer; skipped")));
        };
        self.act_for(&tx, user_id).await?;
        let stored = store::read_account(&tx, user_id).await?.unwrap_or_default();
        let snap = self.snapshot(sub);
        let plan = snap.plan.map(|(p, _)| p);
        if stored.subscription_id.as_deref() == Some(sub.id.as_str())
            && stored.subscription_status.as_deref() == Some(snap.status_text.as_str())
            && plan.is_none_or(|p| p == stored.plan)
        {
            tx.rollback().await;
            return Ok(None);
        }
        // Stripe's list is the truth now: apply it as newer than anything stored.
        let version = stored.version.max(Utc::now().timestamp());
        self.apply_snapshot(&tx, user_id, &snap, false, version).await?;
        tx.commit(&self.bus).await?;
        Ok(Some(format!(
            "user {user_id}: {} {} -> {} {}",
            stored.subscription_status.as_deref().unwrap_or("none"),
            stored.plan,
            snap.status_text,
            plan.unwrap_or(stored.plan)
        )))
    }
}
