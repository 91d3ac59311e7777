//! The providers mail leaves through, behind one trait: SendGrid's v3 API, any SMTP
//! relay (`lettre`), or `.eml` files under the data dir (development). Every call is
//! bounded by the configured timeout; none holds a database connection.
use crate::config::{MailConfig, MailProvider};
use anyhow::Context;
use futures_util::future::BoxFuture;
use lettre::{
    message::{header::HeaderName, header::HeaderValue, Mailbox, MultiPart},
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::{path::PathBuf, time::Duration};
use uuid::Uuid;

/// The header (SMTP, files) and custom arg (SendGrid) that carry the outbox row's id, so
/// a duplicate after a crash can be recognised downstream.
pub const OUTBOX_ID_HEADER: &str = "X-Plinth-Outbox-Id";

/// One message ready to leave.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The outbox row's id.
    pub id: Uuid,
    /// The recipient.
    pub to: String,
    /// The template's name (a SendGrid category, a metric label).
    pub template: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// Extra headers (`List-Unsubscribe` ...).
    pub headers: Vec<(String, String)>,
}

/// What the provider answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later (429, 5xx, a network error, a timeout), not before
    /// `retry_after` when the provider said so.
    Retry {
        /// Why, for the row and the log (never the message's content).
        reason: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Refused for good (another 4xx, an invalid address).
    Permanent {
        /// The provider's reason.
        reason: String,
    },
}

/// A way out for mail.
pub trait Provider: Send + Sync {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Sends `mail`; the provider's message id when it gives one.
    fn send<'a>(&'a self, mail: &'a Outgoing) -> BoxFuture<'a, Result<Option<String>, SendError>>;
}

/// The provider the configuration names; `data_dir` holds the file mailer's output.
///
/// Errors: an unusable SMTP URL or sender; an HTTP client that cannot be built.
pub fn from_config(config: &MailConfig, data_dir: &std::path::Path) -> anyhow::Result<Box<dyn Provider>> {
    let from: Mailbox = config.from.parse().context("PLINTH_MAIL_FROM")?;
    Ok(match &config.provider {
        MailProvider::SendGrid { api_key, api_base } => {
            Box::new(SendGrid::new(api_base, api_key.clone(), from, config.timeout)?)
        }
        MailProvider::Smtp { url } => Box::new(Smtp::new(url, from, config.timeout)?),
        MailProvider::File => Box::new(FileMailer { dir: data_dir.join("mail"), from }),
    })
}

/// SendGrid's v3 mail send (`POST /v3/mail/send`, 202 and `X-Message-Id`).
///
/// Spoken with reqwest: the `sendgrid` crate hard-codes `https://api.sendgrid.com`, and
/// the tests (and a regional endpoint) need another base URL.
pub struct SendGrid {
    client: reqwest::Client,
    url: String,
    api_key: SecretString,
    from: Mailbox,
}

impl SendGrid {
    /// A client for `api_base` with `api_key`, each call bounded by `timeout`.
    ///
    /// Errors: the HTTP client cannot be built.
    pub fn new(api_base: &str, api_key: SecretString, from: Mailbox, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .context("building the SendGrid client")?;
        Ok(SendGrid { client, url: format!("{}/v3/mail/send", api_base.trim_end_matches('/')), api_key, from })
    }

    /// The v3 JSON body of `mail`.
    pub fn body(&self, mail: &Outgoing) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> =
            mail.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut from = json!({ "email": self.from.email.to_string() });
        if let Some(name) = &self.from.name {
            from["name"] = json!(name);
        }
        let mut body = json!({
            "personalizations": [{ "to": [{ "email": mail.to }] }],
            "from": from,
            "subject": mail.subject,
            "content": [
                { "type": "text/plain", "value": mail.text },
                { "type": "text/html", "value": mail.html },
            ],
            "categories": [mail.template],
            "custom_args": { "outbox_id": mail.id.to_string() },
        });
        if !headers.is_empty() {
            body["headers"] = serde_json::Value::Object(headers);
        }
        body
    }
}

impl Provider for SendGrid {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    fn send<'a>(&'a self, mail: &'a Outgoing) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.url)
                .bearer_auth(self.api_key.expose_secret())
                .json(&self.body(mail))
                .send()
                .await
                .map_err(|e| SendError::Retry { reason: network_reason(&e), retry_after: None })?;
            let status = response.status();
            if status.is_success() {
                let id = response.headers().get("x-message-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                return Ok(id);
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
            let text = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let reason = format!("sendgrid {}: {}", status.as_u16(), truncate(&detail, 300));
            if status.as_u16() == 429 || status.is_server_error() {
                Err(SendError::Retry { reason, retry_after })
            } else {
                Err(SendError::Permanent { reason })
            }
        })
    }
}

