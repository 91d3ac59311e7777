//! The billing service: what every billing path shares (the catalog, the Stripe client,
//! settings), the caller's billing state, tax ids and invoices, deriving an account
//! from its subscriptions (`settle`) and carrying out a transition's effects. Billing
//! rows are written as `plinth_billing` acting for the one user concerned.
use super::{
    state::{self, Effect, Transition},
    store::{self, Account, TaxIdRow},
    stripe::{CustomerState, StripeApi},
};
use crate::{
    activity::service::{self as activity, Entry},
    auth::revocations,
    catalog::Catalog,
    db::{RequestMeta, RequestTx, RuntimePool},
    email::templates,
    error::{AppError, AppResult},
    events::{Event, EventBus},
    model::{DbRole, PlanCode},
    notifications::service as notifications,
    pagination::{self, Page, PageRequest},
    principal::Principal,
};
use chrono::Utc;
use entity::invoices::{self, Column};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Billing settings from config.
#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// Stripe webhook signing secrets (two during a rotation).
    pub webhook_secrets: Vec<String>,
    /// Accepted clock skew of a webhook's timestamp.
    pub webhook_tolerance_secs: i64,
    /// Where Checkout sends a paying user.
    pub success_url: String,
    /// Where Checkout sends a user who gave up.
    pub cancel_url: String,
    /// Where the customer portal returns to.
    pub portal_return_url: String,
    /// Days of grace after a failed payment before suspension.
    pub grace_days: i64,
    /// Per-transaction statement timeout.
    pub statement_timeout_ms: u64,
}

/// The billing service.
pub struct BillingService {
    pub(super) pool: RuntimePool,
    pub(super) catalog: Arc<Catalog>,
    pub(super) stripe: Option<StripeApi>,
    pub(super) settings: BillingSettings,
    pub(super) bus: Arc<EventBus>,
}

impl std::fmt::Debug for BillingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingService").field("stripe", &self.stripe.is_some()).finish_non_exhaustive()
    }
}

impl BillingService {
    /// Wires the service; `stripe` None disables checkout, the portal and reconcile.
    pub fn new(
        pool: RuntimePool,
        catalog: Arc<Catalog>,
        stripe: Option<StripeApi>,
        settings: BillingSettings,
        bus: Arc<EventBus>,
    ) -> Self {
        BillingService { pool, catalog, stripe, settings, bus }
    }

    /// The plan catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The Stripe client. Errors: FORBIDDEN when billing is not configured.
    pub(super) fn stripe(&self) -> AppResult<&StripeApi> {
        self.stripe.as_ref().ok_or_else(|| {
            AppError::Forbidden("billing is not configured on this server (PLINTH_STRIPE_SECRET_KEY)".into())
        })
    }

    /// The Stripe client, when billing is configured (account erasure cancels the
    /// subscription through it).
    pub fn stripe_client(&self) -> Option<&StripeApi> {
        self.stripe.as_ref()
    }

    /// A system transaction for billing work started by Stripe or a sweeper.
    ///
    /// Errors: INTERNAL (no connection).
    pub(super) async fn begin(&self, source: &str) -> AppResult<RequestTx> {
        let meta = RequestMeta::internal(source);
        Ok(RequestTx::begin(&self.pool, Principal::System, meta, self.settings.statement_timeout_ms).await?)
    }

    /// The caller's billing state (a Free account when it never started a checkout).
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn account(&self, tx: &RequestTx) -> AppResult<Account> {
        Ok(store::read_account(tx, tx.user_id()?).await?.unwrap_or_default())
    }

    /// The caller's tax ids at Stripe (deleted ones left out).
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn tax_ids(&self, tx: &RequestTx) -> AppResult<Vec<TaxIdRow>> {
        store::read_tax_ids(tx, tx.user_id()?).await
    }

    /// A page of the caller's invoices, newest first.
    ///
    /// Errors: UNAUTHENTICATED; INTERNAL.
    pub async fn invoices(&self, tx: &RequestTx, page: PageRequest) -> AppResult<Page<invoices::Model>> {
        let user_id = tx.user_id()?;
        let mut q = invoices::Entity::find().filter(Column::UserId.eq(user_id));
        if let Some(c) = page.after {
            q = q.filter(pagination::after(Column::StripeCreated, Column::Id, c));
        }
        let rows = q.order_by_desc(Column::StripeCreated).order_by_desc(Column::Id).limit(page.limit()).all(tx).await?;
        Ok(Page::from_rows(rows, &page))
    }

