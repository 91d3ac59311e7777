//! Support's section: a user's limits, attachments' size.
use super::{ConfigError, Vars};

/// What a user may do in support.
#[derive(Clone, Debug)]
pub struct SupportConfig {
    /// `PLINTH_SUPPORT_MAX_OPEN_TICKETS`: open or pending tickets a user may have (5).
    pub max_open_tickets: i64,
    /// `PLINTH_SUPPORT_MESSAGES_PER_HOUR`: messages a user may write per hour (30).
    pub messages_per_hour: i64,
    /// `PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES`: the largest ticket attachment (10 MiB; at
    /// most 25 MiB, the table's bound).
    pub max_attachment_bytes: i64,
    /// `PLINTH_SUPPORT_REPLY_MAIL_DELAY_SECS`: a staff reply is mailed to a user who has
    /// not read its in-app notification after this long (300 s).
    pub reply_mail_delay: std::time::Duration,
    /// `PLINTH_SUPPORT_REPLY_MAIL_SWEEP_SECS`: how often the due reply mails are looked
    /// for (30 s).
    pub reply_mail_sweep: std::time::Duration,
    /// `PLINTH_CHAT_IDENTITY_SECRET`: the key of the chat widget's identity-verification
    /// hash (HMAC-SHA256 of the user id); no hash when unset.
    pub chat_identity_secret: Option<secrecy::SecretString>,
    /// `PLINTH_SUPPORT_TRIAL_SWEEP_MS`: how often trial extensions staff asked for are
    /// looked for and sent to Stripe (1000).
    pub trial_sweep: std::time::Duration,
}

impl SupportConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        Ok(SupportConfig {
            max_open_tickets: v.parse::<i64>("PLINTH_SUPPORT_MAX_OPEN_TICKETS", 5)?.max(1),
            messages_per_hour: v.parse::<i64>("PLINTH_SUPPORT_MESSAGES_PER_HOUR", 30)?.max(1),
            max_attachment_bytes: v
                .parse::<i64>("PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)?
                .clamp(1, 25 * 1024 * 1024),
            reply_mail_delay: std::time::Duration::from_secs(v.parse("PLINTH_SUPPORT_REPLY_MAIL_DELAY_SECS", 300u64)?),
            reply_mail_sweep: std::time::Duration::from_secs(
                v.parse("PLINTH_SUPPORT_REPLY_MAIL_SWEEP_SECS", 30u64)?.max(1),
            ),
            chat_identity_secret: v.secret("PLINTH_CHAT_IDENTITY_SECRET"),
            trial_sweep: std::time::Duration::from_millis(v.parse("PLINTH_SUPPORT_TRIAL_SWEEP_MS", 1000u64)?.max(10)),
        })
    }
}
