//! Staff tools (issue 14, item 4): finding an account, reading its summary, and the
//! steps staff take on it. Each read and each step leaves a row in the account's
//! support access log; each step also appears in the account's own activity log as
//! done by support (`support.*`, the staff member as actor).
//!
//! Who may do what is the database's first: support reads an account only through a
//! ticket it opened or a live grant, admins read all (role-specific policies); the
//! destructive steps (suspension, signing out, quota credits) are `priv.admin_*`
//! functions only `plinth_admin` may execute, and a trial extension is a row only
//! `plinth_admin` may insert, sent to Stripe after the commit by `tasks::extend_trials`
//! (no network call inside a request's transaction). The checks here answer FORBIDDEN
//! early and clearly.
use super::service;
use crate::{
    accounts::{domain::EmailAddress, service::AccountService},
    activity::service::{self as activity, Entry},
    db::RequestTx,
    error::{AppError, AppResult},
    events::Event,
    model::{MetricKind, QuotaMetric, Role},
    quotas::{service as quotas, store as quota_store},
};
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use serde_json::json;
use uuid::Uuid;

/// Longest reason, in characters.
pub const REASON_MAX: usize = 500;
/// Largest single quota credit.
pub const MAX_CREDIT: i64 = 1_000_000;
/// Longest single trial extension, in days.
pub const MAX_TRIAL_DAYS: i32 = 90;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn at(r: &QueryResult, col: &str) -> AppResult<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<DateTime<FixedOffset>>>("", col)?.map(|t| t.with_timezone(&Utc)))
}

fn user_not_found() -> AppError {
    AppError::NotFound("user not found".into())
}

/// The caller's id when it is an admin. Errors: UNAUTHENTICATED, FORBIDDEN.
fn admin(tx: &RequestTx) -> AppResult<Uuid> {
    let c = service::staff(tx)?;
    if c.role == Role::Admin {
        Ok(c.user_id)
    } else {
        Err(AppError::Forbidden("only admins may do this".into()))
    }
}

/// An account as staff see it.
#[derive(Clone, Debug)]
pub struct AccountRow {
    /// Its id.
    pub id: Uuid,
    /// Its address.
    pub email: String,
    /// USER, SUPPORT or ADMIN.
    pub role: Role,
    /// A staff member's display name.
    pub display_name: Option<String>,
    /// Signed up.
    pub created_at: DateTime<Utc>,
    /// When the address was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When an admin suspended it.
    pub suspended_at: Option<DateTime<Utc>>,
    /// Why.
    pub suspension_reason: Option<String>,
}

async fn account(tx: &RequestTx, by: &str, value: Value) -> AppResult<Option<AccountRow>> {
    let sql = format!(
        "SELECT id, email::text AS email, role, display_name, created_at, email_verified_at, suspended_at,
                suspension_reason FROM users WHERE {by} = $1"
    );
    let Some(r) = tx.query_one(stmt(&sql, [value])).await? else { return Ok(None) };
    Ok(Some(AccountRow {
        id: r.try_get("", "id")?,
        email: r.try_get("", "email")?,
        role: r.try_get("", "role")?,
        display_name: r.try_get("", "display_name")?,
        created_at: at(&r, "created_at")?.unwrap_or_default(),
        email_verified_at: at(&r, "email_verified_at")?,
        suspended_at: at(&r, "suspended_at")?,
        suspension_reason: r.try_get("", "suspension_reason")?,
    }))
}

/// The account `id` when the caller may read it (support: through a ticket or a live
/// grant; admins: any), logged as `account.find` (why: `ticket_id`, if given).
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not staff); INTERNAL.
pub async fn find_by_id(tx: &RequestTx, id: Uuid, ticket_id: Option<Uuid>) -> AppResult<Option<AccountRow>> {
    service::staff(tx)?;
    let found = account(tx, "id", id.into()).await?;
    if let Some(a) = &found {
        service::log_access(tx, a.id, "account.find", ticket_id, None).await?;
    }
    Ok(found)
}

/// The account with this address (admins only: support finds users through their
/// tickets), logged as `account.find`.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin); BAD_USER_INPUT (`email`);
/// INTERNAL.
pub async fn find_by_email(tx: &RequestTx, email: &str) -> AppResult<Option<AccountRow>> {
    admin(tx)?;
    let email = EmailAddress::parse("email", email)?;
    let found = account(tx, "email", email.as_str().into()).await?;
    if let Some(a) = &found {
        service::log_access(tx, a.id, "account.find", None, Some("by e-mail")).await?;
    }
    Ok(found)
}

