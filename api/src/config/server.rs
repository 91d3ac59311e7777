//! The HTTP server's section.
use super::{ConfigError, Vars};
use std::net::SocketAddr;

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `PLINTH_ADDR`: where the HTTP server listens (`127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `PLINTH_PUBLIC_URL`: base of links in e-mails and of local storage URLs;
    /// `http://<bound address>` when unset.
    pub public_url: Option<String>,
    /// `PLINTH_MAX_BODY_BYTES`: request body size limit (1 MiB).
    pub max_body_bytes: usize,
    /// `PLINTH_METRICS_ADDR`: a listener of its own serving `GET /metrics` only (none by
    /// default). In production `/metrics` is served there alone, never on `PLINTH_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    /// `PLINTH_GRAPHQL_INTROSPECTION`: allow schema introspection (true in development,
    /// false in production).
    pub introspection: bool,
    /// `PLINTH_GRAPHIQL`: serve GraphiQL at `GET /graphql` (true in development, false
    /// in production, where `GET /graphql` then answers 404).
    pub graphiql: bool,
    /// `PLINTH_CLIENT_IP_HEADER`: header set by a trusted proxy (e.g. `Fly-Client-IP`).
    pub client_ip_header: Option<String>,
    /// `PLINTH_REQUEST_TIMEOUT_MS`: the time budget of one GraphQL request (10000); past
    /// it the request answers SERVICE_UNAVAILABLE and its transaction rolls back.
    pub request_timeout_ms: u64,
    /// `PLINTH_MAX_RESPONSE_BYTES`: the largest GraphQL answer (4 MiB); past it,
    /// RESPONSE_TOO_LARGE and a rollback.
    pub max_response_bytes: usize,
    /// `PLINTH_WS_KEEPALIVE_SECS`: a WebSocket silent this long gets a ping, one silent
    /// twice as long is closed (30).
    pub ws_keepalive_secs: u64,
    /// `PLINTH_CORS_ORIGINS`: comma-separated origins (`https://app.example.com`) whose
    /// pages may call the API from a browser; none by default.
    pub cors_origins: Vec<String>,
}

impl ServerConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        // What a browser or a stranger may explore is off by default in production.
        let development = !super::Base::read(v)?.is_production();
        Ok(ServerConfig {
            addr: v.parse("PLINTH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            public_url: v.get("PLINTH_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
            max_body_bytes: v.parse("PLINTH_MAX_BODY_BYTES", 1 << 20)?,
            metrics_addr: match v.get("PLINTH_METRICS_ADDR") {
                None => None,
                Some(_) => Some(v.parse("PLINTH_METRICS_ADDR", SocketAddr::from(([127, 0, 0, 1], 0)))?),
            },
            introspection: v.parse("PLINTH_GRAPHQL_INTROSPECTION", development)?,
            graphiql: v.parse("PLINTH_GRAPHIQL", development)?,
            client_ip_header: v.get("PLINTH_CLIENT_IP_HEADER"),
            request_timeout_ms: v.parse("PLINTH_REQUEST_TIMEOUT_MS", 10_000)?,
            max_response_bytes: v.parse("PLINTH_MAX_RESPONSE_BYTES", 4 << 20)?,
            ws_keepalive_secs: v.parse("PLINTH_WS_KEEPALIVE_SECS", 30u64)?.max(1),
            cors_origins: v
                .get("PLINTH_CORS_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The public base URL: configured, else the listen address.
    pub fn public_url_or_addr(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.addr))
    }
}
