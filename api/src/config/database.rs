//! The database section.
use super::{ConfigError, Vars};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;

/// Where the database is and how the runtime uses it.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: the owner connection (migrations). None: the embedded cluster.
    pub url: Option<SecretString>,
    /// `PLINTH_APP_DATABASE_URL`: the runtime connection; derived from `DATABASE_URL`
    /// with the `plinth_app` role when absent.
    pub app_url: Option<SecretString>,
    /// `PLINTH_APP_DB_PASSWORD`: set on the `plinth_app` role at migration.
    pub app_password: Option<SecretString>,
    /// `PLINTH_DB_POOL_SIZE`: runtime pool size (8).
    pub pool_size: u32,
    /// `PLINTH_STATEMENT_TIMEOUT_MS`: per transaction (5000).
    pub statement_timeout_ms: u64,
    /// `PLINTH_DB_ACQUIRE_TIMEOUT_MS`: longest wait for a pooled connection (2000);
    /// past it a request answers SERVICE_UNAVAILABLE.
    pub acquire_timeout_ms: u64,
    /// `PLINTH_PG_BIN_DIR`: the PostgreSQL server binaries for the embedded cluster;
    /// None: found on the machine.
    pub pg_bin_dir: Option<PathBuf>,
}

impl DatabaseConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let url = v.secret("DATABASE_URL");
        if let Some(u) = &url {
            check_postgres_url("DATABASE_URL", u.expose_secret())?;
        }
        let app_url = v.secret("PLINTH_APP_DATABASE_URL");
        if let Some(u) = &app_url {
            check_postgres_url("PLINTH_APP_DATABASE_URL", u.expose_secret())?;
        }
        Ok(DatabaseConfig {
            url,
            app_url,
            app_password: v.secret("PLINTH_APP_DB_PASSWORD"),
            pool_size: v.parse("PLINTH_DB_POOL_SIZE", 8)?,
            statement_timeout_ms: v.parse("PLINTH_STATEMENT_TIMEOUT_MS", 5_000)?,
            acquire_timeout_ms: v.parse("PLINTH_DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            pg_bin_dir: v.get("PLINTH_PG_BIN_DIR").map(PathBuf::from),
        })
    }
}

fn check_postgres_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => Ok(()),
        // The value is a secret: the message names the variable, never echoes it.
        _ => Err(ConfigError { var, message: "expected a postgres:// URL".into() }),
    }
}
