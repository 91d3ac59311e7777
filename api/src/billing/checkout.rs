//! Stripe Checkout and the customer portal. The first subscription of a user gets the
//! plan's trial; later ones never do.
//!
//! No call to Stripe is made while a transaction or an advisory lock is held: the
//! request's transaction is released around the calls (`RequestTx::without_transaction`),
//! and what must be written happens in short transactions of their own before and after.
//!
//! Two checkouts at once (two tabs) must not give two payable sessions. A user has at
//! most one pending checkout (`billing_checkouts`, keyed by user), claimed under the
//! user's lock before calling Stripe:
//! - the same plan and interval again shares the pending checkout's idempotency key
//!   `checkout-{user}-{plan}-{interval}-{pending checkout's random id}` and its
//!   `expires_at`, so Stripe answers every attempt with one session (its URL is handed
//!   out again while it stays payable); a new pending checkout has a new id, so a key is
//!   never reused with other parameters (a trial no longer offered, say);
//! - another plan or interval replaces it: its session, if one was created, is expired
//!   at Stripe first (if Stripe refuses, it was paid: CONFLICT), and an attempt whose
//!   pending checkout was replaced while it was calling Stripe expires its own session
//!   and answers CONFLICT, so only the latest tab can pay;
//! - a customer with a live subscription gets CONFLICT: plans change in the portal.
//!
//! A stored customer Stripe no longer has (`resource_missing`, confirmed by reading the
//! customer) is forgotten and a new one created, once per call, with the key
//! `customer-{user}-after-{forgotten customer}` (the first customer's key is
//! `customer-{user}`): a key Stripe saw before would answer the deleted customer again.
use super::{
    service::BillingService,
    store::{self, PendingCheckout},
    stripe::{CheckoutRequest, Expired, StripeFailure},
};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    email::store as addresses,
    error::{AppError, AppResult},
    model::{AccountState, BillingInterval, PlanCode},
};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

/// How long a created session stays payable (Stripe accepts 30 minutes to 24 hours).
const SESSION_LIFETIME: Duration = Duration::minutes(60);
/// An attempt shares a pending checkout's key while its `expires_at` is still more than
/// Stripe's 30-minute minimum ahead, should the first attempt never have reached Stripe.
const KEY_SHARING: Duration = Duration::minutes(25);
/// A stored session URL is handed out again while it stays payable at least this long.
const URL_MARGIN: Duration = Duration::minutes(10);
/// Replacement rounds before giving up (each one follows another tab's move).
const ROUNDS: usize = 3;

/// What a claim decided.
enum Claim {
    /// The pending checkout's session, still payable.
    Ready(String),
    /// Another checkout's session must stop being payable first.
    Replace { key: String, session: String },
    /// Create (or join) the session of this pending checkout.
    Create(Attempt),
}

/// Everything a session's creation needs, fixed at the claim.
struct Attempt {
    pending: PendingCheckout,
    customer: Option<String>,
    previous_customer: Option<String>,
    email: String,
    trial_days: Option<u32>,
}

impl BillingService {
    /// Starts a Checkout Session for a paid `plan` and `interval`; returns its URL (the
    /// same one to a second tab asking for the same plan).
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (billing not configured); BAD_USER_INPUT
    /// (`input.plan`, `input.interval`; `mutation`: not first in its request);
    /// CONFLICT (a live subscription: use the portal; another tab's checkout replaced
    /// this one or was paid); SERVICE_UNAVAILABLE (Stripe did not answer in time);
    /// INTERNAL.
    pub async fn start_checkout(&self, tx: &RequestTx, plan: PlanCode, interval: BillingInterval) -> AppResult<String> {
        let user_id = tx.user_id()?;
        self.stripe()?;
        if !plan.is_paid() {
            return Err(AppError::bad_input("input.plan", "must be a paid plan: STARTER, PRO or SCALE"));
        }
        let price = self
            .catalog
            .plan(plan)
            .price_id(interval)
            .ok_or_else(|| AppError::bad_input("input.interval", "must be MONTH or YEAR"))?
            .to_owned();
        tx.without_transaction(self.checkout(user_id, plan, interval, &price)).await?
    }