/// A job and its latest log lines.
#[derive(Clone, Debug)]
pub struct JobSummary {
    /// Its id.
    pub id: Uuid,
    /// `scan`, `prepare`, `publish`.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Its latest log lines, oldest first: (level, message, when).
    pub logs: Vec<(String, String, DateTime<Utc>)>,
}

/// An invoice: (number, status, total in cents, currency, created).
pub type InvoiceLine = (Option<String>, String, i64, String, DateTime<Utc>);
/// An e-mail: (template, status, queued, sent).
pub type EmailLine = (String, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// What staff see of an account at a glance.
#[derive(Clone, Debug)]
pub struct AccountSummary {
    /// The account.
    pub account: AccountRow,
    /// Plan code (`free`, `starter`, ...).
    pub plan: String,
    /// Billing state (`free`, `active`, `grace`, `suspended`).
    pub account_state: String,
    /// When the trial ends, if on one.
    pub trial_end: Option<DateTime<Utc>>,
    /// Counters of the current period: (metric, used, credit), and bytes stored.
    pub usage: Vec<(QuotaMetric, i64, i64)>,
    /// Bytes stored (photos and the user's own attachments).
    pub storage_bytes: i64,
    /// The 10 newest jobs with their last 20 log lines.
    pub jobs: Vec<JobSummary>,
    /// The 10 newest invoices: (number, status, total in cents, currency, created).
    pub invoices: Vec<InvoiceLine>,
    /// The 10 newest notifications: (kind, title, created).
    pub notifications: Vec<(String, String, DateTime<Utc>)>,
    /// The 20 newest e-mails: (template, status, queued, sent).
    pub emails: Vec<EmailLine>,
    /// The 10 newest trial extensions staff asked for.
    pub trial_extensions: Vec<TrialExtensionRow>,
}

/// A trial extension staff asked for, and what Stripe made of it.
#[derive(Clone, Debug)]
pub struct TrialExtensionRow {
    /// Its id (the idempotency key of its Stripe call: `trial-extension-<id>`).
    pub id: Uuid,
    /// Days added.
    pub days: i32,
    /// The trial end asked for.
    pub trial_end: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// `pending` (queued or retrying), `done`, `failed`.
    pub state: String,
    /// Stripe's refusal, or the last transient failure.
    pub last_error: Option<String>,
    /// Asked.
    pub created_at: DateTime<Utc>,
    /// Stripe applied it.
    pub done_at: Option<DateTime<Utc>>,
}

const TRIAL_EXTENSION_COLUMNS: &str = "id, days, trial_end, reason, state, last_error, created_at, done_at";

fn trial_extension(r: &QueryResult) -> AppResult<TrialExtensionRow> {
    Ok(TrialExtensionRow {
        id: r.try_get("", "id")?,
        days: r.try_get("", "days")?,
        trial_end: at(r, "trial_end")?.unwrap_or_default(),
        reason: r.try_get("", "reason")?,
        state: r.try_get("", "state")?,
        last_error: r.try_get("", "last_error")?,
        created_at: at(r, "created_at")?.unwrap_or_default(),
        done_at: at(r, "done_at")?,
    })
}

/// The summary of an account the caller may read, logged as `account.summary`.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not staff); NOT_FOUND (absent, or not
/// readable by the caller: support without a ticket or grant); INTERNAL.
pub async fn summary(tx: &RequestTx, id: Uuid, ticket_id: Option<Uuid>) -> AppResult<AccountSummary> {
    service::staff(tx)?;
    let account = account(tx, "id", id.into()).await?.ok_or_else(user_not_found)?;
    let billing = tx
        .query_one(stmt("SELECT plan, account_state, trial_end FROM billing_accounts WHERE user_id = $1", [id.into()]))
        .await?;
    let (plan, account_state, trial_end) = match &billing {
        Some(r) => (r.try_get("", "plan")?, r.try_get("", "account_state")?, at(r, "trial_end")?),
        None => ("free".to_owned(), "free".to_owned(), None),
    };
    let (start, _) = quotas::period(tx, id).await?;
    let usage = quota_store::counters(tx, id, start).await?;
    let storage_bytes = quota_store::gauge(tx, id, QuotaMetric::StorageBytes).await?;
    let mut jobs = Vec::new();
    for r in tx
        .query_all(stmt(
            "SELECT id, kind, status, error, created_at FROM jobs WHERE user_id = $1
             ORDER BY created_at DESC, id DESC LIMIT 10",
            [id.into()],
        ))
        .await?
    {
        let job_id: Uuid = r.try_get("", "id")?;
        let logs = tx
            .query_all(stmt(
                "SELECT level, message, created_at FROM (SELECT * FROM job_logs WHERE user_id = $1 AND job_id = $2
                   ORDER BY created_at DESC, id DESC LIMIT 20) l ORDER BY created_at, id",
                [id.into(), job_id.into()],
            ))
            .await?
            .iter()
            .map(|l| Ok((l.try_get("", "level")?, l.try_get("", "message")?, at(l, "created_at")?.unwrap_or_default())))
            .collect::<AppResult<Vec<_>>>()?;
        jobs.push(JobSummary {
            id: job_id,
            kind: r.try_get("", "kind")?,
            status: r.try_get("", "status")?,
            error: r.try_get("", "error")?,
            created_at: at(&r, "created_at")?.unwrap_or_default(),
            logs,
        });
    }
    let invoices = tx
        .query_all(stmt(
            "SELECT number, status, total_cents, currency, stripe_created FROM invoices WHERE user_id = $1
             ORDER BY stripe_created DESC, id DESC LIMIT 10",
            [id.into()],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("", "number")?,
                r.try_get("", "status")?,
                r.try_get("", "total_cents")?,
                r.try_get("", "currency")?,
                at(r, "stripe_created")?.unwrap_or_default(),
            ))
        })
        .collect::<AppResult<Vec<_>>>()?;
    let notifications = tx
        .query_all(stmt(
            "SELECT kind, title, created_at FROM notifications WHERE user_id = $1
             ORDER BY created_at DESC, id DESC LIMIT 10",
            [id.into()],
        ))
        .await?
        .iter()
        .map(|r| Ok((r.try_get("", "kind")?, r.try_get("", "title")?, at(r, "created_at")?.unwrap_or_default())))
        .collect::<AppResult<Vec<_>>>()?;
    let emails = tx
        .query_all(stmt(
            "SELECT template, status, created_at, sent_at FROM email_outbox WHERE user_id = $1
             ORDER BY created_at DESC, id DESC LIMIT 20",
            [id.into()],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("", "template")?,
                r.try_get("", "status")?,
                at(r, "created_at")?.unwrap_or_default(),
                at(r, "sent_at")?,
            ))
        })
        .collect::<AppResult<Vec<_>>>()?;
    let trial_extensions = tx
        .query_all(stmt(
            &format!(
                "SELECT {TRIAL_EXTENSION_COLUMNS} FROM support_trial_extensions WHERE user_id = $1
                 ORDER BY created_at DESC, id DESC LIMIT 10"
            ),
            [id.into()],
        ))
        .await?
        .iter()
        .map(trial_extension)
        .collect::<AppResult<Vec<_>>>()?;
    service::log_access(tx, id, "account.summary", ticket_id, None).await?;
    Ok(AccountSummary {
        account,
        plan,
        account_state,
        trial_end,
        usage,
        storage_bytes,
        jobs,
        invoices,
        notifications,
        emails,
        trial_extensions,
    })
}

