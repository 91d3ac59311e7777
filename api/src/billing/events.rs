//! Stripe's webhook payloads, typed: the envelope and the few objects Plinth reads
//! (<https://docs.stripe.com/api/events/object>). Every field Plinth does not need is
//! ignored and every field it reads is optional or defaulted, so a newer Stripe API
//! version (extra or missing fields) cannot make an event undecodable.
use crate::model::{SubscriptionStatus, TaxIdVerification};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An event envelope.
#[derive(Debug, Deserialize)]
pub struct StripeEvent {
    /// `evt_...`, unique per event (redeliveries share it).
    pub id: String,
    /// The event type, e.g. `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When Stripe created the event (unix seconds).
    pub created: i64,
    /// The API version the payload is rendered in (the webhook endpoint's).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The object the event is about.
    #[serde(default)]
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Default, Deserialize)]
pub struct EventData {
    /// The object, decoded per event type by [`StripeEvent::object`].
    #[serde(default)]
    pub object: Value,
}

impl StripeEvent {
    /// The Stripe customer the event concerns: the object itself for customer events,
    /// else the object's `customer` (a dispute names only its charge: see `webhook`).
    pub fn customer(&self) -> Option<String> {
        let field = match self.kind.as_str() {
            "customer.updated" | "customer.created" | "customer.deleted" => "id",
            _ => "customer",
        };
        id_of(self.data.object.get(field)?)
    }

    /// The object decoded as `T`.
    ///
    /// Errors: the object does not have `T`'s shape.
    pub fn object<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data.object)
    }
}

/// A list object (`{data: [...]}`).
#[derive(Debug, Deserialize)]
pub struct List<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { data: Vec::new() }
    }
}

/// A subscription (<https://docs.stripe.com/api/subscriptions/object>); every field but
/// its id may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StripeSubscription {
    /// `sub_...`.
    pub id: String,
    /// Its customer (an id, or the expanded object).
    #[serde(deserialize_with = "expandable")]
    pub customer: Option<String>,
    /// Its status, as Stripe spells it.
    pub status: Option<String>,
    /// Its items (prices).
    pub items: List<SubscriptionItem>,
    /// Current period start (moved to the items in API 2025-03-31).
    pub current_period_start: Option<i64>,
    /// Current period end (moved to the items in API 2025-03-31).
    pub current_period_end: Option<i64>,
    /// End of the trial.
    pub trial_end: Option<i64>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
    /// When it is set to end (the period's end under `cancel_at_period_end`, or a date).
    pub cancel_at: Option<i64>,
    /// The instant its periods are counted from (Stripe's `billing_cycle_anchor`).
    pub billing_cycle_anchor: Option<i64>,
}

impl StripeSubscription {
    /// Its status in the vocabulary; None for a status Stripe added later.
    pub fn status(&self) -> Option<SubscriptionStatus> {
        self.status.as_deref().and_then(|s| SubscriptionStatus::parse(s).ok())
    }

    /// The prices of all its items, in order (an add-on, the plan, ...).
    pub fn prices(&self) -> impl Iterator<Item = &str> {
        self.items.data.iter().filter_map(|i| i.price.as_ref().map(|p| p.id.as_str()))
    }

    /// The current period, from the subscription or (newer API versions) its items.
    pub fn period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.items.data.iter().find(|i| i.current_period_start.is_some());
        (
            self.current_period_start.or_else(|| item.and_then(|i| i.current_period_start)),
            self.current_period_end.or_else(|| item.and_then(|i| i.current_period_end)),
        )
    }
}

/// A subscription item.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscriptionItem {
    /// Its price.
    pub price: Option<Price>,
    /// How many of it (seats); Stripe omits it for metered prices.
    pub quantity: Option<i64>,
    /// The item's current period start (API 2025-03-31 and later).
    pub current_period_start: Option<i64>,
    /// The item's current period end (API 2025-03-31 and later).
    pub current_period_end: Option<i64>,
}

/// A price (only its id is read).
#[derive(Debug, Default, Deserialize)]
pub struct Price {
    /// `price_...`.
    pub id: String,
}

/// An invoice (<https://docs.stripe.com/api/invoices/object>); every field but its id
/// may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StripeInvoice {
    /// `in_...`.
    pub id: String,
    /// Its number.
    pub number: Option<String>,
    /// draft, open, paid, uncollectible, void.
    pub status: Option<String>,
    /// ISO currency, lower case.
    pub currency: Option<String>,
    /// Before tax, in cents.
    pub subtotal: Option<i64>,
    /// Total, in cents.
    pub total: Option<i64>,
    /// Tax, in cents (older API versions).
    pub tax: Option<i64>,
    /// Taxes (API 2025-03-31 and later).
    pub total_taxes: Option<Vec<Amount>>,
    /// Taxes (older API versions).
    pub total_tax_amounts: Option<Vec<Amount>>,
    /// Paid, in cents.
    pub amount_paid: Option<i64>,
    /// Still due, in cents.
    pub amount_due: Option<i64>,
    /// Stripe's page for it.
    pub hosted_invoice_url: Option<String>,
    /// Its PDF.
    pub invoice_pdf: Option<String>,
    /// Period start.
    pub period_start: Option<i64>,
    /// Period end.
    pub period_end: Option<i64>,
    /// When Stripe created it.
    pub created: Option<i64>,
}

impl StripeInvoice {
    /// The tax of the invoice in cents, whichever field this API version fills.
    pub fn tax_cents(&self) -> i64 {
        let sum = |a: &Option<Vec<Amount>>| a.as_ref().map(|a| a.iter().map(|t| t.amount).sum::<i64>());
        self.tax.or_else(|| sum(&self.total_taxes)).or_else(|| sum(&self.total_tax_amounts)).unwrap_or(0)
    }
}

