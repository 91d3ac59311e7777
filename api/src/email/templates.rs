//! What each transactional e-mail says, as the domains queue it: the template, the
//! fields its text needs (`data`), and an English summary kept with the in-app
//! notification. The mail itself is written at delivery, in the user's locale, from the
//! files under `api/templates/email/` ([`super::render`]). A one-time token is never in
//! `data` nor in the summary: it travels in `secret`, which the outbox seals until
//! sending and erases after; passwords are never part of a message.
use crate::model::{EmailTemplate, QuotaMetric};
use serde_json::json;

/// How long an e-mail verification link works (the mails say 48 hours).
pub const VERIFY_EMAIL_TTL_HOURS: i64 = 48;

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

/// Asks the owner of a new address to confirm it before it replaces the account's.
pub fn confirm_new_email(public_url: &str, token: &str) -> Message {
    let mut m = verify_email(public_url, token);
    m.subject = "Confirm the new address of your Plinth account".into();
    m.body = "Confirm this address to make it the one of your Plinth account (the link works for 48 hours).".into();
    m.data["change"] = json!(true);
    m
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

/// Tells the old address that the account's address changed to `new_email` (sent once
/// the new address is confirmed), with the way to reach support if it was not the owner.
pub fn email_changed(old_email: &str, new_email: &str) -> Message {
    Message {
        template: EmailTemplate::EmailChanged,
        subject: "The e-mail address of your Plinth account changed".into(),
        body: format!(
            "The e-mail address of your Plinth account is now {new_email}; your other sessions were signed out.\n\n\
             If it was not you, contact support now."
        ),
        data: json!({ "old_email": old_email, "new_email": new_email }),
        secret: None,
    }
}

/// Support answered a ticket: its subject, the start of the answer, and the link to the
/// conversation (for the support issue, which queues it).
pub fn support_reply(ticket_subject: &str, reply: &str, link: &str) -> Message {
    let excerpt = excerpt(reply, 400);
    Message {
        template: EmailTemplate::SupportReply,
        subject: format!("Support replied: {ticket_subject}"),
        body: format!("Plinth support replied to \"{ticket_subject}\":\n\n{excerpt}\n\n{link}"),
        data: json!({ "ticket_subject": ticket_subject, "excerpt": excerpt, "link": link }),
        secret: None,
    }
}

/// The receipt of a paid invoice, with Stripe's page for it and its PDF when Stripe
/// gave them.
pub fn receipt(plan: &str, number: &str, invoice_url: Option<&str>, pdf_url: Option<&str>) -> Message {
    let mut m = billing(EmailTemplate::Receipt, plan, number);
    m.data["invoice_url"] = json!(invoice_url);
    m.data["pdf_url"] = json!(pdf_url);
    for (label, url) in [("Invoice", invoice_url), ("PDF", pdf_url)] {
        if let Some(url) = url {
            m.body.push_str(&format!("\n{label}: {url}"));
        }
    }
    m
}

/// The trial of `plan` ends on `ends_on` (written in the mail's language).
pub fn trial_ending(plan: &str, ends_on: chrono::NaiveDate) -> Message {
    let mut m = billing(EmailTemplate::TrialEnding, plan, &format!("on {}", ends_on.format("%Y-%m-%d")));
    m.data["ends_on"] = json!(ends_on.format("%Y-%m-%d").to_string());
    m
}

/// The first `max` characters of `text` on one paragraph, cut at a word, with an
/// ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map(|(head, _)| head.to_owned()).unwrap_or(cut);
    format!("{cut}…")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_support_reply_carries_an_excerpt_cut_at_a_word() {
        let long = format!("Hello,\n\n{}", "word ".repeat(200));
        let m = support_reply("Scan stuck", &long, "https://plinth.example/support/tickets/1");
        let excerpt = m.data["excerpt"].as_str().unwrap();
        assert!(excerpt.starts_with("Hello, word word") && excerpt.ends_with("word…"), "{excerpt}");
        assert!(excerpt.chars().count() <= 401);
        assert_eq!(m.data["ticket_subject"], "Scan stuck");
        assert_eq!(m.data["link"], "https://plinth.example/support/tickets/1");
        let short = support_reply("Hi", "Done.", "https://x");
        assert_eq!(short.data["excerpt"], "Done.");
    }
}
