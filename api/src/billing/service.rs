//! Billing operations. Webhooks are applied once (the event id is recorded in the same
//! transaction as its effects), one customer at a time (an advisory lock), and never
//! backwards (an older event than the state's version changes nothing). Billing rows
//! are written as `plinth_billing` acting for the one user concerned.
use super::{
    catalog::{Catalog, Plan},
    stripe::{CheckoutRequest, StripeApi},
    webhook::{self, SignatureError},
};
use crate::{
    activity::service::{self as activity, Entry},
    db::{self, RequestMeta, RequestScope},
    email::templates,
    error::{AppError, AppResult},
    events::{Event, EventBus},
    pagination::{Page, PageRequest},
    principal::Principal,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::invoices;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde_json::{json, Value};
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

/// The billing service.
pub struct BillingService {
    pool: DatabaseConnection,
    catalog: Arc<Catalog>,
    stripe: Option<StripeApi>,
    settings: BillingSettings,
    bus: Arc<EventBus>,
}

impl std::fmt::Debug for BillingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingService").field("stripe", &self.stripe.is_some()).finish_non_exhaustive()
    }
}

/// A user's billing row, as read.
#[derive(Clone, Debug, Default)]
pub struct Account {
    /// Stripe customer.
    pub customer: Option<String>,
    /// Whether a trial was ever granted.
    pub trial_used: bool,
    /// The subscription.
    pub subscription_id: Option<String>,
    /// Its Stripe status.
    pub subscription_status: Option<String>,
    /// The plan.
    pub plan: String,
    /// `month` or `year`.
    pub interval: Option<String>,
    /// free, active, grace or suspended.
    pub state: String,
    /// End of grace.
    pub grace_until: Option<DateTime<Utc>>,
    /// Current period.
    pub current_period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Trial end.
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// Newest applied event time.
    pub version: i64,
}

