//! Builds the application — database (configured or embedded), migrations, Redis,
//! services, schema, routes, background tasks — and runs it. `main` and the black-box
//! tests start the server through exactly this code.
use crate::{
    accounts::{
        self,
        privacy::{Privacy, PrivacyDeps},
        service::{AccountDeps, AccountService},
    },
    auth::{
        password::Passwords,
        ratelimit::RateLimiter,
        revocations,
        tokens::{TokenService, TokenSettings},
    },
    billing::{
        self,
        service::{BillingService, BillingSettings},
        stripe::StripeApi,
    },
    catalog::Catalog,
    config::{AuthConfig, Base, Config, DatabaseConfig},
    db::{self, live::LiveSource, RuntimePool},
    email::{
        delivery::{Delivery, DeliverySettings},
        provider::{self, Provider},
        render::Renderer,
    },
    events::EventBus,
    graphql::{self, execute::Executor},
    http::{self, HttpState},
    jobs::{self, service::QueueSettings},
    metrics::Metrics,
    photos::{self, service::PhotoService},
    secretbox::SecretBox,
    shared_redis::SharedRedis,
    storage::Storage,
    tasks::Supervisor,
};
use anyhow::Context;
use embedded_pg::EmbeddedPostgres;
use poem::{
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    EndpointExt, Server,
};
use secrecy::ExposeSecret;
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Where the database is, and the embedded cluster when Plinth runs its own.
pub struct DatabaseSetup {
    /// The owner connection (`plinth migrate` only): None in production when only
    /// `PLINTH_APP_DATABASE_URL` is set, as on the runtime machines.
    pub owner_url: Option<String>,
    /// The runtime connection (`plinth_app`).
    pub runtime_url: String,
    /// Password set on `plinth_app` at migration, if any.
    pub app_password: Option<String>,
    /// The private cluster, when `DATABASE_URL` is not set: owned by this process, or
    /// attached to the one another process runs.
    pub embedded: Option<EmbeddedPostgres>,
}

impl DatabaseSetup {
    /// Uses `DATABASE_URL` (and `PLINTH_APP_DATABASE_URL`), or starts the embedded
    /// cluster under the data dir (attaching to it when another process, such as a
    /// running `plinth serve`, already runs it). In production `PLINTH_APP_DATABASE_URL`
    /// alone is enough: the runtime never connects as the owner.
    ///
    /// Errors: a malformed URL; the embedded cluster's start (no binaries, a busy data
    /// dir); production with neither URL.
    pub async fn from_config(base: &Base, database: &DatabaseConfig) -> anyhow::Result<Self> {
        let app_password = database.app_password.as_ref().map(|p| p.expose_secret().to_owned());
        if let Some(url) = &database.url {
            let owner_url = url.expose_secret().to_owned();
            let runtime_url = match &database.app_url {
                Some(u) => u.expose_secret().to_owned(),
                None => db::runtime_url(&owner_url, app_password.as_deref())?,
            };
            return Ok(DatabaseSetup { owner_url: Some(owner_url), runtime_url, app_password, embedded: None });
        }
        if let (true, Some(app_url)) = (base.is_production(), &database.app_url) {
            let runtime_url = app_url.expose_secret().to_owned();
            return Ok(DatabaseSetup { owner_url: None, runtime_url, app_password, embedded: None });
        }
        anyhow::ensure!(!base.is_production(), "DATABASE_URL or PLINTH_APP_DATABASE_URL is required in production");
        let dir = base.data_dir.join("postgres");
        let options = embedded_pg::Options { bin_dir: database.pg_bin_dir.clone() };
        let pg = EmbeddedPostgres::start(&dir, &options).await?;
        if pg.is_owner() {
            tracing::info!(port = pg.port(), dir = %dir.display(), "embedded PostgreSQL started");
        }
        let owner_url = pg.owner_url().to_owned();
        let app_password = Some(pg.app_password().to_owned());
        let runtime_url = db::runtime_url(&owner_url, app_password.as_deref())?;
        Ok(DatabaseSetup { owner_url: Some(owner_url), runtime_url, app_password, embedded: Some(pg) })
    }

