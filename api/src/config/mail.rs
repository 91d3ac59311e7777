//! The mail section: which provider delivers the outbox, and how the delivery worker
//! paces itself.
use super::{ConfigError, Vars};
use secrecy::SecretString;
use std::time::Duration;

/// Where mail goes.
#[derive(Clone, Debug)]
pub enum MailProvider {
    /// SendGrid's v3 mail send API.
    SendGrid {
        /// `PLINTH_SENDGRID_API_KEY`.
        api_key: SecretString,
        /// `PLINTH_SENDGRID_API_BASE` (`https://api.sendgrid.com`; a local server in tests).
        api_base: String,
    },
    /// Any SMTP relay: `PLINTH_SMTP_URL` (`smtp://` plain or `?tls=required` for
    /// STARTTLS, `smtps://` for TLS; `user:password@` for authentication).
    Smtp {
        /// The relay's URL (it may carry a password).
        url: SecretString,
    },
    /// Development only: each message is an `.eml` file under `<data dir>/mail`.
    File,
}

/// The provider and the delivery worker's settings.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// Chosen by which variables are set: SendGrid first, then SMTP, else files.
    pub provider: MailProvider,
    /// `PLINTH_MAIL_FROM`: the sender (`Plinth <no-reply@localhost>`).
    pub from: String,
    /// `PLINTH_MAIL_TIMEOUT_MS`: the longest one call to the provider may take (10000).
    pub timeout: Duration,
    /// `PLINTH_MAIL_BATCH`: rows one worker claims at a time (20).
    pub batch: u32,
    /// `PLINTH_MAIL_WORKERS`: delivery loops in this process (1; 0 turns delivery off).
    pub workers: u32,
    /// `PLINTH_MAIL_MAX_ATTEMPTS`: attempts before a row is marked failed (8).
    pub max_attempts: i32,
    /// `PLINTH_MAIL_BACKOFF_MS`: the first retry's delay, doubled at each attempt (2000).
    pub backoff: Duration,
    /// `PLINTH_MAIL_MAX_BACKOFF_MS`: the longest delay between attempts (3600000).
    pub max_backoff: Duration,
    /// `PLINTH_MAIL_POLL_MS`: how often a worker looks without being woken (5000).
    pub poll: Duration,
    /// `PLINTH_MAIL_LEASE_MS`: how long a claimed row is left to its worker before
    /// another may take it (a crashed worker's rows); at least twice the timeout
    /// (3 x timeout + 30 s).
    pub lease: Duration,
    /// `PLINTH_SENDGRID_WEBHOOK_PUBLIC_KEY`: the event webhook's verification key, as
    /// SendGrid shows it (base64 of the DER public key); None refuses the webhook.
    pub sendgrid_webhook_key: Option<p256::ecdsa::VerifyingKey>,
    /// `PLINTH_SENDGRID_WEBHOOK_TOLERANCE_SECS`: accepted age of a signature (600).
    pub sendgrid_webhook_tolerance_secs: i64,
    /// `PLINTH_MAIL_SEQUENCES_SECS`: how often the onboarding sequence is scheduled (300).
    pub sequences_every: Duration,
}

impl MailConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let provider = match (v.secret("PLINTH_SENDGRID_API_KEY"), v.secret("PLINTH_SMTP_URL")) {
            (Some(api_key), _) => {
                let api_base = v.get("PLINTH_SENDGRID_API_BASE").unwrap_or_else(|| "https://api.sendgrid.com".into());
                if !url::Url::parse(&api_base).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                    return Err(ConfigError {
                        var: "PLINTH_SENDGRID_API_BASE",
                        message: "expected an http(s) URL".into(),
                    });
                }
                MailProvider::SendGrid { api_key, api_base }
            }
            (None, Some(url)) => {
                use secrecy::ExposeSecret;
                if !url::Url::parse(url.expose_secret()).is_ok_and(|u| matches!(u.scheme(), "smtp" | "smtps")) {
                    return Err(ConfigError {
                        var: "PLINTH_SMTP_URL",
                        message: "expected an smtp:// or smtps:// URL".into(),
                    });
                }
                MailProvider::Smtp { url }
            }
            (None, None) => MailProvider::File,
        };
        let from = v.get("PLINTH_MAIL_FROM").unwrap_or_else(|| "Plinth <no-reply@localhost>".into());
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError {
                var: "PLINTH_MAIL_FROM",
                message: "expected an address, e.g. Plinth <a@b.c>".into(),
            });
        }
        let ms = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(v.parse(name, default)?.max(1)))
        };
        let timeout = ms("PLINTH_MAIL_TIMEOUT_MS", 10_000)?;
        let default_lease = (timeout * 3 + Duration::from_secs(30)).as_millis() as u64;
        let lease = ms("PLINTH_MAIL_LEASE_MS", default_lease)?.max(timeout * 2);
        Ok(MailConfig {
            provider,
            from,
            timeout,
            lease,
            sendgrid_webhook_key: match v.get("PLINTH_SENDGRID_WEBHOOK_PUBLIC_KEY") {
                None => None,
                Some(key) => Some(webhook_key(&key).ok_or(ConfigError {
                    var: "PLINTH_SENDGRID_WEBHOOK_PUBLIC_KEY",
                    message: "expected the base64 DER P-256 public key SendGrid shows".into(),
                })?),
            },
            sendgrid_webhook_tolerance_secs: v.parse("PLINTH_SENDGRID_WEBHOOK_TOLERANCE_SECS", 600)?,
            sequences_every: Duration::from_secs(v.parse("PLINTH_MAIL_SEQUENCES_SECS", 300u64)?.max(1)),
            batch: v.parse("PLINTH_MAIL_BATCH", 20u32)?.clamp(1, 500),
            workers: v.parse("PLINTH_MAIL_WORKERS", 1u32)?.min(64),
            max_attempts: v.parse("PLINTH_MAIL_MAX_ATTEMPTS", 8i32)?.max(1),
            backoff: ms("PLINTH_MAIL_BACKOFF_MS", 2000)?,
            max_backoff: ms("PLINTH_MAIL_MAX_BACKOFF_MS", 3_600_000)?,
            poll: ms("PLINTH_MAIL_POLL_MS", 5000)?,
        })
    }
}

/// A P-256 public key from base64 DER (or a PEM block around it).
fn webhook_key(text: &str) -> Option<p256::ecdsa::VerifyingKey> {
    use base64::Engine;
    use p256::pkcs8::DecodePublicKey;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("");
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok()
}
