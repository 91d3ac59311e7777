//! Stripe Checkout and the customer portal. The first subscription of a user gets the
//! plan's trial; later ones never do.
use super::{service::BillingService, store, stripe::CheckoutRequest};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    email::store as addresses,
    error::{AppError, AppResult},
    model::{AccountState, BillingInterval, PlanCode},
};
use serde_json::json;

impl BillingService {
    /// Starts a Checkout Session for a paid `plan` and `interval`; returns its URL.
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (billing not configured); BAD_USER_INPUT
    /// (`input.plan`, `input.interval`); CONFLICT (already subscribed); INTERNAL.
    pub async fn start_checkout(&self, tx: &RequestTx, plan: PlanCode, interval: BillingInterval) -> AppResult<String> {
        let user_id = tx.user_id()?;
        let stripe = self.stripe()?;
        if !plan.is_paid() {
            return Err(AppError::bad_input("input.plan", "must be a paid plan: STARTER, PRO or SCALE"));
        }
        let p = self.catalog.plan(plan);
        let price =
            p.price_id(interval).ok_or_else(|| AppError::bad_input("input.interval", "must be MONTH or YEAR"))?;
        // One checkout set-up per user at a time: the customer is created once.
        store::lock(tx, &store::user_lock(user_id)).await?;
        let account = store::read_account(tx, user_id).await?;
        if account.as_ref().is_some_and(|a| matches!(a.state, AccountState::Active | AccountState::Grace)) {
            return Err(AppError::Conflict("you already have a subscription; change it in the billing portal".into()));
        }
        let customer = match account.as_ref().and_then(|a| a.customer.clone()) {
            Some(c) => c,
            None => {
                let email = addresses::address_of(tx, user_id).await?;
                let customer = stripe.create_customer(user_id, &email).await?;
                self.act_for(tx, user_id).await?;
                store::save_customer(tx, user_id, &customer).await?;
                customer
            }
        };
        let trial_used = account.as_ref().is_some_and(|a| a.trial_used || a.subscription_id.is_some());
        let trial_days = (!trial_used && p.trial_days > 0).then_some(p.trial_days);
        let url = stripe
            .create_checkout(&CheckoutRequest {
                customer: &customer,
                price,
                trial_days,
                success_url: &self.settings.success_url,
                cancel_url: &self.settings.cancel_url,
                user_id,
                plan,
                interval,
            })
            .await?;
        let data = json!({ "plan": plan, "interval": interval, "trial": trial_days.is_some() });
        activity::record(tx, Entry::by_user(user_id, "billing.checkout_started", None, data)).await?;
        Ok(url)
    }

    /// A customer-portal URL for the caller.
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (billing not configured); CONFLICT (no
    /// billing account yet); INTERNAL.
    pub async fn open_portal(&self, tx: &RequestTx) -> AppResult<String> {
        let user_id = tx.user_id()?;
        let stripe = self.stripe()?;
        let customer = store::read_account(tx, user_id)
            .await?
            .and_then(|a| a.customer)
            .ok_or_else(|| AppError::Conflict("no billing account yet; start a checkout first".into()))?;
        Ok(stripe.create_portal(&customer, &self.settings.portal_return_url).await?)
    }
}
