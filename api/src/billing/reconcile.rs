//! `plinth billing reconcile`: Stripe is the truth. It repairs every state a lost (or
//! failed) webhook can leave:
//! - subscriptions: Stripe's list (every status) is applied to each subscription row as
//!   newer than anything stored (`state::force`); a stored live subscription Stripe does
//!   not list ends; the account is derived again (grace ended or a cancellation due
//!   included);
//! - customers: one Stripe no longer has (deleted, `customer.deleted` lost) is
//!   forgotten and its subscriptions end;
//! - tax ids (`expand[]=tax_ids`) and the billing country, as Stripe has them now;
//! - the invoice mirror: each customer's newest 100 invoices.
//!
//! Not repaired: notifications an event would have sent (a receipt, a trial ending) and
//! a lost `charge.dispute.created` (Stripe lists disputes by charge; admins see them in
//! Stripe's dashboard). Every Stripe call is made holding no transaction; each customer
//! is then applied in one short transaction under its lock.
use super::{
    events::{StripeInvoice, StripeSubscription},
    service::BillingService,
    state, store,
    stripe::CustomerState,
};
use crate::error::AppResult;
use chrono::Utc;
use std::collections::BTreeMap;
use uuid::Uuid;

impl BillingService {
    /// Reads subscriptions, customers and invoices from Stripe and repairs what differs
    /// from what is stored. Returns one line per change (and per customer of Stripe's
    /// that no Plinth user has).
    ///
    /// Errors: FORBIDDEN (billing not configured); SERVICE_UNAVAILABLE (Stripe did not
    /// answer); INTERNAL (Stripe, database).
    pub async fn reconcile(&self) -> AppResult<Vec<String>> {
        let stripe = self.stripe()?;
        let mut listed: BTreeMap<String, Vec<StripeSubscription>> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = stripe.list_subscriptions(after.as_deref()).await?;
            after = page.data.last().map(|s| s.id.clone());
            for sub in page.data {
                if let Some(customer) = sub.customer.clone() {
                    listed.entry(customer).or_default().push(sub);
                }
            }
            if !page.has_more || after.is_none() {
                break;
            }
        }
        let tx = self.begin("billing-reconcile").await?;
        let known = store::billing_customers(&tx).await?;
        tx.rollback().await;
        let mut changes = Vec::new();
        for (user_id, customer) in known {
            let subs = listed.remove(&customer).unwrap_or_default();
            let state = stripe.customer(&customer).await?;
            let invoices = match &state {
                CustomerState::Exists(_) => stripe.list_invoices(&customer).await?.data,
                CustomerState::Gone => Vec::new(),
            };
            changes.extend(self.reconcile_customer(user_id, &customer, state, &subs, &invoices).await?);
        }
        for customer in listed.keys() {
            changes.push(format!("{customer}: no Plinth user has this customer; skipped"));
        }
        Ok(changes)
    }

    async fn reconcile_customer(
        &self,
        user_id: Uuid,
        customer: &str,
        state: CustomerState,
        listed: &[StripeSubscription],
        invoices: &[StripeInvoice],
    ) -> AppResult<Vec<String>> {
        let now = Utc::now();
        let tx = self.begin("billing-reconcile").await?;
        store::lock(&tx, &store::customer_lock(customer)).await?;
        self.act_for(&tx, user_id).await?;
        let before = store::read_account(&tx, user_id).await?.unwrap_or_default();
        if before.customer.as_deref() != Some(customer) {
            // A checkout replaced it since the list was read.
            tx.rollback().await;
            return Ok(Vec::new());
        }
        let mut lines = Vec::new();
        match state {
            CustomerState::Gone => {
                store::forget_customer(&tx, user_id, customer, None).await?;
                store::end_customer_subscriptions(&tx, user_id, customer, now.timestamp()).await?;
                lines.push(format!("user {user_id}: customer {customer} is gone at Stripe; forgotten"));
            }
            CustomerState::Exists(c) => {
                let country = c.address.as_ref().and_then(|a| a.country.as_deref());
                if store::set_address_country(&tx, user_id, country).await? {
                    lines.push(format!("user {user_id}: billing country {}", country.unwrap_or("none")));
                }
                let ids = c.tax_ids.map(|l| l.data).unwrap_or_default();
                let changed = store::replace_tax_ids(&tx, user_id, &ids, now.timestamp()).await?;
                if changed > 0 {
                    lines.push(format!("user {user_id}: {changed} tax id change(s)"));
                }
                let stored = store::read_subscriptions(&tx, user_id).await?;
                for sub in listed {
                    let old = stored.iter().find(|s| s.id == sub.id);
                    let row = state::force(old, &self.snapshot(sub, customer), now);
                    store::write_subscription(&tx, user_id, &row).await?;
                }
                // Live here, unknown to Stripe: it ended without a word.
                for gone in stored.iter().filter(|s| s.is_live(now) && !listed.iter().any(|l| l.id == s.id)) {
                    let ended = store::Subscription { ended: true, rank: state::rank(None, true), ..gone.clone() };
                    store::write_subscription(&tx, user_id, &ended).await?;
                    lines.push(format!("user {user_id}: subscription {} is not at Stripe; ended", gone.id));
                }
                for inv in invoices {
                    if let Some((was, now_status)) = store::upsert_invoice(&tx, user_id, inv, now.timestamp()).await? {
                        if was.as_deref() != Some(now_status.as_str()) {
                            let was = was.as_deref().unwrap_or("missing");
                            lines.push(format!("user {user_id}: invoice {} {was} -> {now_status}", inv.id));
                        }
                    }
                }
            }
        }
        let t = self.settle(&tx, user_id).await?;
        let after = &t.account;
        if (before.state, before.plan, &before.subscription_status)
            != (after.state, after.plan, &after.subscription_status)
        {
            lines.push(format!(
                "user {user_id}: {} {} -> {} {}",
                before.subscription_status.as_deref().unwrap_or("none"),
                before.plan,
                after.subscription_status.as_deref().unwrap_or("none"),
                after.plan
            ));
        }
        tx.commit(&self.bus).await?;
        Ok(lines)
    }
}