impl BillingService {
    /// Wires the service; `stripe` None disables checkout and the portal.
    pub fn new(
        pool: DatabaseConnection,
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

    fn stripe(&self) -> AppResult<&StripeApi> {
        self.stripe.as_ref().ok_or_else(|| {
            AppError::Forbidden("billing is not configured on this server (PLINTH_STRIPE_SECRET_KEY)".into())
        })
    }

    /// The caller's billing state.
    pub async fn account(&self, scope: &RequestScope) -> AppResult<Account> {
        let user_id = scope.require_user()?;
        Ok(read_account(scope.tx.as_ref(), user_id).await?.unwrap_or_else(|| Account {
            plan: "free".into(),
            state: "free".into(),
            ..Default::default()
        }))
    }

    /// Starts a Checkout Session for `plan` and `interval`; returns its URL. The first
    /// subscription of a user gets the plan's trial; later ones never do.
    pub async fn start_checkout(&self, scope: &RequestScope, plan: &str, interval: &str) -> AppResult<String> {
        let user_id = scope.require_user()?;
        let stripe = self.stripe()?;
        let p = self
            .catalog
            .plan(plan)
            .filter(|p| p.code != "free")
            .ok_or_else(|| AppError::bad_input("input.plan", "must be a paid plan: STARTER, PRO or SCALE"))?;
        let price =
            p.price_id(interval).ok_or_else(|| AppError::bad_input("input.interval", "must be MONTH or YEAR"))?;
        let tx = scope.tx.as_ref();
        // One checkout set-up per user at a time: the customer is created once.
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended('billing:' || $1::text, 0))",
            [user_id.into()],
        ))
        .await?;
        let account = read_account(tx, user_id).await?;
        if account.as_ref().is_some_and(|a| matches!(a.state.as_str(), "active" | "grace")) {
            return Err(AppError::Conflict("you already have a subscription; change it in the billing portal".into()));
        }
        let customer = match account.as_ref().and_then(|a| a.customer.clone()) {
            Some(c) => c,
            None => {
                let email = crate::notifications::email_of(tx, user_id).await?;
                let customer = stripe.create_customer(user_id, &email).await?;
                db::act_as_role(tx, "plinth_billing", user_id).await?;
                tx.execute(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "INSERT INTO billing_accounts (user_id, stripe_customer_id) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET stripe_customer_id = EXCLUDED.stripe_customer_id, updated_at = now()",
                    [user_id.into(), customer.clone().into()],
                ))
                .await?;
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
        activity::record(
            tx,
            &scope.meta,
            Entry {
                user_id,
                actor_id: Some(user_id),
                action: "billing.checkout_started",
                subject_type: None,
                subject_id: None,
                data: json!({ "plan": plan, "interval": interval, "trial": trial_days.is_some() }),
            },
        )
        .await?;
        Ok(url)
    }

    /// A customer-portal URL for the caller.
    pub async fn open_portal(&self, scope: &RequestScope) -> AppResult<String> {
        let user_id = scope.require_user()?;
        let stripe = self.stripe()?;
        let customer = read_account(scope.tx.as_ref(), user_id)
            .await?
            .and_then(|a| a.customer)
            .ok_or_else(|| AppError::Conflict("no billing account yet; start a checkout first".into()))?;
        Ok(stripe.create_portal(&customer, &self.settings.portal_return_url).await?)
    }

    /// A page of the caller's invoices, newest first.
    pub async fn invoices(&self, scope: &RequestScope, page: PageRequest) -> AppResult<Page<invoices::Model>> {
        use invoices::Column;
        let user_id = scope.require_user()?;
        let mut q = invoices::Entity::find().filter(Column::UserId.eq(user_id));
        if let Some(c) = page.after {
            q = q.filter(crate::pagination::after(Column::StripeCreated, Column::Id, c));
        }
        let rows = q
            .order_by_desc(Column::StripeCreated)
            .order_by_desc(Column::Id)
            .limit(page.limit())
            .all(scope.tx.as_ref())
            .await?;
        Ok(Page::from_rows(rows, &page))
    }

    /// Verifies and applies one webhook delivery.
    pub async fn handle_webhook(&self, body: &[u8], signature: Option<&str>) -> Result<WebhookOutcome, WebhookError> {
        if self.settings.webhook_secrets.is_empty() {
            return Err(WebhookError::Rejected("webhooks are not configured (PLINTH_STRIPE_WEBHOOK_SECRET)"));
        }
        webhook::verify(
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
        let event: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Rejected("the body is not JSON"))?;
        let (Some(id), Some(kind), Some(created)) =
            (event["id"].as_str(), event["type"].as_str(), event["created"].as_i64())
        else {
            return Err(WebhookError::Rejected("not a Stripe event"));
        };
        let object = &event["data"]["object"];
        let customer = match kind {
            "customer.updated" | "customer.created" => object["id"].as_str(),
            _ => object["customer"].as_str(),
        };
        let (outcome, events) = self
            .apply_event(id, kind, created, customer, object)
            .await
            .map_err(|e| WebhookError::Internal(e.into_anyhow()))?;
        self.bus.publish(&events).await;
        tracing::info!(event_id = id, kind, outcome = ?outcome, "stripe webhook");
        Ok(outcome)
    }

    async fn apply_event(
        &self,
        id: &str,
        kind: &str,
        created: i64,
        customer: Option<&str>,
        object: &Value,
    ) -> AppResult<(WebhookOutcome, Vec<Event>)> {
        let tx = db::begin(&self.pool, &Principal::System, self.settings.statement_timeout_ms).await?;
        if let Some(c) = customer {
            // Events of one customer apply one at a time.
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended('stripe:' || $1, 0))",
                [c.into()],
            ))
            .await?;
        }
        let fresh = tx
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO stripe_events (id, type, customer_id, created) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                [id.into(), kind.into(), customer.map(str::to_owned).into(), created.into()],
            ))
            .await?;
        if fresh.is_none() {
            tx.commit().await?;
            return Ok((WebhookOutcome::Duplicate, Vec::new()));
        }
        let user = match customer {
            Some(c) => user_for_customer(&tx, c).await?,
            None => None,
        };
        let Some(user_id) = user else {
            tracing::warn!(event_id = id, kind, "stripe event for no known customer; recorded and ignored");
            tx.commit().await?;
            return Ok((WebhookOutcome::Ignored, Vec::new()));
        };
        db::act_as_role(&tx, "plinth_billing", user_id).await?;
        let mut events = Vec::new();
        let outcome = match kind {
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
                self.apply_subscription(&tx, user_id, object, created, kind.ends_with("deleted"), &mut events).await?;
                WebhookOutcome::Applied
            }
            "customer.subscription.trial_will_end" => {
                let plan = self.plan_of(object).map(|(p, _)| p.name.clone()).unwrap_or_default();
                let ends = ts(&object["trial_end"]).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default();
                self.notify(&tx, user_id, "trial_ending", &plan, &format!("on {ends}"), &mut events).await?;
                WebhookOutcome::Applied
            }
            "invoice.paid" | "invoice.payment_failed" | "invoice.finalized" => {
                self.upsert_invoice(&tx, user_id, object, created).await?;
                let number = object["number"].as_str().unwrap_or_default().to_owned();
                let plan = self.plan_name(&tx, user_id).await?;
                match kind {
                    "invoice.paid" if object["amount_paid"].as_i64().unwrap_or(0) > 0 => {
                        self.notify(&tx, user_id, "receipt", &plan, &number, &mut events).await?
                    }
                    "invoice.payment_failed" => {
                        let detail = format!("Invoice {number} is unpaid.");
                        self.notify(&tx, user_id, "payment_failed", &plan, &detail, &mut events).await?
                    }
                    _ => {}
                }
                WebhookOutcome::Applied
            }
            "checkout.session.completed" => {
                self.log(&tx, user_id, "billing.checkout_completed", json!({ "session": object["id"] })).await?;
                WebhookOutcome::Applied
            }
            "customer.updated" => {
                if let Some(tax_ids) = object["tax_ids"]["data"].as_array() {
                    let ids: Vec<Value> =
                        tax_ids.iter().map(|t| json!({ "type": t["type"], "value": t["value"] })).collect();
                    tx.execute(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "UPDATE billing_accounts SET tax_ids = $2, updated_at = now() WHERE user_id = $1",
                        [user_id.into(), Value::Array(ids).into()],
                    ))
                    .await?;
                }
                WebhookOutcome::Applied
            }
            _ => WebhookOutcome::Ignored,
        };
        tx.commit().await?;
        Ok((outcome, events))
    }

    fn plan_of(&self, subscription: &Value) -> Option<(&Plan, &'static str)> {
        let price = subscription["items"]["data"][0]["price"]["id"].as_str()?;
        self.catalog.by_price(price)
    }

    /// Applies a subscription object: state, plan, period; on a change of state, the
    /// activity row, notification, e-mail, and revocation of the user's access tokens.
    async fn apply_subscription(
        &self,
        tx: &DatabaseTransaction,
        user_id: Uuid,
        sub: &Value,
        version: i64,
        deleted: bool,
        events: &mut Vec<Event>,
    ) -> AppResult<()> {
        let before = read_account(tx, user_id).await?.unwrap_or_default();
        if version < before.version {
            tracing::info!(user_id = %user_id, "an older subscription event arrived late; ignored");
            return Ok(());
        }
        let status = if deleted { "canceled" } else { sub["status"].as_str().unwrap_or("incomplete") };
        let (plan, interval) = match self.plan_of(sub) {
            Some((p, i)) => (p.code.clone(), Some(i.to_owned())),
            None => {
                tracing::warn!(user_id = %user_id, "a subscription with a price not in the catalog");
                (before.plan.clone(), before.interval.clone())
            }
        };
        let now = Utc::now();
        let state = match status {
            "trialing" | "active" => "active",
            "past_due" => "grace",
            "unpaid" | "canceled" | "incomplete_expired" | "paused" => "suspended",
            // The first payment is still pending: nothing granted yet.
            _ => "free",
        };
        let grace_until = match (state, before.state.as_str()) {
            ("grace", "grace") => before.grace_until,
            ("grace", _) => Some(now + ChronoDuration::days(self.settings.grace_days)),
            _ => None,
        };
        let item = &sub["items"]["data"][0];
        let period_start = ts(&sub["current_period_start"]).or_else(|| ts(&item["current_period_start"]));
        let period_end = ts(&sub["current_period_end"]).or_else(|| ts(&item["current_period_end"]));
        let trial_end = ts(&sub["trial_end"]);
        let trial_used = before.trial_used || trial_end.is_some() || status == "trialing";
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE billing_accounts SET subscription_id = $2, subscription_status = $3, plan = $4,
               billing_interval = $5, account_state = $6, grace_until = $7, current_period_start = $8,
               current_period_end = $9, trial_end = $10, trial_used = $11, cancel_at_period_end = $12,
               state_version = $13, updated_at = now()
             WHERE user_id = $1",
            [
                user_id.into(),
                sub["id"].as_str().map(str::to_owned).into(),
                status.into(),
                plan.clone().into(),
                interval.clone().into(),
                state.into(),
                grace_until.into(),
                period_start.into(),
                period_end.into(),
                trial_end.into(),
                trial_used.into(),
                sub["cancel_at_period_end"].as_bool().unwrap_or(false).into(),
                version.into(),
            ],
        ))
        .await?;
        let user_plan = if state == "free" { "free".to_owned() } else { plan.clone() };
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE users SET plan = $2, updated_at = now() WHERE id = $1 AND plan <> $2",
            [user_id.into(), user_plan.clone().into()],
        ))
        .await?;
        if before.state == state && before.plan == user_plan {
            return Ok(());
        }
        self.log(tx, user_id, "billing.state_changed", json!({ "from": before.state, "to": state, "plan": user_plan }))
            .await?;
        let name = self.catalog.plan(&plan).map(|p| p.name.clone()).unwrap_or(plan);
        let template = match (before.state.as_str(), state) {
            ("grace" | "suspended", "active") => Some(("reactivated", String::new())),
            (_, "active") => Some(("subscription_started", String::new())),
            (_, "grace") => Some((
                "payment_failed",
                format!(
                    "Your plan stays active until {}.",
                    grace_until.map(|g| g.format("%Y-%m-%d").to_string()).unwrap_or_default()
                ),
            )),
            (_, "suspended") => Some(("suspended", "Pay the open invoice in the billing portal to resume.".to_owned())),
            _ => None,
        };
        if let Some((template, detail)) = template {
            self.notify(tx, user_id, template, &name, &detail, events).await?;
        }
        // Outstanding access tokens carry the old plan and state: revoke them.
        let revoked_before = now;
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO token_revocations (user_id, revoked_before) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET revoked_before = greatest(token_revocations.revoked_before, EXCLUDED.revoked_before)",
            [user_id.into(), revoked_before.into()],
        ))
        .await?;
        events.push(Event::TokensRevoked { user_id, before: revoked_before });
        if state == "suspended" {
            events.push(Event::SessionsRevoked { user_id, session_id: None });
        }
        Ok(())
    }

    async fn upsert_invoice(
        &self,
        tx: &DatabaseTransaction,
        user_id: Uuid,
        inv: &Value,
        version: i64,
    ) -> AppResult<()> {
        let sum = |key: &str| inv[key].as_array().map(|a| a.iter().filter_map(|t| t["amount"].as_i64()).sum::<i64>());
        let tax = inv["tax"].as_i64().or_else(|| sum("total_taxes")).or_else(|| sum("total_tax_amounts")).unwrap_or(0);
        let Some(stripe_id) = inv["id"].as_str() else {
            return Err(AppError::bad_input("data.object.id", "an invoice without id"));
        };
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO invoices (id, user_id, stripe_invoice_id, number, status, currency, subtotal_cents, tax_cents,
               total_cents, amount_paid_cents, amount_due_cents, hosted_invoice_url, invoice_pdf, period_start,
               period_end, stripe_created, state_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (user_id, stripe_invoice_id) DO UPDATE SET
               number = EXCLUDED.number, status = EXCLUDED.status, subtotal_cents = EXCLUDED.subtotal_cents,
               tax_cents = EXCLUDED.tax_cents, total_cents = EXCLUDED.total_cents,
               amount_paid_cents = EXCLUDED.amount_paid_cents, amount_due_cents = EXCLUDED.amount_due_cents,
               hosted_invoice_url = EXCLUDED.hosted_invoice_url, invoice_pdf = EXCLUDED.invoice_pdf,
               state_version = EXCLUDED.state_version, updated_at = now()
             WHERE invoices.state_version <= EXCLUDED.state_version",
            [
                Uuid::now_v7().into(),
                user_id.into(),
                stripe_id.into(),
                inv["number"].as_str().map(str::to_owned).into(),
                inv["status"].as_str().unwrap_or("draft").into(),
                inv["currency"].as_str().unwrap_or("eur").into(),
                inv["subtotal"].as_i64().unwrap_or(0).into(),
                tax.into(),
                inv["total"].as_i64().unwrap_or(0).into(),
                inv["amount_paid"].as_i64().unwrap_or(0).into(),
                inv["amount_due"].as_i64().unwrap_or(0).into(),
                inv["hosted_invoice_url"].as_str().map(str::to_owned).into(),
                inv["invoice_pdf"].as_str().map(str::to_owned).into(),
                ts(&inv["period_start"]).into(),
                ts(&inv["period_end"]).into(),
                ts(&inv["created"]).unwrap_or_else(Utc::now).into(),
                version.into(),
            ],
        ))
        .await?;
        Ok(())
    }

    async fn plan_name(&self, tx: &DatabaseTransaction, user_id: Uuid) -> AppResult<String> {
        let plan = read_account(tx, user_id).await?.map(|a| a.plan).unwrap_or_else(|| "free".into());
        Ok(self.catalog.plan(&plan).map(|p| p.name.clone()).unwrap_or(plan))
    }

    /// An in-app notification and the matching e-mail, in the caller's transaction.
    async fn notify(
        &self,
        tx: &DatabaseTransaction,
        user_id: Uuid,
        template: &'static str,
        plan: &str,
        detail: &str,
        events: &mut Vec<Event>,
    ) -> AppResult<()> {
        events.push(crate::notifications::notify(tx, user_id, templates::billing(template, plan, detail)).await?);
        Ok(())
    }

    async fn log(&self, tx: &DatabaseTransaction, user_id: Uuid, action: &str, data: Value) -> AppResult<()> {
        let meta = RequestMeta { request_id: "stripe-webhook".into(), ..Default::default() };
        activity::record(
            tx,
            &meta,
            Entry { user_id, actor_id: None, action, subject_type: None, subject_id: None, data },
        )
        .await
    }

    /// Lists every subscription from Stripe and applies any that differ from what is
    /// stored (missed or failed webhooks). Returns one line per change.
    pub async fn reconcile(&self) -> AppResult<Vec<String>> {
        let stripe = self.stripe()?;
        let mut changes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = stripe.list_subscriptions(after.as_deref()).await?;
            for sub in &page.data {
                if let Some(line) = self.reconcile_one(sub).await? {
                    changes.push(line);
                }
            }
            after = page.data.last().and_then(|s| s["id"].as_str()).map(str::to_owned);
            if !page.has_more || after.is_none() {
                break;
            }
        }
        Ok(changes)
    }

    async fn reconcile_one(&self, sub: &Value) -> AppResult<Option<String>> {
        let Some(customer) = sub["customer"].as_str() else { return Ok(None) };
        let tx = db::begin(&self.pool, &Principal::System, self.settings.statement_timeout_ms).await?;
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended('stripe:' || $1, 0))",
            [customer.into()],
        ))
        .await?;
        let Some(user_id) = user_for_customer(&tx, customer).await? else {
            return Ok(Some(format!("{customer}: no Plinth user has this customer; skipped")));
        };
        db::act_as_role(&tx, "plinth_billing", user_id).await?;
        let stored = read_account(&tx, user_id).await?.unwrap_or_default();
        let status = sub["status"].as_str().unwrap_or_default();
        let plan = self.plan_of(sub).map(|(p, _)| p.code.clone());
        let same_subscription = stored.subscription_id.as_deref() == sub["id"].as_str();
        if same_subscription
            && stored.subscription_status.as_deref() == Some(status)
            && plan.as_deref().is_none_or(|p| p == stored.plan)
        {
            return Ok(None);
        }
        // Stripe's list is the truth now: apply it as newer than anything stored.
        let version = stored.version.max(Utc::now().timestamp());
        let mut events = Vec::new();
        self.apply_subscription(&tx, user_id, sub, version, false, &mut events).await?;
        tx.commit().await?;
        self.bus.publish(&events).await;
        Ok(Some(format!(
            "user {user_id}: {} {} -> {} {}",
            stored.subscription_status.as_deref().unwrap_or("none"),
            stored.plan,
            status,
            plan.unwrap_or_else(|| stored.plan.clone())
        )))
    }

    /// Suspends accounts whose grace ended without payment; returns how many.
    pub async fn expire_grace(&self) -> AppResult<usize> {
        let tx = db::begin(&self.pool, &Principal::System, self.settings.statement_timeout_ms).await?;
        let due = tx
            .query_all(Statement::from_string(DbBackend::Postgres, "SELECT user_id FROM priv.grace_expired()"))
            .await?;
        tx.commit().await?;
        let mut n = 0;
        for row in due {
            let user_id: Uuid = row.try_get("", "user_id")?;
            let tx = db::begin(&self.pool, &Principal::System, self.settings.statement_timeout_ms).await?;
            db::act_as_role(&tx, "plinth_billing", user_id).await?;
            let Some(before) = read_account(&tx, user_id).await? else { continue };
            if before.state != "grace" || before.grace_until.is_none_or(|g| g > Utc::now()) {
                continue;
            }
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE billing_accounts SET account_state = 'suspended', grace_until = NULL, updated_at = now() WHERE user_id = $1",
                [user_id.into()],
            ))
            .await?;
            self.log(
                &tx,
                user_id,
                "billing.state_changed",
                json!({ "from": "grace", "to": "suspended", "plan": before.plan }),
            )
            .await?;
            let name = self.catalog.plan(&before.plan).map(|p| p.name.clone()).unwrap_or(before.plan.clone());
            let mut events = Vec::new();
            self.notify(
                &tx,
                user_id,
                "suspended",
                &name,
                "The grace period after the failed payment ended.",
                &mut events,
            )
            .await?;
            let now = Utc::now();
            tx.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO token_revocations (user_id, revoked_before) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET revoked_before = EXCLUDED.revoked_before",
                [user_id.into(), now.into()],
            ))
            .await?;
            tx.commit().await?;
            events.push(Event::TokensRevoked { user_id, before: now });
            events.push(Event::SessionsRevoked { user_id, session_id: None });
            self.bus.publish(&events).await;
            n += 1;
        }
        Ok(n)
    }
}

