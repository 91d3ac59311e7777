//! Typed configuration from the environment, one section per file, with an embedded
//! default for every external service. A bad value stops the start with one line
//! naming the variable. This module is the only code that reads the environment.
//!
//! A command reads only the sections it uses: `plinth worker` its `WorkerConfig`,
//! `plinth migrate` the `Base` and the database, `plinth admin worker-token` the `Base`
//! and authentication, the server all of `Config`.
use secrecy::{ExposeSecret, SecretString};
use std::{collections::HashMap, fmt, path::PathBuf, str::FromStr};

mod accounts;
mod auth;
mod billing;
mod chatwoot;
mod database;
mod jobs;
mod mail;
mod server;
mod storage;
mod support;
mod traces;
mod worker;
pub use accounts::AccountsConfig;
pub use auth::AuthConfig;
pub use billing::BillingConfig;
pub use chatwoot::ChatwootConfig;
pub use database::DatabaseConfig;
pub use jobs::JobsConfig;
pub use mail::{MailConfig, MailProvider};
pub use server::ServerConfig;
pub use storage::StorageConfig;
pub use support::SupportConfig;
pub use traces::TraceExport;
pub use worker::WorkerConfig;

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

/// What every command shares: the environment, the data dir and the log format.
#[derive(Clone, Debug)]
pub struct Base {
    /// `PLINTH_ENV`: `development` (the default) or `production`.
    pub env: Environment,
    /// `PLINTH_DATA_DIR`: embedded database, generated keys, local files (`./.data`).
    pub data_dir: PathBuf,
    /// `PLINTH_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and the other `OTEL_` variables: where spans are
    /// exported (none by default).
    pub traces: Option<TraceExport>,
}

