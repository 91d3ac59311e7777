//! The typed vocabulary of the product: plans, account states, quota metrics, job kinds
//! and statuses, roles, database roles, API scopes, billing intervals and e-mail
//! templates. Each is an enum with its database (and token) spelling and, where clients
//! see it, its GraphQL enum; no other module spells these strings.
//!
//! A value read from the database that is not in the vocabulary (a row written by a
//! newer release, or by hand) fails to decode: the request ends INTERNAL with a log line
//! naming the column and the value, rather than guessing a meaning.
use async_graphql::Enum;

/// A stored spelling that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// Which vocabulary.
    pub kind: &'static str,
    /// The spelling met.
    pub value: String,
}

/// Defines a vocabulary enum with its stored spelling: `as_str`, `parse`, `FromStr`,
/// `Display`, and the sea-orm conversions so it can be bound in statements and read
/// from rows directly.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $db:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (database, token) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $db ),+ }
            }

            /// Parses a stored spelling.
            ///
            /// Errors: `UnknownValue` naming the vocabulary and the spelling.
            pub fn parse(s: &str) -> Result<Self, $crate::model::UnknownValue> {
                match s {
                    $( $db => Ok($name::$variant), )+
                    other => Err($crate::model::UnknownValue { kind: $kind, value: other.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<$name> for sea_orm::Value {
            fn from(v: $name) -> sea_orm::Value {
                sea_orm::Value::String(Some(Box::new(v.as_str().to_owned())))
            }
        }

        impl sea_orm::sea_query::Nullable for $name {
            fn null() -> sea_orm::Value {
                sea_orm::Value::String(None)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl sea_orm::TryGetable for $name {
            fn try_get_by<I: sea_orm::ColIdx>(res: &sea_orm::QueryResult, idx: I) -> Result<Self, sea_orm::TryGetError> {
                let s = <String as sea_orm::TryGetable>::try_get_by(res, idx)?;
                Self::parse(&s).map_err(|e| sea_orm::TryGetError::DbErr(sea_orm::DbErr::Type(e.to_string())))
            }
        }
    };
}

pub(crate) use vocabulary;

vocabulary! {
    /// The plan an account is on.
    #[derive(Enum)]
    pub enum PlanCode as "plan" {
        /// No subscription.
        Free = "free",
        /// Starter subscription.
        Starter = "starter",
        /// Pro subscription.
        Pro = "pro",
        /// Scale subscription.
        Scale = "scale",
    }
}

impl PlanCode {
    /// Whether the plan is paid for (every plan but Free).
    pub fn is_paid(self) -> bool {
        self != PlanCode::Free
    }
}

vocabulary! {
    /// Whether premium features work.
    #[derive(Enum)]
    pub enum AccountState as "account state" {
        /// No subscription: the Free plan.
        Free = "free",
        /// Subscribed (or trialing).
        Active = "active",
        /// A payment failed; premium features work until `graceUntil`.
        Grace = "grace",
        /// Premium features are suspended; data stays readable.
        Suspended = "suspended",
    }
}

vocabulary! {
    /// What a quota counts.
    #[derive(Enum)]
    pub enum QuotaMetric as "quota metric" {
        /// SCAN jobs per period.
        Scans = "scans",
        /// PREPARE jobs per period.
        Preparations = "preparations",
        /// Marketplace accounts connected at once.
        ConnectedAccounts = "connected_accounts",
        /// Bytes of photos stored.
        StorageBytes = "storage_bytes",
        /// API requests per minute.
        ApiRequestsPerMinute = "api_requests_per_minute",
    }
}

/// How a metric is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Consumed per billing period, reset at the period's end (`quota_usage`).
    Counter,
    /// What exists now; frees up as things are removed.
    Gauge,
    /// Requests per minute, counted by the rate limiter.
    Rate,
}

impl QuotaMetric {
    /// Counter, gauge or rate.
    pub fn kind(self) -> MetricKind {
        match self {
            QuotaMetric::Scans | QuotaMetric::Preparations => MetricKind::Counter,
            QuotaMetric::ConnectedAccounts | QuotaMetric::StorageBytes => MetricKind::Gauge,
            QuotaMetric::ApiRequestsPerMinute => MetricKind::Rate,
        }
    }
}

vocabulary! {
    /// What a job does.
    #[derive(Enum)]
    pub enum JobKind as "job kind" {
        /// Read photos; record dimensions and hashes.
        Scan = "scan",
        /// Fill a draft from its photos.
        Prepare = "prepare",
        /// Publish a draft.
        Publish = "publish",
    }
}

impl JobKind {
    /// The counter a job of this kind consumes, if any.
    pub fn metric(self) -> Option<QuotaMetric> {
        match self {
            JobKind::Scan => Some(QuotaMetric::Scans),
            JobKind::Prepare => Some(QuotaMetric::Preparations),
            JobKind::Publish => None,
        }
    }
}

vocabulary! {
    /// Where a job is in its life.
    #[derive(Enum)]
    pub enum JobStatus as "job status" {
        /// Waiting for a worker.
        Queued = "queued",
        /// Held by a worker.
        Running = "running",
        /// Done.
        Succeeded = "succeeded",
        /// Out of attempts.
        Failed = "failed",
        /// Canceled by its owner.
        Canceled = "canceled",
    }
}

vocabulary! {
    /// An account's role.
    #[derive(Enum)]
    #[graphql(name = "UserRole")]
    pub enum Role as "role" {
        /// A customer.
        User = "user",
        /// Support staff.
        Support = "support",
        /// An administrator.
        Admin = "admin",
    }
}

impl Role {
    /// The database role a request of this account runs as.
    pub fn db_role(self) -> DbRole {
        match self {
            Role::User => DbRole::User,
            Role::Support => DbRole::Support,
            Role::Admin => DbRole::Admin,
        }
    }

    /// Whether the role is staff (support or admin).
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Support | Role::Admin)
    }
}

vocabulary! {
    /// The PostgreSQL roles a transaction switches to (`SET LOCAL ROLE`); the runtime
    /// login role may switch to these only. Created by the migrations.
    pub enum DbRole as "database role" {
        /// No token.
        Anon = "plinth_anon",
        /// A customer's request.
        User = "plinth_user",
        /// A support agent's request.
        Support = "plinth_support",
        /// An administrator's request.
        Admin = "plinth_admin",
        /// A job worker's request.
        Worker = "plinth_worker",
        /// The server's own background tasks.
        System = "plinth_system",
        /// Billing writes (webhooks), acting for one user.
        Billing = "plinth_billing",
    }
}

vocabulary! {
    /// What an integrator's API token may do; each root field names the one scope it
    /// needs (or refuses API tokens altogether).
    pub enum ApiScope as "API scope" {
        /// Read drafts and photos.
        DraftsRead = "drafts:read",
        /// Create, change and delete drafts and photos.
        DraftsWrite = "drafts:write",
        /// Read jobs and follow them live.
        JobsRead = "jobs:read",
        /// Create and cancel jobs.
        JobsWrite = "jobs:write",
        /// Read marketplace accounts.
        AccountsRead = "accounts:read",
        /// Connect, rename and disconnect marketplace accounts.
        AccountsWrite = "accounts:write",
        /// Read the account, its usage and the plans.
        UsageRead = "usage:read",
        /// Read the subscription and invoices.
        BillingRead = "billing:read",
        /// Read the activity log and the dashboard: every action of the account (sign-ins,
        /// API tokens' names and scopes, billing changes), so never implied by another
        /// scope.
        ActivityRead = "activity:read",
    }
}

vocabulary! {
    /// Billing interval.
    #[derive(Enum, Default)]
    pub enum BillingInterval as "billing interval" {
        /// Monthly.
        #[default]
        Month = "month",
        /// Yearly.
        Year = "year",
    }
}

vocabulary! {
    /// A Stripe subscription's status, in Stripe's spelling
    /// (<https://docs.stripe.com/api/subscriptions/object#subscription_object-status>).
    pub enum SubscriptionStatus as "subscription status" {
        /// In a free trial.
        Trialing = "trialing",
        /// Paid and current.
        Active = "active",
        /// The first payment has not succeeded yet.
        Incomplete = "incomplete",
        /// The first payment never succeeded within 23 hours.
        IncompleteExpired = "incomplete_expired",
        /// A renewal payment failed; Stripe retries.
        PastDue = "past_due",
        /// Retries ended without payment; the subscription stays open.
        Unpaid = "unpaid",
        /// Ended.
        Canceled = "canceled",
        /// A trial ended without a payment method.
        Paused = "paused",
    }
}

vocabulary! {
    /// Every message the product sends (e-mail template) or shows (notification kind).
    pub enum EmailTemplate as "e-mail template" {
        /// Confirm a new address.
        VerifyEmail = "verify_email",
        /// A password-reset link.
        ResetPassword = "reset_password",
        /// The password was changed.
        PasswordChanged = "password_changed",
        /// The account's address was changed (to the old address).
        EmailChanged = "email_changed",
        /// A subscription started.
        SubscriptionStarted = "subscription_started",
        /// The trial ends soon.
        TrialEnding = "trial_ending",
        /// A payment failed.
        PaymentFailed = "payment_failed",
        /// A reminder on day 3 and day 7 of a past-due account.
        PaymentReminder = "payment_reminder",
        /// The account was suspended.
        Suspended = "suspended",
        /// The account works again after a suspension or grace.
        Reactivated = "reactivated",
        /// A payment was received.
        Receipt = "receipt",
        /// A payment needs the customer's action (3-D Secure): the invoice's page pays it.
        PaymentActionRequired = "payment_action_required",
        /// A customer disputed a charge (to admins).
        DisputeCreated = "dispute_created",
        /// 80% of a quota is used.
        QuotaWarning = "quota_warning",
        /// 100% of a quota is used.
        QuotaReached = "quota_reached",
        /// A test message (`plinth mail test`).
        Test = "test",
        /// Onboarding, day 0: welcome.
        OnboardingWelcome = "onboarding_welcome",
        /// Onboarding, day 1: connect a marketplace account.
        OnboardingConnect = "onboarding_connect",
        /// Onboarding, day 3: run a first scan.
        OnboardingScan = "onboarding_scan",
        /// Onboarding, day 7: tips.
        OnboardingTips = "onboarding_tips",
        /// Support answered a ticket (for the support issue).
        SupportReply = "support_reply",
        /// Mail to the address bounced (a notification in the app; mailed to nobody).
        AddressUndeliverable = "address_undeliverable",
        /// A data export (GDPR) is ready to download.
        DataExportReady = "data_export_ready",
        /// The account's deletion was scheduled after a grace period.
        AccountDeletionScheduled = "account_deletion_scheduled",
        /// A sign-in cancelled the account's scheduled deletion (a notification only).
        AccountDeletionCanceled = "account_deletion_canceled",
    }
}

vocabulary! {
    /// The language a user's mail is written in.
    #[derive(Enum)]
    pub enum Locale as "locale" {
        /// French (the default).
        Fr = "fr",
        /// English.
        En = "en",
    }
}

impl EmailTemplate {
    /// Whether the message is ever mailed (some are notifications only).
    pub fn is_mailed(self) -> bool {
        !matches!(self, EmailTemplate::AddressUndeliverable | EmailTemplate::AccountDeletionCanceled)
    }

    /// The preference that stops this mail (it then carries an unsubscribe link), or None
    /// for transactional mail, which is always sent.
    pub fn preference(self) -> Option<&'static str> {
        match self {
            EmailTemplate::OnboardingWelcome
            | EmailTemplate::OnboardingConnect
            | EmailTemplate::OnboardingScan
            | EmailTemplate::OnboardingTips => Some("onboarding"),
            _ => None,
        }
    }
}

