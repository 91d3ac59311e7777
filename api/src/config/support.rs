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
}

impl SupportConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        Ok(SupportConfig {
            max_open_tickets: v.parse::<i64>("PLINTH_SUPPORT_MAX_OPEN_TICKETS", 5)?.max(1),
            messages_per_hour: v.parse::<i64>("PLINTH_SUPPORT_MESSAGES_PER_HOUR", 30)?.max(1),
            max_attachment_bytes: v
                .parse::<i64>("PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)?
                .clamp(1, 25 * 1024 * 1024),
        })
    }
}
