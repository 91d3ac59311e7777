//! Typed configuration from the environment, with an embedded default for every
//! external service. A bad value stops the start with one line naming the variable.
use secrecy::{ExposeSecret, SecretString};
use std::{collections::HashMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// Where the process runs; production refuses every embedded default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// A laptop or a test: embedded defaults allowed.
    Development,
    /// Real users' data: every external service must be configured.
    Production,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// A configuration value that could not be used; its Display is the one line printed.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Everything the server needs to start. Secrets are `SecretString`, so neither Debug
/// nor a log line can print them.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PLINTH_ENV`.
    pub env: Environment,
    /// `PLINTH_ADDR`: where the HTTP server listens.
    pub addr: SocketAddr,
    /// `PLINTH_DATA_DIR`: embedded database, generated keys, local files.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: the owner connection (migrations). None: the embedded cluster.
    pub database_url: Option<SecretString>,
    /// `PLINTH_APP_DATABASE_URL`: the runtime connection; derived from `DATABASE_URL`
    /// with the `plinth_app` role when absent.
    pub app_database_url: Option<SecretString>,
    /// `PLINTH_APP_DB_PASSWORD`: set on the `plinth_app` role at migration.
    pub app_db_password: Option<SecretString>,
    /// `REDIS_URL`. None: in-process rate limiting and events.
    pub redis_url: Option<SecretString>,
    /// `PLINTH_TOKEN_KEY`: the Ed25519 root key (`ed25519-private/<hex>`).
    pub token_key: Option<SecretString>,
    /// `PLINTH_ACCESS_TOKEN_TTL_SECS`: at most 900.
    pub access_token_ttl: Duration,
    /// `PLINTH_REFRESH_TOKEN_TTL_DAYS`.
    pub refresh_token_ttl: Duration,
    /// `PLINTH_PUBLIC_URL`: base of links in e-mails and of local storage URLs;
    /// `http://<bound address>` when unset.
    pub public_url: Option<String>,
    /// `PLINTH_S3_*`: the object store; None stores files under the data dir.
    pub s3: Option<crate::storage::S3Settings>,
    /// `PLINTH_CREDENTIALS_KEY`: 64 hex digits sealing marketplace credentials.
    pub credentials_key: Option<SecretString>,
    /// `PLINTH_MAX_UPLOAD_BYTES`: largest photo accepted.
    pub max_upload_bytes: u64,
    /// `PLINTH_JOB_LEASE_SECS`: how long a worker holds a job between reports.
    pub job_lease: Duration,
    /// `PLINTH_JOB_SWEEP_SECS`: how often expired leases are returned to the queue.
    pub job_sweep: Duration,
    /// `PLINTH_STRIPE_SECRET_KEY`: None disables checkout and the portal.
    pub stripe_secret_key: Option<SecretString>,
    /// `PLINTH_STRIPE_API_BASE`: Stripe's API (a local server in tests).
    pub stripe_api_base: String,
    /// `PLINTH_STRIPE_WEBHOOK_SECRET`: comma-separated, two during a rotation.
    pub stripe_webhook_secrets: Vec<SecretString>,
    /// `PLINTH_STRIPE_WEBHOOK_TOLERANCE_SECS`: accepted age of a signature.
    pub stripe_webhook_tolerance_secs: i64,
    /// `PLINTH_BILLING_SUCCESS_URL`, `PLINTH_BILLING_CANCEL_URL`, `PLINTH_BILLING_RETURN_URL`:
    /// where Checkout and the portal send users back (public URL based by default).
    pub billing_success_url: Option<String>,
    /// See `billing_success_url`.
    pub billing_cancel_url: Option<String>,
    /// See `billing_success_url`.
    pub billing_return_url: Option<String>,
    /// `PLINTH_BILLING_GRACE_DAYS`: days a past-due account keeps working.
    pub billing_grace_days: i64,
    /// `PLINTH_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `PLINTH_DB_POOL_SIZE`.
    pub db_pool_size: u32,
    /// `PLINTH_STATEMENT_TIMEOUT_MS`: per request transaction.
    pub statement_timeout_ms: u64,
    /// `PLINTH_MAX_BODY_BYTES`: request body size limit.
    pub max_body_bytes: usize,
    /// `PLINTH_GRAPHQL_INTROSPECTION`: allow schema introspection.
    pub introspection: bool,
    /// `PLINTH_LOGIN_LIMIT_PER_EMAIL`: sign-in attempts per e-mail per window.
    pub login_limit_per_email: u32,
    /// `PLINTH_LOGIN_LIMIT_PER_IP`: sign-in attempts per IP per window.
    pub login_limit_per_ip: u32,
    /// `PLINTH_LOGIN_WINDOW_SECS`: the sign-in throttling window.
    pub login_window: Duration,
    /// `PLINTH_CLIENT_IP_HEADER`: header set by a trusted proxy (e.g. `Fly-Client-IP`).
    pub client_ip_header: Option<String>,
    /// `PLINTH_ARGON2_MEMORY_KIB`: argon2id memory cost.
    pub argon2_memory_kib: u32,
    /// `PLINTH_PLANS_FILE`: the plan catalog; None: the built-in `plans.toml`.
    pub plans_file: Option<PathBuf>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads a map of variables (the environment, or a test's).
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(vars);
        let env = match v.get("PLINTH_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError {
                    var: "PLINTH_ENV",
                    message: format!("expected development or production, got {other:?}"),
                })
            }
        };
        let log_format = match v.get("PLINTH_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "PLINTH_LOG_FORMAT",
                    message: format!("expected pretty or json, got {other:?}"),
                })
            }
        };
        let access_ttl: u64 = v.parse("PLINTH_ACCESS_TOKEN_TTL_SECS", 900)?;
        if !(1..=900).contains(&access_ttl) {
            return Err(ConfigError {
                var: "PLINTH_ACCESS_TOKEN_TTL_SECS",
                message: format!("must be between 1 and 900 seconds, got {access_ttl}"),
            });
        }
        let database_url = v.secret("DATABASE_URL");
        if let Some(url) = &database_url {
            check_postgres_url("DATABASE_URL", url.expose_secret())?;
        }
        let app_database_url = v.secret("PLINTH_APP_DATABASE_URL");
        if let Some(url) = &app_database_url {
            check_postgres_url("PLINTH_APP_DATABASE_URL", url.expose_secret())?;
        }
        let redis_url = v.secret("REDIS_URL");
        if let Some(url) = &redis_url {
            let parsed = url::Url::parse(url.expose_secret()).ok();
            if !matches!(parsed.as_ref().map(|u| u.scheme()), Some("redis" | "rediss")) {
                return Err(ConfigError { var: "REDIS_URL", message: "expected a redis:// or rediss:// URL".into() });
            }
        }
        let config = Config {
            env,
            addr: v.parse("PLINTH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            data_dir: v.get("PLINTH_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| ".data".into()),
            database_url,
            app_database_url,
            app_db_password: v.secret("PLINTH_APP_DB_PASSWORD"),
            redis_url,
            token_key: v.secret("PLINTH_TOKEN_KEY"),
            access_token_ttl: Duration::from_secs(access_ttl),
            refresh_token_ttl: Duration::from_secs(86_400 * v.parse::<u64>("PLINTH_REFRESH_TOKEN_TTL_DAYS", 30)?),
            public_url: v.get("PLINTH_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
            s3: s3_settings(&v)?,
            credentials_key: v.secret("PLINTH_CREDENTIALS_KEY"),
            max_upload_bytes: v.parse("PLINTH_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)?,
            job_lease: Duration::from_secs(v.parse("PLINTH_JOB_LEASE_SECS", 60)?),
            job_sweep: Duration::from_secs(v.parse("PLINTH_JOB_SWEEP_SECS", 5)?.max(1)),
            stripe_secret_key: v.secret("PLINTH_STRIPE_SECRET_KEY"),
            stripe_api_base: stripe_api_base(&v)?,
            stripe_webhook_secrets: v
                .get("PLINTH_STRIPE_WEBHOOK_SECRET")
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| SecretString::from(s.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            stripe_webhook_tolerance_secs: v.parse("PLINTH_STRIPE_WEBHOOK_TOLERANCE_SECS", 300)?,
            billing_success_url: v.get("PLINTH_BILLING_SUCCESS_URL"),
            billing_cancel_url: v.get("PLINTH_BILLING_CANCEL_URL"),
            billing_return_url: v.get("PLINTH_BILLING_RETURN_URL"),
            billing_grace_days: v.parse("PLINTH_BILLING_GRACE_DAYS", 7)?,
            log_format,
            db_pool_size: v.parse("PLINTH_DB_POOL_SIZE", 8)?,
            statement_timeout_ms: v.parse("PLINTH_STATEMENT_TIMEOUT_MS", 5_000)?,
            max_body_bytes: v.parse("PLINTH_MAX_BODY_BYTES", 1 << 20)?,
            introspection: v.parse("PLINTH_GRAPHQL_INTROSPECTION", true)?,
            login_limit_per_email: v.parse("PLINTH_LOGIN_LIMIT_PER_EMAIL", 10)?,
            login_limit_per_ip: v.parse("PLINTH_LOGIN_LIMIT_PER_IP", 100)?,
            login_window: Duration::from_secs(v.parse("PLINTH_LOGIN_WINDOW_SECS", 900)?),
            client_ip_header: v.get("PLINTH_CLIENT_IP_HEADER"),
            argon2_memory_kib: v.parse("PLINTH_ARGON2_MEMORY_KIB", 19_456)?,
            plans_file: v.get("PLINTH_PLANS_FILE").map(PathBuf::from),
        };
        config.check_production()?;
        Ok(config)
    }

    /// Production refuses the embedded defaults: each missing service is named.
    fn check_production(&self) -> Result<(), ConfigError> {
        if self.env != Environment::Production {
            return Ok(());
        }
        let required: [(&'static str, bool); 8] = [
            ("DATABASE_URL", self.database_url.is_some()),
            ("PLINTH_TOKEN_KEY", self.token_key.is_some()),
            ("REDIS_URL", self.redis_url.is_some()),
            ("PLINTH_S3_ENDPOINT", self.s3.is_some()),
            ("PLINTH_CREDENTIALS_KEY", self.credentials_key.is_some()),
            ("PLINTH_PUBLIC_URL", self.public_url.is_some()),
            ("PLINTH_STRIPE_SECRET_KEY", self.stripe_secret_key.is_some()),
            ("PLINTH_STRIPE_WEBHOOK_SECRET", !self.stripe_webhook_secrets.is_empty()),
        ];
        for (var, present) in required {
            if !present {
                return Err(ConfigError {
                    var,
                    message: "required when PLINTH_ENV=production (embedded defaults are for development only)".into(),
                });
            }
        }
        Ok(())
    }

    /// Whether this is a production process.
    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

fn stripe_api_base(v: &Vars) -> Result<String, ConfigError> {
    let base = v.get("PLINTH_STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com/".into());
    match url::Url::parse(&base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(base),
        _ => Err(ConfigError { var: "PLINTH_STRIPE_API_BASE", message: "expected an http(s) URL".into() }),
    }
}

/// All of `PLINTH_S3_ENDPOINT`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY` or none.
fn s3_settings(v: &Vars) -> Result<Option<crate::storage::S3Settings>, ConfigError> {
    let Some(endpoint) = v.get("PLINTH_S3_ENDPOINT") else {
        return Ok(None);
    };
    if url::Url::parse(&endpoint).is_err() {
        return Err(ConfigError { var: "PLINTH_S3_ENDPOINT", message: "expected a URL".into() });
    }
    let need = |var: &'static str| {
        v.get(var).ok_or(ConfigError { var, message: "required when PLINTH_S3_ENDPOINT is set".into() })
    };
    Ok(Some(crate::storage::S3Settings {
        endpoint,
        bucket: need("PLINTH_S3_BUCKET")?,
        region: v.get("PLINTH_S3_REGION").unwrap_or_else(|| "auto".into()),
        access_key: need("PLINTH_S3_ACCESS_KEY")?,
        secret_key: SecretString::from(need("PLINTH_S3_SECRET_KEY")?),
        path_style: v.parse("PLINTH_S3_PATH_STYLE", true)?,
    }))
}

fn check_postgres_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => Ok(()),
        // The value is a secret: the message names the variable, never echoes it.
        _ => Err(ConfigError { var, message: "expected a postgres:// URL".into() }),
    }
}

