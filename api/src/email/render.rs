//! Writes a queued message as mail, in its locale, from the template files under
//! `api/templates/email/` (compiled into the binary): one file per template and
//! locale with the blocks `subject`, `text` and `html`, wrapped in the layout every mail
//! shares (`layout.txt.j2`, `layout.html.j2`). The HTML is rendered with HTML escaping
//! on and the text with it off, from the same files, so a value cannot inject markup.
use crate::model::{EmailTemplate, Locale};
use anyhow::Context;
use minijinja::{AutoEscape, Environment};
use serde_json::{json, Value};

macro_rules! sources {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/email/", $name)))),*]
    };
}

/// Every template file, by name.
const SOURCES: &[(&str, &str)] = sources!(
    "layout.txt.j2",
    "layout.html.j2",
    "verify_email.fr.j2",
    "verify_email.en.j2",
    "reset_password.fr.j2",
    "reset_password.en.j2",
    "password_changed.fr.j2",
    "password_changed.en.j2",
    "subscription_started.fr.j2",
    "subscription_started.en.j2",
    "trial_ending.fr.j2",
    "trial_ending.en.j2",
    "payment_failed.fr.j2",
    "payment_failed.en.j2",
    "suspended.fr.j2",
    "suspended.en.j2",
    "reactivated.fr.j2",
    "reactivated.en.j2",
    "receipt.fr.j2",
    "receipt.en.j2",
    "payment_action_required.fr.j2",
    "payment_action_required.en.j2",
    "dispute_created.fr.j2",
    "dispute_created.en.j2",
    "quota_warning.fr.j2",
    "quota_warning.en.j2",
    "quota_reached.fr.j2",
    "quota_reached.en.j2",
    "test.fr.j2",
    "test.en.j2",
    "onboarding_welcome.fr.j2",
    "onboarding_welcome.en.j2",
    "onboarding_connect.fr.j2",
    "onboarding_connect.en.j2",
    "onboarding_scan.fr.j2",
    "onboarding_scan.en.j2",
    "onboarding_tips.fr.j2",
    "onboarding_tips.en.j2",
    "data_export_ready.fr.j2",
    "data_export_ready.en.j2",
    "account_deletion_scheduled.fr.j2",
    "account_deletion_scheduled.en.j2",
    "email_changed.fr.j2",
    "email_changed.en.j2",
    "payment_reminder.fr.j2",
    "payment_reminder.en.j2",
    "support_reply.fr.j2",
    "support_reply.en.j2",
);

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A date as people read it in `locale`: "3 décembre 2026", "December 3, 2026"
/// (`1er` for the first of a French month). `value` is a date (`2026-12-03`) or an RFC
/// 3339 time (its UTC date).
pub fn long_date(value: &str, locale: Locale) -> Option<String> {
    use chrono::Datelike;
    let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(value).ok().map(|d| d.naive_utc().date()))?;
    let (day, month, year) = (date.day(), date.month0() as usize, date.year());
    Some(match locale {
        Locale::Fr if day == 1 => format!("1er {} {year}", MONTHS_FR[month]),
        Locale::Fr => format!("{day} {} {year}", MONTHS_FR[month]),
        Locale::En => format!("{} {day}, {year}", MONTHS_EN[month]),
    })
}

/// The `long_date` filter: the date in the mail's locale (the `locale` variable).
fn long_date_filter(state: &minijinja::State, value: String) -> Result<String, minijinja::Error> {
    let locale =
        state.lookup("locale").and_then(|l| l.as_str().and_then(|l| Locale::parse(l).ok())).unwrap_or(Locale::Fr);
    long_date(&value, locale)
        .ok_or_else(|| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("not a date: {value:?}")))
}

/// A message written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The two template environments (text and HTML), built once.
pub struct Renderer {
    text: Environment<'static>,
    html: Environment<'static>,
    public_url: String,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer(..)")
    }
}

