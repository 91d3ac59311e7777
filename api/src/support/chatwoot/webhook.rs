//! `POST /webhooks/chatwoot`: Chatwoot agents' replies and private notes, into the
//! ticket their conversation mirrors.
//!
//! Signature: Chatwoot signs a webhook that has a secret (its `Webhooks::Trigger`):
//! `X-Chatwoot-Timestamp: <unix seconds>` and `X-Chatwoot-Signature: sha256=<hex
//! HMAC-SHA256 of "<timestamp>.<raw body>" under the secret>` (and a delivery id,
//! `X-Chatwoot-Delivery`). Plinth checks it on the raw bytes, in constant time, against
//! every configured secret, and refuses a timestamp outside the tolerance (a replay). A
//! Chatwoot too old to sign its webhooks cannot be bridged: there is no unsigned mode.
//!
//! Events: only `message_created` of the configured account and inbox, written by an
//! agent (`message_type` `outgoing`), is taken in: a public one as a staff reply (the
//! user is notified, live and by a delayed e-mail, as for a reply written in Plinth), a
//! `private` one as an internal note. Incoming messages are the users' own, which came
//! from Plinth; a message carrying Plinth's `source_id` (`plinth:<id>`) or
//! `content_attributes.plinth_message_id` is the echo of one Plinth sent. Each Chatwoot
//! message id is taken in once, whatever the redeliveries.
use super::client::SOURCE_PREFIX;
use crate::{
    billing::signature::timestamped_mac,
    db::{RequestMeta, RequestTx, RuntimePool},
    email::templates,
    events::{Event, EventBus},
    principal::Principal,
    support::{domain::BODY_MAX, service::ticket_link},
};
use hmac::Mac;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;
use uuid::Uuid;

/// Why a delivery was refused (nothing written).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No secret configured, no or a bad signature, or a stale timestamp: 401.
    Unauthorized(&'static str),
    /// Signed, but not a Chatwoot event: 400.
    Malformed(&'static str),
}

/// Verifies a delivery's signature over `body` at `now` (unix seconds).
///
/// Errors: `Refused::Unauthorized`.
pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    secrets: &[String],
    tolerance_secs: i64,
    now: i64,
) -> Result<(), Refused> {
    if secrets.is_empty() {
        return Err(Refused::Unauthorized("the Chatwoot webhook is not configured (PLINTH_CHATWOOT_WEBHOOK_SECRET)"));
    }
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(Refused::Unauthorized("missing X-Chatwoot-Signature or X-Chatwoot-Timestamp"));
    };
    let t = timestamp.trim();
    let at: i64 = t.parse().map_err(|_| Refused::Unauthorized("malformed X-Chatwoot-Timestamp"))?;
    let hex_sig = signature.trim();
    let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
    let sig = hex::decode(hex_sig).map_err(|_| Refused::Unauthorized("malformed X-Chatwoot-Signature"))?;
    if (now - at).abs() > tolerance_secs {
        return Err(Refused::Unauthorized("the signature's timestamp is outside the tolerance"));
    }
    for secret in secrets {
        // verify_slice compares in constant time.
        if timestamped_mac(secret, t, body).verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(Refused::Unauthorized("no signature matches"))
}

/// Signs `body` at `t` as Chatwoot does: the value of `X-Chatwoot-Signature` (tests,
/// local tooling).
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    format!("sha256={}", hex::encode(timestamped_mac(secret, &t.to_string(), body).finalize().into_bytes()))
}

/// An agent's message to take in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentMessage {
    /// The conversation (Chatwoot's id, as in its API).
    pub conversation_id: i64,
    /// The Chatwoot message id (idempotency).
    pub message_id: i64,
    /// The agent's name, as the user will see it.
    pub author: String,
    /// The text (Markdown), cleaned and bounded.
    pub body: String,
    /// A private note (an internal note in Plinth).
    pub private: bool,
}

/// What a verified delivery asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A message to take in.
    Message(AgentMessage),
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// Longest author name kept.
const AUTHOR_MAX: usize = 60;

/// `text` without control characters (but line breaks and tabs), trimmed, at most `max`
/// characters.
fn clean(text: &str, max: usize) -> String {
    let kept: String = text.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect();
    kept.trim().chars().take(max).collect::<String>().trim_end().to_owned()
}

