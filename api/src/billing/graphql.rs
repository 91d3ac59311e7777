//! GraphQL adapters for billing: the public plan list, checkout, the portal, the
//! caller's subscription, invoices and notifications.
use super::service::BillingService;
use crate::{
    db::{data, RequestScope},
    pagination::{Cursor, PageRequest},
};
use async_graphql::{
    connection::{Connection, Edge},
    Context, Enum, InputObject, Object, Result, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::sync::Arc;

pub use crate::accounts::graphql::PlanCode;

/// What a quota counts.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum QuotaMetric {
    /// SCAN jobs per period.
    Scans,
    /// PREPARE jobs per period.
    Preparations,
    /// Marketplace accounts connected at once.
    ConnectedAccounts,
    /// Bytes of photos stored.
    StorageBytes,
    /// API requests per minute.
    ApiRequestsPerMinute,
}

/// One limit of a plan.
#[derive(SimpleObject, Debug)]
pub struct PlanQuota {
    /// What it counts.
    pub metric: QuotaMetric,
    /// The limit.
    pub limit: i64,
}

/// A plan of the pricing page.
#[derive(SimpleObject, Debug)]
pub struct Plan {
    /// Its code.
    pub code: PlanCode,
    /// Display name.
    pub name: String,
    /// Monthly price in cents of `currency`.
    pub monthly_price_cents: i64,
    /// Yearly price in cents of `currency`.
    pub yearly_price_cents: i64,
    /// ISO currency.
    pub currency: String,
    /// Free trial days of a first subscription.
    pub trial_days: i32,
    /// Its limits.
    pub quotas: Vec<PlanQuota>,
}

/// Billing interval.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum BillingInterval {
    /// Monthly.
    #[default]
    Month,
    /// Yearly.
    Year,
}

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

/// Whether premium features work.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum AccountState {
    /// No subscription: the Free plan.
    Free,
    /// Subscribed (or trialing).
    Active,
    /// A payment failed; premium features work until `graceUntil`.
    Grace,
    /// Premium features are suspended; data stays readable.
    Suspended,
}

/// The caller's subscription.
#[derive(SimpleObject)]
pub struct BillingStatus {
    /// The plan.
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
    /// Whether the next checkout includes a free trial.
    pub trial_available: bool,
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

/// An in-app notification.
#[derive(SimpleObject)]
pub struct Notification {
    /// The notification's id.
    pub id: ID,
    /// What it is about (e.g. payment_failed).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn plan_code(code: &str) -> PlanCode {
    match code {
        "starter" => PlanCode::Starter,
        "pro" => PlanCode::Pro,
        "scale" => PlanCode::Scale,
        _ => PlanCode::Free,
    }
}

/// Billing queries.
#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The plans, for a pricing page; public.
    async fn plans(&self, ctx: &Context<'_>) -> Result<Vec<Plan>> {
        let catalog = data::<Arc<BillingService>>(ctx)?.catalog();
        Ok(catalog
            .plans
            .iter()
            .map(|p| Plan {
                code: plan_code(&p.code),
                name: p.name.clone(),
                monthly_price_cents: p.monthly_price_cents,
                yearly_price_cents: p.yearly_price_cents,
                currency: catalog.currency.to_uppercase(),
                trial_days: p.trial_days as i32,
                quotas: vec![
                    PlanQuota { metric: QuotaMetric::Scans, limit: p.quotas.scans },
                    PlanQuota { metric: QuotaMetric::Preparations, limit: p.quotas.preparations },
                    PlanQuota { metric: QuotaMetric::ConnectedAccounts, limit: p.quotas.connected_accounts },
                    PlanQuota { metric: QuotaMetric::StorageBytes, limit: p.quotas.storage_bytes },
                    PlanQuota { metric: QuotaMetric::ApiRequestsPerMinute, limit: p.quotas.api_requests_per_minute },
                ],
            })
            .collect())
    }

