//! Builds the application — database (configured or embedded), migrations, Redis,
//! services, schema, routes — and runs it. `main` and the black-box tests start the
//! server through exactly this code.
use crate::{
    accounts::service::{AccountDeps, AccountService},
    auth::{password::Passwords, tokens::TokenService},
    billing::{
        catalog::Catalog,
        service::{BillingService, BillingSettings},
        stripe::StripeApi,
    },
    config::Config,
    db::{self, embedded::EmbeddedPostgres},
    error::AppError,
    events::EventBus,
    graphql,
    http::{self, metrics::Metrics, HttpState},
    jobs::service::QueueSettings,
    photos::service::PhotoService,
    principal::Principal,
    ratelimit::RateLimiter,
    secretbox::SecretBox,
    storage::Storage,
};
use anyhow::Context;
use poem::{
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    EndpointExt, Server,
};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Where the database is, and the embedded cluster when Plinth runs its own.
pub struct DatabaseSetup {
    /// The owner connection (migrations).
    pub owner_url: String,
    /// The runtime connection (`plinth_app`).
    pub runtime_url: String,
    /// Password set on `plinth_app` at migration, if any.
    pub app_password: Option<String>,
    /// The private cluster, when `DATABASE_URL` is not set.
    pub embedded: Option<EmbeddedPostgres>,
}

impl DatabaseSetup {
    /// Uses `DATABASE_URL`, or starts the embedded cluster under the data dir.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.database_url {
            let owner_url = url.expose_secret().to_owned();
            let app_password = config.app_db_password.as_ref().map(|p| p.expose_secret().to_owned());
            let runtime_url = match &config.app_database_url {
                Some(u) => u.expose_secret().to_owned(),
                None => db::runtime_url(&owner_url, app_password.as_deref())?,
            };
            return Ok(DatabaseSetup { owner_url, runtime_url, app_password, embedded: None });
        }
        anyhow::ensure!(!config.is_production(), "DATABASE_URL is required in production");
        let dir = config.data_dir.join("postgres");
        let pg = EmbeddedPostgres::start(&dir).await?;
        tracing::info!(port = pg.port(), dir = %dir.display(), "embedded PostgreSQL started");
        let owner_url = pg.owner_url().to_owned();
        let app_password = Some(pg.app_password().to_owned());
        let runtime_url = db::runtime_url(&owner_url, app_password.as_deref())?;
        Ok(DatabaseSetup { owner_url, runtime_url, app_password, embedded: Some(pg) })
    }

    /// Runs the migrations as the owner.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        db::migrate(&self.owner_url, self.app_password.as_deref()).await
    }

    /// Stops the embedded cluster, if this process started one.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(pg) = self.embedded {
            pg.stop().await?;
        }
        Ok(())
    }
}

/// The services of a running instance, without the HTTP server (the CLI uses these).
pub struct Services {
    /// Configuration.
    pub config: Arc<Config>,
    /// The runtime pool.
    pub pool: DatabaseConnection,
    /// Access tokens.
    pub tokens: Arc<TokenService>,
    /// Accounts.
    pub accounts: Arc<AccountService>,
    /// Photos and their store.
    pub photos: Arc<PhotoService>,
    /// The object store.
    pub storage: Arc<Storage>,
    /// Seals marketplace credentials.
    pub sealer: Arc<SecretBox>,
    /// Live events.
    pub bus: Arc<EventBus>,
    /// Billing.
    pub billing: Arc<BillingService>,
    /// Rate limits (sign-in throttling, per-plan request rates).
    pub limiter: Arc<RateLimiter>,
    /// The database's setup, kept to stop the embedded cluster at the end.
    pub database: DatabaseSetup,
}