/// Reads a verified delivery for the configured account and inbox.
///
/// Errors: `Refused::Malformed` (not JSON, or a message event without its ids).
pub fn parse(body: &[u8], account_id: i64, inbox_id: i64) -> Result<Parsed, Refused> {
    let v: Value = serde_json::from_slice(body).map_err(|_| Refused::Malformed("not a JSON object"))?;
    let Some(event) = v["event"].as_str() else { return Err(Refused::Malformed("no event")) };
    if event != "message_created" {
        return Ok(Parsed::Ignored("not a message_created event"));
    }
    let id_of = |p: &str| v.pointer(p).and_then(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| s.parse().ok())));
    if id_of("/account/id").is_some_and(|a| a != account_id) {
        return Ok(Parsed::Ignored("another Chatwoot account"));
    }
    let inbox = id_of("/inbox/id").or_else(|| id_of("/conversation/inbox_id"));
    if inbox.is_some_and(|i| i != inbox_id) {
        return Ok(Parsed::Ignored("another inbox"));
    }
    // A string in webhooks (`Message#webhook_data`); some versions send the enum's number.
    let kind = match &v["message_type"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(0) => "incoming".into(),
            Some(1) => "outgoing".into(),
            _ => "other".into(),
        },
        _ => return Err(Refused::Malformed("no message_type")),
    };
    match kind.as_str() {
        "outgoing" => {}
        "incoming" => return Ok(Parsed::Ignored("a user's message: it came from Plinth")),
        _ => return Ok(Parsed::Ignored("neither a user's nor an agent's message")),
    }
    let echo = v["source_id"].as_str().is_some_and(|s| s.starts_with(SOURCE_PREFIX))
        || !v.pointer("/content_attributes/plinth_message_id").unwrap_or(&Value::Null).is_null();
    if echo {
        return Ok(Parsed::Ignored("the echo of a message Plinth sent"));
    }
    let message_id = id_of("/id").ok_or(Refused::Malformed("no message id"))?;
    let conversation_id = id_of("/conversation/id").ok_or(Refused::Malformed("no conversation.id"))?;
    let body = clean(v["content"].as_str().unwrap_or_default(), BODY_MAX);
    if body.is_empty() {
        return Ok(Parsed::Ignored("no text (an attachment alone is not copied)"));
    }
    let name = ["/sender/available_name", "/sender/name"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str).map(|n| clean(n, AUTHOR_MAX)).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "Support".to_owned());
    Ok(Parsed::Message(AgentMessage {
        conversation_id,
        message_id,
        author: name,
        body,
        private: v["private"].as_bool().unwrap_or(false),
    }))
}

/// What became of a message taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Added to its ticket now.
    Added,
    /// Taken in before (a redelivery, or the echo of Plinth's own message).
    Duplicate,
    /// Its conversation mirrors no ticket (deleted, or not Plinth's).
    UnknownConversation,
}