    /// The caller's subscription.
    async fn billing(&self, ctx: &Context<'_>) -> Result<BillingStatus> {
        let scope = data::<RequestScope>(ctx)?;
        let a = data::<Arc<BillingService>>(ctx)?.account(scope).await?;
        Ok(BillingStatus {
            plan: plan_code(&a.plan),
            state: match a.state.as_str() {
                "active" => AccountState::Active,
                "grace" => AccountState::Grace,
                "suspended" => AccountState::Suspended,
                _ => AccountState::Free,
            },
            subscription_status: a.subscription_status,
            interval: a.interval.as_deref().map(|i| {
                if i == "year" {
                    BillingInterval::Year
                } else {
                    BillingInterval::Month
                }
            }),
            current_period_end: a.current_period_end,
            trial_end: a.trial_end,
            grace_until: a.grace_until,
            cancel_at_period_end: a.cancel_at_period_end,
            trial_available: !a.trial_used && a.subscription_id.is_none(),
        })
    }

    /// The caller's invoices, newest first; `first` is capped at 100.
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Invoice>> {
        let scope = data::<RequestScope>(ctx)?;
        let page =
            data::<Arc<BillingService>>(ctx)?.invoices(scope, PageRequest::parse(first, after.as_deref())?).await?;
        let mut conn = Connection::new(false, page.has_next);
        conn.edges.extend(page.items.into_iter().map(|m| {
            let created = m.stripe_created.with_timezone(&Utc);
            let cursor = Cursor { created_at: created, id: m.id }.encode();
            Edge::new(
                cursor,
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
                    created_at: created,
                },
            )
        }));
        Ok(conn)
    }

    /// The caller's notifications, newest first (at most 100).
    async fn notifications(&self, ctx: &Context<'_>, unread_only: Option<bool>) -> Result<Vec<Notification>> {
        let scope = data::<RequestScope>(ctx)?;
        let user_id = scope.require_user()?;
        let rows = scope
            .tx
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, kind, title, body, read_at, created_at FROM notifications
                 WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) ORDER BY created_at DESC, id DESC LIMIT 100",
                [user_id.into(), unread_only.unwrap_or(false).into()],
            ))
            .await
            .map_err(crate::error::AppError::from)?;
        rows.iter().map(notification_from_row).collect::<std::result::Result<_, _>>().map_err(Into::into)
    }
}

/// Billing mutations.
#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Starts a Stripe Checkout for a plan; returns the page to send the user to.
    async fn start_checkout(&self, ctx: &Context<'_>, input: StartCheckoutInput) -> Result<CheckoutSession> {
        let scope = data::<RequestScope>(ctx)?;
        let plan = match input.plan {
            PaidPlan::Starter => "starter",
            PaidPlan::Pro => "pro",
            PaidPlan::Scale => "scale",
        };
        let interval = match input.interval {
            BillingInterval::Month => "month",
            BillingInterval::Year => "year",
        };
        let url = data::<Arc<BillingService>>(ctx)?.start_checkout(scope, plan, interval).await?;
        Ok(CheckoutSession { url })
    }

    /// Opens the Stripe customer portal (payment methods, invoices, plan changes).
    async fn open_billing_portal(&self, ctx: &Context<'_>) -> Result<BillingPortalSession> {
        let scope = data::<RequestScope>(ctx)?;
        Ok(BillingPortalSession { url: data::<Arc<BillingService>>(ctx)?.open_portal(scope).await? })
    }

    /// Marks notifications read (all of them when `ids` is omitted); returns how many.
    async fn mark_notifications_read(&self, ctx: &Context<'_>, ids: Option<Vec<ID>>) -> Result<i32> {
        let scope = data::<RequestScope>(ctx)?;
        let user_id = scope.require_user()?;
        let ids: Option<Vec<uuid::Uuid>> = ids
            .map(|ids| ids.iter().map(|i| crate::error::parse_id("ids", i)).collect::<std::result::Result<_, _>>())
            .transpose()?;
        if let Some(ids) = &ids {
            // Every named notification must be the caller's: another's id is NOT_FOUND.
            let found = scope
                .tx
                .query_one(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT count(*) AS n FROM notifications WHERE user_id = $1 AND id = ANY($2)",
                    [user_id.into(), ids.clone().into()],
                ))
                .await
                .map_err(crate::error::AppError::from)?
                .map(|r| r.try_get::<i64>("", "n"))
                .transpose()
                .map_err(crate::error::AppError::from)?
                .unwrap_or(0);
            let distinct: std::collections::HashSet<_> = ids.iter().collect();
            if found != distinct.len() as i64 {
                return Err(crate::error::AppError::NotFound("notification not found".into()).into());
            }
        }
        let done = scope
            .tx
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE notifications SET read_at = now()
                 WHERE user_id = $1 AND read_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2))",
                [user_id.into(), ids.into()],
            ))
            .await
            .map_err(crate::error::AppError::from)?;
        Ok(done.rows_affected() as i32)
    }
}