/// Records a staff step in the account's activity log (done by support) and its
/// access log.
async fn record(
    tx: &RequestTx,
    staff_id: Uuid,
    user_id: Uuid,
    action: &str,
    reason: Option<&str>,
    data: serde_json::Value,
) -> AppResult<()> {
    service::log_access(tx, user_id, action, None, reason).await?;
    let entry = Entry { user_id, actor_id: Some(staff_id), action, subject_type: None, subject_id: None, data };
    activity::record(tx, entry).await
}

fn parse_reason(raw: &str) -> AppResult<String> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > REASON_MAX {
        return Err(AppError::bad_input("reason", format!("must be 1 to {REASON_MAX} characters")));
    }
    if r.chars().any(char::is_control) {
        return Err(AppError::bad_input("reason", "must be one line without control characters"));
    }
    Ok(r.to_owned())
}

/// Sends the account a new verification link (support for an account it may read,
/// admins for any); false when the address is verified already.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not staff); NOT_FOUND; INTERNAL.
pub async fn resend_verification(tx: &RequestTx, accounts: &AccountService, user_id: Uuid) -> AppResult<bool> {
    let me = service::staff(tx)?.user_id;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let sent = accounts.send_verification_for(tx, user_id).await?;
    record(tx, me, user_id, "support.resend_verification", None, json!({ "sent": sent })).await?;
    Ok(sent)
}

