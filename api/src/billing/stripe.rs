//! Calls to Stripe through async-stripe: its typed request parameters encode the forms
//! exactly as Stripe expects; responses are read into the few fields used here, so a
//! newer Stripe API version (extra or renamed fields elsewhere) cannot break decoding.
use super::events::StripeSubscription;
use crate::model::{BillingInterval, PlanCode};
use anyhow::Context;
use serde::Deserialize;
use stripe::{
    CheckoutSessionBillingAddressCollection, CheckoutSessionMode, Client, CreateBillingPortalSession,
    CreateCheckoutSession, CreateCheckoutSessionAutomaticTax, CreateCheckoutSessionCustomerUpdate,
    CreateCheckoutSessionCustomerUpdateAddress, CreateCheckoutSessionCustomerUpdateName,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData, CreateCheckoutSessionTaxIdCollection,
    CreateCustomer, CustomerId, ListSubscriptions, Metadata, RequestStrategy, SubscriptionId,
};
use uuid::Uuid;

/// A Stripe API client (secret key and base URL from config).
#[derive(Clone)]
pub struct StripeApi {
    client: Client,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeApi(..)")
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct WithUrl {
    url: Option<String>,
}

/// One page of subscriptions, as `plinth billing reconcile` reads them.
#[derive(Debug, Deserialize)]
pub struct SubscriptionPage {
    /// The subscriptions.
    pub data: Vec<StripeSubscription>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// What a checkout needs.
#[derive(Debug)]
pub struct CheckoutRequest<'a> {
    /// The customer.
    pub customer: &'a str,
    /// The Stripe price.
    pub price: &'a str,
    /// Trial days, when the user never had a trial.
    pub trial_days: Option<u32>,
    /// Where Stripe sends the user after paying.
    pub success_url: &'a str,
    /// Where Stripe sends the user after giving up.
    pub cancel_url: &'a str,
    /// The user.
    pub user_id: Uuid,
    /// The plan.
    pub plan: PlanCode,
    /// Its interval.
    pub interval: BillingInterval,
}

impl StripeApi {
    /// A client for `base_url` (Stripe's, or a local server in tests).
    ///
    /// Errors: PLINTH_STRIPE_API_BASE is not a URL.
    pub fn new(base_url: &str, secret_key: &str) -> anyhow::Result<Self> {
        url::Url::parse(base_url).context("PLINTH_STRIPE_API_BASE")?;
        Ok(StripeApi { client: Client::from_url(base_url, secret_key) })
    }

    /// Creates the user's customer; the idempotency key makes a retried or concurrent
    /// call return the same customer.
    ///
    /// Errors: Stripe's answer or the network's.
    pub async fn create_customer(&self, user_id: Uuid, email: &str) -> anyhow::Result<String> {
        let mut params = CreateCustomer::new();
        params.email = Some(email);
        params.metadata = Some(Metadata::from([("user_id".to_owned(), user_id.to_string())]));
        let client = self.client.clone().with_strategy(RequestStrategy::Idempotent(format!("customer-{user_id}")));
        let created: Created = client.post_form("/customers", &params).await.context("creating a Stripe customer")?;
        Ok(created.id)
    }

    /// Creates a subscription Checkout Session with tax, tax ids and billing address.
    ///
    /// Errors: Stripe's answer or the network's.
    pub async fn create_checkout(&self, req: &CheckoutRequest<'_>) -> anyhow::Result<String> {
        let customer: CustomerId = req.customer.parse().context("customer id")?;
        let metadata = Metadata::from([
            ("user_id".to_owned(), req.user_id.to_string()),
            ("plan".to_owned(), req.plan.as_str().to_owned()),
            ("interval".to_owned(), req.interval.as_str().to_owned()),
        ]);
        let user_id = req.user_id.to_string();
        let mut params = CreateCheckoutSession::new();
        params.mode = Some(CheckoutSessionMode::Subscription);
        params.customer = Some(customer);
        params.client_reference_id = Some(&user_id);
        params.success_url = Some(req.success_url);
        params.cancel_url = Some(req.cancel_url);
        params.line_items = Some(vec![CreateCheckoutSessionLineItems {
            price: Some(req.price.to_owned()),
            quantity: Some(1),
            ..Default::default()
        }]);
        params.automatic_tax = Some(CreateCheckoutSessionAutomaticTax { enabled: true, liability: None });
        params.tax_id_collection = Some(CreateCheckoutSessionTaxIdCollection { enabled: true });
        params.billing_address_collection = Some(CheckoutSessionBillingAddressCollection::Required);
        // Tax ids and addresses collected at checkout are saved on the existing customer.
        params.customer_update = Some(CreateCheckoutSessionCustomerUpdate {
            address: Some(CreateCheckoutSessionCustomerUpdateAddress::Auto),
            name: Some(CreateCheckoutSessionCustomerUpdateName::Auto),
            shipping: None,
        });
        params.subscription_data = Some(CreateCheckoutSessionSubscriptionData {
            trial_period_days: req.trial_days,
            metadata: Some(metadata.clone()),
            ..Default::default()
        });
        params.metadata = Some(metadata);
        let session: WithUrl =
            self.client.post_form("/checkout/sessions", &params).await.context("creating a Checkout Session")?;
        session.url.context("the Checkout Session has no url")
    }

    /// Creates a customer-portal session.
    ///
    /// Errors: Stripe's answer or the network's.
    pub async fn create_portal(&self, customer: &str, return_url: &str) -> anyhow::Result<String> {
        let mut params = CreateBillingPortalSession::new(customer.parse().context("customer id")?);
        params.return_url = Some(return_url);
        let session: WithUrl =
            self.client.post_form("/billing_portal/sessions", &params).await.context("creating a portal session")?;
        session.url.context("the portal session has no url")
    }

    /// One page of all subscriptions (any status), after `starting_after`.
    ///
    /// Errors: Stripe's answer or the network's.
    pub async fn list_subscriptions(&self, starting_after: Option<&str>) -> anyhow::Result<SubscriptionPage> {
        let mut params = ListSubscriptions::new();
        params.limit = Some(100);
        params.starting_after = starting_after.map(|s| s.parse::<SubscriptionId>()).transpose().context("id")?;
        params.status = Some(stripe::SubscriptionStatusFilter::All);
        self.client.get_query("/subscriptions", &params).await.context("listing subscriptions")
    }
}
