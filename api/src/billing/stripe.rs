//! Calls to Stripe through async-stripe: its typed request parameters encode the forms
//! exactly as Stripe expects; responses are read into the few fields used here, so a
//! newer Stripe API version (extra or renamed fields elsewhere) cannot break decoding.
//!
//! Every call goes through [`StripeApi::call`], a small loop of Plinth's own:
//! - every POST carries an idempotency key its caller derives from the request (see
//!   each method), so a retried or concurrent call has one effect;
//! - a call is retried on 429, 409 (the same key in flight), 5xx, a network error or an
//!   unreadable answer, with exponential backoff and full jitter; async-stripe 0.41's
//!   own `ExponentialBackoff` draws a random key per call and stops on 429, so each
//!   attempt here is async-stripe's `Idempotent(key)` strategy: one try with our key;
//! - the whole call, retries included, is bounded by `PLINTH_STRIPE_TIMEOUT_MS`; one
//!   that does not finish in time is SERVICE_UNAVAILABLE.
//!
//! Callers never hold a database transaction or an advisory lock while calling: see
//! `checkout`, `webhook` and `reconcile`.
use super::events::{StripeCustomer, StripeInvoice, StripeSubscription};
use crate::{
    error::AppError,
    model::{BillingInterval, PlanCode},
};
use anyhow::Context;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::{future::Future, time::Duration};
use stripe::{
    CheckoutSessionBillingAddressCollection, CheckoutSessionMode, Client, CreateBillingPortalSession,
    CreateCheckoutSession, CreateCheckoutSessionAutomaticTax, CreateCheckoutSessionCustomerUpdate,
    CreateCheckoutSessionCustomerUpdateAddress, CreateCheckoutSessionCustomerUpdateName,
    CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData, CreateCheckoutSessionTaxIdCollection,
    CreateCustomer, CustomerId, ErrorCode, Metadata, RequestStrategy, Scheduled, StripeError, UpdateSubscription,
};
use tokio::time::Instant;
use uuid::Uuid;

/// The Stripe API version Plinth speaks, pinned here and nowhere else. async-stripe 0.41
/// sends its generated version (`Stripe-Version: 2023-10-16`, the version its typed
/// parameters are written for) on every request and offers no way to change it, so the
/// pin is that version; a test asserts every request the Stripe stand-in receives
/// carries exactly this, so an upgrade of async-stripe that moves it fails until this
/// constant (and `events`' tolerance) is reviewed. Webhook payloads of another version
/// (the endpoint's, set in Stripe's dashboard) are logged and recorded (`webhook`).
pub const API_VERSION: &str = "2023-10-16";

/// Attempts of one call, the first included.
const MAX_ATTEMPTS: u32 = 4;
/// The first retry waits up to this long; each next one up to twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// No retry waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// A Stripe API client (secret key and base URL from config).
#[derive(Clone)]
pub struct StripeApi {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeApi(..)")
    }
}

/// Why a call to Stripe did not succeed.
#[derive(Debug)]
pub enum StripeFailure {
    /// Stripe answered `resource_missing`: an object the call names does not exist.
    Missing,
    /// No answer in time, or 429/409/5xx/network errors until the budget ran out:
    /// nothing is known to be done (the idempotency key makes a later try safe).
    Unavailable(String),
    /// Anything else: a refusal we did not expect.
    Failed(anyhow::Error),
}

