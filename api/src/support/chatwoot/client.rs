//! Chatwoot's Application API, the calls the bridge makes, in its wire format
//! (`/api/v1/accounts/{account_id}/...`, JSON, the `api_access_token` header):
//!
//! - `POST contacts` `{inbox_id, name, email, identifier, source_id}` answers
//!   `{payload: {contact: {id, ...}, contact_inbox: {source_id, ...}}}`; an identifier
//!   already taken answers 422, then `GET contacts/search?q=` finds the contact;
//! - `POST conversations` `{source_id, inbox_id, contact_id, status, additional_attributes,
//!   custom_attributes}` answers the conversation, whose `id` is the number the API and the
//!   webhooks use;
//! - `POST conversations/{id}/messages` `{content, message_type: incoming|outgoing,
//!   private, content_type, content_attributes, source_id}` answers the message (`id`);
//! - `POST conversations/{id}/toggle_status` `{status}`.
//!
//! Only the ids are read from the answers, so other fields (which differ between Chatwoot
//! versions) never break a delivery. Each call is bounded by `PLINTH_CHATWOOT_TIMEOUT_MS`;
//! a refused or reset connection, a timeout, 408, 429 and 5xx are worth retrying
//! (`Retry-After` honoured), any other answer is not.
use crate::{config::ChatwootConfig, email::provider::parse_retry_after};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

/// Why a call did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// Nothing is known to be done; try again later (after `Retry-After` when given).
    Retry(String, Option<Duration>),
    /// Chatwoot refused (a 4xx other than 408 and 429): `status`, and its reason.
    Refused(u16, String),
}

impl CallError {
    /// The reason, for the outbox row and the log (never a message's content).
    pub fn reason(&self) -> &str {
        match self {
            CallError::Retry(r, _) | CallError::Refused(_, r) => r,
        }
    }
}

/// A client of one Chatwoot account.
pub struct ChatwootClient {
    http: reqwest::Client,
    account_url: String,
    token: SecretString,
    inbox_id: i64,
}

/// A message as the bridge sends it.
#[derive(Debug)]
pub struct OutgoingMessage<'a> {
    /// Markdown (Chatwoot renders Markdown too).
    pub content: &'a str,
    /// The user wrote it (`incoming`) or staff did (`outgoing`).
    pub incoming: bool,
    /// A private note (staff only in Chatwoot too).
    pub private: bool,
    /// The ticket message it copies: sent as `source_id` (`plinth:<id>`) and in
    /// `content_attributes.plinth_message_id`, so the webhook's echo is recognised.
    pub plinth_message_id: uuid::Uuid,
}

