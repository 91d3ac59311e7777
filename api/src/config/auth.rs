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
    /// `PLINTH_TOKEN_KEY_ID`: the root key id written in every token signed with
    /// `PLINTH_TOKEN_KEY` (0). A token without one counts as key id 0.
    pub token_key_id: u32,
    /// `PLINTH_TOKEN_PREVIOUS_KEYS`: during a key rotation, the keys tokens signed
    /// before it are still verified with, as `<id>:ed25519/<public key hex>` separated
    /// by commas (none). Remove a key once the tokens it signed are no longer wanted.
    pub token_previous_keys: Option<String>,
    /// `PLINTH_ACCESS_TOKEN_TTL_SECS`: 1 to 900 (900).
    pub access_token_ttl: Duration,
    /// `PLINTH_REFRESH_TOKEN_TTL_DAYS`: session lifetime (30).
    pub refresh_token_ttl: Duration,
    /// `PLINTH_LOGIN_LIMIT_PER_EMAIL`: failed sign-ins per (e-mail, client) per window
    /// (10); past it that client is refused for that address until the window ends.
    /// Each failure before it delays the next answer to that client (doubling from
    /// 50 ms, at most 2 s).
    pub login_limit_per_email: u32,
    /// `PLINTH_LOGIN_CEILING_PER_EMAIL`: failed sign-ins per e-mail from all clients per
    /// window (1000); past it every client is refused for that address. Below it a
    /// correct password is never refused because of other clients' failures.
    pub login_ceiling_per_email: u32,
    /// `PLINTH_LOGIN_LIMIT_PER_IP`: sign-in attempts per IP per window (100).
    pub login_limit_per_ip: u32,
    /// `PLINTH_SIGNUP_LIMIT_PER_IP`: registrations (each `register` field, aliases
    /// included) per IP per signup window (10).
    pub signup_limit_per_ip: u32,
    /// `PLINTH_SIGNUP_LIMIT_GLOBAL`: registrations from everyone per signup window (1000).
    pub signup_limit_global: u32,
    /// `PLINTH_SIGNUP_WINDOW_SECS`: the registration throttling window (3600).
    pub signup_window: Duration,
    /// `PLINTH_ARGON2_CONCURRENCY`: argon2 hashes computed at once (2); the others wait,
    /// so a burst cannot take more than this many times the argon2 memory.
    pub argon2_concurrency: usize,
    /// `PLINTH_REFRESH_REUSE_GRACE_SECS`: 0 to 60 (5). A refresh token presented again
    /// within this many seconds of its rotation (two tabs, a retry) gets the same
    /// successor pair; later, a reuse revokes the session.
    pub refresh_reuse_grace: Duration,
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
        let grace: u64 = v.parse("PLINTH_REFRESH_REUSE_GRACE_SECS", 5)?;
        if grace > 60 {
            return Err(ConfigError {
                var: "PLINTH_REFRESH_REUSE_GRACE_SECS",
                message: format!("must be between 0 and 60 seconds, got {grace}"),
            });
        }
        let argon2_concurrency: usize = v.parse("PLINTH_ARGON2_CONCURRENCY", 2)?;
        if argon2_concurrency == 0 {
            return Err(ConfigError { var: "PLINTH_ARGON2_CONCURRENCY", message: "must be at least 1".into() });
        }
        Ok(AuthConfig {
            token_key: v.secret("PLINTH_TOKEN_KEY"),
            token_key_id: v.parse("PLINTH_TOKEN_KEY_ID", 0)?,
            token_previous_keys: v.get("PLINTH_TOKEN_PREVIOUS_KEYS").filter(|s| !s.trim().is_empty()),
            access_token_ttl: Duration::from_secs(access_ttl),
            refresh_token_ttl: Duration::from_secs(86_400 * v.parse::<u64>("PLINTH_REFRESH_TOKEN_TTL_DAYS", 30)?),
            login_limit_per_email: v.parse("PLINTH_LOGIN_LIMIT_PER_EMAIL", 10)?,
            login_ceiling_per_email: v.parse("PLINTH_LOGIN_CEILING_PER_EMAIL", 1000)?,
            login_limit_per_ip: v.parse("PLINTH_LOGIN_LIMIT_PER_IP", 100)?,
            signup_limit_per_ip: v.parse("PLINTH_SIGNUP_LIMIT_PER_IP", 10)?,
            signup_limit_global: v.parse("PLINTH_SIGNUP_LIMIT_GLOBAL", 1000)?,
            signup_window: Duration::from_secs(v.parse("PLINTH_SIGNUP_WINDOW_SECS", 3600)?),
            argon2_concurrency,
            refresh_reuse_grace: Duration::from_secs(grace),
            login_window: Duration::from_secs(v.parse("PLINTH_LOGIN_WINDOW_SECS", 900)?),
            argon2_memory_kib: v.parse("PLINTH_ARGON2_MEMORY_KIB", 19_456)?,
            policies_dir: v.get("PLINTH_POLICIES_DIR").map(PathBuf::from),
        })
    }
}