/// Takes `m` into its ticket, as the system role through `priv.chatwoot_inbound_message`
/// (and `priv.chatwoot_notify_reply` for a public reply: the in-app notification, and the
/// e-mail due in `reply_mail_delay_secs` unless it is read by then), then tells the live
/// subscriptions.
///
/// Errors: the database's (the caller answers 500; a Chatwoot that retries redelivers).
pub async fn apply(
    pool: &RuntimePool,
    bus: &EventBus,
    statement_timeout_ms: u64,
    reply_mail_delay_secs: i64,
    m: &AgentMessage,
) -> anyhow::Result<Applied> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("chatwoot-webhook"), statement_timeout_ms)
        .await?;
    let row = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, ticket_id, message_id, subject, fresh
               FROM priv.chatwoot_inbound_message($1, $2, $3, $4, $5, $6)",
            [
                m.conversation_id.into(),
                m.message_id.into(),
                Uuid::now_v7().into(),
                m.author.clone().into(),
                m.body.clone().into(),
                m.private.into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        tx.commit_without_events().await?;
        return Ok(Applied::UnknownConversation);
    };
    let (user_id, ticket_id): (Uuid, Uuid) = (row.try_get("", "user_id")?, row.try_get("", "ticket_id")?);
    if !row.try_get::<bool>("", "fresh")? {
        tx.commit_without_events().await?;
        return Ok(Applied::Duplicate);
    }
    let message_id: Uuid = row.try_get("", "message_id")?;
    if !m.private {
        let subject: String = row.try_get("", "subject")?;
        let note = templates::support_reply(&subject, &m.body, &ticket_link(ticket_id));
        let notification_id = Uuid::now_v7();
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.chatwoot_notify_reply($1, $2, $3, $4, $5, $6, $7::double precision)",
            [
                user_id.into(),
                message_id.into(),
                notification_id.into(),
                note.subject.into(),
                note.body.into(),
                note.data.into(),
                (reply_mail_delay_secs as f64).into(),
            ],
        ))
        .await?;
        tx.emit(Event::NotificationAdded { user_id, notification_id });
    }
    tx.emit(Event::TicketChanged { user_id, ticket_id, message_id: Some(message_id), internal: m.private });
    tx.commit(bus).await?;
    Ok(Applied::Added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn signatures_are_checked_on_the_raw_body_with_a_timestamp_window() {
        let body = br#"{"event":"message_created"}"#;
        let secrets = ["old".to_owned(), "new".to_owned()];
        let sig = sign(body, "new", NOW);
        let t = NOW.to_string();
        assert_eq!(verify(body, Some(&sig), Some(&t), &secrets, 300, NOW + 299), Ok(()));
        let bare = sig.trim_start_matches("sha256=");
        assert_eq!(verify(body, Some(bare), Some(&t), &secrets, 300, NOW), Ok(()));
        let unauthorized = |r: Result<(), Refused>| matches!(r, Err(Refused::Unauthorized(_)));
        assert!(unauthorized(verify(b"{}", Some(&sig), Some(&t), &secrets, 300, NOW)), "another body");
        assert!(unauthorized(verify(body, Some(&sig), Some(&(NOW + 1).to_string()), &secrets, 300, NOW)));
        assert!(unauthorized(verify(body, Some(&sig), Some(&t), &secrets, 300, NOW + 301)), "stale");
        assert!(unauthorized(verify(body, Some(&sig), Some(&t), &["other".to_owned()], 300, NOW)));
        assert!(unauthorized(verify(body, Some(&sig), None, &secrets, 300, NOW)));
        assert!(unauthorized(verify(body, Some("sha256=zz"), Some(&t), &secrets, 300, NOW)));
        assert!(unauthorized(verify(body, Some(&sig), Some(&t), &[], 300, NOW)), "no secret, no webhook");
    }

    fn event(extra: Value) -> Vec<u8> {
        let mut v = json!({
            "event": "message_created", "id": 41, "content": "Try **again**", "message_type": "outgoing",
            "private": false, "source_id": null, "content_attributes": {},
            "sender": { "id": 2, "name": "Ada Agent", "type": "user" },
            "conversation": { "id": 7, "inbox_id": 3 }, "account": { "id": 1 }, "inbox": { "id": 3 },
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn agent_messages_are_read_and_everything_else_ignored() {
        let m = AgentMessage {
            conversation_id: 7,
            message_id: 41,
            author: "Ada Agent".into(),
            body: "Try **again**".into(),
            private: false,
        };
        assert_eq!(parse(&event(json!({})), 1, 3), Ok(Parsed::Message(m.clone())));
        let note = parse(&event(json!({ "private": true, "message_type": 1 })), 1, 3);
        assert_eq!(note, Ok(Parsed::Message(AgentMessage { private: true, ..m })));
        for (extra, why) in [
            (json!({ "event": "conversation_created" }), "not a message_created event"),
            (json!({ "message_type": "incoming" }), "a user's message: it came from Plinth"),
            (json!({ "message_type": "activity" }), "neither a user's nor an agent's message"),
            (json!({ "source_id": "plinth:0190" }), "the echo of a message Plinth sent"),
            (json!({ "content_attributes": { "plinth_message_id": "x" } }), "the echo of a message Plinth sent"),
            (json!({ "account": { "id": 2 } }), "another Chatwoot account"),
            (json!({ "inbox": { "id": 4 } }), "another inbox"),
            (json!({ "content": " \u{7} " }), "no text (an attachment alone is not copied)"),
        ] {
            assert_eq!(parse(&event(extra), 1, 3), Ok(Parsed::Ignored(why)));
        }
        assert!(matches!(parse(b"[1]", 1, 3), Err(Refused::Malformed(_))));
        assert!(matches!(parse(&event(json!({ "conversation": {} })), 1, 3), Err(Refused::Malformed(_))));
        let long = parse(&event(json!({ "content": "x".repeat(BODY_MAX + 5), "sender": null })), 1, 3);
        let Ok(Parsed::Message(long)) = long else { panic!("{long:?}") };
        assert_eq!((long.body.chars().count(), long.author.as_str()), (BODY_MAX, "Support"));
    }
}
