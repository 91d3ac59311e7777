//! Webhook intake: a delivery's signature is checked on the raw body, the event is
//! decoded into typed objects, recorded once (its id is unique, written in the same
//! transaction as its effects), and applied one customer at a time (an advisory lock),
//! never backwards (the state machine ignores an event older than the stored state).
use super::{
    events::{StripeCustomer, StripeEvent, StripeInvoice, StripeSubscription, TrialEnd},
    service::BillingService,
    signature::{self, SignatureError},
    state::{self, Snapshot},
    store,
};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    email::templates,
    error::{AppError, AppResult},
    model::EmailTemplate,
    notifications::service as notifications,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

/// What became of a webhook delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Applied now.
    Applied,
    /// Seen before: nothing done.
    Duplicate,
    /// Recorded, but about nothing we track (another event type, an unknown customer).
    Ignored,
}

/// A refused delivery.
#[derive(Debug)]
pub enum WebhookError {
    /// Bad or stale signature, or not an event: 400, nothing written.
    Rejected(&'static str),
    /// Our failure: 500, so Stripe delivers again.
    Internal(anyhow::Error),
}

fn ts(s: Option<i64>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::from_timestamp(s, 0))
}

impl BillingService {
    /// Verifies and applies one webhook delivery.
    ///
    /// Errors: `Rejected` (400: no or bad signature, stale, not an event), `Internal`
    /// (500: Stripe retries).
    pub async fn handle_webhook(&self, body: &[u8], signature: Option<&str>) -> Result<WebhookOutcome, WebhookError> {
        if self.settings.webhook_secrets.is_empty() {
            return Err(WebhookError::Rejected("webhooks are not configured (PLINTH_STRIPE_WEBHOOK_SECRET)"));
        }
        signature::verify(
            body,
            signature,
            &self.settings.webhook_secrets,
            self.settings.webhook_tolerance_secs,
            Utc::now().timestamp(),
        )
        .map_err(|e| {
            WebhookError::Rejected(match e {
                SignatureError::Malformed => "missing or malformed Stripe-Signature",
                SignatureError::Stale => "the signature's timestamp is outside the tolerance",
                SignatureError::Mismatch => "no signature matches",
            })
        })?;
        let event: StripeEvent =
            serde_json::from_slice(body).map_err(|_| WebhookError::Rejected("not a Stripe event"))?;
        let outcome = self.apply_event(&event).await.map_err(|e| WebhookError::Internal(e.into_anyhow()))?;
        tracing::info!(event_id = event.id, kind = event.kind, outcome = ?outcome, "stripe webhook");
        Ok(outcome)
    }

    async fn apply_event(&self, event: &StripeEvent) -> AppResult<WebhookOutcome> {
        let tx = self.begin("stripe-webhook").await?;
        let customer = event.customer();
        if let Some(c) = &customer {
            // Events of one customer apply one at a time.
            store::lock(&tx, &store::customer_lock(c)).await?;
        }
        if !store::record_event(&tx, &event.id, &event.kind, customer.as_deref(), event.created).await? {
            tx.commit(&self.bus).await?;
            return Ok(WebhookOutcome::Duplicate);
        }
        let user = match &customer {
            Some(c) => store::user_for_customer(&tx, c).await?,
            None => None,
        };
        let Some(user_id) = user else {
            tracing::warn!(
                event_id = event.id,
                kind = event.kind,
                "stripe event for no known customer; recorded and ignored"
            );
            tx.commit(&self.bus).await?;
            return Ok(WebhookOutcome::Ignored);
        };
        self.act_for(&tx, user_id).await?;
        let outcome = self.dispatch(&tx, user_id, event).await?;
        tx.commit(&self.bus).await?;
        Ok(outcome)
    }

