//! GraphQL adapters for the staff tools: finding an account, its summary, and the
//! steps staff take on it (each audited in the account's support access log and
//! shown in its activity log as done by support).
use super::tools::{self, AccountRow, AccountSummary, TrialExtensionRow};
use crate::{
    accounts::service::AccountService,
    auth::guards::{NoApiTokens, Staff},
    billing::service::BillingService,
    db::{data, RequestTx},
    error::parse_id,
    model::{QuotaMetric, Role},
};
use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// An account as support staff see it.
#[derive(SimpleObject)]
pub struct SupportUser {
    /// Its id.
    pub id: ID,
    /// Its address.
    pub email: String,
    /// USER, SUPPORT or ADMIN.
    pub role: Role,
    /// A staff member's display name.
    pub display_name: Option<String>,
    /// Signed up.
    pub created_at: DateTime<Utc>,
    /// When the address was verified; null while it is not.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When an admin suspended it; null when it is not.
    pub suspended_at: Option<DateTime<Utc>>,
    /// Why it is suspended.
    pub suspension_reason: Option<String>,
}

impl From<AccountRow> for SupportUser {
    fn from(a: AccountRow) -> Self {
        SupportUser {
            id: ID(a.id.to_string()),
            email: a.email,
            role: a.role,
            display_name: a.display_name,
            created_at: a.created_at,
            email_verified_at: a.email_verified_at,
            suspended_at: a.suspended_at,
            suspension_reason: a.suspension_reason,
        }
    }
}

/// A counter's use this period, with the credits staff granted.
#[derive(SimpleObject)]
pub struct SupportUsage {
    /// The counter.
    pub metric: QuotaMetric,
    /// Used this period.
    pub used: i64,
    /// Credited this period (added to the plan's limit).
    pub credit: i64,
}