impl From<StripeFailure> for AppError {
    fn from(f: StripeFailure) -> Self {
        match f {
            StripeFailure::Missing => AppError::Internal(anyhow::anyhow!("Stripe: resource_missing")),
            StripeFailure::Unavailable(why) => {
                tracing::warn!(why, "Stripe did not answer");
                AppError::ServiceUnavailable("the payment provider did not answer; nothing was done, try again".into())
            }
            StripeFailure::Failed(e) => AppError::Internal(e),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Retry,
    Missing,
    Stop,
}

/// Sorts a failed attempt: transient failures are retried, `resource_missing` is told
/// apart, anything else stops.
fn classify(e: &StripeError) -> Next {
    match e {
        StripeError::Stripe(r) if r.code == Some(ErrorCode::ResourceMissing) => Next::Missing,
        StripeError::Stripe(r) if r.http_status == 429 || r.http_status == 409 || r.http_status >= 500 => Next::Retry,
        StripeError::Stripe(_) => Next::Stop,
        // A refused or reset connection, or async-stripe's own timeout.
        StripeError::ClientError(_) | StripeError::Timeout => Next::Retry,
        // An answer that is not Stripe's JSON: a gateway's error page, or an error code
        // newer than async-stripe knows. Safe to send again: every POST has its key.
        StripeError::JSONSerialize(_) => Next::Retry,
        StripeError::QueryStringSerialize(_) | StripeError::UnsupportedVersion => Next::Stop,
    }
}

/// The wait before retry number `retry` (1-based): full jitter over an exponentially
/// growing window, so clients that failed together do not retry together.
fn backoff(retry: u32) -> Duration {
    let window = BACKOFF_BASE.saturating_mul(1 << retry.saturating_sub(1).min(16)).min(BACKOFF_CAP);
    Duration::from_millis(rand::thread_rng().gen_range(0..=window.as_millis() as u64))
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct WithUrl {
    url: Option<String>,
}

/// A created Checkout Session.
#[derive(Clone, Debug, Deserialize)]
pub struct Session {
    /// `cs_...`.
    pub id: String,
    /// Where to send the user.
    pub url: Option<String>,
}

#[derive(Deserialize)]
struct SessionStatus {
    #[serde(default)]
    status: Option<String>,
}

/// A charge, for the customer a dispute is about.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StripeCharge {
    /// `ch_...`.
    pub id: String,
    /// Its customer (an id or the expanded object).
    #[serde(deserialize_with = "super::events::expandable")]
    pub customer: Option<String>,
}

/// One page of a list.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_more: bool,
}

/// One page of subscriptions, as `plinth billing reconcile` reads them.
pub type SubscriptionPage = Page<StripeSubscription>;

/// A customer as Stripe has it now.
#[derive(Debug)]
pub enum CustomerState {
    /// It exists (with its tax ids expanded).
    Exists(StripeCustomer),
    /// Deleted, or never existed in this Stripe account.
    Gone,
}

/// What became of expiring a Checkout Session.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// It can no longer be paid (expired now or before, or unknown to Stripe).
    Yes,
    /// It was completed (paid) before it could be expired.
    Refused,
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
    /// When the session stops being payable (unix seconds; Stripe wants 30 minutes to 24
    /// hours ahead). Fixed by the caller so every attempt with one key is identical.
    pub expires_at: i64,
}

#[derive(Default, Serialize)]
struct Query<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "<[&str]>::is_empty")]
    expand: &'a [&'a str],
}

#[derive(Deserialize)]
struct MaybeDeleted {
    #[serde(default)]
    deleted: bool,
}

impl StripeApi {
    /// A client for `base_url` (Stripe's, or a local server in tests) whose calls take at
    /// most `timeout` each, retries included.
    ///
    /// Errors: PLINTH_STRIPE_API_BASE is not a URL.
    pub fn new(base_url: &str, secret_key: &str, timeout: Duration) -> anyhow::Result<Self> {
        url::Url::parse(base_url).context("PLINTH_STRIPE_API_BASE")?;
        Ok(StripeApi { client: Client::from_url(base_url, secret_key), timeout })
    }

