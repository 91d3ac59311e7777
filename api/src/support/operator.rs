//! Operator commands (issue 20, item 5): `plinth user ...` is an adapter over the staff
//! tools ([`super::tools`]), as the staff GraphQL fields are. Each step runs in one
//! transaction as an administrator (`--admin`, else the first one: the principal
//! `reports::service::operator` builds for `plinth metrics export`), so the database
//! applies the same rules as to that admin over HTTP, and it is audited as staff steps
//! are: a `support_access_log` row (its `operator` column naming who ran the command,
//! `cli:<OS user>@<host>`) and, for each change, a `support.*` activity entry whose
//! request id is that same label. Events (sessions ended, sockets to close) reach every
//! instance through the bus after the commit.
use super::tools::{self, AccountRow, AccountSummary};
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    error::AppError,
    events::EventBus,
    model::{QuotaMetric, Role},
    principal::Principal,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Who ran the command: `cli:<OS user>@<host>` (as the OS reports them; `unknown` for a
/// part it cannot tell), at most 200 characters.
pub fn label() -> String {
    let user = whoami::fallible::username().unwrap_or_else(|_| "unknown".into());
    let host = whoami::fallible::hostname().unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}@{host}").chars().filter(|c| !c.is_control()).take(200).collect()
}

/// An account, as the commands print it (`--json`: these field names).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Its id.
    pub id: Uuid,
    /// Its address.
    pub email: String,
    /// `user`, `support` or `admin`.
    pub role: &'static str,
    /// A staff member's display name.
    pub display_name: Option<String>,
    /// Signed up.
    pub created_at: DateTime<Utc>,
    /// When the address was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When an admin suspended it; null when it is not.
    pub suspended_at: Option<DateTime<Utc>>,
    /// Why.
    pub suspension_reason: Option<String>,
}

impl From<AccountRow> for User {
    fn from(a: AccountRow) -> Self {
        User {
            id: a.id,
            email: a.email,
            role: a.role.as_str(),
            display_name: a.display_name,
            created_at: a.created_at,
            email_verified_at: a.email_verified_at,
            suspended_at: a.suspended_at,
            suspension_reason: a.suspension_reason,
        }
    }
}

/// Which account a command names: its id, or else its address.
#[derive(Clone, Debug)]
pub enum Target {
    /// By id.
    Id(Uuid),
    /// By address.
    Email(String),
}

impl Target {
    /// An id when `raw` is one, else an address.
    pub fn parse(raw: &str) -> Self {
        match Uuid::parse_str(raw.trim()) {
            Ok(id) => Target::Id(id),
            Err(_) => Target::Email(raw.trim().to_owned()),
        }
    }
}

/// The administrator a command acts as, and where it writes.
pub struct Operator<'a> {
    /// The database.
    pub pool: &'a RuntimePool,
    /// The bus that tells every instance (sessions ended, sockets to close).
    pub bus: &'a EventBus,
    /// Per statement.
    pub statement_timeout_ms: u64,
    /// The administrator's principal (`reports::service::operator`).
    pub admin: Principal,
    /// Who ran the command ([`label`]).
    pub label: String,
}

/// What a step failed on: an unknown account (its message alone), or the service's
/// error with its code.
fn failed(e: AppError) -> anyhow::Error {
    match e {
        AppError::NotFound(m) => anyhow::anyhow!("{m}"),
        other => other.into_anyhow(),
    }
}