impl Base {
    /// Reads the process environment.
    ///
    /// Errors: the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Vars(std::env::vars().collect()))
    }

    fn read(v: &Vars) -> Result<Self, ConfigError> {
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
        Ok(Base {
            env,
            data_dir: v.get("PLINTH_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| ".data".into()),
            log_format: log_format(v)?,
            traces: TraceExport::read(v)?,
        })
    }

    /// Whether this is a production process.
    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

/// A section readable on its own, for commands that need only it.
pub trait Section: Sized {
    /// Reads the section from the process environment.
    ///
    /// Errors: the variable at fault.
    fn from_env() -> Result<Self, ConfigError>;
}

macro_rules! section {
    ($($t:ty),*) => {$(
        impl Section for $t {
            fn from_env() -> Result<Self, ConfigError> {
                <$t>::read(&Vars(std::env::vars().collect()))
            }
        }
    )*};
}
section!(
    ServerConfig,
    DatabaseConfig,
    AuthConfig,
    StorageConfig,
    JobsConfig,
    BillingConfig,
    MailConfig,
    AccountsConfig,
    SupportConfig
);

/// Everything the server needs to start. Secrets are `SecretString`, so neither Debug
/// nor a log line can print them.
#[derive(Clone, Debug)]
pub struct Config {
    /// Environment, data dir, log format.
    pub base: Base,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// `REDIS_URL`. None: in-process rate limiting and events.
    pub redis_url: Option<SecretString>,
    /// Tokens, sessions, sign-in.
    pub auth: AuthConfig,
    /// Objects and sealed secrets.
    pub storage: StorageConfig,
    /// The job queue.
    pub jobs: JobsConfig,
    /// Stripe and the plan catalog.
    pub billing: BillingConfig,
    /// Mail delivery.
    pub mail: MailConfig,
    /// GDPR exports and account deletion.
    pub accounts: AccountsConfig,
    /// Support's limits.
    pub support: SupportConfig,
    /// The Chatwoot bridge; None when it is off (`PLINTH_CHATWOOT_URL` unset).
    pub chatwoot: Option<ChatwootConfig>,
}

impl Config {
    /// Reads the process environment.
    ///
    /// Errors: the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads a map of variables (the environment, or a test's).
    ///
    /// Errors: the variable at fault, including what production requires.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(vars);
        let redis_url = v.secret("REDIS_URL");
        if let Some(url) = &redis_url {
            let parsed = url::Url::parse(url.expose_secret()).ok();
            if !matches!(parsed.as_ref().map(|u| u.scheme()), Some("redis" | "rediss")) {
                return Err(ConfigError { var: "REDIS_URL", message: "expected a redis:// or rediss:// URL".into() });
            }
        }
        let config = Config {
            base: Base::read(&v)?,
            server: ServerConfig::read(&v)?,
            database: DatabaseConfig::read(&v)?,
            redis_url,
            auth: AuthConfig::read(&v)?,
            storage: StorageConfig::read(&v)?,
            jobs: JobsConfig::read(&v)?,
            billing: BillingConfig::read(&v)?,
            mail: MailConfig::read(&v)?,
            accounts: AccountsConfig::read(&v)?,
            support: SupportConfig::read(&v)?,
            chatwoot: ChatwootConfig::read(&v)?,
        };
        config.check_production()?;
        Ok(config)
    }

    /// Production refuses the embedded defaults: each missing service is named.
    fn check_production(&self) -> Result<(), ConfigError> {
        if !self.is_production() {
            return Ok(());
        }
        let required: [(&'static str, bool); 9] = [
            // The runtime connects as plinth_app only: its own URL, or DATABASE_URL's host.
            ("PLINTH_APP_DATABASE_URL or DATABASE_URL", self.database.app_url.is_some() || self.database.url.is_some()),
            ("PLINTH_TOKEN_KEY", self.auth.token_key.is_some()),
            ("REDIS_URL", self.redis_url.is_some()),
            ("PLINTH_S3_ENDPOINT", self.storage.s3.is_some()),
            ("PLINTH_CREDENTIALS_KEY", self.storage.credentials_key.is_some()),
            ("PLINTH_PUBLIC_URL", self.server.public_url.is_some()),
            ("PLINTH_STRIPE_SECRET_KEY", self.billing.stripe_secret_key.is_some()),
            ("PLINTH_STRIPE_WEBHOOK_SECRET", !self.billing.webhook_secrets.is_empty()),
            // The file mailer is for development: production names a real provider.
            ("PLINTH_SENDGRID_API_KEY or PLINTH_SMTP_URL", !matches!(self.mail.provider, MailProvider::File)),
        ];
        for (var, present) in required {
            if !present {
                return Err(ConfigError {
                    var,
                    message: "required when PLINTH_ENV=production (embedded defaults are for development only)".into(),
                });
            }
        }
        if self.jobs.in_process_worker == Some(true) {
            return Err(ConfigError {
                var: "PLINTH_IN_PROCESS_WORKER",
                message: "the in-process worker is for development; in production run `plinth worker` as its own process group".into(),
            });
        }
        Ok(())
    }

    /// How often the leader reconciles billing with Stripe: as
    /// `PLINTH_BILLING_RECONCILE_SECS` says (0: never), else nightly in production and
    /// never in development; never without Stripe.
    pub fn billing_reconcile_every(&self) -> Option<std::time::Duration> {
        let default = if self.is_production() { 86_400 } else { 0 };
        let secs = self.billing.reconcile_secs.unwrap_or(default);
        (secs > 0 && self.billing.stripe_secret_key.is_some()).then(|| std::time::Duration::from_secs(secs))
    }

    /// Whether `plinth serve` runs the reference worker in its process: as
    /// `PLINTH_IN_PROCESS_WORKER` says, else in development only.
    pub fn in_process_worker(&self) -> bool {
        self.jobs.in_process_worker.unwrap_or(!self.is_production())
    }

    /// Whether this is a production process.
    pub fn is_production(&self) -> bool {
        self.base.is_production()
    }
}

/// `PLINTH_LOG_FORMAT`: `pretty` (the default) or `json`.
fn log_format(v: &Vars) -> Result<LogFormat, ConfigError> {
    match v.get("PLINTH_LOG_FORMAT").as_deref() {
        None | Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => {
            Err(ConfigError { var: "PLINTH_LOG_FORMAT", message: format!("expected pretty or json, got {other:?}") })
        }
    }
}

/// The variables, trimmed; an empty value counts as unset.
struct Vars(HashMap<String, String>);

impl Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(SecretString::from)
    }

    /// A comma-separated list of secrets (two during a rotation); empty when unset.
    fn secrets(&self, name: &str) -> Vec<SecretString> {
        self.get(name)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
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
        assert_eq!(c.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.base.env, Environment::Development);
        assert!(c.database.url.is_none());
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
        assert_eq!(e.var, "PLINTH_APP_DATABASE_URL or DATABASE_URL");
        let e = Config::from_vars(vars(&[("PLINTH_ENV", "production"), ("DATABASE_URL", "postgres://u:p@db/x")]))
            .unwrap_err();
        assert_eq!(e.var, "PLINTH_TOKEN_KEY");
        // The runtime's own URL is enough: the owner's stays on the release machine.
        let app_only = [("PLINTH_ENV", "production"), ("PLINTH_APP_DATABASE_URL", "postgres://plinth_app:p@db/x")];
        assert_eq!(Config::from_vars(vars(&app_only)).unwrap_err().var, "PLINTH_TOKEN_KEY");
    }

    #[test]
    fn production_refuses_the_file_mailer() {
        let mut all = vec![
            ("PLINTH_ENV", "production"),
            ("DATABASE_URL", "postgres://u:p@db/x"),
            ("PLINTH_TOKEN_KEY", "k"),
            ("REDIS_URL", "redis://r"),
            ("PLINTH_S3_ENDPOINT", "http://s3"),
            ("PLINTH_S3_BUCKET", "b"),
            ("PLINTH_S3_ACCESS_KEY", "a"),
            ("PLINTH_S3_SECRET_KEY", "s"),
            ("PLINTH_CREDENTIALS_KEY", "c"),
            ("PLINTH_PUBLIC_URL", "https://plinth.example"),
            ("PLINTH_STRIPE_SECRET_KEY", "sk"),
            ("PLINTH_STRIPE_WEBHOOK_SECRET", "whsec"),
        ];
        let e = Config::from_vars(vars(&all)).unwrap_err();
        assert_eq!(e.var, "PLINTH_SENDGRID_API_KEY or PLINTH_SMTP_URL");
        all.push(("PLINTH_SMTP_URL", "smtp://relay:25"));
        let production = Config::from_vars(vars(&all)).unwrap();
        assert!(matches!(production.mail.provider, MailProvider::Smtp { .. }));
        let e = Config::from_vars(vars(&[("PLINTH_SMTP_URL", "http://relay")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_SMTP_URL");
        // Nor does production run the in-process worker, even when asked.
        assert!(!production.in_process_worker());
        all.push(("PLINTH_IN_PROCESS_WORKER", "true"));
        assert_eq!(Config::from_vars(vars(&all)).unwrap_err().var, "PLINTH_IN_PROCESS_WORKER");
    }

    #[test]
    fn development_runs_the_in_process_worker_unless_told_not_to() {
        assert!(Config::from_vars(HashMap::new()).unwrap().in_process_worker());
        let off = Config::from_vars(vars(&[("PLINTH_IN_PROCESS_WORKER", "false")])).unwrap();
        assert!(!off.in_process_worker());
        let e = Config::from_vars(vars(&[("PLINTH_IN_PROCESS_WORKER", "maybe")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_IN_PROCESS_WORKER");
    }

    #[test]
    fn graphiql_introspection_and_the_metrics_listener_depend_on_the_environment() {
        let dev = Config::from_vars(HashMap::new()).unwrap();
        assert!(dev.server.graphiql && dev.server.introspection);
        assert_eq!(dev.server.metrics_addr, None);
        let prod = ServerConfig::read(&Vars(vars(&[("PLINTH_ENV", "production")]))).unwrap();
        assert!(!prod.graphiql && !prod.introspection);
        let open = ServerConfig::read(&Vars(vars(&[
            ("PLINTH_ENV", "production"),
            ("PLINTH_GRAPHIQL", "true"),
            ("PLINTH_GRAPHQL_INTROSPECTION", "true"),
            ("PLINTH_METRICS_ADDR", "[::]:9091"),
        ])))
        .unwrap();
        assert!(open.graphiql && open.introspection);
        assert_eq!(open.metrics_addr.map(|a| a.port()), Some(9091));
        let e = Config::from_vars(vars(&[("PLINTH_METRICS_ADDR", "9091")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_METRICS_ADDR");
        let e = Config::from_vars(vars(&[("PLINTH_GRAPHIQL", "yes")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_GRAPHIQL");
    }

    #[test]
    fn the_pg_bin_dir_is_optional() {
        assert!(Config::from_vars(HashMap::new()).unwrap().database.pg_bin_dir.is_none());
        let c = Config::from_vars(vars(&[("PLINTH_PG_BIN_DIR", "/opt/pg/bin")])).unwrap();
        assert_eq!(c.database.pg_bin_dir.as_deref(), Some(std::path::Path::new("/opt/pg/bin")));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let c = Config::from_vars(vars(&[("DATABASE_URL", "postgres://u:hunter2@db/x")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = Config::from_vars(vars(&[("DATABASE_URL", "mysql://u:hunter2@db/x")])).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