    /// Runs one call (`send`, given a client carrying `key`) with retries, backoff and
    /// jitter, within the timeout.
    async fn call<T, F, Fut>(&self, what: &str, key: Option<&str>, send: F) -> Result<T, StripeFailure>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, StripeError>>,
    {
        let client = match key {
            Some(k) => self.client.clone().with_strategy(RequestStrategy::Idempotent(k.to_owned())),
            None => self.client.clone(),
        };
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match tokio::time::timeout_at(deadline, send(client.clone())).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(StripeFailure::Unavailable(format!(
                        "{what}: no answer within {} ms ({attempt} attempt(s))",
                        self.timeout.as_millis()
                    )))
                }
            };
            match classify(&err) {
                Next::Missing => return Err(StripeFailure::Missing),
                Next::Stop => return Err(StripeFailure::Failed(anyhow::Error::new(err).context(what.to_owned()))),
                Next::Retry if attempt >= MAX_ATTEMPTS => {
                    return Err(StripeFailure::Unavailable(format!("{what}: {err} after {attempt} attempts")))
                }
                Next::Retry => {
                    let wait = backoff(attempt);
                    if Instant::now() + wait >= deadline {
                        return Err(StripeFailure::Unavailable(format!("{what}: {err}; no time left to retry")));
                    }
                    tracing::info!(what, attempt, error = %err, wait_ms = wait.as_millis() as u64, "retrying a Stripe call");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Creates the user's customer with idempotency key `key` (`customer-{user}` for the
    /// first, `customer-{user}-after-{forgotten customer}` for a later one), so a retried
    /// or concurrent call returns the same customer.
    ///
    /// Errors: `StripeFailure` (Unavailable after the timeout or retries; Failed).
    pub async fn create_customer(&self, user_id: Uuid, email: &str, key: &str) -> Result<String, StripeFailure> {
        let mut params = CreateCustomer::new();
        params.email = Some(email);
        params.metadata = Some(Metadata::from([("user_id".to_owned(), user_id.to_string())]));
        let created: Created =
            self.call("creating a customer", Some(key), |c| c.post_form("/customers", &params)).await?;
        Ok(created.id)
    }

    /// The customer as Stripe has it, with its tax ids (`expand[]=tax_ids`: not included
    /// by default since API 2020-08-27).
    ///
    /// Errors: `StripeFailure` (Unavailable; Failed).
    pub async fn customer(&self, customer: &str) -> Result<CustomerState, StripeFailure> {
        let path = format!("/customers/{customer}");
        let query = Query { expand: &["tax_ids"], ..Query::default() };
        let found: Result<serde_json::Value, _> =
            self.call("reading a customer", None, |c| c.get_query(&path, &query)).await;
        let value = match found {
            Err(StripeFailure::Missing) => return Ok(CustomerState::Gone),
            other => other?,
        };
        // A deleted customer answers 200 with `deleted: true`.
        let deleted = MaybeDeleted::deserialize(&value).map(|d| d.deleted).unwrap_or(false);
        if deleted {
            return Ok(CustomerState::Gone);
        }
        let customer =
            StripeCustomer::deserialize(&value).context("decoding a customer").map_err(StripeFailure::Failed)?;
        Ok(CustomerState::Exists(customer))
    }

    /// Creates a subscription Checkout Session with tax, tax ids and billing address,
    /// with idempotency key `key` (the pending checkout's, shared by every attempt for
    /// the same plan: see `checkout`).
    ///
    /// Errors: `StripeFailure` (Missing: the customer is gone; Unavailable; Failed).
    pub async fn create_checkout(&self, req: &CheckoutRequest<'_>, key: &str) -> Result<Session, StripeFailure> {
        let customer: CustomerId = req.customer.parse().context("customer id").map_err(StripeFailure::Failed)?;
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
        params.expires_at = Some(req.expires_at);
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
        let session: Session =
            self.call("creating a Checkout Session", Some(key), |c| c.post_form("/checkout/sessions", &params)).await?;
        if session.url.is_none() {
            return Err(StripeFailure::Failed(anyhow::anyhow!("the Checkout Session {} has no url", session.id)));
        }
        Ok(session)
    }

    /// Expires an open Checkout Session (key `expire-{session}`), so it can no longer be
    /// paid; `Refused` when it was completed (paid) first.
    ///
    /// Errors: `StripeFailure` (Unavailable; Failed).
    pub async fn expire_checkout(&self, session: &str) -> Result<Expired, StripeFailure> {
        let path = format!("/checkout/sessions/{session}/expire");
        let key = format!("expire-{session}");
        match self.call::<serde_json::Value, _, _>("expiring a Checkout Session", Some(&key), |c| c.post(&path)).await {
            Ok(_) | Err(StripeFailure::Missing) => Ok(Expired::Yes),
            // Stripe refuses to expire a session that is not open: expired before, or paid.
            Err(StripeFailure::Failed(e)) => {
                let path = format!("/checkout/sessions/{session}");
                let found: SessionStatus = self.call("reading a Checkout Session", None, |c| c.get(&path)).await?;
                match found.status.as_deref() {
                    Some("expired") => Ok(Expired::Yes),
                    Some("complete") => Ok(Expired::Refused),
                    _ => Err(StripeFailure::Failed(e)),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Creates a customer-portal session, with idempotency key `key`
    /// (`portal-{user}-{customer}-{minute}`: two clicks in one minute get one session).
    ///
    /// Errors: `StripeFailure` (Missing: the customer is gone; Unavailable; Failed).
    pub async fn create_portal(&self, customer: &str, return_url: &str, key: &str) -> Result<String, StripeFailure> {
        let mut params =
            CreateBillingPortalSession::new(customer.parse().context("customer id").map_err(StripeFailure::Failed)?);
        params.return_url = Some(return_url);
        let session: WithUrl = self
            .call("creating a portal session", Some(key), |c| c.post_form("/billing_portal/sessions", &params))
            .await?;
        session.url.ok_or_else(|| StripeFailure::Failed(anyhow::anyhow!("the portal session has no url")))
    }

    /// One page of all subscriptions (any status), after `starting_after`.
    ///
    /// Errors: `StripeFailure` (Unavailable; Failed).
    pub async fn list_subscriptions(&self, starting_after: Option<&str>) -> Result<SubscriptionPage, StripeFailure> {
        let query = Query { limit: Some(100), starting_after, status: Some("all"), ..Query::default() };
        self.call("listing subscriptions", None, |c| c.get_query("/subscriptions", &query)).await
    }

    /// The customer's newest invoices (one page of 100).
    ///
    /// Errors: `StripeFailure` (Unavailable; Failed).
    pub async fn list_invoices(&self, customer: &str) -> Result<Page<StripeInvoice>, StripeFailure> {
        let query = Query { limit: Some(100), customer: Some(customer), ..Query::default() };
        self.call("listing invoices", None, |c| c.get_query("/invoices", &query)).await
    }

    /// Cancels a subscription now (`DELETE /v1/subscriptions/{id}`: no proration, no
    /// further invoice), as an account's erasure requires; one already gone counts as
    /// cancelled.
    ///
    /// Errors: `StripeFailure` (Unavailable; Failed).
    pub async fn cancel_subscription(&self, subscription: &str) -> Result<(), StripeFailure> {
        let path = format!("/subscriptions/{subscription}");
        match self.call::<serde_json::Value, _, _>("cancelling a subscription", None, |c| c.delete(&path)).await {
            Ok(_) | Err(StripeFailure::Missing) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves a subscription's trial end to `trial_end` (unix seconds) without proration
    /// (`POST /v1/subscriptions/{id}` with `trial_end` and `proration_behavior=none`),
    /// with idempotency key `key` (a staff request's id: its retries have one effect).
    /// The account's billing state follows from Stripe's `customer.subscription.updated`.
    ///
    /// Errors: `StripeFailure` (Missing: no such subscription; Unavailable; Failed:
    /// Stripe refused, e.g. a trial end more than two years ahead).
    pub async fn extend_trial(&self, subscription: &str, trial_end: i64, key: &str) -> Result<(), StripeFailure> {
        let mut params = UpdateSubscription::new();
        params.trial_end = Some(Scheduled::at(trial_end));
        // The subscription's own enum: async-stripe exports a same-named one of subscription items.
        params.proration_behavior = Some(stripe::generated::billing::subscription::SubscriptionProrationBehavior::None);
        let path = format!("/subscriptions/{subscription}");
        let _: Created = self.call("extending a trial", Some(key), |c| c.post_form(&path, &params)).await?;
        Ok(())
    }

    /// A charge (for the customer of a dispute).
    ///
    /// Errors: `StripeFailure` (Missing; Unavailable; Failed).
    pub async fn charge(&self, charge: &str) -> Result<StripeCharge, StripeFailure> {
        let path = format!("/charges/{charge}");
        self.call("reading a charge", None, |c| c.get(&path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stripe::RequestError;

    fn answered(status: u16, code: Option<ErrorCode>) -> StripeError {
        StripeError::Stripe(RequestError { http_status: status, code, ..Default::default() })
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_are_not() {
        for status in [429, 409, 500, 502, 503] {
            assert_eq!(classify(&answered(status, None)), Next::Retry, "{status}");
        }
        assert_eq!(classify(&StripeError::ClientError("connection refused".into())), Next::Retry);
        assert_eq!(classify(&StripeError::Timeout), Next::Retry);
        assert_eq!(classify(&answered(400, None)), Next::Stop);
        assert_eq!(classify(&answered(402, Some(ErrorCode::CardDeclined))), Next::Stop);
        assert_eq!(classify(&answered(404, Some(ErrorCode::ResourceMissing))), Next::Missing);
        assert_eq!(classify(&answered(400, Some(ErrorCode::ResourceMissing))), Next::Missing);
    }

    #[test]
    fn backoff_grows_within_its_cap_and_jitters() {
        for retry in 1..10 {
            let window = BACKOFF_BASE.saturating_mul(1 << (retry - 1)).min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(backoff(retry) <= window);
            }
        }
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(3)).collect();
        assert!(draws.len() > 1, "jitter draws different waits");
    }
}