struct Vars(HashMap<String, String>);

impl Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e: T::Err| ConfigError { var: name, message: format!("invalid value {raw:?}: {e}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.env, Environment::Development);
        assert!(c.database_url.is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = Config::from_vars(vars(&[("PLINTH_ADDR", "nope")])).unwrap_err();
        assert!(e.to_string().starts_with("PLINTH_ADDR: "), "{e}");
        let e = Config::from_vars(vars(&[("PLINTH_ACCESS_TOKEN_TTL_SECS", "3600")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_ACCESS_TOKEN_TTL_SECS");
        let e = Config::from_vars(vars(&[("REDIS_URL", "http://x")])).unwrap_err();
        assert_eq!(e.var, "REDIS_URL");
    }

    #[test]
    fn production_refuses_embedded_defaults() {
        let e = Config::from_vars(vars(&[("PLINTH_ENV", "production")])).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        let e = Config::from_vars(vars(&[("PLINTH_ENV", "production"), ("DATABASE_URL", "postgres://u:p@db/x")]))
            .unwrap_err();
        assert_eq!(e.var, "PLINTH_TOKEN_KEY");
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let c = Config::from_vars(vars(&[("DATABASE_URL", "postgres://u:hunter2@db/x")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = Config::from_vars(vars(&[("DATABASE_URL", "mysql://u:hunter2@db/x")])).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
