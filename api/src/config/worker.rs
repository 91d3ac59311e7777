//! The configuration of `plinth worker`: an HTTP client of the API, so it reads its
//! token and the API's address, and none of the server's database, Stripe or storage
//! settings (a malformed `DATABASE_URL` does not stop it).
use super::{log_format, ConfigError, LogFormat, Vars};
use secrecy::SecretString;
use std::{collections::HashMap, net::SocketAddr};

/// What the reference worker needs to reach the API. Debug never shows the token.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `PLINTH_WORKER_TOKEN` (required): a worker token from `plinth admin worker-token`.
    pub token: SecretString,
    /// `PLINTH_API_URL`: the GraphQL endpoint; `http://<PLINTH_ADDR>/graphql` when unset.
    pub api_url: String,
    /// `PLINTH_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `PLINTH_WORKER_LISTEN`: whether the worker listens for `jobQueued` over
    /// WebSocket (true); false polls only (a proxy that refuses WebSockets).
    pub listen: bool,
}

impl WorkerConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads a map of variables (the environment, or a test's). Errors name
    /// `PLINTH_WORKER_TOKEN` when it is missing, `PLINTH_API_URL` when it is not an
    /// http(s) URL, `PLINTH_ADDR` (read only without `PLINTH_API_URL`) when it is not
    /// an address, and `PLINTH_LOG_FORMAT`.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(vars);
        let token = v.secret("PLINTH_WORKER_TOKEN").ok_or(ConfigError {
            var: "PLINTH_WORKER_TOKEN",
            message: "required (issue one with `plinth admin worker-token`)".into(),
        })?;
        let api_url = match v.get("PLINTH_API_URL") {
            Some(url) => match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => url,
                _ => return Err(ConfigError { var: "PLINTH_API_URL", message: "expected an http(s) URL".into() }),
            },
            None => {
                let addr: SocketAddr = v.parse("PLINTH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
                format!("http://{addr}/graphql")
            }
        };
        Ok(WorkerConfig { token, api_url, log_format: log_format(&v)?, listen: v.parse("PLINTH_WORKER_LISTEN", true)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_token_alone_is_enough_whatever_the_server_settings() {
        let c = WorkerConfig::from_vars(vars(&[
            ("PLINTH_WORKER_TOKEN", "tok"),
            ("DATABASE_URL", "not a url"),
            ("PLINTH_STRIPE_API_BASE", "nope"),
            ("PLINTH_ENV", "production"),
        ]))
        .unwrap();
        assert_eq!(c.token.expose_secret(), "tok");
        assert_eq!(c.api_url, "http://127.0.0.1:8080/graphql");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.listen);
    }

    #[test]
    fn the_api_url_comes_from_plinth_api_url_or_plinth_addr() {
        let c =
            WorkerConfig::from_vars(vars(&[("PLINTH_WORKER_TOKEN", "t"), ("PLINTH_ADDR", "127.0.0.1:9000")])).unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:9000/graphql");
        let c = WorkerConfig::from_vars(vars(&[
            ("PLINTH_WORKER_TOKEN", "t"),
            ("PLINTH_API_URL", "https://api.example.com/graphql"),
            ("PLINTH_ADDR", "ignored"),
        ]))
        .unwrap();
        assert_eq!(c.api_url, "https://api.example.com/graphql");
    }

    #[test]
    fn a_missing_token_or_bad_url_names_its_variable() {
        let e = WorkerConfig::from_vars(HashMap::new()).unwrap_err();
        assert_eq!(e.var, "PLINTH_WORKER_TOKEN");
        assert!(e.to_string().contains("plinth admin worker-token"), "{e}");
        let e =
            WorkerConfig::from_vars(vars(&[("PLINTH_WORKER_TOKEN", "t"), ("PLINTH_API_URL", "ftp://x")])).unwrap_err();
        assert_eq!(e.var, "PLINTH_API_URL");
    }

    #[test]
    fn the_token_stays_out_of_debug() {
        let c = WorkerConfig::from_vars(vars(&[("PLINTH_WORKER_TOKEN", "hunter2")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
