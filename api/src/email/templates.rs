//! What each transactional e-mail says, as the domains queue it: the template, the
//! fields its text needs (`data`), and an English summary kept with the in-app
//! notification. The mail itself is written at delivery, in the user's locale, from the
//! files under `api/templates/email/` ([`super::render`]). A one-time token is never in
//! `data` nor in the summary: it travels in `secret`, which the outbox seals until
//! sending and erases after; passwords are never part of a message.
use crate::model::{EmailTemplate, QuotaMetric};
use serde_json::json;

/// A rendered message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Which message it is (stored for delivery and metrics).
    pub template: EmailTemplate,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Structured fields of the message.
    pub data: serde_json::Value,
    /// A one-time token the link of the mail carries (sealed in the outbox).
    pub secret: Option<String>,
}

/// Asks a new account to confirm its address.
pub fn verify_email(public_url: &str, token: &str) -> Message {
    let link_base = format!("{public_url}/verify-email");
    Message {
        template: EmailTemplate::VerifyEmail,
        subject: "Confirm your e-mail address".into(),
        body: "Welcome to Plinth. Confirm your e-mail address with the link we sent (it works for 48 hours).".into(),
        data: json!({ "link_base": link_base }),
        secret: Some(token.to_owned()),
    }
}

/// Sends a password-reset link.
pub fn reset_password(public_url: &str, token: &str) -> Message {
    let link_base = format!("{public_url}/reset-password");
    Message {
        template: EmailTemplate::ResetPassword,
        subject: "Reset your Plinth password".into(),
        body: "Someone asked to reset the password of your Plinth account: the link we sent works for one hour.".into(),
        data: json!({ "link_base": link_base }),
        secret: Some(token.to_owned()),
    }
}

/// Tells the owner that the password changed.
pub fn password_changed() -> Message {
    Message {
        template: EmailTemplate::PasswordChanged,
        subject: "Your Plinth password was changed".into(),
        body: "The password of your Plinth account was just changed, and your other sessions were signed out.\n\n\
               If it was not you, reset your password now and contact support."
            .into(),
        data: json!({}),
        secret: None,
    }
}

/// A billing message: what happened to the subscription, in the user's words.
pub fn billing(template: EmailTemplate, plan: &str, detail: &str) -> Message {
    let (subject, body) = match template {
        EmailTemplate::SubscriptionStarted => (
            format!("Welcome to Plinth {plan}"),
            format!("Your {plan} subscription is active. {detail}\n\nInvoices are in your dashboard."),
        ),
        EmailTemplate::TrialEnding => (
            "Your Plinth trial ends soon".to_owned(),
            format!("Your {plan} trial ends {detail}. Add a payment method in the billing portal to keep your plan."),
        ),
        EmailTemplate::PaymentFailed => (
            "Your Plinth payment failed".to_owned(),
            format!("We could not charge your payment method for {plan}. {detail}\n\nUpdate it in the billing portal."),
        ),
        EmailTemplate::Suspended => (
            "Your Plinth subscription is suspended".to_owned(),
            format!(
                "Your {plan} subscription is suspended: scans, preparations and publishing are paused. \
                 Your data stays readable. {detail}"
            ),
        ),
        EmailTemplate::Reactivated => (
            "Your Plinth subscription is active again".to_owned(),
            format!("Thank you: your {plan} subscription is active again. {detail}"),
        ),
        EmailTemplate::PaymentActionRequired => (
            "Your Plinth payment needs your confirmation".to_owned(),
            format!(
                "Your bank asks you to confirm the payment for {plan}. Confirm it on the invoice's page:\n{detail}\n\n\
                 Until then the payment stays open."
            ),
        ),
        EmailTemplate::DisputeCreated => (
            "A customer disputed a Plinth payment".to_owned(),
            format!(
                "A charge for {plan} was disputed. {detail}\n\nAnswer it in the Stripe dashboard before its deadline."
            ),
        ),
        EmailTemplate::Receipt => {
            (format!("Your Plinth receipt {detail}"), format!("We received your payment for {plan}. Invoice {detail}."))
        }
        _ => (format!("Plinth {plan}"), detail.to_owned()),
    };
    Message { template, subject, body, data: json!({ "plan": plan, "detail": detail }), secret: None }
}

/// A quota threshold reached (80% or 100% of a period's allowance).
pub fn quota(metric: QuotaMetric, threshold: i64, used: i64, limit: i64) -> Message {
    let what = metric.as_str().replace('_', " ");
    let (template, subject) = if threshold >= 100 {
        (EmailTemplate::QuotaReached, format!("You have used all your {what} for this period"))
    } else {
        (EmailTemplate::QuotaWarning, format!("You have used {threshold}% of your {what}"))
    };
    Message {
        template,
        subject: subject.clone(),
        body: format!("{subject}: {used} of {limit}. Upgrade your plan for more, or wait for the next period."),
        data: json!({ "metric": metric, "threshold": threshold, "used": used, "limit": limit }),
        secret: None,
    }
}

/// A data export is ready to download until `expires_on` (a date, `YYYY-MM-DD`).
pub fn data_export_ready(expires_on: &str) -> Message {
    Message {
        template: EmailTemplate::DataExportReady,
        subject: "Your Plinth data export is ready".into(),
        body: format!("The archive of your data is ready: download it from the app before {expires_on}."),
        data: json!({ "expires_on": expires_on }),
        secret: None,
    }
}

/// The account will be deleted on `deletion_on` (a date, `YYYY-MM-DD`) unless its owner
/// signs in before.
pub fn account_deletion_scheduled(deletion_on: &str) -> Message {
    Message {
        template: EmailTemplate::AccountDeletionScheduled,
        subject: format!("Your Plinth account will be deleted on {deletion_on}"),
        body: format!(
            "Your account will be deleted on {deletion_on}. Sign in before that date to cancel the deletion."
        ),
        data: json!({ "deletion_on": deletion_on }),
        secret: None,
    }
}

/// A sign-in cancelled the account's scheduled deletion (in the app only).
pub fn account_deletion_canceled() -> Message {
    Message {
        template: EmailTemplate::AccountDeletionCanceled,
        subject: "Your account's deletion was cancelled".into(),
        body: "You signed in during the grace period, so your account will not be deleted.".into(),
        data: json!({}),
        secret: None,
    }
}

/// A message that proves the provider works (`plinth mail test`).
pub fn test_message() -> Message {
    Message {
        template: EmailTemplate::Test,
        subject: "Plinth test message".into(),
        body: "This message tests the configured mail provider.".into(),
        data: json!({}),
        secret: None,
    }
}