    /// Runs the migrations as the owner.
    ///
    /// Errors: no owner connection (`DATABASE_URL`), or the migration's.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let owner_url = self.owner_url.as_deref().context("DATABASE_URL (the owner) is required to migrate")?;
        db::migrate(owner_url, self.app_password.as_deref()).await
    }

    /// Stops the embedded cluster if this process started it; an attached one keeps running.
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
    pub pool: RuntimePool,
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
    /// The plan catalog.
    pub catalog: Arc<Catalog>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The link to Redis, when configured.
    pub redis: Option<Arc<SharedRedis>>,
    /// Mail delivery (its loops start with `start_mail_workers`).
    pub delivery: Arc<Delivery>,
    /// GDPR exports and account erasure.
    pub privacy: Arc<Privacy>,
    /// The web app's imports.
    pub imports: Arc<crate::imports::runner::ImportRunner>,
    /// The database's setup, kept to stop the embedded cluster at the end.
    pub database: DatabaseSetup,
}

impl Services {
    /// Prepares the database and builds every service; `public_url` is where clients
    /// reach this instance (links in e-mails, local storage URLs). In development the
    /// database is migrated first; in production it never is (`plinth migrate`, Fly's
    /// release command, does that as the owner): this connects as the runtime role only.
    /// Either way a schema that lacks a migration of this binary stops the start, naming
    /// the first one missing.
    ///
    /// Errors: the database (unreachable, behind), a service's settings.
    pub async fn build(config: Config, public_url: String) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let database = DatabaseSetup::from_config(&config.base, &config.database).await?;
        if !config.base.is_production() {
            database.migrate().await?;
        }
        let acquire = Duration::from_millis(config.database.acquire_timeout_ms);
        let pool = db::connect_runtime(&database.runtime_url, config.database.pool_size, acquire).await?;
        // The check reads the migration history through sea-orm on a connection of its own.
        let check = db::connect_direct(&database.runtime_url, acquire).await?;
        let current = db::ensure_schema_current(&check).await;
        check.close().await.ok();
        current?;
        // Redis is optional at run time: an instance starts degraded without it.
        let redis = match &config.redis_url {
            Some(url) => {
                let link = SharedRedis::new(url.expose_secret()).context("REDIS_URL")?;
                if !link.start(Duration::from_secs(2)).await {
                    tracing::warn!("Redis does not answer: starting degraded (limits and events on this instance)");
                }
                Some(link)
            }
            None => None,
        };
        let bus = Arc::new(match &redis {
            Some(link) => EventBus::redis(link.clone(), Duration::from_secs(2)).await,
            None => EventBus::in_process(),
        });
        let tokens = Arc::new(TokenService::from_settings(&token_settings(&config.base, &config.auth))?);
        let limiter = Arc::new(RateLimiter::new(redis.clone()));
        let passwords = Passwords::new(config.auth.argon2_memory_kib, config.auth.argon2_concurrency)?;
        let catalog = Arc::new(Catalog::load(config.billing.plans_file.as_deref())?);
        let sealer = Arc::new(match &config.storage.credentials_key {
            Some(key) => SecretBox::from_hex(key.expose_secret()).context("PLINTH_CREDENTIALS_KEY")?,
            None => SecretBox::load_or_create(&config.base.data_dir.join("credentials_key"))?,
        });
        let accounts = Arc::new(AccountService::new(AccountDeps {
            pool: pool.clone(),
            passwords,
            tokens: tokens.clone(),
            limiter: limiter.clone(),
            config: config.clone(),
            public_url: public_url.clone(),
            bus: bus.clone(),
            catalog: catalog.clone(),
            sealer: sealer.clone(),
        }));
        let storage = Arc::new(match &config.storage.s3 {
            Some(s3) => Storage::s3(s3)?,
            None => {
                let key = SecretBox::key_file(&config.base.data_dir.join("storage_key"))?;
                Storage::local(config.base.data_dir.join("objects"), key, public_url.clone())
            }
        });
        let photos = Arc::new(PhotoService::new(storage.clone(), config.storage.max_upload_bytes));
        let billing = Arc::new(billing_service(&config, &public_url, pool.clone(), bus.clone(), catalog.clone())?);
        let privacy = Arc::new(Privacy::new(PrivacyDeps {
            pool: pool.clone(),
            storage: storage.clone(),
            bus: bus.clone(),
            cancel_subscription: billing.stripe_client().cloned().map(|stripe| {
                let cancel: accounts::privacy::CancelSubscription = Arc::new(move |sub: String| {
                    let stripe = stripe.clone();
                    Box::pin(async move {
                        stripe.cancel_subscription(&sub).await.map_err(|e| anyhow::anyhow!("cancelling {sub}: {e:?}"))
                    })
                });
                cancel
            }),
            sealer: sealer.clone(),
            config: config.accounts.clone(),
            statement_timeout_ms: config.database.statement_timeout_ms,
        }));
        let imports = Arc::new(crate::imports::runner::ImportRunner::new(crate::imports::runner::RunnerDeps {
            pool: pool.clone(),
            statement_timeout_ms: config.database.statement_timeout_ms,
            catalog: catalog.clone(),
            photos: photos.clone(),
            sealer: sealer.clone(),
            storage: storage.clone(),
            bus: bus.clone(),
            work_dir: config.base.data_dir.join("imports"),
            max_zip_bytes: config.storage.max_import_bytes,
            limits: crate::imports::archive::Limits::default(),
            lease: config.jobs.lease,
            batch_size: crate::imports::service::DEFAULT_BATCH,
        }));
        revocations::load(&pool, &tokens, config.database.statement_timeout_ms).await?;
        tokio::spawn(revocations::follow(
            bus.clone(),
            tokens.clone(),
            pool.clone(),
            config.database.statement_timeout_ms,
        ));
        let metrics = Metrics::new()?;
        let provider: Arc<dyn Provider> = provider::from_config(&config.mail, &config.base.data_dir)?.into();
        let delivery = Arc::new(Delivery::new(
            pool.clone(),
            provider,
            Arc::new(Renderer::new(&public_url)?),
            sealer.clone(),
            metrics.clone(),
            DeliverySettings {
                batch: config.mail.batch,
                lease: config.mail.lease,
                max_attempts: config.mail.max_attempts,
                backoff: config.mail.backoff,
                max_backoff: config.mail.max_backoff,
                poll: config.mail.poll,
                statement_timeout_ms: config.database.statement_timeout_ms,
            },
        ));
        Ok(Services {
            config,
            pool,
            tokens,
            accounts,
            photos,
            storage,
            sealer,
            bus,
            billing,
            limiter,
            catalog,
            metrics,
            redis,
            delivery,
            privacy,
            imports,
            database,
        })
    }

    /// Starts `workers` delivery loops and the listener that wakes them; the handles
    /// stop them (abort).
    pub fn start_mail_workers(&self, workers: u32) -> Vec<tokio::task::JoinHandle<()>> {
        let (listener, loops) = self.start_mail_workers_until(workers, crate::tasks::never_stop());
        listener.into_iter().chain(loops).collect()
    }

    /// Starts `workers` delivery loops, which end after their batch under way once
    /// `stop` says so, and the listener that wakes them (abort it): (listener, loops).
    pub fn start_mail_workers_until(
        &self,
        workers: u32,
        stop: crate::tasks::Stop,
    ) -> (Option<tokio::task::JoinHandle<()>>, Vec<tokio::task::JoinHandle<()>>) {
        if workers == 0 {
            return (None, Vec::new());
        }
        let wake = Arc::new(tokio::sync::Notify::new());
        let listener = db::listen(self.database.runtime_url.clone(), "plinth_email_outbox", wake.clone());
        let loops = (0..workers).map(|_| tokio::spawn(self.delivery.clone().run(wake.clone(), stop.clone()))).collect();
        (Some(tokio::spawn(listener)), loops)
    }

    /// Starts the Chatwoot outbox's delivery loop and the listener that wakes it, when the
    /// bridge is configured; the handles stop them (abort).
    ///
    /// Errors: the Chatwoot client cannot be built.
    pub fn start_chatwoot_delivery(
        &self,
        stop: crate::tasks::Stop,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let Some(bridge) = &self.config.chatwoot else { return Ok(Vec::new()) };
        let delivery = Arc::new(crate::support::chatwoot::delivery::Delivery::new(
            self.pool.clone(),
            bridge,
            self.config.database.statement_timeout_ms,
        )?);
        let wake = Arc::new(tokio::sync::Notify::new());
        let listener = db::listen(self.database.runtime_url.clone(), "plinth_chatwoot_outbox", wake.clone());
        Ok(vec![tokio::spawn(listener), tokio::spawn(delivery.run(wake, stop))])
    }
}

