//! The webhooks: Stripe's, SendGrid's and Chatwoot's (below).
//!
//! POST /webhooks/stripe: Stripe's events. 400 (nothing written) for a bad or stale
//! signature or a body that is no Stripe event (a NUL anywhere, no id); 200 once the
//! event is durably recorded, a redelivery included, and for a signed event whose object
//! is malformed (recorded with a note, ignored: it would fail on every redelivery);
//! 500 only for our own failures, so Stripe delivers again.
use super::HttpState;
use crate::billing::webhook::{WebhookError, WebhookOutcome};
use poem::{handler, http::StatusCode, web::Data, Body, IntoResponse, Request, Response};
use std::sync::Arc;

/// Largest event body accepted.
const MAX_EVENT_BYTES: usize = 512 * 1024;

/// Receives one Stripe event.
#[handler]
pub async fn stripe(req: &Request, Data(state): Data<&Arc<HttpState>>, body: Body) -> Response {
    let Ok(bytes) = body.into_bytes_limit(MAX_EVENT_BYTES).await else {
        return (StatusCode::BAD_REQUEST, "unreadable or oversized body").into_response();
    };
    let handled = state.billing.handle_webhook(&bytes, req.header("stripe-signature")).await;
    // Read again only for the metrics, once the signature proved the body is Stripe's.
    let event = || serde_json::from_slice::<EventHead>(&bytes).ok();
    match handled {
        Ok(outcome) => {
            let text = match outcome {
                WebhookOutcome::Applied => "applied",
                WebhookOutcome::Duplicate => "duplicate",
                WebhookOutcome::Ignored => "ignored",
            };
            let head = event();
            let lag = head.as_ref().filter(|_| outcome != WebhookOutcome::Duplicate).map(|h| {
                let secs = chrono::Utc::now().timestamp().saturating_sub(h.created).max(0);
                std::time::Duration::from_secs(secs as u64)
            });
            state.metrics.stripe_webhook(Some(head.as_ref().map_or("", |h| h.kind.as_str())), text, lag);
            (StatusCode::OK, text).into_response()
        }
        Err(WebhookError::Rejected(why)) => {
            tracing::warn!(why, "stripe webhook refused");
            state.metrics.stripe_webhook(None, "rejected", None);
            (StatusCode::BAD_REQUEST, why).into_response()
        }
        Err(WebhookError::Internal(e)) => {
            tracing::error!(error = format!("{e:#}"), "stripe webhook failed; Stripe will retry");
            state.metrics.stripe_webhook(Some(event().as_ref().map_or("", |h| h.kind.as_str())), "error", None);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// What the metrics read of a verified Stripe event.
#[derive(serde::Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: i64,
}

/// `POST /webhooks/sendgrid`: SendGrid's signed event webhook. 400 (nothing written) for
/// a bad, stale or missing signature or a body that is not a JSON array; 200 once the
/// events are applied; 500 for our own failures (SendGrid retries).
#[handler]
pub async fn sendgrid(req: &Request, Data(state): Data<&Arc<HttpState>>, body: Body) -> Response {
    let Ok(bytes) = body.into_bytes_limit(MAX_EVENT_BYTES * 8).await else {
        return (StatusCode::BAD_REQUEST, "unreadable or oversized body").into_response();
    };
    let mail = &state.config.mail;
    let verified = crate::email::events::verify(
        mail.sendgrid_webhook_key.as_ref(),
        req.header("x-twilio-email-event-webhook-signature"),
        req.header("x-twilio-email-event-webhook-timestamp"),
        &bytes,
        mail.sendgrid_webhook_tolerance_secs,
        chrono::Utc::now().timestamp(),
    );
    let events = match verified {
        Ok(events) => events,
        Err(crate::email::events::Refused(why)) => {
            tracing::warn!(why, "sendgrid webhook refused");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    match crate::email::events::apply(&state.pool, events, state.config.database.statement_timeout_ms).await {
        Ok(changed) => (StatusCode::OK, format!("applied {changed}")).into_response(),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sendgrid webhook failed; SendGrid will retry");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /webhooks/chatwoot`: Chatwoot's signed `message_created` deliveries (see
/// `support::chatwoot::webhook`). 401 for a missing, bad or stale signature, or when the
/// bridge or its secret is not configured; 400 for a signed body that is not a Chatwoot
/// message event; nothing is written for either. 200 once the message is taken in
/// (`applied`), for a redelivery (`duplicate`) and for what the bridge does not take in
/// (`ignored: ...`); 500 for our own failures (a Chatwoot that retries redelivers).
#[handler]
pub async fn chatwoot(req: &Request, Data(state): Data<&Arc<HttpState>>, body: Body) -> Response {
    use crate::support::chatwoot::webhook::{self, Applied, Parsed, Refused};
    use secrecy::ExposeSecret;
    let Ok(bytes) = body.into_bytes_limit(MAX_EVENT_BYTES).await else {
        return (StatusCode::BAD_REQUEST, "unreadable or oversized body").into_response();
    };
    let Some(bridge) = &state.config.chatwoot else {
        return (StatusCode::UNAUTHORIZED, "the Chatwoot bridge is not configured (PLINTH_CHATWOOT_URL)")
            .into_response();
    };
    let secrets: Vec<String> = bridge.webhook_secrets.iter().map(|s| s.expose_secret().to_owned()).collect();
    let checked = webhook::verify(
        &bytes,
        req.header("x-chatwoot-signature"),
        req.header("x-chatwoot-timestamp"),
        &secrets,
        bridge.webhook_tolerance_secs,
        chrono::Utc::now().timestamp(),
    )
    .and_then(|()| webhook::parse(&bytes, bridge.account_id, bridge.inbox_id));
    let message = match checked {
        Ok(Parsed::Message(m)) => m,
        Ok(Parsed::Ignored(why)) => return (StatusCode::OK, format!("ignored: {why}")).into_response(),
        Err(Refused::Unauthorized(why)) => {
            tracing::warn!(why, "chatwoot webhook refused");
            return (StatusCode::UNAUTHORIZED, why).into_response();
        }
        Err(Refused::Malformed(why)) => {
            tracing::warn!(why, "chatwoot webhook refused");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let delivery = req.header("x-chatwoot-delivery").unwrap_or_default().chars().take(64).collect::<String>();
    let delay = state.config.support.reply_mail_delay.as_secs() as i64;
    let timeout = state.config.database.statement_timeout_ms;
    match webhook::apply(&state.pool, &state.bus, timeout, delay, &message).await {
        Ok(applied) => {
            tracing::info!(
                delivery,
                chatwoot_message_id = message.message_id,
                conversation_id = message.conversation_id,
                outcome = ?applied,
                "chatwoot webhook"
            );
            let text = match applied {
                Applied::Added => "applied",
                Applied::Duplicate => "duplicate",
                Applied::UnknownConversation => "ignored: a conversation that mirrors no ticket",
            };
            (StatusCode::OK, text).into_response()
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), delivery, "chatwoot webhook failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