impl Services {
    /// Prepares the database (migrating it) and builds every service; `public_url` is
    /// where clients reach this instance (links in e-mails, local storage URLs).
    pub async fn build(config: Config, public_url: String) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let database = DatabaseSetup::from_config(&config).await?;
        database.migrate().await?;
        let pool = db::connect_runtime(&database.runtime_url, config.db_pool_size).await?;
        let redis = match &config.redis_url {
            Some(url) => Some(connect_redis(url.expose_secret()).await?),
            None => None,
        };
        let bus = Arc::new(match (&config.redis_url, &redis) {
            (Some(url), Some(conn)) => EventBus::redis(url.expose_secret(), conn.clone()).await?,
            _ => EventBus::in_process(),
        });
        let tokens = Arc::new(TokenService::from_config(&config)?);
        let limiter = Arc::new(RateLimiter::new(redis));
        let passwords = Passwords::new(config.argon2_memory_kib)?;
        let catalog = Arc::new(Catalog::load(config.plans_file.as_deref())?);
        let accounts = Arc::new(AccountService::new(AccountDeps {
            pool: pool.clone(),
            passwords,
            tokens: tokens.clone(),
            limiter: limiter.clone(),
            config: config.clone(),
            public_url: public_url.clone(),
            bus: bus.clone(),
            catalog: catalog.clone(),
        }));
        let storage = Arc::new(match &config.s3 {
            Some(s3) => Storage::s3(s3)?,
            None => {
                let key = SecretBox::key_file(&config.data_dir.join("storage_key"))?;
                Storage::local(config.data_dir.join("objects"), key, public_url.clone())
            }
        });
        let sealer = Arc::new(match &config.credentials_key {
            Some(key) => SecretBox::from_hex(key.expose_secret()).context("PLINTH_CREDENTIALS_KEY")?,
            None => SecretBox::load_or_create(&config.data_dir.join("credentials_key"))?,
        });
        let photos = Arc::new(PhotoService::new(storage.clone(), config.max_upload_bytes));
        let billing = Arc::new(billing_service(&config, &public_url, pool.clone(), bus.clone(), catalog)?);
        load_revocations(&pool, &tokens, config.statement_timeout_ms).await?;
        tokio::spawn(follow_revocations(bus.clone(), tokens.clone()));
        Ok(Services { config, pool, tokens, accounts, photos, storage, sealer, bus, billing, limiter, database })
    }
}

async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("REDIS_URL")?;
    tokio::time::timeout(Duration::from_secs(5), redis::aio::ConnectionManager::new(client))
        .await
        .context("connecting to Redis timed out")?
        .context("connecting to Redis")
}

/// A built server, bound to its port, ready to run.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
    database: DatabaseSetup,
}

impl Application {
    /// Binds `config.addr` (port 0 picks a free port) and builds everything.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(config.addr)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {} (PLINTH_ADDR)", config.addr))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("reading the bound address")?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let services = Services::build(config, public_url).await?;
        let schema = graphql::builder(services.config.introspection)
            .data(services.accounts.clone())
            .data(services.photos.clone())
            .data(services.sealer.clone())
            .data(services.bus.clone())
            .data(services.billing.clone())
            .data(services.tokens.clone())
            .data(services.pool.clone())
            .data(services.config.clone())
            .data(QueueSettings { lease: services.config.job_lease })
            .finish();
        tokio::spawn(sweep_expired_leases(
            services.pool.clone(),
            services.bus.clone(),
            services.config.job_sweep,
            services.config.statement_timeout_ms,
        ));
        tokio::spawn(expire_grace_periods(services.billing.clone(), services.config.job_sweep * 12));
        let state = Arc::new(HttpState {
            schema,
            tokens: services.tokens.clone(),
            pool: services.pool.clone(),
            config: services.config.clone(),
            metrics: Metrics::new()?,
            storage: services.storage.clone(),
            bus: services.bus.clone(),
            billing: services.billing.clone(),
            limiter: services.limiter.clone(),
        });
        Ok(Application {
            acceptor,
            addr,
            endpoint: http::routes(state).map_to_response().boxed(),
            database: services.database,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT or SIGTERM, then drains and stops the embedded cluster.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "listening; GraphiQL at http://{}/graphql", self.addr);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown_signal(), Some(Duration::from_secs(10)))
            .await;
        let stopped = self.database.shutdown().await;
        served.context("serving HTTP")?;
        stopped
    }

    /// Serves until the process ends (tests).
    pub async fn run(self) -> std::io::Result<()> {
        let Application { acceptor, endpoint, database, .. } = self;
        let result = Server::new_with_acceptor(acceptor).run(endpoint).await;
        drop(database);
        result
    }
}