impl Locale {
    /// The first supported language of an `Accept-Language` header, by quality; None
    /// when it names neither French nor English.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(f32, Locale)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let locale = match primary {
                "fr" => Locale::Fr,
                "en" => Locale::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l)
    }
}

vocabulary! {
    /// Where Stripe's verification of a tax id stands
    /// (<https://docs.stripe.com/api/tax_ids/object#tax_id_object-verification-status>).
    #[derive(Enum)]
    pub enum TaxIdVerification as "tax id verification" {
        /// Being checked.
        Pending = "pending",
        /// Checked and valid.
        Verified = "verified",
        /// Checked and not valid.
        Unverified = "unverified",
        /// Not checked (no verification for this type, or a status Stripe added later).
        Unavailable = "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_values_are_named() {
        for p in PlanCode::ALL {
            assert_eq!(PlanCode::parse(p.as_str()), Ok(*p));
        }
        for s in ApiScope::ALL {
            assert_eq!(s.as_str().parse::<ApiScope>(), Ok(*s));
        }
        let e = PlanCode::parse("gold").unwrap_err();
        assert_eq!(e.to_string(), "unknown plan \"gold\"");
        assert_eq!(Role::Support.db_role().as_str(), "plinth_support");
        assert_eq!(JobKind::Scan.metric(), Some(QuotaMetric::Scans));
        assert_eq!(QuotaMetric::StorageBytes.kind(), MetricKind::Gauge);
    }
}
