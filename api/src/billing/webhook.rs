//! Webhook intake: a delivery's signature is checked on the raw body, the event is
//! decoded into typed objects, recorded once (its id is unique, written in the same
//! transaction as its effects, with its payload's API version and a note), and applied
//! one customer at a time (an advisory lock), never backwards (`state::merge` orders
//! snapshots by time, then status rank). The only Stripe call of the intake (a
//! dispute's charge, to learn its customer) is made before the transaction begins.
//!
//! Events handled: `customer.subscription.*` (snapshots; `trial_will_end` notifies),
//! `invoice.*` (the mirror; `paid`, `payment_failed` and `payment_action_required`
//! notify), `checkout.session.completed`/`expired`, `customer.created`/`updated`
//! (billing country), `customer.deleted`, `customer.tax_id.*`, `charge.dispute.created`
//! (the account is flagged, every admin notified). Any other event is recorded and
//! ignored.
use super::{
    events::{StripeCustomer, StripeDispute, StripeEvent, StripeInvoice, StripeSubscription, TaxId, TrialEnd},
    service::BillingService,
    signature::{self, SignatureError},
    state::{self, Snapshot},
    store,
    stripe::{StripeFailure, API_VERSION},
};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    email::{store as addresses, templates},
    error::{AppError, AppResult},
    model::{BillingInterval, EmailTemplate, PlanCode},
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
    /// Our failure (or Stripe's, when the intake had to ask it): 500, so Stripe
    /// delivers again.
    Internal(anyhow::Error),
}

fn ts(s: Option<i64>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::from_timestamp(s, 0))
}

/// An object without the shape its event type promises: the event is poison (Stripe
/// would deliver it again for days), recorded with a note and ignored.
fn malformed(e: serde_json::Error) -> AppError {
    AppError::bad_input("data.object", e.to_string())
}

/// Whether any text of the event holds a NUL, which no Stripe event does and PostgreSQL
/// cannot store.
fn contains_nul(event: &StripeEvent) -> bool {
    fn value(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(value),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || value(v)),
            _ => false,
        }
    }
    [Some(&event.id), Some(&event.kind), event.api_version.as_ref()].into_iter().flatten().any(|s| s.contains('\0'))
        || value(&event.data.object)
}

