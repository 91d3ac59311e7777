//! The authentication section: tokens, sessions, sign-in throttling, passwords.
use super::{ConfigError, Vars};
use secrecy::SecretString;
use std::{path::PathBuf, time::Duration};

/// Tokens, sessions and sign-in.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `PLINTH_TOKEN_KEY`: the Ed25519 root key (`ed25519-private/<hex>`); None: the
    /// data dir's, generated on first start (development only).
    pub token_key: Option<SecretString>,
    /// `PLINTH_ACCESS_TOKEN_TTL_SECS`: 1 to 900 (900).
    pub access_token_ttl: Duration,
    /// `PLINTH_REFRESH_TOKEN_TTL_DAYS`: session lifetime (30).
    pub refresh_token_ttl: Duration,
    /// `PLINTH_LOGIN_LIMIT_PER_EMAIL`: sign-in attempts per e-mail per window (10).
    pub login_limit_per_email: u32,
    /// `PLINTH_LOGIN_LIMIT_PER_IP`: sign-in attempts per IP per window (100).
    pub login_limit_per_ip: u32,
    /// `PLINTH_LOGIN_WINDOW_SECS`: the sign-in throttling window (900).
    pub login_window: Duration,
    /// `PLINTH_ARGON2_MEMORY_KIB`: argon2id memory cost (19456).
    pub argon2_memory_kib: u32,
    /// `PLINTH_POLICIES_DIR`: biscuit policies (`*.datalog`) instead of the built-in ones.
    pub policies_dir: Option<PathBuf>,
}

impl AuthConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let access_ttl: u64 = v.parse("PLINTH_ACCESS_TOKEN_TTL_SECS", 900)?;
        if !(1..=900).contains(&access_ttl) {
            return Err(ConfigError {
                var: "PLINTH_ACCESS_TOKEN_TTL_SECS",
                message: format!("must be between 1 and 900 seconds, got {access_ttl}"),
            });
        }
        Ok(AuthConfig {
            token_key: v.secret("PLINTH_TOKEN_KEY"),
            access_token_ttl: Duration::from_secs(access_ttl),
            refresh_token_ttl: Duration::from_secs(86_400 * v.parse::<u64>("PLINTH_REFRESH_TOKEN_TTL_DAYS", 30)?),
            login_limit_per_email: v.parse("PLINTH_LOGIN_LIMIT_PER_EMAIL", 10)?,
            login_limit_per_ip: v.parse("PLINTH_LOGIN_LIMIT_PER_IP", 100)?,
            login_window: Duration::from_secs(v.parse("PLINTH_LOGIN_WINDOW_SECS", 900)?),
            argon2_memory_kib: v.parse("PLINTH_ARGON2_MEMORY_KIB", 19_456)?,
            policies_dir: v.get("PLINTH_POLICIES_DIR").map(PathBuf::from),
        })
    }
}