    async fn checkout(
        &self,
        user_id: Uuid,
        plan: PlanCode,
        interval: BillingInterval,
        price: &str,
    ) -> AppResult<String> {
        for _ in 0..ROUNDS {
            match self.claim_checkout(user_id, plan, interval).await? {
                Claim::Ready(url) => return Ok(url),
                Claim::Create(attempt) => return self.create_session(user_id, attempt, price).await,
                Claim::Replace { key, session } => {
                    if self.stripe()?.expire_checkout(&session).await? == Expired::Refused {
                        return Err(AppError::Conflict(
                            "a checkout started earlier was completed; your subscription starts in a moment \
                             (change it in the billing portal)"
                                .into(),
                        ));
                    }
                    let tx = self.begin("billing-checkout").await?;
                    self.act_for(&tx, user_id).await?;
                    store::drop_checkout(&tx, user_id, &key).await?;
                    tx.commit(&self.bus).await?;
                }
            }
        }
        Err(AppError::Conflict("checkouts are being started in several places at once; try again".into()))
    }

    /// Decides, under the user's lock in a short transaction, what this attempt does.
    async fn claim_checkout(&self, user_id: Uuid, plan: PlanCode, interval: BillingInterval) -> AppResult<Claim> {
        let tx = self.begin("billing-checkout").await?;
        self.act_for(&tx, user_id).await?;
        store::lock(&tx, &store::user_lock(user_id)).await?;
        let now = Utc::now();
        let account = store::read_account(&tx, user_id).await?.unwrap_or_default();
        let subs = store::read_subscriptions(&tx, user_id).await?;
        if account.state != AccountState::Free || subs.iter().any(|s| s.is_live(now)) {
            tx.rollback().await;
            return Err(AppError::Conflict(
                "you already have a subscription; change your plan in the billing portal (openBillingPortal)".into(),
            ));
        }
        let pending = store::read_checkout(&tx, user_id).await?;
        let same = |p: &PendingCheckout| p.plan == plan && p.interval == interval;
        let claim = match pending {
            Some(p) if same(&p) && p.url.is_some() && p.expires_at > now + URL_MARGIN => {
                Claim::Ready(p.url.unwrap_or_default())
            }
            Some(p) if same(&p) && p.url.is_none() && now < p.opened_at + KEY_SHARING => {
                Claim::Create(self.attempt(&tx, user_id, &account, &subs, p).await?)
            }
            Some(p) if p.session_id.is_some() && p.expires_at > now => {
                Claim::Replace { key: p.key, session: p.session_id.unwrap_or_default() }
            }
            _ => {
                let opened_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
                let p = PendingCheckout {
                    plan,
                    interval,
                    key: format!("checkout-{user_id}-{plan}-{interval}-{}", Uuid::new_v4().simple()),
                    opened_at,
                    expires_at: opened_at + SESSION_LIFETIME,
                    session_id: None,
                    url: None,
                };
                store::open_checkout(&tx, user_id, &p).await?;
                Claim::Create(self.attempt(&tx, user_id, &account, &subs, p).await?)
            }
        };
        tx.commit(&self.bus).await?;
        Ok(claim)
    }

    async fn attempt(
        &self,
        tx: &RequestTx,
        user_id: Uuid,
        account: &store::Account,
        subs: &[store::Subscription],
        pending: PendingCheckout,
    ) -> AppResult<Attempt> {
        let trial_used = account.trial_used || account.subscription_id.is_some() || !subs.is_empty();
        let trial_days = self.catalog.plan(pending.plan).trial_days;
        Ok(Attempt {
            trial_days: (!trial_used && trial_days > 0).then_some(trial_days),
            customer: account.customer.clone(),
            previous_customer: account.previous_customer.clone(),
            email: addresses::address_of(tx, user_id).await?,
            pending,
        })
    }

