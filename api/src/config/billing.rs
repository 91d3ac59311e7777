//! The billing section: Stripe, its webhooks, the grace period and the plan catalog.
use super::{ConfigError, Vars};
use secrecy::SecretString;
use std::{path::PathBuf, time::Duration};

/// Stripe and the catalog.
#[derive(Clone, Debug)]
pub struct BillingConfig {
    /// `PLINTH_STRIPE_SECRET_KEY`: None disables checkout, the portal and reconcile.
    pub stripe_secret_key: Option<SecretString>,
    /// `PLINTH_STRIPE_API_BASE`: Stripe's API (a local server in tests).
    pub stripe_api_base: String,
    /// `PLINTH_STRIPE_TIMEOUT_MS`: the longest one call to Stripe may take, retries
    /// included (5000); past it the request answers SERVICE_UNAVAILABLE.
    pub stripe_timeout: Duration,
    /// `PLINTH_STRIPE_WEBHOOK_SECRET`: comma-separated, two during a rotation.
    pub webhook_secrets: Vec<SecretString>,
    /// `PLINTH_STRIPE_WEBHOOK_TOLERANCE_SECS`: accepted age of a signature (300).
    pub webhook_tolerance_secs: i64,
    /// `PLINTH_BILLING_SUCCESS_URL`: where Checkout sends a paying user.
    pub success_url: Option<String>,
    /// `PLINTH_BILLING_CANCEL_URL`: where Checkout sends a user who gave up.
    pub cancel_url: Option<String>,
    /// `PLINTH_BILLING_RETURN_URL`: where the portal returns to.
    pub return_url: Option<String>,
    /// `PLINTH_BILLING_GRACE_DAYS`: days a past-due account keeps working (7).
    pub grace_days: i64,
    /// `PLINTH_PLANS_FILE`: a plan catalog instead of the built-in `plans.toml`.
    pub plans_file: Option<PathBuf>,
    /// `PLINTH_BILLING_RECONCILE_SECS`: how often the leader reconciles with Stripe
    /// (0: never); unset: nightly (86400) in production, never in development.
    pub reconcile_secs: Option<u64>,
}

impl BillingConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let stripe_api_base = v.get("PLINTH_STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com/".into());
        if !url::Url::parse(&stripe_api_base).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(ConfigError { var: "PLINTH_STRIPE_API_BASE", message: "expected an http(s) URL".into() });
        }
        Ok(BillingConfig {
            stripe_secret_key: v.secret("PLINTH_STRIPE_SECRET_KEY"),
            stripe_api_base,
            stripe_timeout: Duration::from_millis(v.parse("PLINTH_STRIPE_TIMEOUT_MS", 5000u64)?.max(1)),
            webhook_secrets: v.secrets("PLINTH_STRIPE_WEBHOOK_SECRET"),
            webhook_tolerance_secs: v.parse("PLINTH_STRIPE_WEBHOOK_TOLERANCE_SECS", 300)?,
            success_url: v.get("PLINTH_BILLING_SUCCESS_URL"),
            cancel_url: v.get("PLINTH_BILLING_CANCEL_URL"),
            return_url: v.get("PLINTH_BILLING_RETURN_URL"),
            grace_days: v.parse("PLINTH_BILLING_GRACE_DAYS", 7)?,
            plans_file: v.get("PLINTH_PLANS_FILE").map(PathBuf::from),
            reconcile_secs: match v.get("PLINTH_BILLING_RECONCILE_SECS") {
                None => None,
                Some(_) => Some(v.parse("PLINTH_BILLING_RECONCILE_SECS", 0)?),
            },
        })
    }
}