/// Invoice events mirrored; the ones that also notify are matched in `dispatch`.
const INVOICE_EVENTS: &[&str] = &[
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
];

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
        if event.id.is_empty() || event.id.len() > 255 || contains_nul(&event) {
            return Err(WebhookError::Rejected("not a Stripe event: an empty or overlong id, or a NUL character"));
        }
        let outcome = self.apply_event(&event).await.map_err(|e| WebhookError::Internal(e.into_anyhow()))?;
        tracing::info!(event_id = event.id, kind = event.kind, outcome = ?outcome, "stripe webhook");
        Ok(outcome)
    }

    /// Applies `event`; one whose object is malformed is recorded (with a note) and
    /// ignored, so Stripe stops delivering it, instead of failing forever.
    async fn apply_event(&self, event: &StripeEvent) -> AppResult<WebhookOutcome> {
        match self.apply_checked(event).await {
            Err(AppError::BadUserInput { field, message }) => {
                let why = format!("malformed {field}: {message}");
                tracing::warn!(
                    event_id = event.id,
                    kind = event.kind,
                    why,
                    "a malformed Stripe event; recorded and ignored"
                );
                let tx = self.begin("stripe-webhook").await?;
                let api_version = event.api_version.as_deref();
                let fresh =
                    store::record_event(&tx, &event.id, &event.kind, None, event.created, api_version, Some(&why))
                        .await?;
                tx.commit(&self.bus).await?;
                Ok(if fresh { WebhookOutcome::Ignored } else { WebhookOutcome::Duplicate })
            }
            other => other,
        }
    }

    async fn apply_checked(&self, event: &StripeEvent) -> AppResult<WebhookOutcome> {
        // Every Stripe object has an id; the decoders default missing fields, so an
        // object without one would otherwise be applied as `""`.
        let object_id = event.data.object.get("id").and_then(Value::as_str).unwrap_or_default();
        if object_id.is_empty() || object_id.len() > 255 {
            return Err(AppError::bad_input("data.object.id", "missing, empty or longer than 255 characters"));
        }
        // Stripe first, holding nothing: a dispute names its charge, not its customer.
        let customer = match event.customer() {
            Some(c) => Some(c),
            None if event.kind == "charge.dispute.created" => self.dispute_customer(event).await?,
            None => None,
        };
        let note = self.note_for(event);
        let tx = self.begin("stripe-webhook").await?;
        if let Some(c) = &customer {
            // Events of one customer apply one at a time.
            store::lock(&tx, &store::customer_lock(c)).await?;
        }
        let fresh = store::record_event(
            &tx,
            &event.id,
            &event.kind,
            customer.as_deref(),
            event.created,
            event.api_version.as_deref(),
            note.as_deref(),
        )
        .await?;
        if !fresh {
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
        // Read as the system role: acting for the user cannot list other users.
        let admins = match event.kind.as_str() {
            "charge.dispute.created" => store::admins(&tx).await?,
            _ => Vec::new(),
        };
        self.act_for(&tx, user_id).await?;
        let customer = customer.as_deref().unwrap_or_default();
        let outcome = self.dispatch(&tx, user_id, customer, event, &admins).await?;
        tx.commit(&self.bus).await?;
        Ok(outcome)
    }

    /// What is worth keeping on the event's record: a payload in another API version
    /// than the pinned one, prices not in the catalog.
    fn note_for(&self, event: &StripeEvent) -> Option<String> {
        let mut notes = Vec::new();
        if let Some(v) = event.api_version.as_deref().filter(|v| *v != API_VERSION) {
            tracing::warn!(
                event_id = event.id,
                api_version = v,
                pinned = API_VERSION,
                "a Stripe event in another API version than Plinth's; read tolerantly"
            );
            notes.push(format!("api_version {v}, pinned {API_VERSION}"));
        }
        if event.kind.starts_with("customer.subscription.") {
            if let Ok(sub) = event.object::<StripeSubscription>() {
                let unknown: Vec<&str> = sub.prices().filter(|p| self.catalog.by_price(p).is_none()).collect();
                if !unknown.is_empty() {
                    notes.push(format!("prices not in the catalog: {}", unknown.join(", ")));
                }
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// The customer of a dispute's charge: expanded in the event, or read from Stripe.
    async fn dispute_customer(&self, event: &StripeEvent) -> AppResult<Option<String>> {
        let dispute: StripeDispute = event.object().map_err(malformed)?;
        if let Some(c) = dispute.expanded_customer() {
            return Ok(Some(c));
        }
        let Some(charge) = dispute.charge_id() else { return Ok(None) };
        let Some(stripe) = &self.stripe else {
            tracing::warn!(event_id = event.id, "a dispute, but no Stripe key to find its customer");
            return Ok(None);
        };
        match stripe.charge(&charge).await {
            Ok(c) => Ok(c.customer),
            Err(StripeFailure::Missing) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn dispatch(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        customer: &str,
        event: &StripeEvent,
        admins: &[Uuid],
    ) -> AppResult<WebhookOutcome> {
        let kind = event.kind.as_str();
        match kind {
            "customer.subscription.trial_will_end" => {
                let sub: StripeSubscription = event.object().map_err(malformed)?;
                let trial: TrialEnd = event.object().map_err(malformed)?;
                let plan = self.snapshot(&sub, customer).plan.map(|(p, _)| self.plan_name(p)).unwrap_or_default();
                // Once per trial end: the reminders scheduler may have told the user
                // already (same key), and a later trial is another occurrence.
                if let Some(ends) = ts(trial.trial_end) {
                    let occurrence = format!("{}:{}", sub.id, ends.format("%Y-%m-%d"));
                    if crate::email::reminders::claim(tx, user_id, "trial_ending", &occurrence).await? {
                        let message = templates::trial_ending(&plan, ends.date_naive());
                        notifications::notify(tx, user_id, message).await?;
                    }
                }
            }
            _ if kind.starts_with("customer.subscription.") => {
                let sub: StripeSubscription = event.object().map_err(malformed)?;
                let snap = self.snapshot(&sub, customer);
                self.apply_snapshot(tx, user_id, &snap, kind == "customer.subscription.deleted", event.created).await?;
            }
            _ if INVOICE_EVENTS.contains(&kind) => self.apply_invoice(tx, user_id, event).await?,
            "checkout.session.completed" | "checkout.session.expired" => {
                let session = event.data.object.get("id").and_then(Value::as_str).unwrap_or_default();
                store::drop_checkout_session(tx, user_id, session).await?;
                if kind == "checkout.session.completed" {
                    let data = json!({ "session": session });
                    activity::record(tx, Entry::by_system(user_id, "billing.checkout_completed", None, data)).await?;
                }
            }
            "customer.created" | "customer.updated" => {
                // The country is not versioned: an address changed twice within a
                // delivery window may end on the older one until reconcile.
                let c: StripeCustomer = event.object().map_err(malformed)?;
                store::set_address_country(tx, user_id, c.address.as_ref().and_then(|a| a.country.as_deref())).await?;
                // API versions before 2020-08-27 embed the whole list.
                if let Some(ids) = c.tax_ids {
                    store::replace_tax_ids(tx, user_id, &ids.data, event.created).await?;
                }
            }
            "customer.deleted" => {
                // Stripe cancels a deleted customer's subscriptions; the next checkout
                // creates a new customer.
                store::forget_customer(tx, user_id, customer, None).await?;
                store::end_customer_subscriptions(tx, user_id, customer, event.created).await?;
                self.settle(tx, user_id).await?;
                let data = json!({ "customer": customer });
                activity::record(tx, Entry::by_system(user_id, "billing.customer_deleted", None, data)).await?;
            }
            "customer.tax_id.created" | "customer.tax_id.updated" | "customer.tax_id.deleted" => {
                let t: TaxId = event.object().map_err(malformed)?;
                store::upsert_tax_id(tx, user_id, &t, kind.ends_with("deleted"), event.created).await?;
            }
            "charge.dispute.created" => self.apply_dispute(tx, user_id, event, admins).await?,
            _ => return Ok(WebhookOutcome::Ignored),
        }
        Ok(WebhookOutcome::Applied)
    }

    async fn apply_invoice(&self, tx: &RequestTx, user_id: Uuid, event: &StripeEvent) -> AppResult<()> {
        let inv: StripeInvoice = event.object().map_err(malformed)?;
        // A stale event (older, or the same second and a lower status) changes nothing,
        // and tells nothing.
        if store::upsert_invoice(tx, user_id, &inv, event.created).await?.is_none() {
            tracing::info!(event_id = event.id, invoice = inv.id, "an older invoice event arrived late; ignored");
            return Ok(());
        }
        let number = inv.number.clone().unwrap_or_default();
        let plan = self.plan_name(store::read_account(tx, user_id).await?.unwrap_or_default().plan);
        let message = match event.kind.as_str() {
            "invoice.paid" if inv.amount_paid.unwrap_or(0) > 0 => {
                Some(templates::receipt(&plan, &number, inv.hosted_invoice_url.as_deref(), inv.invoice_pdf.as_deref()))
            }
            "invoice.payment_failed" => {
                Some(templates::billing(EmailTemplate::PaymentFailed, &plan, &format!("Invoice {number} is unpaid.")))
            }
            "invoice.payment_action_required" => {
                let link = inv.hosted_invoice_url.clone().unwrap_or_default();
                let mut m = templates::billing(EmailTemplate::PaymentActionRequired, &plan, &link);
                m.data["link"] = json!(link);
                m.data["invoice"] = json!(number);
                Some(m)
            }
            _ => None,
        };
        if let Some(message) = message {
            notifications::notify(tx, user_id, message).await?;
        }
        Ok(())
    }

    /// Flags the account and tells every admin; the admins' rows are written acting
    /// for each admin in turn.
    async fn apply_dispute(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        event: &StripeEvent,
        admins: &[Uuid],
    ) -> AppResult<()> {
        let d: StripeDispute = event.object().map_err(malformed)?;
        let at = ts(Some(event.created)).unwrap_or_else(Utc::now);
        store::flag_dispute(tx, user_id, &d.id, at).await?;
        let email = addresses::address_of(tx, user_id).await?;
        let plan = self.plan_name(store::read_account(tx, user_id).await?.unwrap_or_default().plan);
        let amount = d.amount.map(|a| format!("{}.{:02}", a / 100, a % 100)).unwrap_or_default();
        let detail = format!(
            "Customer {email} (user {user_id}) disputed {amount} {} ({}); dispute {}.",
            d.currency.as_deref().unwrap_or_default().to_uppercase(),
            d.reason.as_deref().unwrap_or("no reason given"),
            d.id
        );
        let data = json!({ "dispute": d.id, "reason": d.reason, "amount": d.amount });
        activity::record(tx, Entry::by_system(user_id, "billing.dispute_created", None, data)).await?;
        for &admin in admins {
            self.act_for(tx, admin).await?;
            let mut message = templates::billing(EmailTemplate::DisputeCreated, &plan, &detail);
            message.data["dispute"] = json!(d.id);
            message.data["user_id"] = json!(user_id);
            notifications::notify(tx, admin, message).await?;
        }
        self.act_for(tx, user_id).await
    }

    /// What a subscription object says, in the state machine's terms: the plan is the
    /// catalog price among its items (the highest plan if several), whatever their
    /// order; other prices are listed (and logged) as unknown.
    pub(super) fn snapshot(&self, sub: &StripeSubscription, customer: &str) -> Snapshot {
        let mut plan: Option<(PlanCode, BillingInterval)> = None;
        let mut unknown_prices = Vec::new();
        for price in sub.prices() {
            match self.catalog.by_price(price) {
                Some((p, interval)) if plan.is_none_or(|(known, _)| p.code > known) => plan = Some((p.code, interval)),
                Some(_) => {}
                None => unknown_prices.push(price.to_owned()),
            }
        }
        if !unknown_prices.is_empty() {
            tracing::warn!(subscription = sub.id, prices = ?unknown_prices, "subscription prices not in the catalog");
        }
        let (start, end) = sub.period();
        Snapshot {
            id: sub.id.clone(),
            customer: sub.customer.clone().unwrap_or_else(|| customer.to_owned()),
            status_text: sub.status.clone().unwrap_or_else(|| "incomplete".into()),
            status: sub.status(),
            plan,
            unknown_prices,
            period_start: ts(start),
            period_end: ts(end),
            anchor: ts(sub.billing_cycle_anchor),
            trial_end: ts(sub.trial_end),
            cancel_at_period_end: sub.cancel_at_period_end,
            cancel_at: ts(sub.cancel_at),
        }
    }

    /// Applies a snapshot at `version` to the subscription's row (unless the row is
    /// newer) and derives the account again, in `tx` acting as billing for the user,
    /// under the customer's lock.
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
        let subs = store::read_subscriptions(tx, user_id).await?;
        let stored = subs.iter().find(|s| s.id == snap.id);
        let Some(row) = state::merge(stored, snap, deleted, version) else {
            tracing::info!(user_id = %user_id, subscription = snap.id, "an older subscription snapshot arrived late; ignored");
            return Ok(());
        };
        if stored.is_none() {
            // A new subscription: the checkout that was pending when it began is done.
            store::drop_checkout_opened_by(tx, user_id, ts(Some(version)).unwrap_or_else(Utc::now)).await?;
        }
        store::write_subscription(tx, user_id, &row).await?;
        self.settle(tx, user_id).await?;
        Ok(())
    }
}