/// A log line of a job.
#[derive(SimpleObject)]
pub struct SupportJobLog {
    /// `debug`, `info`, `warn`, `error`.
    pub level: String,
    /// The line.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A job of the account and its latest log lines.
#[derive(SimpleObject)]
pub struct SupportJob {
    /// Its id.
    pub id: ID,
    /// `scan`, `prepare`, `publish`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed`, `canceled`.
    pub status: String,
    /// The error of a failed job.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Its last 20 log lines, oldest first.
    pub logs: Vec<SupportJobLog>,
}

/// An invoice of the account.
#[derive(SimpleObject)]
pub struct SupportInvoice {
    /// Stripe's number.
    pub number: Option<String>,
    /// Stripe's status.
    pub status: String,
    /// Total, in cents.
    pub total_cents: i64,
    /// ISO currency.
    pub currency: String,
    /// When Stripe created it.
    pub created_at: DateTime<Utc>,
}

/// A notification the account received.
#[derive(SimpleObject)]
pub struct SupportNotification {
    /// Its kind.
    pub kind: String,
    /// Its title.
    pub title: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An e-mail sent (or queued) to the account; never its content.
#[derive(SimpleObject)]
pub struct SupportEmail {
    /// The template.
    pub template: String,
    /// `pending`, `sent`, `failed`.
    pub status: String,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Where a trial extension stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum TrialExtensionStatus {
    /// Queued, or retrying while Stripe does not answer.
    Pending,
    /// Stripe moved the trial end.
    Done,
    /// Stripe refused (see `error`), or never answered.
    Failed,
}

/// A trial extension staff asked for. Stripe is called after the request commits; the
/// account's `trialEnd` follows once Stripe's webhook tells Plinth.
#[derive(SimpleObject)]
pub struct SupportTrialExtension {
    /// Its id.
    pub id: ID,
    /// Days added.
    pub days: i32,
    /// The trial end asked for: the current one (or now, if it passed) plus `days`.
    pub trial_end: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Where it stands.
    pub status: TrialExtensionStatus,
    /// Stripe's refusal, or the last failure while retrying.
    pub error: Option<String>,
    /// Asked.
    pub created_at: DateTime<Utc>,
    /// When Stripe applied it.
    pub done_at: Option<DateTime<Utc>>,
}

impl From<TrialExtensionRow> for SupportTrialExtension {
    fn from(t: TrialExtensionRow) -> Self {
        SupportTrialExtension {
            id: ID(t.id.to_string()),
            days: t.days,
            trial_end: t.trial_end,
            reason: t.reason,
            status: match t.state.as_str() {
                "done" => TrialExtensionStatus::Done,
                "failed" => TrialExtensionStatus::Failed,
                _ => TrialExtensionStatus::Pending,
            },
            error: t.last_error,
            created_at: t.created_at,
            done_at: t.done_at,
        }
    }
}

/// An account at a glance, for support.
#[derive(SimpleObject)]
pub struct SupportAccountSummary {
    /// The account.
    pub user: SupportUser,
    /// Plan code: `free`, `starter`, `pro`, `scale`.
    pub plan: String,
    /// Billing state: `free`, `active`, `grace`, `suspended` (unpaid).
    pub account_state: String,
    /// When the trial ends, if on one.
    pub trial_end: Option<DateTime<Utc>>,
    /// Counters of the current period.
    pub usage: Vec<SupportUsage>,
    /// Bytes stored (photos and the user's own ticket attachments).
    pub storage_bytes: i64,
    /// The 10 newest jobs.
    pub recent_jobs: Vec<SupportJob>,
    /// The 10 newest invoices.
    pub invoices: Vec<SupportInvoice>,
    /// The 10 newest notifications.
    pub notifications: Vec<SupportNotification>,
    /// The 20 newest e-mails.
    pub emails_sent: Vec<SupportEmail>,
    /// The 10 newest trial extensions staff asked for.
    pub trial_extensions: Vec<SupportTrialExtension>,
}

impl From<AccountSummary> for SupportAccountSummary {
    fn from(s: AccountSummary) -> Self {
        SupportAccountSummary {
            user: s.account.into(),
            plan: s.plan,
            account_state: s.account_state,
            trial_end: s.trial_end,
            usage: s.usage.into_iter().map(|(metric, used, credit)| SupportUsage { metric, used, credit }).collect(),
            storage_bytes: s.storage_bytes,
            recent_jobs: s
                .jobs
                .into_iter()
                .map(|j| SupportJob {
                    id: ID(j.id.to_string()),
                    kind: j.kind,
                    status: j.status,
                    error: j.error,
                    created_at: j.created_at,
                    logs: j
                        .logs
                        .into_iter()
                        .map(|(level, message, created_at)| SupportJobLog { level, message, created_at })
                        .collect(),
                })
                .collect(),
            invoices: s
                .invoices
                .into_iter()
                .map(|(number, status, total_cents, currency, created_at)| SupportInvoice {
                    number,
                    status,
                    total_cents,
                    currency,
                    created_at,
                })
                .collect(),
            notifications: s
                .notifications
                .into_iter()
                .map(|(kind, title, created_at)| SupportNotification { kind, title, created_at })
                .collect(),
            emails_sent: s
                .emails
                .into_iter()
                .map(|(template, status, created_at, sent_at)| SupportEmail { template, status, created_at, sent_at })
                .collect(),
            trial_extensions: s.trial_extensions.into_iter().map(SupportTrialExtension::from).collect(),
        }
    }
}

/// Staff tool queries.
#[derive(Default)]
pub struct SupportToolsQuery;

#[Object]
impl SupportToolsQuery {
    /// An account by id (staff): support only for an account with a ticket or a live
    /// grant, admins any; null otherwise. Logged (`account.find`, why: `ticketId`).
    ///
    /// Errors: FORBIDDEN (users, workers, API tokens).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn support_user(&self, ctx: &Context<'_>, id: ID, ticket_id: Option<ID>) -> Result<Option<SupportUser>> {
        let tx = data::<RequestTx>(ctx)?;
        let ticket = ticket_id.map(|t| parse_id("ticketId", &t)).transpose()?;
        Ok(tools::find_by_id(tx, parse_id("id", &id)?, ticket).await?.map(SupportUser::from))
    }

    /// An account by e-mail (admins only: support finds users through their tickets);
    /// null when none. Logged (`account.find`).
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens); BAD_USER_INPUT (`email`).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn support_user_by_email(&self, ctx: &Context<'_>, email: String) -> Result<Option<SupportUser>> {
        Ok(tools::find_by_email(data::<RequestTx>(ctx)?, &email).await?.map(SupportUser::from))
    }