/// The token service's settings from the configuration.
pub fn token_settings(base: &Base, auth: &AuthConfig) -> TokenSettings {
    TokenSettings {
        key: auth.token_key.clone(),
        key_file: base.data_dir.join("token_key"),
        require_key: base.is_production(),
        policies_dir: auth.policies_dir.clone(),
        ttl: auth.access_token_ttl,
        key_id: auth.token_key_id,
        previous_keys: auth.token_previous_keys.clone(),
    }
}

/// A built server, bound to its port, ready to run.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
    metrics: Option<MetricsListener>,
    database: DatabaseSetup,
    tasks: Supervisor,
    loops: Loops,
    /// Starts the sockets' close, and waits for them.
    drain: http::drain::DrainControl,
    /// Tells the delivery loops and the in-process worker to stop after their step.
    stop: tokio::sync::watch::Sender<bool>,
    /// The delivery loops, waited for (flushed) at the drain.
    flushing: Loops,
    /// The in-process worker, waited for before the server stops accepting (it talks
    /// to this server).
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// The metrics listener (`PLINTH_METRICS_ADDR`): bound at build, served with the app.
struct MetricsListener {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
}

impl MetricsListener {
    async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpAcceptor, SocketAddr)> {
        let acceptor = TcpListener::bind(addr)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {addr} (PLINTH_METRICS_ADDR)"))?;
        let bound = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("reading the metrics listener's address")?;
        Ok((acceptor, bound))
    }

    /// Serves it on a task of its own, stopped when the returned guard drops.
    fn spawn(listener: Option<Self>) -> Loops {
        Loops(
            listener
                .map(|m| {
                    tokio::spawn(async move {
                        if let Err(e) = Server::new_with_acceptor(m.acceptor).run(m.endpoint).await {
                            tracing::error!(error = %e, addr = %m.addr, "the metrics listener stopped");
                        }
                    })
                })
                .into_iter()
                .collect(),
        )
    }
}