/// Ends the sessions an admin's step revoked, on every instance: their refresh tokens
/// are refused, access tokens issued until now too, open sockets close (4403).
fn end_sessions(tx: &RequestTx, user_id: Uuid, sessions: &[Uuid]) {
    for s in sessions {
        tx.emit(Event::SessionsRevoked { user_id, session_id: Some(*s) });
    }
    tx.emit(Event::SessionsRevoked { user_id, session_id: None });
    tx.emit(Event::TokensRevoked { user_id, before: Utc::now() });
}

async fn revoked_ids(tx: &RequestTx, sql: &str, values: Vec<Value>) -> AppResult<Vec<Uuid>> {
    let rows = tx.query_all(stmt(sql, values)).await?;
    rows.iter().map(|r| Ok(r.try_get::<Uuid>("", "session_id")?)).collect()
}

/// Signs the account out everywhere (admins): every session ends, its access tokens
/// are refused at once on every instance and its sockets close. How many sessions
/// ended.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin); NOT_FOUND; INTERNAL.
pub async fn revoke_sessions(tx: &RequestTx, user_id: Uuid) -> AppResult<usize> {
    let me = admin(tx)?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let ended = revoked_ids(tx, "SELECT session_id FROM priv.admin_revoke_sessions($1)", vec![user_id.into()]).await?;
    end_sessions(tx, user_id, &ended);
    record(tx, me, user_id, "support.revoke_sessions", None, json!({ "sessions": ended.len() })).await?;
    Ok(ended.len())
}

/// Suspends the account with a reason (admins): it cannot sign in or refresh
/// (ACCOUNT_SUSPENDED), its sessions end and its sockets close at once. Suspending a
/// suspended account changes the reason only.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin, or the admin itself);
/// BAD_USER_INPUT (`reason`); NOT_FOUND; INTERNAL.
pub async fn suspend(tx: &RequestTx, user_id: Uuid, reason: &str) -> AppResult<AccountRow> {
    let me = admin(tx)?;
    let reason = parse_reason(reason)?;
    if user_id == me {
        return Err(AppError::Forbidden("an admin does not suspend itself".into()));
    }
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let ended = revoked_ids(
        tx,
        "SELECT session_id FROM priv.admin_set_suspension($1, true, $2)",
        vec![user_id.into(), reason.clone().into()],
    )
    .await?;
    end_sessions(tx, user_id, &ended);
    record(tx, me, user_id, "support.suspend", Some(&reason), json!({ "reason": reason })).await?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)
}

/// Lifts a suspension (admins), with a reason.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin); BAD_USER_INPUT (`reason`);
/// NOT_FOUND; INTERNAL.
pub async fn unsuspend(tx: &RequestTx, user_id: Uuid, reason: &str) -> AppResult<AccountRow> {
    let me = admin(tx)?;
    let reason = parse_reason(reason)?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    tx.execute(stmt("SELECT priv.admin_set_suspension($1, false, $2)", [user_id.into(), reason.clone().into()]))
        .await?;
    record(tx, me, user_id, "support.unsuspend", Some(&reason), json!({ "reason": reason })).await?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)
}

/// Gives the account another role (admins): `user`, `support` (staff who answer
/// tickets) or `admin`. When the role changes, its sessions end and its access tokens
/// are refused at once on every instance, so the new role applies from the next sign-in
/// (a demoted admin keeps no admin token). The account afterwards, and whether the role
/// changed. Rule: `priv.admin_set_role` (migration m20261205_000100).
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin, or the admin itself);
/// BAD_USER_INPUT (`reason`); NOT_FOUND; INTERNAL.
pub async fn set_role(tx: &RequestTx, user_id: Uuid, role: Role, reason: &str) -> AppResult<(AccountRow, bool)> {
    let me = admin(tx)?;
    let reason = parse_reason(reason)?;
    if user_id == me {
        return Err(AppError::Forbidden("an admin does not change its own role".into()));
    }
    let before = account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let changed = before.role != role;
    if changed {
        let ended = revoked_ids(
            tx,
            "SELECT session_id FROM priv.admin_set_role($1, $2)",
            vec![user_id.into(), role.as_str().into()],
        )
        .await?;
        end_sessions(tx, user_id, &ended);
    }
    let data = json!({ "from": before.role.as_str(), "to": role.as_str(), "reason": reason });
    record(tx, me, user_id, "support.set_role", Some(&reason), data).await?;
    Ok((account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?, changed))
}

