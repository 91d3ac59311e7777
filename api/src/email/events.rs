//! SendGrid's signed event webhook: the signature is ECDSA P-256 over SHA-256 of the
//! timestamp header followed by the raw body, base64 DER in
//! `X-Twilio-Email-Event-Webhook-Signature`. A verified batch goes to
//! `priv.email_provider_events` in one transaction.
use crate::{
    db::{RequestMeta, RequestTx, RuntimePool},
    principal::Principal,
};
use base64::Engine;
use p256::ecdsa::{signature::Verifier, Signature, VerifyingKey};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Why a delivery was refused (400, nothing written).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// Checks a delivery's signature and age; the events when it holds.
///
/// Errors: `Refused` with the reason.
pub fn verify(
    key: Option<&VerifyingKey>,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    tolerance_secs: i64,
    now: i64,
) -> Result<serde_json::Value, Refused> {
    let key = key.ok_or(Refused("the SendGrid event webhook is not configured"))?;
    let (signature, timestamp) = signature.zip(timestamp).ok_or(Refused("missing signature headers"))?;
    let at: i64 = timestamp.trim().parse().map_err(|_| Refused("malformed timestamp"))?;
    if (now - at).abs() > tolerance_secs {
        return Err(Refused("stale signature"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refused("malformed signature"))?;
    let sig = Signature::from_der(&der).map_err(|_| Refused("malformed signature"))?;
    let signed = [timestamp.trim().as_bytes(), body].concat();
    key.verify(&signed, &sig).map_err(|_| Refused("bad signature"))?;
    let events: serde_json::Value = serde_json::from_slice(body).map_err(|_| Refused("the body is not JSON"))?;
    if !events.is_array() {
        return Err(Refused("expected an array of events"));
    }
    Ok(events)
}

/// Applies verified events; how many changed something.
///
/// Errors: the database's.
pub async fn apply(pool: &RuntimePool, events: serde_json::Value, timeout_ms: u64) -> anyhow::Result<i32> {
    let tx = RequestTx::begin(pool, Principal::System, RequestMeta::internal("webhooks.sendgrid"), timeout_ms).await?;
    let changed = tx
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT priv.email_provider_events($1) AS changed",
            [events.into()],
        ))
        .await?
        .map(|r| r.try_get::<i32>("", "changed"))
        .transpose()?
        .unwrap_or(0);
    tx.commit_without_events().await?;
    Ok(changed)
}
