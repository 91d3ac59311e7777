//! The text of each transactional e-mail. Links carry single-use tokens; the outbox
//! row's `data` keeps only what a template needs, never a password.
use serde_json::json;

/// A rendered message.
#[derive(Clone, Debug)]
pub struct Message {
    /// Template name, stored for delivery and metrics.
    pub template: &'static str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Structured fields of the message.
    pub data: serde_json::Value,
}

/// Asks a new account to confirm its address.
pub fn verify_email(public_url: &str, token: &str) -> Message {
    let link = format!("{public_url}/verify-email?token={token}");
    Message {
        template: "verify_email",
        subject: "Confirm your e-mail address".into(),
        body: format!(
            "Welcome to Plinth.\n\nConfirm your e-mail address by opening this link within 48 hours:\n{link}\n\n\
             If you did not create an account, ignore this message."
        ),
        data: json!({ "link": link, "token": token }),
    }
}

/// Sends a password-reset link.
pub fn reset_password(public_url: &str, token: &str) -> Message {
    let link = format!("{public_url}/reset-password?token={token}");
    Message {
        template: "reset_password",
        subject: "Reset your Plinth password".into(),
        body: format!(
            "Someone asked to reset the password of your Plinth account.\n\nOpen this link within one hour to \
             choose a new password:\n{link}\n\nIf it was not you, ignore this message; your password is unchanged."
        ),
        data: json!({ "link": link, "token": token }),
    }
}

/// Tells the owner that the password changed.
pub fn password_changed() -> Message {
    Message {
        template: "password_changed",
        subject: "Your Plinth password was changed".into(),
        body: "The password of your Plinth account was just changed, and your other sessions were signed out.\n\n\
               If it was not you, reset your password now and contact support."
            .into(),
        data: json!({}),
    }
}

/// A billing message: what happened to the subscription, in the user's words.
pub fn billing(template: &'static str, plan: &str, detail: &str) -> Message {
    let (subject, body) = match template {
        "subscription_started" => (
            format!("Welcome to Plinth {plan}"),
            format!("Your {plan} subscription is active. {detail}\n\nInvoices are in your dashboard."),
        ),
        "trial_ending" => (
            "Your Plinth trial ends soon".to_owned(),
            format!("Your {plan} trial ends {detail}. Add a payment method in the billing portal to keep your plan."),
        ),
        "payment_failed" => (
            "Your Plinth payment failed".to_owned(),
            format!("We could not charge your payment method for {plan}. {detail}\n\nUpdate it in the billing portal."),
        ),
        "suspended" => (
            "Your Plinth subscription is suspended".to_owned(),
            format!(
                "Your {plan} subscription is suspended: scans, preparations and publishing are paused. \
                 Your data stays readable. {detail}"
            ),
        ),
        "reactivated" => (
            "Your Plinth subscription is active again".to_owned(),
            format!("Thank you: your {plan} subscription is active again. {detail}"),
        ),
        "receipt" => {
            (format!("Your Plinth receipt {detail}"), format!("We received your payment for {plan}. Invoice {detail}."))
        }
        _ => (format!("Plinth {plan}"), detail.to_owned()),
    };
    Message { template, subject, body, data: json!({ "plan": plan, "detail": detail }) }
}

/// A quota threshold reached (80% or 100% of a period's allowance).
pub fn quota(metric: &str, threshold: i64, used: i64, limit: i64) -> Message {
    let what = metric.replace('_', " ");
    let (template, subject) = if threshold >= 100 {
        ("quota_reached", format!("You have used all your {what} for this period"))
    } else {
        ("quota_warning", format!("You have used {threshold}% of your {what}"))
    };
    Message {
        template,
        subject: subject.clone(),
        body: format!("{subject}: {used} of {limit}. Upgrade your plan for more, or wait for the next period."),
        data: json!({ "metric": metric, "threshold": threshold, "used": used, "limit": limit }),
    }
}