    async fn dispatch(&self, tx: &RequestTx, user_id: Uuid, event: &StripeEvent) -> AppResult<WebhookOutcome> {
        let malformed =
            |e: serde_json::Error| AppError::Internal(anyhow::Error::new(e).context("decoding data.object"));
        match event.kind.as_str() {
            kind @ ("customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted") => {
                let sub: StripeSubscription = event.object().map_err(malformed)?;
                let snap = self.snapshot(&sub);
                self.apply_snapshot(tx, user_id, &snap, kind.ends_with("deleted"), event.created).await?;
            }
            "customer.subscription.trial_will_end" => {
                let sub: StripeSubscription = event.object().map_err(malformed)?;
                let trial: TrialEnd = event.object().map_err(malformed)?;
                let plan = self.snapshot(&sub).plan.map(|(p, _)| self.plan_name(p)).unwrap_or_default();
                let ends = ts(trial.trial_end).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
                let message = templates::billing(EmailTemplate::TrialEnding, &plan, &format!("on {ends}"));
                notifications::notify(tx, user_id, message).await?;
            }
            kind @ ("invoice.paid" | "invoice.payment_failed" | "invoice.finalized") => {
                let inv: StripeInvoice = event.object().map_err(malformed)?;
                store::upsert_invoice(tx, user_id, &inv, event.created).await?;
                let number = inv.number.clone().unwrap_or_default();
                let plan = store::read_account(tx, user_id).await?.unwrap_or_default().plan;
                let plan = self.plan_name(plan);
                let message = match kind {
                    "invoice.paid" if inv.amount_paid.unwrap_or(0) > 0 => {
                        Some(templates::billing(EmailTemplate::Receipt, &plan, &number))
                    }
                    "invoice.payment_failed" => Some(templates::billing(
                        EmailTemplate::PaymentFailed,
                        &plan,
                        &format!("Invoice {number} is unpaid."),
                    )),
                    _ => None,
                };
                if let Some(message) = message {
                    notifications::notify(tx, user_id, message).await?;
                }
            }
            "checkout.session.completed" => {
                let data = json!({ "session": event.data.object.get("id").cloned().unwrap_or(Value::Null) });
                activity::record(tx, Entry::by_system(user_id, "billing.checkout_completed", None, data)).await?;
            }
            "customer.updated" => {
                let customer: StripeCustomer = event.object().map_err(malformed)?;
                if let Some(ids) = customer.tax_ids {
                    store::save_tax_ids(tx, user_id, serde_json::to_value(ids.data).map_err(anyhow::Error::from)?)
                        .await?;
                }
            }
            _ => return Ok(WebhookOutcome::Ignored),
        }
        Ok(WebhookOutcome::Applied)
    }

    /// What a subscription object says, in the state machine's terms.
    pub(super) fn snapshot(&self, sub: &StripeSubscription) -> Snapshot {
        let plan = sub.first_price().and_then(|price| self.catalog.by_price(price)).map(|(p, i)| (p.code, i));
        if plan.is_none() {
            tracing::warn!(subscription = sub.id, "a subscription with a price not in the catalog");
        }
        let (start, end) = sub.period();
        Snapshot {
            id: sub.id.clone(),
            status_text: sub.status.clone().unwrap_or_else(|| "incomplete".into()),
            status: sub.status(),
            plan,
            period_start: ts(start),
            period_end: ts(end),
            trial_end: ts(sub.trial_end),
            cancel_at_period_end: sub.cancel_at_period_end,
        }
    }

    /// Applies a snapshot at `version` to the user's stored state (as billing for that
    /// user, under the customer's lock) and carries out the transition's effects.
    ///
    /// Errors: INTERNAL (database).
    pub(super) async fn apply_snapshot(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        snap: &Snapshot,
        deleted: bool,
        version: i64,
    ) -> AppResult<()> {
        let before = store::read_account(tx, user_id).await?.unwrap_or_default();
        let grace_days = self.settings.grace_days;
        let Some(t) = state::apply(&before, snap, deleted, version, Utc::now(), grace_days) else {
            tracing::info!(user_id = %user_id, "an older subscription event arrived late; ignored");
            return Ok(());
        };
        store::write_subscription(tx, user_id, &t.account).await?;
        store::set_user_plan(tx, user_id, t.user_plan).await?;
        self.carry_out(tx, user_id, t.account.plan, &t).await
    }
}