/// An amount of a tax line.
#[derive(Debug, Deserialize)]
pub struct Amount {
    /// In cents.
    #[serde(default)]
    pub amount: i64,
}

/// A customer (<https://docs.stripe.com/api/customers/object>).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StripeCustomer {
    /// `cus_...`.
    pub id: String,
    /// Its tax ids, when included (not by default since API 2020-08-27).
    pub tax_ids: Option<List<TaxId>>,
    /// Its billing address.
    pub address: Option<Address>,
}

/// An address (only its country is read).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
}

/// A customer's tax id (<https://docs.stripe.com/api/tax_ids/object>).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaxId {
    /// `txi_...` (absent in the embedded lists of old API versions).
    pub id: Option<String>,
    /// Its customer.
    #[serde(deserialize_with = "expandable")]
    pub customer: Option<String>,
    /// e.g. `eu_vat`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id.
    pub value: String,
    /// The country it belongs to.
    pub country: Option<String>,
    /// Stripe's check of it.
    pub verification: Option<Verification>,
}

/// A tax id's verification.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Verification {
    /// pending, verified, unverified, unavailable.
    pub status: Option<String>,
}

impl TaxId {
    /// Its verification in the vocabulary; a missing or newer status is `Unavailable`.
    pub fn verification(&self) -> TaxIdVerification {
        let status = self.verification.as_ref().and_then(|v| v.status.as_deref());
        status.and_then(|s| TaxIdVerification::parse(s).ok()).unwrap_or(TaxIdVerification::Unavailable)
    }

    /// Its key: the `txi_` id, or (in old embedded lists) its type and value.
    pub fn key(&self) -> String {
        self.id.clone().unwrap_or_else(|| format!("{}:{}", self.kind, self.value))
    }
}

/// A dispute (<https://docs.stripe.com/api/disputes/object>): it names its charge, not
/// its customer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StripeDispute {
    /// `dp_...`.
    pub id: String,
    /// The disputed charge (an id, or the expanded object).
    pub charge: Option<Value>,
    /// Disputed amount, in cents.
    pub amount: Option<i64>,
    /// ISO currency, lower case.
    pub currency: Option<String>,
    /// Why the cardholder disputes it.
    pub reason: Option<String>,
    /// Its status.
    pub status: Option<String>,
}

impl StripeDispute {
    /// The disputed charge's id.
    pub fn charge_id(&self) -> Option<String> {
        self.charge.as_ref().and_then(id_of)
    }

    /// The charge's customer, when the charge came expanded.
    pub fn expanded_customer(&self) -> Option<String> {
        self.charge.as_ref()?.get("customer").and_then(id_of)
    }
}

/// A trial-will-end subscription, or anything with a `trial_end`.
#[derive(Debug, Deserialize)]
pub struct TrialEnd {
    /// End of the trial.
    #[serde(default)]
    pub trial_end: Option<i64>,
}

/// The id of a field that is either an id or an expanded object with an `id`.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Reads a field that is either an id or an expanded object with an `id`.
///
/// Errors: the field is not valid JSON.
pub(super) fn expandable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(id_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscriptions_decode_across_api_versions() {
        let old = json!({"id": "sub_1", "customer": "cus_1", "status": "active", "current_period_start": 10,
            "current_period_end": 20, "items": {"data": [{"price": {"id": "price_pro_monthly"}}]}});
        let s: StripeSubscription = serde_json::from_value(old).unwrap();
        assert_eq!(
            (s.prices().collect::<Vec<_>>(), s.period(), s.status()),
            (vec!["price_pro_monthly"], (Some(10), Some(20)), Some(SubscriptionStatus::Active))
        );
        let new = json!({"id": "sub_1", "customer": {"id": "cus_1"}, "status": "brand_new_status",
            "items": {"data": [{"price": {"id": "p"}, "current_period_start": 30, "current_period_end": 40}]}});
        let s: StripeSubscription = serde_json::from_value(new).unwrap();
        assert_eq!((s.customer.as_deref(), s.period(), s.status()), (Some("cus_1"), (Some(30), Some(40)), None));
    }

    #[test]
    fn tax_ids_and_disputes_decode() {
        let t: TaxId = serde_json::from_value(json!({"id": "txi_1", "object": "tax_id", "customer": "cus_1",
            "type": "eu_vat", "value": "DE123456789", "country": "DE", "verification": {"status": "verified"}}))
        .unwrap();
        assert_eq!(
            (t.key(), t.verification(), t.customer.as_deref()),
            ("txi_1".into(), TaxIdVerification::Verified, Some("cus_1"))
        );
        let old: TaxId =
            serde_json::from_value(json!({"type": "eu_vat", "value": "FR1", "verification": {"status": "brand_new"}}))
                .unwrap();
        assert_eq!((old.key(), old.verification()), ("eu_vat:FR1".into(), TaxIdVerification::Unavailable));
        let d: StripeDispute =
            serde_json::from_value(json!({"id": "dp_1", "charge": {"id": "ch_1", "customer": "cus_9"}})).unwrap();
        assert_eq!((d.charge_id().as_deref(), d.expanded_customer().as_deref()), (Some("ch_1"), Some("cus_9")));
    }

    #[test]
    fn invoice_tax_comes_from_whichever_field_is_filled() {
        let i: StripeInvoice =
            serde_json::from_value(json!({"id": "in_1", "total_taxes": [{"amount": 5}, {"amount": 7}]})).unwrap();
        assert_eq!(i.tax_cents(), 12);
        let i: StripeInvoice = serde_json::from_value(json!({"id": "in_1", "tax": 3})).unwrap();
        assert_eq!(i.tax_cents(), 3);
    }
}
