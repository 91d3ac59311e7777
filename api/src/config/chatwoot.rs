//! The Chatwoot section: the optional bridge that mirrors support tickets into a
//! Chatwoot inbox and takes Chatwoot agents' replies back through a signed webhook. Off
//! unless `PLINTH_CHATWOOT_URL` is set; then the token, account and inbox must be too.
use super::{ConfigError, Vars};
use secrecy::SecretString;
use std::time::Duration;

/// The bridge's settings (present only when `PLINTH_CHATWOOT_URL` is set).
#[derive(Clone, Debug)]
pub struct ChatwootConfig {
    /// `PLINTH_CHATWOOT_URL`: the Chatwoot installation (`https://app.chatwoot.com`; a
    /// local server in tests), without `/api/v1`.
    pub url: String,
    /// `PLINTH_CHATWOOT_API_TOKEN`: an agent's or agent bot's access token, sent as the
    /// `api_access_token` header.
    pub api_token: SecretString,
    /// `PLINTH_CHATWOOT_ACCOUNT_ID`: the Chatwoot account (the number in its URLs).
    pub account_id: i64,
    /// `PLINTH_CHATWOOT_INBOX_ID`: an API-channel inbox of that account; tickets become
    /// conversations there.
    pub inbox_id: i64,
    /// `PLINTH_CHATWOOT_WEBHOOK_SECRET`: the secret(s) of the Chatwoot webhook that posts
    /// `message_created` to `/webhooks/chatwoot` (comma-separated, two during a
    /// rotation); none refuses every delivery.
    pub webhook_secrets: Vec<SecretString>,
    /// `PLINTH_CHATWOOT_WEBHOOK_TOLERANCE_SECS`: accepted age of a delivery's
    /// `X-Chatwoot-Timestamp` (300).
    pub webhook_tolerance_secs: i64,
    /// `PLINTH_CHATWOOT_TIMEOUT_MS`: the longest one call to Chatwoot may take (5000).
    pub timeout: Duration,
    /// `PLINTH_CHATWOOT_MAX_ATTEMPTS`: attempts before an outbox row is marked failed (20).
    pub max_attempts: i32,
    /// `PLINTH_CHATWOOT_BACKOFF_MS`: the first retry's delay, doubled at each attempt (2000).
    pub backoff: Duration,
    /// `PLINTH_CHATWOOT_MAX_BACKOFF_MS`: the longest delay between attempts (3600000).
    pub max_backoff: Duration,
    /// `PLINTH_CHATWOOT_POLL_MS`: how often the delivery loop looks without being woken
    /// (5000; a committed outbox row wakes it at once).
    pub poll: Duration,
}

/// Calls one delivery may make (contact, its search, conversation, message).
const CALLS_PER_DELIVERY: u32 = 4;

impl ChatwootConfig {
    /// The section, or None when the bridge is off.
    pub(super) fn read(v: &Vars) -> Result<Option<Self>, ConfigError> {
        let Some(url) = v.get("PLINTH_CHATWOOT_URL") else { return Ok(None) };
        if !url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(ConfigError { var: "PLINTH_CHATWOOT_URL", message: "expected an http(s) URL".into() });
        }
        let required = |var: &'static str| {
            v.get(var).ok_or(ConfigError { var, message: "required when PLINTH_CHATWOOT_URL is set".into() })
        };
        let id = |var: &'static str| -> Result<i64, ConfigError> {
            let raw = required(var)?;
            raw.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError { var, message: format!("expected a positive number, got {raw:?}") })
        };
        let ms = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(v.parse(name, default)?.max(1)))
        };
        Ok(Some(ChatwootConfig {
            url: url.trim_end_matches('/').to_owned(),
            api_token: SecretString::from(required("PLINTH_CHATWOOT_API_TOKEN")?),
            account_id: id("PLINTH_CHATWOOT_ACCOUNT_ID")?,
            inbox_id: id("PLINTH_CHATWOOT_INBOX_ID")?,
            webhook_secrets: v.secrets("PLINTH_CHATWOOT_WEBHOOK_SECRET"),
            webhook_tolerance_secs: v.parse("PLINTH_CHATWOOT_WEBHOOK_TOLERANCE_SECS", 300)?,
            timeout: ms("PLINTH_CHATWOOT_TIMEOUT_MS", 5000)?,
            max_attempts: v.parse("PLINTH_CHATWOOT_MAX_ATTEMPTS", 20i32)?.max(1),
            backoff: ms("PLINTH_CHATWOOT_BACKOFF_MS", 2000)?,
            max_backoff: ms("PLINTH_CHATWOOT_MAX_BACKOFF_MS", 3_600_000)?,
            poll: ms("PLINTH_CHATWOOT_POLL_MS", 5000)?,
        }))
    }

    /// How long a claimed outbox row is left to its loop before another may take it: every
    /// call of one delivery timing out, and 30 s more.
    pub fn lease(&self) -> Duration {
        self.timeout * CALLS_PER_DELIVERY + Duration::from_secs(30)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_bridge_is_off_unless_configured_and_then_needs_its_ids() {
        assert!(Config::from_vars(HashMap::new()).unwrap().chatwoot.is_none());
        let e = Config::from_vars(vars(&[("PLINTH_CHATWOOT_URL", "http://cw.test")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_CHATWOOT_API_TOKEN");
        let base = [
            ("PLINTH_CHATWOOT_URL", "http://cw.test/"),
            ("PLINTH_CHATWOOT_API_TOKEN", "tok"),
            ("PLINTH_CHATWOOT_ACCOUNT_ID", "3"),
            ("PLINTH_CHATWOOT_INBOX_ID", "x"),
        ];
        assert_eq!(Config::from_vars(vars(&base)).unwrap_err().var, "PLINTH_CHATWOOT_INBOX_ID");
        let mut ok = base.to_vec();
        ok[3] = ("PLINTH_CHATWOOT_INBOX_ID", "7");
        ok.push(("PLINTH_CHATWOOT_WEBHOOK_SECRET", "a, b"));
        let c = Config::from_vars(vars(&ok)).unwrap().chatwoot.unwrap();
        assert_eq!((c.url.as_str(), c.account_id, c.inbox_id, c.webhook_secrets.len()), ("http://cw.test", 3, 7, 2));
        assert!(!format!("{c:?}").contains("tok\""), "the token stays out of Debug");
        let e = Config::from_vars(vars(&[("PLINTH_CHATWOOT_URL", "ftp://x")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_CHATWOOT_URL");
    }
}
