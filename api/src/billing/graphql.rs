//! GraphQL adapters for billing: checkout, the portal, the caller's subscription (its
//! cancellation date, tax ids and billing country) and invoices.
use super::service::BillingService;
use crate::{
    auth::guards::{scope, NoApiTokens, SignedIn},
    db::{data, RequestTx},
    model::{AccountState, ApiScope, BillingInterval, PlanCode, TaxIdVerification},
    pagination::{Cursor, PageRequest},
};
use async_graphql::{
    connection::Connection, ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use entity::invoices;
use std::sync::Arc;

/// A paid plan.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum PaidPlan {
    /// Starter.
    Starter,
    /// Pro.
    Pro,
    /// Scale.
    Scale,
}

/// Input of `startCheckout`.
#[derive(InputObject)]
pub struct StartCheckoutInput {
    /// The plan.
    pub plan: PaidPlan,
    /// The interval.
    #[graphql(default)]
    pub interval: BillingInterval,
}

/// A Stripe Checkout page to send the user to.
#[derive(SimpleObject)]
pub struct CheckoutSession {
    /// Its URL.
    pub url: String,
}

/// A Stripe customer-portal page to send the user to.
#[derive(SimpleObject)]
pub struct BillingPortalSession {
    /// Its URL.
    pub url: String,
}

/// The caller's subscription.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct BillingStatus {
    /// The plan (Free when no subscription grants one).
    pub plan: PlanCode,
    /// Whether premium features work.
    pub state: AccountState,
    /// Stripe's subscription status (trialing, active, past_due ...).
    pub subscription_status: Option<String>,
    /// MONTH or YEAR.
    pub interval: Option<BillingInterval>,
    /// End of the current period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// End of the trial.
    pub trial_end: Option<DateTime<Utc>>,
    /// End of the grace period.
    pub grace_until: Option<DateTime<Utc>>,
    /// Whether it ends at the period end.
    pub cancel_at_period_end: bool,
    /// When the subscription ends (canceled to the period's end, or at a date); the plan
    /// stays until then, then the account returns to Free.
    pub cancels_at: Option<DateTime<Utc>>,
    /// Whether the next checkout includes a free trial.
    pub trial_available: bool,
    /// Country of the billing address (ISO 3166-1 alpha-2), as given at checkout.
    pub address_country: Option<String>,
}

#[ComplexObject]
impl BillingStatus {
    /// The customer's tax ids (EU VAT numbers ...), as Stripe verified them.
    async fn tax_ids(&self, ctx: &Context<'_>) -> Result<Vec<TaxId>> {
        let tx = data::<RequestTx>(ctx)?;
        let rows = data::<Arc<BillingService>>(ctx)?.tax_ids(tx).await?;
        Ok(rows
            .into_iter()
            .map(|r| TaxId { kind: r.kind, value: r.value, country: r.country, verification: r.verification })
            .collect())
    }
}

/// A tax id of the customer.
#[derive(SimpleObject)]
pub struct TaxId {
    /// Stripe's type, e.g. `eu_vat`.
    #[graphql(name = "type")]
    pub kind: String,
    /// The number, e.g. `DE123456789`.
    pub value: String,
    /// The country it belongs to.
    pub country: Option<String>,
    /// Where Stripe's verification stands.
    pub verification: TaxIdVerification,
}

/// An invoice.
#[derive(SimpleObject)]
pub struct Invoice {
    /// The invoice's id.
    pub id: ID,
    /// Stripe's number.
    pub number: Option<String>,
    /// draft, open, paid, uncollectible, void.
    pub status: String,
    /// ISO currency.
    pub currency: String,
    /// Before tax, in cents.
    pub subtotal_cents: i64,
    /// Tax (EU VAT), in cents.
    pub tax_cents: i64,
    /// Total, in cents.
    pub total_cents: i64,
    /// Paid, in cents.
    pub amount_paid_cents: i64,
    /// Still due, in cents.
    pub amount_due_cents: i64,
    /// Stripe's page for it.
    pub hosted_invoice_url: Option<String>,
    /// Its PDF.
    pub invoice_pdf: Option<String>,
    /// Period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Period end.
    pub period_end: Option<DateTime<Utc>>,
    /// When Stripe created it.
    pub created_at: DateTime<Utc>,
}

impl From<invoices::Model> for Invoice {
    fn from(m: invoices::Model) -> Self {
        Invoice {
            id: ID(m.id.to_string()),
            number: m.number,
            status: m.status,
            currency: m.currency.to_uppercase(),
            subtotal_cents: m.subtotal_cents,
            tax_cents: m.tax_cents,
            total_cents: m.total_cents,
            amount_paid_cents: m.amount_paid_cents,
            amount_due_cents: m.amount_due_cents,
            hosted_invoice_url: m.hosted_invoice_url,
            invoice_pdf: m.invoice_pdf,
            period_start: m.period_start.map(|t| t.with_timezone(&Utc)),
            period_end: m.period_end.map(|t| t.with_timezone(&Utc)),
            created_at: m.stripe_created.with_timezone(&Utc),
        }
    }
}

impl From<PaidPlan> for PlanCode {
    fn from(p: PaidPlan) -> Self {
        match p {
            PaidPlan::Starter => PlanCode::Starter,
            PaidPlan::Pro => PlanCode::Pro,
            PaidPlan::Scale => PlanCode::Scale,
        }
    }
}

/// Billing queries.
#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The caller's subscription.
    #[graphql(guard = "scope(ApiScope::BillingRead).and(SignedIn)")]
    async fn billing(&self, ctx: &Context<'_>) -> Result<BillingStatus> {
        let tx = data::<RequestTx>(ctx)?;
        let a = data::<Arc<BillingService>>(ctx)?.account(tx).await?;
        Ok(BillingStatus {
            plan: a.plan,
            state: a.state,
            subscription_status: a.subscription_status,
            interval: a.interval,
            current_period_end: a.current_period_end,
            trial_end: a.trial_end,
            grace_until: a.grace_until,
            cancel_at_period_end: a.cancel_at_period_end,
            cancels_at: a.cancels_at,
            trial_available: !a.trial_used && a.subscription_id.is_none(),
            address_country: a.address_country,
        })
    }

    /// The caller's invoices, newest first; `first` is capped at 100.
    #[graphql(
        guard = "scope(ApiScope::BillingRead).and(SignedIn)",
        complexity = "crate::pagination::page_cost(first, child_complexity)"
    )]
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Invoice>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = data::<Arc<BillingService>>(ctx)?.invoices(tx, PageRequest::parse(first, after.as_deref())?).await?;
        let cursor = |m: &invoices::Model| Cursor { created_at: m.stripe_created.with_timezone(&Utc), id: m.id };
        Ok(page.into_connection(cursor, Invoice::from))
    }
}

/// Billing mutations.
#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Starts a Stripe Checkout for a plan; returns the page to send the user to.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn start_checkout(&self, ctx: &Context<'_>, input: StartCheckoutInput) -> Result<CheckoutSession> {
        let tx = data::<RequestTx>(ctx)?;
        let url = data::<Arc<BillingService>>(ctx)?.start_checkout(tx, input.plan.into(), input.interval).await?;
        Ok(CheckoutSession { url })
    }

    /// Opens the Stripe customer portal (payment methods, invoices, plan changes).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn open_billing_portal(&self, ctx: &Context<'_>) -> Result<BillingPortalSession> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(BillingPortalSession { url: data::<Arc<BillingService>>(ctx)?.open_portal(tx).await? })
    }
}