/// Live notifications.
#[derive(Default)]
pub struct NotificationsSubscription;

#[async_graphql::Subscription]
impl NotificationsSubscription {
    /// Each notification added for the caller (quota thresholds, billing changes), read
    /// again in the subscriber's own transaction before it is sent.
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl futures_util::Stream<Item = Result<Notification>>> {
        let principal = data::<crate::principal::Principal>(ctx)?.clone();
        let Some(user_id) = principal.user_id() else {
            return Err(crate::error::AppError::Unauthenticated("sign in to follow notifications".into()).into());
        };
        let mut rx = data::<Arc<crate::events::EventBus>>(ctx)?.subscribe();
        let pool = data::<sea_orm::DatabaseConnection>(ctx)?.clone();
        let timeout = data::<Arc<crate::config::Config>>(ctx)?.statement_timeout_ms;
        Ok(async_stream_like(move |tx_out| async move {
            loop {
                let id = match rx.recv().await {
                    Ok(crate::events::Event::NotificationAdded { user_id: owner, notification_id })
                        if owner == user_id =>
                    {
                        notification_id
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ =
                            tx_out.send(Err(crate::error::AppError::RateLimited { retry_after_secs: 1 }.into())).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let read = read_notification(&pool, &principal, timeout, id).await;
                let item = match read {
                    Ok(Some(n)) => Ok(n),
                    Ok(None) => continue,
                    Err(e) => Err(e.into()),
                };
                if tx_out.send(item).await.is_err() {
                    return;
                }
            }
        }))
    }
}

/// A stream fed by a task: the task ends when the subscriber goes away.
fn async_stream_like<T, F, Fut>(body: F) -> impl futures_util::Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(body(tx));
    let guard = AbortOnDrop(task);
    futures_util::stream::unfold(
        (rx, guard),
        |(mut rx, guard)| async move { rx.recv().await.map(|v| (v, (rx, guard))) },
    )
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn read_notification(
    pool: &sea_orm::DatabaseConnection,
    principal: &crate::principal::Principal,
    timeout_ms: u64,
    id: uuid::Uuid,
) -> std::result::Result<Option<Notification>, crate::error::AppError> {
    let tx = crate::db::begin(pool, principal, timeout_ms).await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, kind, title, body, read_at, created_at FROM notifications WHERE id = $1",
            [id.into()],
        ))
        .await?;
    tx.rollback().await?;
    row.as_ref().map(notification_from_row).transpose()
}

/// A `notifications` row (id, kind, title, body, read_at, created_at) as the API shows it.
fn notification_from_row(r: &sea_orm::QueryResult) -> std::result::Result<Notification, crate::error::AppError> {
    let utc = |t: chrono::DateTime<chrono::FixedOffset>| t.with_timezone(&Utc);
    Ok(Notification {
        id: ID(r.try_get::<uuid::Uuid>("", "id")?.to_string()),
        kind: r.try_get("", "kind")?,
        title: r.try_get("", "title")?,
        body: r.try_get("", "body")?,
        read_at: r.try_get::<Option<chrono::DateTime<chrono::FixedOffset>>>("", "read_at")?.map(utc),
        created_at: utc(r.try_get("", "created_at")?),
    })
}