/// The `source_id` prefix of messages the bridge creates.
pub const SOURCE_PREFIX: &str = "plinth:";

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl ChatwootClient {
    /// A client for the configured account and inbox.
    ///
    /// Errors: the HTTP client cannot be built.
    pub fn new(config: &ChatwootConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .context("building the Chatwoot client")?;
        Ok(ChatwootClient {
            http,
            account_url: format!("{}/api/v1/accounts/{}", config.url, config.account_id),
            token: config.api_token.clone(),
            inbox_id: config.inbox_id,
        })
    }

    /// The inbox tickets go to.
    pub fn inbox_id(&self) -> i64 {
        self.inbox_id
    }

    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, CallError> {
        let response = request.header("api_access_token", self.token.expose_secret()).send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "network error"
            };
            CallError::Retry(format!("chatwoot {what}: {why}"), None)
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let text = response.text().await.map_err(|_| CallError::Retry(format!("chatwoot {what}: body cut"), None))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|_| {
                CallError::Retry(format!("chatwoot {what}: {} with a body that is not JSON", status), None)
            });
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                ["message", "error"].iter().find_map(|k| v[*k].as_str().map(str::to_owned)).or_else(|| {
                    v["errors"].as_array().map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                })
            })
            .unwrap_or_default();
        let reason = format!("chatwoot {what}: {} {}", status.as_u16(), truncate(&detail, 300));
        match status.as_u16() {
            408 | 429 => Err(CallError::Retry(reason, retry_after)),
            s if s >= 500 => Err(CallError::Retry(reason, retry_after)),
            s => Err(CallError::Refused(s, reason)),
        }
    }

    fn id_at(value: &Value, pointer: &str, what: &str) -> Result<i64, CallError> {
        value
            .pointer(pointer)
            .and_then(Value::as_i64)
            .ok_or_else(|| CallError::Retry(format!("chatwoot {what}: no {pointer} in the answer"), None))
    }

    /// Creates the contact of a Plinth account in the inbox, under `source_id`
    /// (`plinth-<user id>`) and `identifier` (the user id); its id. 422 (the identifier is
    /// taken: an earlier attempt created it, its answer lost) finds it instead.
    ///
    /// Errors: `CallError`.
    pub async fn ensure_contact(&self, identifier: &str, email: &str, source_id: &str) -> Result<i64, CallError> {
        let body = json!({
            "inbox_id": self.inbox_id, "name": email, "email": email,
            "identifier": identifier, "source_id": source_id,
        });
        let created = self.call(self.http.post(format!("{}/contacts", self.account_url)).json(&body), "contact").await;
        match created {
            Ok(v) => Self::id_at(&v, "/payload/contact/id", "contact")
                .or_else(|_| Self::id_at(&v, "/payload/id", "contact"))
                .or_else(|_| Self::id_at(&v, "/id", "contact")),
            Err(CallError::Refused(422, reason)) => {
                let mut url = url::Url::parse(&format!("{}/contacts/search", self.account_url))
                    .map_err(|e| CallError::Refused(422, format!("{reason} (and no search URL: {e})")))?;
                url.query_pairs_mut().append_pair("q", identifier);
                let found = self.call(self.http.get(url), "contact search").await?;
                found["payload"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["identifier"].as_str() == Some(identifier))
                    .and_then(|c| c["id"].as_i64())
                    .ok_or(CallError::Refused(422, reason))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the conversation of a ticket for `contact_id`; its id.
    ///
    /// Errors: `CallError`.
    pub async fn create_conversation(
        &self,
        contact_id: i64,
        source_id: &str,
        ticket_id: uuid::Uuid,
        subject: &str,
        category: &str,
        priority: &str,
    ) -> Result<i64, CallError> {
        let body = json!({
            "source_id": source_id, "inbox_id": self.inbox_id, "contact_id": contact_id, "status": "open",
            "additional_attributes": { "plinth_ticket_id": ticket_id.to_string(), "subject": subject },
            "custom_attributes": { "plinth_ticket_id": ticket_id.to_string(), "plinth_category": category,
                                   "plinth_priority": priority },
        });
        let v = self
            .call(self.http.post(format!("{}/conversations", self.account_url)).json(&body), "conversation")
            .await?;
        Self::id_at(&v, "/id", "conversation")
    }

    /// Adds a message to a conversation; the Chatwoot message's id.
    ///
    /// Errors: `CallError`.
    pub async fn create_message(&self, conversation_id: i64, m: &OutgoingMessage<'_>) -> Result<i64, CallError> {
        let body = json!({
            "content": m.content,
            "message_type": if m.incoming { "incoming" } else { "outgoing" },
            "private": m.private,
            "content_type": "text",
            "content_attributes": { "plinth_message_id": m.plinth_message_id.to_string() },
            "source_id": format!("{SOURCE_PREFIX}{}", m.plinth_message_id),
        });
        let url = format!("{}/conversations/{conversation_id}/messages", self.account_url);
        let v = self.call(self.http.post(url).json(&body), "message").await?;
        Self::id_at(&v, "/id", "message")
    }

    /// Sets a conversation's status (`open`, `pending`, `resolved`).
    ///
    /// Errors: `CallError`.
    pub async fn set_status(&self, conversation_id: i64, status: &str) -> Result<(), CallError> {
        let url = format!("{}/conversations/{conversation_id}/toggle_status", self.account_url);
        self.call(self.http.post(url).json(&json!({ "status": status })), "status").await.map(|_| ())
    }
}