fn ts(v: &Value) -> Option<DateTime<Utc>> {
    v.as_i64().and_then(|s| DateTime::from_timestamp(s, 0))
}

async fn user_for_customer(tx: &DatabaseTransaction, customer: &str) -> AppResult<Option<Uuid>> {
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.user_for_stripe_customer($1) AS user_id",
            [customer.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<Option<Uuid>>("", "user_id")).transpose()?.flatten())
}

/// The user's billing row, if any.
pub async fn read_account(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<Account>> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT stripe_customer_id, trial_used, subscription_id, subscription_status, plan, billing_interval,
                    account_state, grace_until, current_period_start, current_period_end, trial_end,
                    cancel_at_period_end, state_version
             FROM billing_accounts WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let utc = |c: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<Option<DateTime<chrono::FixedOffset>>>("", c)?.map(|t| t.with_timezone(&Utc)))
    };
    Ok(Some(Account {
        customer: r.try_get("", "stripe_customer_id")?,
        trial_used: r.try_get("", "trial_used")?,
        subscription_id: r.try_get("", "subscription_id")?,
        subscription_status: r.try_get("", "subscription_status")?,
        plan: r.try_get("", "plan")?,
        interval: r.try_get("", "billing_interval")?,
        state: r.try_get("", "account_state")?,
        grace_until: utc("grace_until")?,
        current_period_start: utc("current_period_start")?,
        current_period_end: utc("current_period_end")?,
        trial_end: utc("trial_end")?,
        cancel_at_period_end: r.try_get("", "cancel_at_period_end")?,
        version: r.try_get("", "state_version")?,
    }))
}

/// The plan and account state an access token should carry now: a grace period that
/// ended counts as suspended even before the sweeper records it.
pub async fn token_state(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<(String, String)> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT u.plan, CASE WHEN b.account_state = 'grace' AND b.grace_until < now() THEN 'suspended'
                                 ELSE coalesce(b.account_state, 'free') END AS state
             FROM users u LEFT JOIN billing_accounts b ON b.user_id = u.id WHERE u.id = $1",
            [user_id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the account no longer exists".into()))?;
    Ok((row.try_get("", "plan")?, row.try_get("", "state")?))
}