/// The longest `Retry-After` honoured: a provider asking for more (or a clock far off)
/// does not park a row for longer; the worker's `max_backoff` caps it further.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// A `Retry-After` value (RFC 9110 §10.2.3) as a delay from `now`: delta-seconds, or an
/// HTTP-date in any of the three forms a recipient must accept (IMF-fixdate, the
/// obsolete RFC 850 and asctime forms). A date in the past is no delay; the delay is at
/// most [`RETRY_AFTER_CAP`]; an unreadable value is None (the backoff alone applies).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "a very long time".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).map(|d| d.with_timezone(&chrono::Utc)).ok().or_else(|| {
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; asctime: "Sun Nov  6 08:49:37 1994".
        let rfc850 = value
            .strip_suffix(" GMT")
            .and_then(|v| v.split_once(", "))
            .and_then(|(_, rest)| chrono::NaiveDateTime::parse_from_str(rest, "%d-%b-%y %H:%M:%S").ok());
        let asctime = || {
            let squeezed = value.split_whitespace().collect::<Vec<_>>().join(" ");
            chrono::NaiveDateTime::parse_from_str(&squeezed, "%a %b %e %H:%M:%S %Y").ok()
        };
        rfc850.or_else(asctime).map(|n| n.and_utc())
    })?;
    let ahead = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(ahead.min(RETRY_AFTER_CAP))
}

fn network_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "sendgrid: timed out".into()
    } else if e.is_connect() {
        "sendgrid: cannot connect".into()
    } else {
        "sendgrid: network error".into()
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The MIME message of `mail` (SMTP and files).
///
/// Errors: an address lettre cannot parse (permanent).
fn mime(from: &Mailbox, mail: &Outgoing) -> Result<lettre::Message, SendError> {
    let to: Mailbox =
        mail.to.parse().map_err(|_| SendError::Permanent { reason: "invalid recipient address".into() })?;
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(OUTBOX_ID_HEADER), mail.id.to_string()));
    for (name, value) in &mail.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| SendError::Permanent { reason: format!("invalid header name {name}") })?;
        builder = builder.raw_header(HeaderValue::new(name, value.clone()));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .map_err(|e| SendError::Permanent { reason: format!("building the message: {e}") })
}

/// Any SMTP relay, through a connection pool.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Smtp {
    /// A transport for `url` (see [`MailProvider::Smtp`]).
    ///
    /// Errors: a URL lettre does not accept.
    pub fn new(url: &SecretString, from: Mailbox, timeout: Duration) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("PLINTH_SMTP_URL: not a usable SMTP URL"))?
            .timeout(Some(timeout))
            .build();
        Ok(Smtp { transport, from, timeout })
    }
}

impl Provider for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, mail: &'a Outgoing) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let message = mime(&self.from, mail)?;
            match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
                Err(_) => Err(SendError::Retry { reason: "smtp: timed out".into(), retry_after: None }),
                Ok(Ok(response)) => Ok(response.message().next().map(|m| truncate(m, 200))),
                Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent {
                    reason: format!("smtp {}", e.status().map(|c| c.to_string()).unwrap_or_default()),
                }),
                Ok(Err(e)) => Err(SendError::Retry {
                    reason: match e.status() {
                        Some(code) => format!("smtp {code}"),
                        None => "smtp: network error".into(),
                    },
                    retry_after: None,
                }),
            }
        })
    }
}

/// Development: each message becomes `<dir>/<outbox id>.eml`.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl Provider for FileMailer {
    fn name(&self) -> &'static str {
        "file"
    }

    fn send<'a>(&'a self, mail: &'a Outgoing) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let bytes = mime(&self.from, mail)?.formatted();
            let path = self.dir.join(format!("{}.eml", mail.id));
            let written = async {
                tokio::fs::create_dir_all(&self.dir).await?;
                tokio::fs::write(&path, bytes).await
            };
            written.await.map_err(|e| SendError::Retry { reason: format!("file mailer: {e}"), retry_after: None })?;
            tracing::info!(path = %path.display(), template = mail.template, "mail written as a file");
            Ok(Some(mail.id.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_is_read_in_both_forms_and_capped() {
        let now = chrono::Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 7).unwrap();
        let secs = |s: u64| Some(Duration::from_secs(s));
        // delta-seconds
        assert_eq!(parse_retry_after("120", now), secs(120));
        assert_eq!(parse_retry_after(" 0 ", now), secs(0));
        assert_eq!(parse_retry_after("86400", now), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(RETRY_AFTER_CAP));
        // HTTP-date: IMF-fixdate, then the two obsolete forms, 30 s after `now`
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), secs(30));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), secs(30));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), secs(30));
        // a date already past is no wait; one far ahead is capped
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), secs(0));
        assert_eq!(parse_retry_after("Mon, 06 Nov 1995 08:49:37 GMT", now), Some(RETRY_AFTER_CAP));
        // unreadable: the backoff alone decides
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