/// Returns jobs whose worker stopped reporting to the queue, every `every`, and tells
/// their owners' subscriptions. Safe on any number of instances (SKIP LOCKED).
async fn sweep_expired_leases(pool: DatabaseConnection, bus: Arc<EventBus>, every: Duration, timeout_ms: u64) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let swept = async {
            let tx = Arc::new(db::begin(&pool, &Principal::System, timeout_ms).await?);
            let scope = db::RequestScope::new(tx.clone(), Principal::System, db::RequestMeta::default());
            let changed = crate::jobs::service::requeue_expired(&scope).await.map_err(AppError::into_anyhow)?;
            let events = std::mem::take(&mut *scope.events.lock().expect("pending events"));
            drop(scope);
            if let Ok(tx) = Arc::try_unwrap(tx) {
                tx.commit().await?;
            }
            bus.publish(&events).await;
            anyhow::Ok(changed.len())
        };
        match swept.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "expired job leases returned to the queue"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "sweeping expired job leases"),
        }
    }
}

fn billing_service(
    config: &Config,
    public_url: &str,
    pool: DatabaseConnection,
    bus: Arc<EventBus>,
    catalog: Arc<Catalog>,
) -> anyhow::Result<BillingService> {
    let stripe = match &config.stripe_secret_key {
        Some(key) => Some(StripeApi::new(&config.stripe_api_base, key.expose_secret())?),
        None => None,
    };
    let settings = BillingSettings {
        webhook_secrets: config.stripe_webhook_secrets.iter().map(|s| s.expose_secret().to_owned()).collect(),
        webhook_tolerance_secs: config.stripe_webhook_tolerance_secs,
        success_url: config
            .billing_success_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")),
        cancel_url: config.billing_cancel_url.clone().unwrap_or_else(|| format!("{public_url}/billing")),
        portal_return_url: config.billing_return_url.clone().unwrap_or_else(|| format!("{public_url}/billing")),
        grace_days: config.billing_grace_days,
        statement_timeout_ms: config.statement_timeout_ms,
    };
    Ok(BillingService::new(pool, catalog, stripe, settings, bus))
}

/// Loads the revocations still relevant (younger than a token's lifetime).
async fn load_revocations(pool: &DatabaseConnection, tokens: &TokenService, timeout_ms: u64) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let tx = db::begin(pool, &Principal::System, timeout_ms).await?;
    let since = chrono::Utc::now() - chrono::Duration::from_std(tokens.ttl())?;
    let rows = tx
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, revoked_before FROM token_revocations WHERE revoked_before > $1",
            [since.into()],
        ))
        .await?;
    let api = tx
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT revocation_id FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > now()",
        ))
        .await?;
    tx.commit().await?;
    for r in api {
        tokens.revoke_api(&r.try_get::<String>("", "revocation_id")?);
    }
    for r in rows {
        let at: chrono::DateTime<chrono::FixedOffset> = r.try_get("", "revoked_before")?;
        tokens.revoke(r.try_get("", "user_id")?, at.with_timezone(&chrono::Utc));
    }
    Ok(())
}

/// Applies revocations announced on the bus by any instance.
async fn follow_revocations(bus: Arc<EventBus>, tokens: Arc<TokenService>) {
    let mut rx = bus.subscribe();
    loop {
        match rx.recv().await {
            Ok(crate::events::Event::TokensRevoked { user_id, before }) => tokens.revoke(user_id, before),
            Ok(crate::events::Event::ApiTokenRevoked { revocation_id }) => tokens.revoke_api(&revocation_id),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Suspends accounts whose grace period ended.
async fn expire_grace_periods(billing: Arc<BillingService>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match billing.expire_grace().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "grace periods ended; accounts suspended"),
            Err(e) => tracing::warn!(error = format!("{:#}", e.into_anyhow()), "expiring grace periods"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