/// How long the drain waits for the in-process worker's job under way.
const WORKER_GRACE: Duration = Duration::from_secs(10);
/// How long the server waits for requests in flight once it stopped accepting.
const REQUEST_GRACE: Duration = Duration::from_secs(10);
/// How long the drain waits for sockets to take their close.
const SOCKET_GRACE: Duration = Duration::from_secs(3);
/// How long the drain waits for the delivery loops' batches under way.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Loops of this process (listeners, the leader's campaign, delivery loops), stopped
/// when dropped.
struct Loops(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Loops {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

impl Application {
    /// Binds `config.server.addr` (port 0 picks a free port) and builds everything;
    /// `web` is the web app's build (`plinth_webapp::file`), served at every path the
    /// API does not take.
    pub async fn build(config: Config, web: http::webapp::WebFiles) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(config.server.addr)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {} (PLINTH_ADDR)", config.server.addr))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("reading the bound address")?;
        let metrics_acceptor = match config.server.metrics_addr {
            Some(at) => Some(MetricsListener::bind(at).await?),
            None if config.is_production() => {
                tracing::warn!(
                    "PLINTH_METRICS_ADDR is not set: /metrics is not served (production keeps it off PLINTH_ADDR)"
                );
                None
            }
            None => None,
        };
        let public_url = config.server.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let services = Services::build(config, public_url.clone()).await?;
        let config = services.config.clone();
        let schema = graphql::builder(config.server.introspection)
            .data(services.accounts.clone())
            .data(services.photos.clone())
            .data(services.sealer.clone())
            .data(services.bus.clone())
            .data(services.billing.clone())
            .data(services.privacy.clone())
            .data(services.imports.clone())
            .data(services.tokens.clone())
            .data(services.catalog.clone())
            .data(LiveSource {
                pool: services.pool.clone(),
                statement_timeout_ms: config.database.statement_timeout_ms,
            })
            .data(QueueSettings { lease: config.jobs.lease })
            .data(Arc::new(crate::support::attachments::SupportFiles::new(
                services.storage.clone(),
                config.support.max_attachment_bytes,
            )))
            .data(crate::accounts::graphql::ChatIdentity(config.support.chat_identity_secret.clone()))
            .data(crate::support::service::SupportLimits {
                max_open_tickets: config.support.max_open_tickets,
                messages_per_hour: config.support.messages_per_hour,
                reply_mail_delay_secs: config.support.reply_mail_delay.as_secs() as i64,
                mirror: config.chatwoot.is_some(),
            })
            .finish();
        let (leadership, campaign) = crate::tasks::elect(services.database.runtime_url.clone()).await;
        let mut scheduled = vec![
            jobs::tasks::requeue_expired(
                services.pool.clone(),
                services.bus.clone(),
                config.jobs.sweep,
                config.database.statement_timeout_ms,
            ),
            jobs::tasks::observe_queue(
                services.pool.clone(),
                services.metrics.clone(),
                config.jobs.sweep,
                config.database.statement_timeout_ms,
            ),
            billing::tasks::expire_grace(services.billing.clone(), config.jobs.sweep * 12),
            photos::tasks::sweep_expired_uploads(
                services.pool.clone(),
                services.storage.clone(),
                config.storage.upload_sweep,
                config.database.statement_timeout_ms,
            ),
            crate::support::tasks::sweep_expired_attachments(
                services.pool.clone(),
                services.storage.clone(),
                config.storage.upload_sweep,
                config.database.statement_timeout_ms,
            ),
            crate::support::tasks::extend_trials(
                services.pool.clone(),
                services.billing.stripe_client().cloned(),
                config.support.trial_sweep,
                config.database.statement_timeout_ms,
            ),
            crate::support::tasks::ReplyMails {
                pool: services.pool.clone(),
                public_url: public_url.clone(),
                statement_timeout_ms: config.database.statement_timeout_ms,
            }
            .task(config.support.reply_mail_sweep),
            accounts::tasks::build_exports(services.privacy.clone(), config.accounts.sweep),
            crate::imports::tasks::fail_stale(
                services.pool.clone(),
                services.bus.clone(),
                config.jobs.sweep,
                config.database.statement_timeout_ms,
            ),
            crate::imports::tasks::sweep_uploads(
                services.pool.clone(),
                services.storage.clone(),
                config.storage.upload_sweep,
                config.database.statement_timeout_ms,
            ),
            accounts::tasks::sweep_exports(services.privacy.clone(), config.accounts.sweep),
            accounts::tasks::erase_due_accounts(services.privacy.clone(), config.accounts.sweep),
            crate::email::sequences::task(
                services.pool.clone(),
                config.mail.sequences_every,
                config.database.statement_timeout_ms,
            ),
            crate::email::reminders::Reminders {
                pool: services.pool.clone(),
                sealer: services.sealer.clone(),
                public_url: public_url.clone(),
                statement_timeout_ms: config.database.statement_timeout_ms,
            }
            .task(config.mail.sequences_every),
        ];
        if let Some(every) = config.billing_reconcile_every() {
            scheduled.push(billing::tasks::reconcile(services.billing.clone(), every));
        }
        let tasks = Supervisor::start(
            services.pool.clone(),
            services.metrics.clone(),
            config.database.statement_timeout_ms,
            leadership,
            scheduled,
        );
        // The delivery loops end after their batch under way once the drain says stop.
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let (listener, mut flushing) = services.start_mail_workers_until(config.mail.workers, stopping.clone());
        let mut loops: Vec<_> = listener.into_iter().collect();
        loops.push(campaign);
        let mut chatwoot = services.start_chatwoot_delivery(stopping.clone())?;
        if let Some(delivery) = chatwoot.pop() {
            flushing.push(delivery);
        }
        loops.extend(chatwoot);
        let worker = if config.in_process_worker() {
            Some(start_in_process_worker(&services.tokens, addr, config.jobs.worker_listen, stopping)?)
        } else {
            None
        };
        let loops = Loops(loops);
        let (drain, drain_control) = http::drain::Drain::new();
        let executor = Executor {
            schema,
            tokens: services.tokens.clone(),
            pool: services.pool.clone(),
            bus: services.bus.clone(),
            limiter: services.limiter.clone(),
            catalog: services.catalog.clone(),
            statement_timeout_ms: config.database.statement_timeout_ms,
            request_timeout: Duration::from_millis(config.server.request_timeout_ms),
            limits: graphql::limits::Limits::default(),
            max_response_bytes: config.server.max_response_bytes,
        };
        let state = Arc::new(HttpState {
            executor,
            tokens: services.tokens.clone(),
            pool: services.pool.clone(),
            config,
            metrics: services.metrics.clone(),
            storage: services.storage.clone(),
            bus: services.bus.clone(),
            accounts: services.accounts.clone(),
            billing: services.billing.clone(),
            redis: services.redis.clone(),
            sealer: services.sealer.clone(),
            web,
            drain,
        });
        let metrics = metrics_acceptor.map(|(acceptor, addr)| MetricsListener {
            acceptor,
            addr,
            endpoint: http::metrics_routes(state.clone()).map_to_response().boxed(),
        });
        Ok(Application {
            acceptor,
            addr,
            metrics,
            endpoint: http::routes(state).map_to_response().boxed(),
            database: services.database,
            tasks,
            loops,
            drain: drain_control,
            stop,
            flushing: Loops(flushing),
            worker,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the metrics listener listens, when `PLINTH_METRICS_ADDR` set one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Serves until SIGINT or SIGTERM, then drains: readiness fails and every WebSocket
    /// closes with 1012 (reconnect); the delivery loops and the in-process worker stop
    /// after their step under way (the worker's job ends while this server still
    /// answers it); then the server stops accepting and finishes the requests in flight;
    /// the scheduled tasks stop (the leader's lock goes with its connection), the
    /// delivery loops' last batches are waited for, the embedded cluster stops, and the
    /// spans not exported yet are sent (`telemetry`). Each wait is bounded; the whole
    /// fits fly.toml's `kill_timeout` (30 s).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let metrics_addr = self.metrics_addr();
        let Application {
            acceptor,
            addr,
            endpoint,
            metrics,
            database,
            tasks,
            loops,
            drain,
            stop,
            mut flushing,
            worker,
        } = self;
        tracing::info!(addr = %addr, metrics_addr = ?metrics_addr, "listening");
        let _metrics = MetricsListener::spawn(metrics);
        let signal = async {
            shutdown_signal().await;
            drain.start();
            stop.send_replace(true);
            if let Some(mut worker) = worker {
                if tokio::time::timeout(WORKER_GRACE, &mut worker).await.is_err() {
                    // Its job's lease expires and the lease sweeper requeues it.
                    tracing::warn!("the in-process worker's job did not end in time; left to its lease");
                    worker.abort();
                }
            }
        };
        let served =
            Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(endpoint, signal, Some(REQUEST_GRACE)).await;
        let open = drain.sockets_closed(SOCKET_GRACE).await;
        if open > 0 {
            tracing::warn!(open, "sockets still open at the end of the drain");
        }
        tasks.stop();
        drop(loops);
        let flush = futures_util::future::join_all(flushing.0.iter_mut());
        if tokio::time::timeout(FLUSH_GRACE, flush).await.is_err() {
            tracing::warn!("a delivery batch did not end in time; its rows are retried after their lease");
        }
        drop(flushing);
        let stopped = database.shutdown().await;
        tracing::info!("drained");
        // The spans still buffered leave last (the exporter's call blocks, bounded by its timeout).
        let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
        served.context("serving HTTP")?;
        stopped
    }

    /// Serves until the process ends (tests).
    pub async fn run(self) -> std::io::Result<()> {
        let Application { acceptor, endpoint, database, tasks, loops, flushing, worker, metrics, .. } = self;
        let _metrics = MetricsListener::spawn(metrics);
        let result = Server::new_with_acceptor(acceptor).run(endpoint).await;
        drop(loops);
        drop(flushing);
        if let Some(w) = worker {
            w.abort();
        }
        drop(tasks);
        drop(database);
        result
    }
}

/// The reference worker (`crates/worker`) in this process (`PLINTH_IN_PROCESS_WORKER`,
/// development only): it claims every job kind from this server's own GraphQL endpoint,
/// exactly as `plinth worker` would, with a worker token issued for this process alone
/// (neither recorded nor shown; it ends with the process).
///
/// Errors: a token that cannot be built; the worker's HTTP client.
fn start_in_process_worker(
    tokens: &TokenService,
    addr: SocketAddr,
    listen: bool,
    mut stop: crate::tasks::Stop,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use crate::model::JobKind;
    let kinds = [JobKind::Scan, JobKind::Prepare, JobKind::Publish];
    let token = tokens.issue_worker(uuid::Uuid::now_v7(), &kinds, Duration::from_secs(365 * 86_400))?;
    // A server listening on every interface is reached on loopback.
    let ip = if addr.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { addr.ip() };
    let worker = plinth_worker::Worker::new(plinth_worker::WorkerSettings {
        api_url: format!("http://{}/graphql", SocketAddr::new(ip, addr.port())),
        token: token.into(),
        kinds: kinds.iter().map(|k| k.as_str().to_uppercase()).collect(),
        idle_poll: Duration::from_secs(1),
        listen,
    })?;
    tracing::info!("the reference worker runs in this process (development; PLINTH_IN_PROCESS_WORKER=false stops it)");
    Ok(tokio::spawn(async move {
        if let Err(e) = worker.run(async move { crate::tasks::stopped(&mut stop).await }).await {
            tracing::error!(error = format!("{e:#}"), "the in-process worker stopped");
        }
    }))
}

fn billing_service(
    config: &Config,
    public_url: &str,
    pool: RuntimePool,
    bus: Arc<EventBus>,
    catalog: Arc<Catalog>,
) -> anyhow::Result<BillingService> {
    let stripe = match &config.billing.stripe_secret_key {
        Some(key) => {
            Some(StripeApi::new(&config.billing.stripe_api_base, key.expose_secret(), config.billing.stripe_timeout)?)
        }
        None => None,
    };
    let settings = BillingSettings {
        webhook_secrets: config.billing.webhook_secrets.iter().map(|s| s.expose_secret().to_owned()).collect(),
        webhook_tolerance_secs: config.billing.webhook_tolerance_secs,
        success_url: config
            .billing
            .success_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}/app/billing?session_id={{CHECKOUT_SESSION_ID}}")),
        // The web app's billing page (`/billing` is no page of it).
        cancel_url: config.billing.cancel_url.clone().unwrap_or_else(|| format!("{public_url}/app/billing")),
        portal_return_url: config.billing.return_url.clone().unwrap_or_else(|| format!("{public_url}/app/billing")),
        grace_days: config.billing.grace_days,
        statement_timeout_ms: config.database.statement_timeout_ms,
    };
    Ok(BillingService::new(pool, catalog, stripe, settings, bus))
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