/// Credits `amount` of a counter (scans, preparations) for the account's current
/// period (admins): its limit this period is the plan's plus every credit. The credit
/// of the period now.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin); BAD_USER_INPUT (`metric` not a
/// counter, `amount` outside 1..1,000,000, `reason`); NOT_FOUND; INTERNAL.
pub async fn credit_quota(
    tx: &RequestTx,
    user_id: Uuid,
    metric: QuotaMetric,
    amount: i64,
    reason: &str,
) -> AppResult<i64> {
    let me = admin(tx)?;
    if metric.kind() != MetricKind::Counter {
        return Err(AppError::bad_input("metric", "only a counter (SCANS, PREPARATIONS) can be credited"));
    }
    if !(1..=MAX_CREDIT).contains(&amount) {
        return Err(AppError::bad_input("amount", format!("must be between 1 and {MAX_CREDIT}")));
    }
    let reason = parse_reason(reason)?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let (start, end) = quotas::period(tx, user_id).await?;
    let total = tx
        .query_one(stmt(
            "SELECT priv.admin_credit_quota($1, $2, $3, $4) AS credit",
            [user_id.into(), metric.as_str().into(), start.into(), amount.into()],
        ))
        .await?
        .map(|r| r.try_get::<Option<i64>>("", "credit"))
        .transpose()?
        .flatten()
        .ok_or_else(user_not_found)?;
    let data = json!({ "metric": metric.as_str(), "amount": amount, "periodEnd": end, "reason": reason });
    record(tx, me, user_id, "support.quota_credit", Some(&reason), data).await?;
    Ok(total)
}

/// Extends the account's trial by `days` (admins), with a reason: the new trial end (the
/// current one, or now if it passed, plus the days) is recorded with the audit in this
/// transaction and sent to Stripe after the commit, with retries (`tasks::extend_trials`;
/// the row shows the outcome). The account must be on a Stripe trial (`trialing`).
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not an admin; billing not configured);
/// BAD_USER_INPUT (`days` outside 1..90, `reason`, `userId`: no subscription on a trial);
/// NOT_FOUND; INTERNAL.
pub async fn extend_trial(
    tx: &RequestTx,
    billing_enabled: bool,
    user_id: Uuid,
    days: i32,
    reason: &str,
) -> AppResult<TrialExtensionRow> {
    let me = admin(tx)?;
    if !billing_enabled {
        return Err(AppError::Forbidden("billing is not configured on this server (PLINTH_STRIPE_SECRET_KEY)".into()));
    }
    if !(1..=MAX_TRIAL_DAYS).contains(&days) {
        return Err(AppError::bad_input("days", format!("must be between 1 and {MAX_TRIAL_DAYS}")));
    }
    let reason = parse_reason(reason)?;
    account(tx, "id", user_id.into()).await?.ok_or_else(user_not_found)?;
    let billing = tx
        .query_one(stmt(
            "SELECT subscription_id, subscription_status, trial_end FROM billing_accounts WHERE user_id = $1",
            [user_id.into()],
        ))
        .await?;
    let trial = match &billing {
        Some(r) => {
            let sub: Option<String> = r.try_get("", "subscription_id")?;
            let status: Option<String> = r.try_get("", "subscription_status")?;
            sub.filter(|_| status.as_deref() == Some("trialing")).map(|s| Ok::<_, AppError>((s, at(r, "trial_end")?)))
        }
        None => None,
    }
    .transpose()?;
    let Some((subscription, current_end)) = trial else {
        return Err(AppError::bad_input(
            "userId",
            "the account has no subscription on a trial; grant a quota credit instead",
        ));
    };
    let from = current_end.filter(|end| *end > Utc::now()).unwrap_or_else(Utc::now);
    let trial_end = from + chrono::Duration::days(i64::from(days));
    let row = tx
        .query_one(stmt(
            &format!(
                "INSERT INTO support_trial_extensions (id, user_id, requested_by, subscription_id, days, trial_end, reason)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TRIAL_EXTENSION_COLUMNS}"
            ),
            [
                Uuid::now_v7().into(),
                user_id.into(),
                me.into(),
                subscription.into(),
                days.into(),
                trial_end.into(),
                reason.clone().into(),
            ],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?;
    let extension = trial_extension(&row)?;
    let data = json!({ "days": days, "trialEnd": trial_end, "reason": reason, "extensionId": extension.id });
    record(tx, me, user_id, "support.extend_trial", Some(&reason), data).await?;
    Ok(extension)
}