impl Operator<'_> {
    /// Runs `step` in one transaction as the administrator; commits (then publishes its
    /// events) when it succeeds, rolls back otherwise.
    async fn run<T, F>(&self, step: impl FnOnce(RequestTx) -> F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = Result<T, AppError>>,
    {
        let meta = RequestMeta::operator(&self.label);
        let tx = RequestTx::begin(self.pool, self.admin.clone(), meta, self.statement_timeout_ms).await?;
        match step(tx.clone()).await {
            Ok(v) => {
                tx.commit(self.bus).await?;
                Ok(v)
            }
            Err(e) => {
                tx.rollback().await;
                Err(failed(e))
            }
        }
    }

    /// The account a target names, found as staff find it (logged as `account.find`).
    async fn resolve(tx: &RequestTx, target: &Target) -> Result<AccountRow, AppError> {
        let found = match target {
            Target::Id(id) => tools::find_by_id(tx, *id, None).await?,
            Target::Email(email) => tools::find_by_email(tx, email).await?,
        };
        found.ok_or_else(|| {
            AppError::NotFound(match target {
                Target::Id(id) => format!("no user has the id {id}"),
                Target::Email(email) => format!("no user has the address {email}"),
            })
        })
    }

    /// `plinth user find EMAIL`: the account with this address.
    ///
    /// Errors: no such user; a malformed address; the database.
    pub async fn find(&self, email: &str) -> anyhow::Result<User> {
        let target = Target::Email(email.to_owned());
        self.run(|tx| async move { Self::resolve(&tx, &target).await.map(User::from) }).await
    }

    /// `plinth user show ID|EMAIL`: the account's summary as staff see it.
    ///
    /// Errors: no such user; the database.
    pub async fn show(&self, target: &Target) -> anyhow::Result<Value> {
        let summary = self
            .run(|tx| async move {
                let account = Self::resolve(&tx, target).await?;
                tools::summary(&tx, account.id, None).await
            })
            .await?;
        Ok(summary_json(summary))
    }

    /// `plinth user suspend`: [`tools::suspend`].
    ///
    /// Errors: no such user; the admin itself; a bad reason; the database.
    pub async fn suspend(&self, target: &Target, reason: &str) -> anyhow::Result<User> {
        self.run(|tx| async move {
            let account = Self::resolve(&tx, target).await?;
            tools::suspend(&tx, account.id, reason).await.map(User::from)
        })
        .await
    }

    /// `plinth user unsuspend`: [`tools::unsuspend`].
    ///
    /// Errors: no such user; a bad reason; the database.
    pub async fn unsuspend(&self, target: &Target, reason: &str) -> anyhow::Result<User> {
        self.run(|tx| async move {
            let account = Self::resolve(&tx, target).await?;
            tools::unsuspend(&tx, account.id, reason).await.map(User::from)
        })
        .await
    }

    /// `plinth user revoke-sessions`: [`tools::revoke_sessions`]; `{userId, sessionsEnded}`.
    ///
    /// Errors: no such user; the database.
    pub async fn revoke_sessions(&self, target: &Target) -> anyhow::Result<Value> {
        self.run(|tx| async move {
            let account = Self::resolve(&tx, target).await?;
            let ended = tools::revoke_sessions(&tx, account.id).await?;
            Ok(json!({ "userId": account.id, "email": account.email, "sessionsEnded": ended }))
        })
        .await
    }

    /// `plinth user grant-credit`: [`tools::credit_quota`];
    /// `{userId, metric, amount, creditThisPeriod}`.
    ///
    /// Errors: no such user; a metric that is not a counter; an amount outside
    /// 1..1,000,000; a bad reason; the database.
    pub async fn grant_credit(
        &self,
        target: &Target,
        metric: QuotaMetric,
        amount: i64,
        reason: &str,
    ) -> anyhow::Result<Value> {
        self.run(|tx| async move {
            let account = Self::resolve(&tx, target).await?;
            let total = tools::credit_quota(&tx, account.id, metric, amount, reason).await?;
            Ok(json!({
                "userId": account.id,
                "email": account.email,
                "metric": metric.as_str(),
                "amount": amount,
                "creditThisPeriod": total,
            }))
        })
        .await
    }

    /// `plinth user set-role`: [`tools::set_role`]; the account and whether it changed.
    ///
    /// Errors: no such user; the admin itself; a bad reason; the database.
    pub async fn set_role(&self, target: &Target, role: Role, reason: &str) -> anyhow::Result<(User, bool)> {
        self.run(|tx| async move {
            let account = Self::resolve(&tx, target).await?;
            let (account, changed) = tools::set_role(&tx, account.id, role, reason).await?;
            Ok((User::from(account), changed))
        })
        .await
    }
}

/// A summary as JSON: the account's fields, then what staff see of it.
fn summary_json(s: AccountSummary) -> Value {
    let usage: Vec<Value> = s
        .usage
        .iter()
        .map(|(metric, used, credit)| json!({ "metric": metric.as_str(), "used": used, "credit": credit }))
        .collect();
    let jobs: Vec<Value> = s
        .jobs
        .iter()
        .map(|j| json!({ "id": j.id, "kind": j.kind, "status": j.status, "error": j.error, "createdAt": j.created_at }))
        .collect();
    let invoices: Vec<Value> = s
        .invoices
        .iter()
        .map(|(number, status, total, currency, created)| {
            json!({ "number": number, "status": status, "totalCents": total, "currency": currency, "createdAt": created })
        })
        .collect();
    let trial_extensions: Vec<Value> = s
        .trial_extensions
        .iter()
        .map(|t| json!({ "id": t.id, "days": t.days, "trialEnd": t.trial_end, "state": t.state, "createdAt": t.created_at }))
        .collect();
    json!({
        "user": User::from(s.account),
        "plan": s.plan,
        "accountState": s.account_state,
        "trialEnd": s.trial_end,
        "usage": usage,
        "storageBytes": s.storage_bytes,
        "jobs": jobs,
        "invoices": invoices,
        "notifications": s.notifications.len(),
        "emails": s.emails.iter().map(|(template, status, queued, _)| json!({ "template": template, "status": status, "queuedAt": queued })).collect::<Vec<_>>(),
        "trialExtensions": trial_extensions,
    })
}