    /// The display name of a plan.
    pub(super) fn plan_name(&self, plan: PlanCode) -> String {
        self.catalog.plan(plan).name.clone()
    }

    /// Derives the user's account from its subscriptions now (`state::derive`), stores
    /// it (and the plan on the user) and carries out the effects, in `tx` acting as
    /// billing for that user, under the customer's or the user's lock.
    ///
    /// Errors: INTERNAL (database).
    pub(super) async fn settle(&self, tx: &RequestTx, user_id: Uuid) -> AppResult<Transition> {
        let before = store::read_account(tx, user_id).await?.unwrap_or_default();
        let subs = store::read_subscriptions(tx, user_id).await?;
        let t = state::derive(&before, &subs, Utc::now(), self.settings.grace_days);
        if t.account != before {
            store::write_account(tx, user_id, &t.account).await?;
        }
        store::set_user_plan(tx, user_id, t.account.plan).await?;
        self.carry_out(tx, user_id, &t).await?;
        Ok(t)
    }

    /// Whether Stripe no longer has `customer` (deleted, or unknown to this account).
    ///
    /// Errors: SERVICE_UNAVAILABLE (Stripe did not answer); FORBIDDEN (billing not
    /// configured); INTERNAL.
    pub(super) async fn customer_gone(&self, customer: &str) -> AppResult<bool> {
        Ok(matches!(self.stripe()?.customer(customer).await?, CustomerState::Gone))
    }

    /// Forgets `customer` (gone at Stripe, which canceled its subscriptions): its
    /// subscriptions end, its pending checkout (but the one of key `keep`) goes, and the
    /// account is derived again, in a short transaction of its own under the customer's
    /// lock. Returns whether it was still the user's.
    ///
    /// Errors: INTERNAL (database).
    pub(super) async fn forget_customer(
        &self,
        user_id: Uuid,
        customer: &str,
        version: i64,
        keep: Option<&str>,
    ) -> AppResult<bool> {
        let tx = self.begin("billing-customer-gone").await?;
        store::lock(&tx, &store::customer_lock(customer)).await?;
        self.act_for(&tx, user_id).await?;
        let forgotten = store::forget_customer(&tx, user_id, customer, keep).await?;
        store::end_customer_subscriptions(&tx, user_id, customer, version).await?;
        self.settle(&tx, user_id).await?;
        let data = json!({ "customer": customer });
        activity::record(&tx, Entry::by_system(user_id, "billing.customer_forgotten", None, data)).await?;
        tx.commit(&self.bus).await?;
        tracing::warn!(user_id = %user_id, customer, "a Stripe customer is gone; forgotten");
        Ok(forgotten)
    }

    /// Carries out a transition's effects for `user_id` in `tx` (acting as billing for
    /// that user); messages name the account's plan.
    ///
    /// Errors: INTERNAL (database).
    pub(super) async fn carry_out(&self, tx: &RequestTx, user_id: Uuid, t: &Transition) -> AppResult<()> {
        let plan = t.account.plan;
        for effect in &t.effects {
            match effect {
                Effect::LogStateChange { from, to, plan } => {
                    let data = json!({ "from": from, "to": to, "plan": plan });
                    activity::record(tx, Entry::by_system(user_id, "billing.state_changed", None, data)).await?;
                }
                Effect::Notify { template, detail } => {
                    let message = templates::billing(*template, &self.plan_name(plan), detail);
                    notifications::notify(tx, user_id, message).await?;
                }
                Effect::RevokeTokens => revocations::revoke_user_tokens(tx, user_id, Utc::now()).await?,
                Effect::CloseSessions => tx.emit(Event::SessionsRevoked { user_id, session_id: None }),
            }
        }
        Ok(())
    }

    /// Switches `tx` to write billing rows for `user_id`.
    ///
    /// Errors: INTERNAL (database).
    pub(super) async fn act_for(&self, tx: &RequestTx, user_id: Uuid) -> AppResult<()> {
        Ok(tx.act_for_system(DbRole::Billing, user_id).await?)
    }
}
