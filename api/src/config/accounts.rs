//! The accounts section: GDPR data exports and account deletion.
use super::{ConfigError, Vars};
use std::time::Duration;

/// Exports and deletions.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    /// `PLINTH_ACCOUNT_DELETION_GRACE_DAYS`: days between `deleteMyAccount` and the
    /// erasure, during which signing in cancels it (14).
    pub deletion_grace_days: i64,
    /// `PLINTH_DATA_EXPORT_TTL_DAYS`: days an export archive stays downloadable (7).
    pub export_ttl_days: i64,
    /// `PLINTH_ACCOUNT_SWEEP_SECS`: how often exports are built and expired ones and
    /// due deletions swept (10).
    pub sweep: Duration,
}

impl AccountsConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let grace: i64 = v.parse("PLINTH_ACCOUNT_DELETION_GRACE_DAYS", 14)?;
        if !(0..=365).contains(&grace) {
            return Err(ConfigError {
                var: "PLINTH_ACCOUNT_DELETION_GRACE_DAYS",
                message: format!("expected 0 to 365 days, got {grace}"),
            });
        }
        let ttl: i64 = v.parse("PLINTH_DATA_EXPORT_TTL_DAYS", 7)?;
        if !(1..=90).contains(&ttl) {
            return Err(ConfigError {
                var: "PLINTH_DATA_EXPORT_TTL_DAYS",
                message: format!("expected 1 to 90 days, got {ttl}"),
            });
        }
        Ok(AccountsConfig {
            deletion_grace_days: grace,
            export_ttl_days: ttl,
            sweep: Duration::from_secs(v.parse("PLINTH_ACCOUNT_SWEEP_SECS", 10)?.max(1)),
        })
    }
}