impl Renderer {
    /// Compiles every template; `public_url` is the base of the links in the layout.
    ///
    /// Errors: a template that does not compile (a bug, caught by the tests).
    pub fn new(public_url: &str) -> anyhow::Result<Self> {
        let build = |escape: AutoEscape| -> anyhow::Result<Environment<'static>> {
            let mut env = Environment::new();
            env.set_auto_escape_callback(move |_| escape);
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            env.set_trim_blocks(true);
            env.set_lstrip_blocks(true);
            // HTML escaping of & < > " ' only: minijinja's default also escapes `/`, which
            // is valid but turns every link into `https:&#x2f;&#x2f;...`.
            env.set_formatter(|out, state, value| {
                if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() && !value.is_none() {
                    let text = value.to_string();
                    let mut escaped = String::with_capacity(text.len());
                    for c in text.chars() {
                        match c {
                            '&' => escaped.push_str("&amp;"),
                            '<' => escaped.push_str("&lt;"),
                            '>' => escaped.push_str("&gt;"),
                            '"' => escaped.push_str("&quot;"),
                            '\'' => escaped.push_str("&#39;"),
                            c => escaped.push(c),
                        }
                    }
                    out.write_str(&escaped).map_err(|_| minijinja::Error::from(minijinja::ErrorKind::WriteFailure))
                } else {
                    minijinja::escape_formatter(out, state, value)
                }
            });
            env.add_filter("long_date", long_date_filter);
            for (name, source) in SOURCES {
                env.add_template(name, source).with_context(|| format!("compiling {name}"))?;
            }
            Ok(env)
        };
        Ok(Renderer {
            text: build(AutoEscape::None)?,
            html: build(AutoEscape::Html)?,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The base of the links in mail.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Writes `template` in `locale` from its `data`; `link` (a link carrying the
    /// row's one-time token) and `unsubscribe_url` are added to what the template sees.
    ///
    /// Errors: a missing field or template (logged by the caller; the row fails).
    pub fn render(
        &self,
        template: EmailTemplate,
        locale: Locale,
        data: &Value,
        link: Option<&str>,
        unsubscribe_url: Option<&str>,
    ) -> anyhow::Result<Rendered> {
        let mut ctx = match data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(link) = link {
            ctx.insert("link".into(), json!(link));
        }
        ctx.insert("app_url".into(), json!(self.public_url));
        ctx.insert("locale".into(), json!(locale.as_str()));
        ctx.insert("unsubscribe_url".into(), json!(unsubscribe_url));
        let ctx = Value::Object(ctx);
        let name = format!("{}.{}.j2", template.as_str(), locale.as_str());
        let part = |env: &Environment<'static>, block: &str| -> anyhow::Result<String> {
            let tmpl = env.get_template(&name).with_context(|| format!("no template {name}"))?;
            // `render_captured` (its replacement) lends the state immutably, and
            // rendering one block needs it mutably.
            #[allow(deprecated)]
            let mut state = tmpl.eval_to_state(&ctx).with_context(|| format!("rendering {name}"))?;
            state.render_block(block).with_context(|| format!("rendering {name} block {block}"))
        };
        let subject = part(&self.text, "subject")?.split_whitespace().collect::<Vec<_>>().join(" ");
        let text_body = part(&self.text, "text")?;
        let html_body = part(&self.html, "html")?;
        let wrap = |env: &Environment<'static>, layout: &str, content: String| -> anyhow::Result<String> {
            let mut c = ctx.clone();
            c["content"] = Value::String(content);
            c["subject"] = Value::String(subject.clone());
            let out = env.get_template(layout)?.render(&c).with_context(|| format!("rendering {layout}"))?;
            Ok(out)
        };
        Ok(Rendered {
            text: wrap(&self.text, "layout.txt.j2", text_body.trim().to_owned())?,
            html: wrap(&self.html, "layout.html.j2", html_body.trim().to_owned())?,
            subject,
        })
    }
}

/// Sample fields for each template (previews, snapshot tests, `plinth mail test`).
pub fn sample_data(template: EmailTemplate) -> (Value, Option<&'static str>) {
    let link = "https://plinth.example/verify-email?token=SAMPLE";
    match template {
        EmailTemplate::VerifyEmail => (json!({ "link_base": "https://plinth.example/verify-email" }), Some(link)),
        EmailTemplate::ResetPassword => (
            json!({ "link_base": "https://plinth.example/reset-password" }),
            Some("https://plinth.example/reset-password?token=SAMPLE"),
        ),
        EmailTemplate::QuotaWarning | EmailTemplate::QuotaReached => {
            (json!({ "metric": "scans", "threshold": 80, "used": 16, "limit": 20 }), None)
        }
        EmailTemplate::PaymentActionRequired => (
            json!({ "plan": "Pro", "detail": "https://invoice.stripe.com/i/sample", "link": "https://invoice.stripe.com/i/sample", "invoice": "INV-0001" }),
            None,
        ),
        EmailTemplate::DisputeCreated => {
            (json!({ "plan": "Pro", "detail": "Charge ch_1 disputed.", "dispute": "dp_1", "user_id": "0000" }), None)
        }
        EmailTemplate::DataExportReady => (json!({ "expires_on": "2026-12-09" }), None),
        EmailTemplate::AccountDeletionScheduled => (json!({ "deletion_on": "2026-12-16" }), None),
        EmailTemplate::Receipt => (
            json!({
                "plan": "Pro",
                "detail": "INV-0001",
                "invoice_url": "https://invoice.stripe.com/i/sample",
                "pdf_url": "https://pay.stripe.com/invoice/sample/pdf",
            }),
            None,
        ),
        EmailTemplate::TrialEnding => {
            (json!({ "plan": "Pro", "detail": "on 2026-12-03", "ends_on": "2026-12-03" }), None)
        }
        EmailTemplate::EmailChanged => (
            json!({ "old_email": "ann@example.com", "new_email": "ann.new@example.org", "support_email": "support@plinth.example" }),
            None,
        ),
        EmailTemplate::PaymentReminder => (
            json!({ "plan": "Pro", "day": 7, "since": "2026-11-26", "invoice_url": "https://invoice.stripe.com/i/sample" }),
            None,
        ),
        EmailTemplate::SupportReply => (
            json!({
                "ticket_subject": "Photos stuck in \"processing\"",
                "excerpt": "Hello, the scan finished on our side: could you refresh the page?",
                "link": "https://plinth.example/support/tickets/0000",
            }),
            None,
        ),
        _ => (json!({ "plan": "Pro", "detail": "" }), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_in_both_locales() {
        let r = Renderer::new("https://plinth.example").unwrap();
        for template in EmailTemplate::ALL.iter().filter(|t| t.is_mailed()) {
            for locale in Locale::ALL {
                let (data, link) = sample_data(*template);
                let unsubscribe =
                    template.preference().map(|_| "https://plinth.example/unsubscribe?u=1&c=onboarding&s=SIG");
                let out = r.render(*template, *locale, &data, link, unsubscribe).unwrap();
                let name = format!("{}_{}", template.as_str(), locale.as_str());
                insta::assert_snapshot!(format!("{name}_subject"), out.subject);
                insta::assert_snapshot!(format!("{name}_text"), out.text);
                insta::assert_snapshot!(format!("{name}_html"), out.html);
            }
        }
    }

    #[test]
    fn variants_render_in_both_locales() {
        let r = Renderer::new("https://plinth.example").unwrap();
        let link = Some("https://plinth.example/verify-email?token=SAMPLE");
        let base = "https://plinth.example/verify-email";
        let cases = [
            ("verify_email_reminder", EmailTemplate::VerifyEmail, json!({ "link_base": base, "reminder": 3 }), link),
            ("verify_email_change", EmailTemplate::VerifyEmail, json!({ "link_base": base, "change": true }), link),
            (
                "payment_reminder_day3",
                EmailTemplate::PaymentReminder,
                json!({ "plan": "Pro", "day": 3, "since": "2026-12-01", "invoice_url": null }),
                None,
            ),
        ];
        for (name, template, data, link) in cases {
            for locale in Locale::ALL {
                let out = r.render(template, *locale, &data, link, None).unwrap();
                let name = format!("{name}_{}", locale.as_str());
                insta::assert_snapshot!(format!("{name}_subject"), out.subject);
                insta::assert_snapshot!(format!("{name}_text"), out.text);
                insta::assert_snapshot!(format!("{name}_html"), out.html);
            }
        }
    }

    #[test]
    fn dates_are_written_in_the_mail_language() {
        assert_eq!(long_date("2026-12-03", Locale::Fr).as_deref(), Some("3 décembre 2026"));
        assert_eq!(long_date("2026-12-03", Locale::En).as_deref(), Some("December 3, 2026"));
        assert_eq!(long_date("2027-02-01T10:00:00Z", Locale::Fr).as_deref(), Some("1er février 2027"));
        assert_eq!(long_date("2027-08-15T23:30:00-02:00", Locale::En).as_deref(), Some("August 16, 2027"));
        assert_eq!(long_date("soon", Locale::En), None);
        let r = Renderer::new("https://plinth.example").unwrap();
        let data = json!({ "plan": "Pro", "detail": "", "ends_on": "2026-12-03" });
        let fr = r.render(EmailTemplate::TrialEnding, Locale::Fr, &data, None, None).unwrap();
        let en = r.render(EmailTemplate::TrialEnding, Locale::En, &data, None, None).unwrap();
        assert!(fr.text.contains("le 3 décembre 2026") && fr.html.contains("le 3 décembre 2026"), "{}", fr.text);
        assert!(en.text.contains("on December 3, 2026") && en.html.contains("on December 3, 2026"), "{}", en.text);
    }

    #[test]
    fn the_receipt_links_the_invoice_page_and_its_pdf() {
        let r = Renderer::new("https://plinth.example").unwrap();
        let (data, _) = sample_data(EmailTemplate::Receipt);
        for locale in Locale::ALL {
            let out = r.render(EmailTemplate::Receipt, *locale, &data, None, None).unwrap();
            for part in [&out.text, &out.html] {
                assert!(part.contains("https://invoice.stripe.com/i/sample"), "{part}");
                assert!(part.contains("https://pay.stripe.com/invoice/sample/pdf"), "{part}");
            }
        }
        // An invoice without links (an old event) still gives a receipt, pointing at billing.
        let bare = json!({ "plan": "Pro", "detail": "INV-0002" });
        let out = r.render(EmailTemplate::Receipt, Locale::En, &bare, None, None).unwrap();
        assert!(out.text.contains("https://plinth.example/billing"));
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let r = Renderer::new("https://plinth.example").unwrap();
        let data = json!({ "plan": "<b>Pro</b>", "detail": "" });
        let out = r.render(EmailTemplate::SubscriptionStarted, Locale::En, &data, None, None).unwrap();
        assert!(out.html.contains("&lt;b&gt;Pro&lt;/b&gt;"));
        assert!(out.text.contains("<b>Pro</b>"));
    }
}