    /// Creates the session of `attempt` (and its customer, when there is none yet) and
    /// records it, unless another tab replaced the pending checkout meanwhile.
    async fn create_session(&self, user_id: Uuid, attempt: Attempt, price: &str) -> AppResult<String> {
        let stripe = self.stripe()?;
        let p = &attempt.pending;
        let customer = match &attempt.customer {
            Some(c) => c.clone(),
            None => self.new_customer(user_id, &attempt.email, attempt.previous_customer.as_deref()).await?,
        };
        let session =
            match stripe.create_checkout(&self.checkout_request(user_id, &attempt, &customer, price), &p.key).await {
                Err(StripeFailure::Missing) if self.customer_gone(&customer).await? => {
                    self.forget_customer(user_id, &customer, Utc::now().timestamp(), Some(&p.key)).await?;
                    let fresh = self.new_customer(user_id, &attempt.email, Some(&customer)).await?;
                    // New parameters, new key: the old key's answer belongs to the old customer.
                    stripe
                        .create_checkout(
                            &self.checkout_request(user_id, &attempt, &fresh, price),
                            &format!("{}-{fresh}", p.key),
                        )
                        .await?
                }
                other => other?,
            };
        let url = session.url.clone().unwrap_or_default();
        let tx = self.begin("billing-checkout").await?;
        self.act_for(&tx, user_id).await?;
        store::lock(&tx, &store::user_lock(user_id)).await?;
        let current = store::read_checkout(&tx, user_id).await?;
        match current {
            Some(c) if c.key == p.key && c.session_id.as_deref() == Some(session.id.as_str()) => {
                // Another tab shared this checkout and recorded it first.
                tx.rollback().await;
            }
            Some(c) if c.key == p.key => {
                store::record_checkout_session(&tx, user_id, &p.key, &session.id, &url).await?;
                let data = json!({ "plan": p.plan, "interval": p.interval, "trial": attempt.trial_days.is_some() });
                activity::record(&tx, Entry::by_user(user_id, "billing.checkout_started", None, data)).await?;
                tx.commit(&self.bus).await?;
            }
            _ => {
                tx.rollback().await;
                // Replaced by another tab's checkout: this session must not be payable.
                stripe.expire_checkout(&session.id).await?;
                return Err(AppError::Conflict(
                    "a checkout for another plan was started meanwhile; continue there or start again".into(),
                ));
            }
        }
        Ok(url)
    }

    fn checkout_request<'a>(
        &'a self,
        user_id: Uuid,
        attempt: &'a Attempt,
        customer: &'a str,
        price: &'a str,
    ) -> CheckoutRequest<'a> {
        CheckoutRequest {
            customer,
            price,
            trial_days: attempt.trial_days,
            success_url: &self.settings.success_url,
            cancel_url: &self.settings.cancel_url,
            user_id,
            plan: attempt.pending.plan,
            interval: attempt.pending.interval,
            expires_at: attempt.pending.expires_at.timestamp(),
        }
    }

    /// Creates the user's Stripe customer and records it (its key names the customer
    /// it replaces, if any).
    async fn new_customer(&self, user_id: Uuid, email: &str, previous: Option<&str>) -> AppResult<String> {
        let key = match previous {
            None => format!("customer-{user_id}"),
            Some(old) => format!("customer-{user_id}-after-{old}"),
        };
        let customer = self.stripe()?.create_customer(user_id, email, &key).await?;
        let tx = self.begin("billing-checkout").await?;
        self.act_for(&tx, user_id).await?;
        store::lock(&tx, &store::user_lock(user_id)).await?;
        store::save_customer(&tx, user_id, &customer).await?;
        tx.commit(&self.bus).await?;
        Ok(customer)
    }

    /// A customer-portal URL for the caller. A customer Stripe no longer has is
    /// forgotten and replaced, once.
    ///
    /// Errors: UNAUTHENTICATED; FORBIDDEN (billing not configured); CONFLICT (no
    /// billing account yet); BAD_USER_INPUT (`mutation`: not first in its request);
    /// SERVICE_UNAVAILABLE (Stripe did not answer in time); INTERNAL.
    pub async fn open_portal(&self, tx: &RequestTx) -> AppResult<String> {
        let user_id = tx.user_id()?;
        let stripe = self.stripe()?;
        let customer = store::read_account(tx, user_id)
            .await?
            .and_then(|a| a.customer)
            .ok_or_else(|| AppError::Conflict("no billing account yet; start a checkout first".into()))?;
        let email = addresses::address_of(tx, user_id).await?;
        let return_url = self.settings.portal_return_url.clone();
        tx.without_transaction(async {
            let minute = Utc::now().timestamp() / 60;
            let key = format!("portal-{user_id}-{customer}-{minute}");
            match stripe.create_portal(&customer, &return_url, &key).await {
                Err(StripeFailure::Missing) if self.customer_gone(&customer).await? => {
                    self.forget_customer(user_id, &customer, Utc::now().timestamp(), None).await?;
                    let fresh = self.new_customer(user_id, &email, Some(&customer)).await?;
                    let key = format!("portal-{user_id}-{fresh}-{minute}");
                    Ok(stripe.create_portal(&fresh, &return_url, &key).await?)
                }
                other => Ok(other?),
            }
        })
        .await?
    }
}