    /// An account's plan, state, usage, recent jobs and their logs, invoices,
    /// notifications and e-mails sent (staff, under the same rule as `supportUser`).
    /// Logged (`account.summary`, why: `ticketId`).
    ///
    /// Errors: FORBIDDEN (users, workers, API tokens); NOT_FOUND (absent or not readable).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn support_account_summary(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        ticket_id: Option<ID>,
    ) -> Result<SupportAccountSummary> {
        let tx = data::<RequestTx>(ctx)?;
        let ticket = ticket_id.map(|t| parse_id("ticketId", &t)).transpose()?;
        Ok(tools::summary(tx, parse_id("userId", &user_id)?, ticket).await?.into())
    }
}

/// Staff tool mutations.
#[derive(Default)]
pub struct SupportToolsMutation;

#[Object]
impl SupportToolsMutation {
    /// Sends the account a new e-mail verification link (staff, under the same rule as
    /// `supportUser`); false when the address is verified already.
    ///
    /// Errors: FORBIDDEN (users, workers, API tokens); NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn resend_verification_email(&self, ctx: &Context<'_>, user_id: ID) -> Result<bool> {
        let tx = data::<RequestTx>(ctx)?;
        let accounts = data::<Arc<AccountService>>(ctx)?;
        Ok(tools::resend_verification(tx, accounts, parse_id("userId", &user_id)?).await?)
    }

    /// Signs the account out everywhere (admins): its sessions end, its access tokens
    /// are refused at once on every instance and its sockets close (4403). How many
    /// sessions ended.
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens); NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn revoke_user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<i32> {
        let n = tools::revoke_sessions(data::<RequestTx>(ctx)?, parse_id("userId", &user_id)?).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Suspends the account (admins) with a reason (1 to 500 characters): sign-in and
    /// refresh answer ACCOUNT_SUSPENDED, its sessions end and its sockets close.
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens, the admin itself);
    /// BAD_USER_INPUT (`reason`); NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn suspend_user(&self, ctx: &Context<'_>, user_id: ID, reason: String) -> Result<SupportUser> {
        Ok(tools::suspend(data::<RequestTx>(ctx)?, parse_id("userId", &user_id)?, &reason).await?.into())
    }

    /// Lifts a suspension (admins), with a reason.
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens); BAD_USER_INPUT
    /// (`reason`); NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn unsuspend_user(&self, ctx: &Context<'_>, user_id: ID, reason: String) -> Result<SupportUser> {
        Ok(tools::unsuspend(data::<RequestTx>(ctx)?, parse_id("userId", &user_id)?, &reason).await?.into())
    }

    /// Grants the account `amount` more of a counter (SCANS, PREPARATIONS) for its
    /// current period (admins), with a reason; the period's credit now. Its `usage`
    /// shows the plan's limit plus the credit until the period ends.
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens); BAD_USER_INPUT
    /// (`metric` a gauge, `amount` outside 1..1,000,000, `reason`); NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn credit_quota(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        metric: QuotaMetric,
        amount: i32,
        reason: String,
    ) -> Result<i64> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(tools::credit_quota(tx, parse_id("userId", &user_id)?, metric, i64::from(amount), &reason).await?)
    }

    /// Extends the account's Stripe trial by `days` (1 to 90; admins), with a reason (1 to
    /// 500 characters). The request is recorded and audited now (`support.extend_trial`
    /// in the user's activity, done by support) and sent to Stripe right after, with
    /// retries: the answer is PENDING; `supportAccountSummary.trialExtensions` shows the
    /// outcome.
    ///
    /// Errors: FORBIDDEN (support, users, workers, API tokens; billing not configured);
    /// BAD_USER_INPUT (`days`, `reason`, `userId`: the account is not on a Stripe trial);
    /// NOT_FOUND.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn extend_trial(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        days: i32,
        reason: String,
    ) -> Result<SupportTrialExtension> {
        let tx = data::<RequestTx>(ctx)?;
        let billing = data::<Arc<BillingService>>(ctx)?.stripe_client().is_some();
        Ok(tools::extend_trial(tx, billing, parse_id("userId", &user_id)?, days, &reason).await?.into())
    }
}
