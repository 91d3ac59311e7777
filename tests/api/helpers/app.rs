//! [`TestApp`]: one running server (the same `Application::build` as `main`) on a
//! random port, against its own database, and the builder that varies its
//! configuration. Configuration goes to `Config::from_vars`; nothing here touches the
//! process environment, so any number of apps run side by side in one process.
use super::{
    services::{
        admin_url, fresh_bucket, fresh_database, redis_url, require, s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY,
    },
    stripe::FakeStripe,
};
use api::{config::Config, Application};
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};
use uuid::Uuid;

/// The catalog every app starts from: the built-in one.
const BUILTIN_PLANS: &str = include_str!("../../../plans.toml");

/// Files of an instance's data dir that instances of one deployment share: the token
/// signing key and the key sealing marketplace credentials.
const SHARED_KEYS: [&str; 2] = ["token_key", "credentials_key"];

/// One running server and its database.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its metrics listener listens (`PLINTH_METRICS_ADDR`), if it has one.
    pub metrics_addr: Option<SocketAddr>,
    /// Its database's name.
    pub database: String,
    /// Superuser pool on its database, for assertions that look under RLS.
    pub db: PgPool,
    /// Its data dir (a fresh temporary directory).
    pub data_dir: PathBuf,
    /// The configuration it was built with.
    pub config: Config,
    /// The variables given on top of the test defaults, resolved (bucket, Redis URL ...),
    /// so that another instance starts alike.
    vars: Vec<(String, String)>,
    /// Its plan catalog, as written to `data_dir/plans.toml`.
    plans: String,
    /// The `plinth serve` process it runs in, when not in the test's own process.
    process: Option<tokio::process::Child>,
    pub(super) client: reqwest::Client,
}

/// How to start a [`TestApp`]: `TestApp::builder().with_...().spawn().await`.
#[derive(Clone, Debug, Default)]
#[must_use = "nothing starts until .spawn().await"]
pub struct TestAppBuilder {
    plan_edits: Vec<(String, String)>,
    vars: Vec<(String, String)>,
    redis: bool,
    s3: bool,
    database_via: Option<SocketAddr>,
    own_process: bool,
    /// The Stripe and SendGrid stand-ins' URLs of a production configuration.
    production: Option<(String, String)>,
}

impl TestAppBuilder {
    /// Replaces lines of the built-in catalog's Free plan: `("scans = 20", "scans = 10")`
    /// (the first occurrence of each is the Free plan's). Calls add up.
    pub fn with_free_plan_edits(mut self, edits: &[(&str, &str)]) -> Self {
        self.plan_edits.extend(edits.iter().map(|(from, to)| (from.to_string(), to.to_string())));
        self
    }

    /// A Free plan without practical limits, for tests about something other than quotas.
    pub fn with_unlimited_free_plan(self) -> Self {
        self.with_free_plan_edits(&[
            ("scans = 20", "scans = 1000000"),
            ("preparations = 10", "preparations = 1000000"),
            ("connected_accounts = 1", "connected_accounts = 1000000"),
        ])
    }

    /// Billing against the Stripe stand-in, its webhooks signed with
    /// [`FakeStripe::WEBHOOK_SECRET`] (or the previous secret, during a rotation).
    pub fn with_stripe(self, stripe: &FakeStripe) -> Self {
        let secrets = format!("{},{}", FakeStripe::PREVIOUS_WEBHOOK_SECRET, FakeStripe::WEBHOOK_SECRET);
        self.with_env("PLINTH_STRIPE_SECRET_KEY", FakeStripe::SECRET_KEY)
            .with_env("PLINTH_STRIPE_API_BASE", &stripe.url)
            .with_env("PLINTH_STRIPE_WEBHOOK_SECRET", &secrets)
    }

    /// Mail through the SendGrid stand-in.
    pub fn with_sendgrid(self, sendgrid: &super::sendgrid::FakeSendGrid) -> Self {
        self.with_env("PLINTH_SENDGRID_API_KEY", super::sendgrid::FakeSendGrid::API_KEY)
            .with_env("PLINTH_SENDGRID_API_BASE", &sendgrid.url)
    }

    /// Rate limits and events through the machine's Redis. Every test that uses Redis
    /// shares it, all from 127.0.0.1, so the per-IP sign-in limit is lifted (a later
    /// `with_env` may set it again).
    pub fn with_redis(mut self) -> Self {
        self.redis = true;
        self
    }

    /// Photos on a fresh bucket of the test S3-compatible server instead of the data dir.
    pub fn with_s3(mut self) -> Self {
        self.s3 = true;
        self
    }

    /// Reaches its database through `addr` (a fault-injecting proxy to the machine's
    /// PostgreSQL) instead of directly.
    pub fn with_database_via(mut self, addr: SocketAddr) -> Self {
        self.database_via = Some(addr);
        self
    }

    /// A production configuration (`PLINTH_ENV=production`) against the suite's
    /// services: the database as `plinth_app` only (`PLINTH_APP_DATABASE_URL`, no owner
    /// URL), Redis, a fresh bucket, generated keys, and these stand-ins for Stripe and
    /// SendGrid.
    pub fn in_production(mut self, stripe: &FakeStripe, sendgrid: &super::sendgrid::FakeSendGrid) -> Self {
        self.production = Some((stripe.url.clone(), sendgrid.url.clone()));
        self.redis = true;
        self.s3 = true;
        self
    }

    /// Serves from a `plinth serve` process of its own (signals, process-wide state).
    pub fn in_its_own_process(mut self) -> Self {
        self.own_process = true;
        self
    }

    /// Sets one configuration variable, as the environment would (`PLINTH_...`).
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server on a fresh database.
    pub async fn spawn(self) -> TestApp {
        let mut vars = Vec::new();
        if self.redis {
            let url = redis_url();
            require("Redis", &url).await;
            vars.push(("REDIS_URL".to_owned(), url));
            vars.push(("PLINTH_LOGIN_LIMIT_PER_IP".to_owned(), "1000000".to_owned()));
        }
        if self.s3 {
            let bucket = fresh_bucket().await;
            vars.extend(
                [
                    ("PLINTH_S3_ENDPOINT", s3_endpoint()),
                    ("PLINTH_S3_BUCKET", bucket),
                    ("PLINTH_S3_REGION", "us-east-1".into()),
                    ("PLINTH_S3_ACCESS_KEY", S3_ACCESS_KEY.into()),
                    ("PLINTH_S3_SECRET_KEY", S3_SECRET_KEY.into()),
                ]
                .map(|(k, v)| (k.to_owned(), v)),
            );
        }
        let database = fresh_database().await;
        if let Some(via) = self.database_via {
            let url = format!("postgres://postgres@{via}/{database}");
            vars.push(("DATABASE_URL".to_owned(), url));
        }
        if let Some((stripe, sendgrid)) = &self.production {
            vars.extend(production_vars(&database, stripe, sendgrid));
        }
        vars.extend(self.vars);
        let plans = plans_with(&self.plan_edits);
        let host = if self.own_process { Host::OwnProcess } else { Host::ThisProcess };
        TestApp::start(database, vars, plans, None, host).await
    }
}

/// The production settings of [`TestAppBuilder::in_production`] for `database`.
fn production_vars(database: &str, stripe: &str, sendgrid: &str) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    // Keys derived from the database's name: every instance of the deployment shares them.
    let key = |what: &str| hex::encode(Sha256::digest(format!("{what}:{database}")));
    let runtime = api::db::runtime_url(&admin_url(database), None).unwrap();
    [
        ("PLINTH_ENV", "production".to_owned()),
        // Unset (an empty value counts as unset): the runtime never holds the owner's URL.
        ("DATABASE_URL", String::new()),
        ("PLINTH_APP_DATABASE_URL", runtime),
        ("PLINTH_TOKEN_KEY", format!("ed25519-private/{}", key("token"))),
        ("PLINTH_CREDENTIALS_KEY", key("credentials")),
        ("PLINTH_PUBLIC_URL", "http://127.0.0.1".to_owned()),
        ("PLINTH_STRIPE_SECRET_KEY", FakeStripe::SECRET_KEY.to_owned()),
        ("PLINTH_STRIPE_API_BASE", stripe.to_owned()),
        ("PLINTH_STRIPE_WEBHOOK_SECRET", FakeStripe::WEBHOOK_SECRET.to_owned()),
        ("PLINTH_SENDGRID_API_KEY", super::sendgrid::FakeSendGrid::API_KEY.to_owned()),
        ("PLINTH_SENDGRID_API_BASE", sendgrid.to_owned()),
        ("PLINTH_MAIL_FROM", "Plinth <no-reply@example.com>".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

/// The built-in catalog with the Free plan's lines replaced. The request rate is lifted
/// unless an edit sets it: tests send far more than 60 requests a minute.
fn plans_with(edits: &[(String, String)]) -> String {
    let mut text = BUILTIN_PLANS.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from.as_str()), "plans.toml has no {from:?}");
        text = text.replacen(from.as_str(), to, 1);
    }
    if !edits.iter().any(|(from, _)| from.starts_with("api_requests_per_minute")) {
        text = text.replacen("api_requests_per_minute = 60", "api_requests_per_minute = 1000000", 1);
    }
    text
}

/// The test configuration's variables: the defaults below, then `vars` over them.
fn test_vars(database: &str, data_dir: &Path, plans_file: &Path, vars: &[(String, String)]) -> HashMap<String, String> {
    let mut all: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), admin_url(database)),
        ("PLINTH_ADDR".into(), "127.0.0.1:0".into()),
        ("PLINTH_DATA_DIR".into(), data_dir.display().to_string()),
        ("PLINTH_PLANS_FILE".into(), plans_file.display().to_string()),
        // Cheap hashes keep the suite fast; the production cost is the default.
        ("PLINTH_ARGON2_MEMORY_KIB".into(), "1024".into()),
        ("PLINTH_DB_POOL_SIZE".into(), "4".into()),
        // Every test registers its users from 127.0.0.1 (through one Redis, with_redis):
        // the sign-up throttle is lifted unless a test sets it.
        ("PLINTH_SIGNUP_LIMIT_PER_IP".into(), "1000000".into()),
        ("PLINTH_SIGNUP_LIMIT_GLOBAL".into(), "1000000".into()),
        // Retries within a test's patience.
        ("PLINTH_MAIL_BACKOFF_MS".into(), "100".into()),
        ("PLINTH_MAIL_MAX_BACKOFF_MS".into(), "2000".into()),
        ("PLINTH_MAIL_POLL_MS".into(), "100".into()),
        // Tests run their own workers, when and as they choose.
        ("PLINTH_IN_PROCESS_WORKER".into(), "false".into()),
    ]);
    all.extend(vars.iter().cloned());
    all
}

/// Where an app's server runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    /// On the test's runtime, in the test's process.
    ThisProcess,
    /// In a `plinth serve` process of its own.
    OwnProcess,
}

impl TestApp {
    /// A server on a fresh database with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// A server with another configuration: see [`TestAppBuilder`].
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Another instance of the same deployment: this app's database, configuration,
    /// catalog and keys, its own process state (as a second machine behind the proxy).
    pub async fn another_instance(&self) -> TestApp {
        let (vars, plans) = (self.vars.clone(), self.plans.clone());
        Self::start(self.database.clone(), vars, plans, Some(&self.data_dir), Host::ThisProcess).await
    }

    /// Another instance of the same deployment with some settings of its own (`vars`
    /// over this app's), e.g. reaching Redis through another path.
    pub async fn another_instance_with(&self, vars: &[(&str, &str)]) -> TestApp {
        let mut all = self.vars.clone();
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::start(self.database.clone(), all, self.plans.clone(), Some(&self.data_dir), Host::ThisProcess).await
    }

    /// Another instance, served by a `plinth serve` process of its own: for what is
    /// counted process-wide (the statement counter), to which apps of other tests
    /// running in this process would add.
    pub async fn another_instance_in_its_own_process(&self) -> TestApp {
        let (vars, plans) = (self.vars.clone(), self.plans.clone());
        Self::start(self.database.clone(), vars, plans, Some(&self.data_dir), Host::OwnProcess).await
    }

    async fn start(
        database: String,
        vars: Vec<(String, String)>,
        plans: String,
        keys_from: Option<&Path>,
        host: Host,
    ) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            api::telemetry::init(api::config::LogFormat::Pretty);
        }
        let data_dir = std::env::temp_dir().join(format!("plinth-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir).unwrap();
        if let Some(from) = keys_from {
            for key in SHARED_KEYS {
                if from.join(key).exists() {
                    std::fs::copy(from.join(key), data_dir.join(key)).unwrap();
                }
            }
        }
        let plans_file = data_dir.join("plans.toml");
        std::fs::write(&plans_file, &plans).unwrap();
        let mut all_vars = test_vars(&database, &data_dir, &plans_file, &vars);
        let (addr, metrics_addr, process) = match host {
            Host::ThisProcess => {
                let config = Config::from_vars(all_vars.clone()).expect("test config");
                let app = Application::build(config, plinth_webapp::file).await.expect("building the app");
                let (addr, metrics_addr) = (app.addr(), app.metrics_addr());
                tokio::spawn(app.run());
                (addr, metrics_addr, None)
            }
            Host::OwnProcess => {
                // Ports of its own, known before the start (released just before it).
                let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
                let addr = free();
                all_vars.insert("PLINTH_ADDR".into(), addr.to_string());
                let metrics_addr = all_vars.contains_key("PLINTH_METRICS_ADDR").then(free);
                if let Some(m) = metrics_addr {
                    all_vars.insert("PLINTH_METRICS_ADDR".into(), m.to_string());
                }
                (addr, metrics_addr, Some(serve_in_own_process(&all_vars, &data_dir, addr).await))
            }
        };
        let config = Config::from_vars(all_vars).expect("test config");
        let db = PgPoolOptions::new().max_connections(2).connect(&admin_url(&database)).await.unwrap();
        TestApp {
            addr,
            metrics_addr,
            database,
            db,
            data_dir,
            config,
            vars,
            plans,
            process,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Every variable it was configured with (the test defaults and its own), as a
    /// `plinth` command of the same deployment would read them from the environment.
    pub fn env(&self) -> HashMap<String, String> {
        test_vars(&self.database, &self.data_dir, &self.data_dir.join("plans.toml"), &self.vars)
    }

    /// The id of its `plinth serve` process, when it has one of its own.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.id())
    }

    /// Waits for its own `plinth serve` process to end, up to `within`; its exit status,
    /// or None when it still runs.
    pub async fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let child = self.process.as_mut()?;
        tokio::time::timeout(within, child.wait()).await.ok().and_then(Result::ok)
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its Prometheus text: from the metrics listener when it has one, else from
    /// `/metrics` on its address (development).
    pub async fn scrape(&self) -> String {
        let url = match self.metrics_addr {
            Some(m) => format!("http://{m}/metrics"),
            None => self.url("/metrics"),
        };
        let resp = self.client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.unwrap()
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// The `plinth` command line with `args`, configured like this app (its database,
    /// data dir and catalog), logging errors only.
    pub fn cli(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"));
        cmd.args(args)
            .env("DATABASE_URL", admin_url(&self.database))
            .env("PLINTH_DATA_DIR", &self.data_dir)
            .env("PLINTH_PLANS_FILE", self.data_dir.join("plans.toml"))
            .env("RUST_LOG", "error");
        cmd
    }

    /// The latest outbox message of `template` to `email` (read as superuser).
    pub async fn last_mail(&self, email: &str, template: &str) -> Option<serde_json::Value> {
        let row: Option<(serde_json::Value,)> = sqlx::query_as(
            "SELECT data FROM email_outbox WHERE to_email = $1 AND template = $2 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(email)
        .bind(template)
        .fetch_optional(&self.db)
        .await
        .unwrap();
        row.map(|r| r.0)
    }

    /// The one-time token of the latest `template` mail to `email`, read from the mail
    /// the file mailer wrote once the worker delivered it (waits up to 15 s).
    pub async fn mailed_token(&self, email: &str, template: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let row: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT id, status FROM email_outbox WHERE to_email = $1 AND template = $2
                  ORDER BY created_at DESC LIMIT 1",
            )
            .bind(email)
            .bind(template)
            .fetch_optional(&self.db)
            .await
            .unwrap();
            if let Some((id, status)) = row {
                if status == "sent" {
                    let eml = std::fs::read_to_string(delivered_file(&self.data_dir, id)).unwrap();
                    return token_in(&decoded_mail(&eml)).expect("a token in the mail");
                }
            }
            assert!(std::time::Instant::now() < deadline, "no {template} mail to {email} was delivered");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Counts rows of a table (as superuser); `table` may carry a `WHERE`.
    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(&self.db).await.unwrap();
        n
    }

    /// A worker token for `kinds`, signed with this app's key.
    pub fn worker_token(&self, kinds: &[&str]) -> String {
        let settings = api::startup::token_settings(&self.config.base, &self.config.auth);
        let tokens = api::auth::tokens::TokenService::from_settings(&settings).unwrap();
        let kinds: Vec<api::model::JobKind> = kinds.iter().map(|k| k.parse().unwrap()).collect();
        tokens.issue_worker(Uuid::now_v7(), &kinds, std::time::Duration::from_secs(3600)).unwrap()
    }

    /// The reference worker, pointed at this app.
    pub fn worker(&self, token: &str, kinds: &[&str]) -> plinth_worker::Worker {
        plinth_worker::Worker::new(plinth_worker::WorkerSettings {
            api_url: self.url("/graphql"),
            token: token.to_owned().into(),
            kinds: kinds.iter().map(|k| k.to_uppercase()).collect(),
            idle_poll: std::time::Duration::from_millis(100),
            listen: true,
        })
        .unwrap()
    }
}

/// Starts `plinth serve` with exactly `vars` and waits until `addr` answers /readyz;
/// its output goes to `data_dir/serve.log`, shown if it stops first.
async fn serve_in_own_process(
    vars: &HashMap<String, String>,
    data_dir: &Path,
    addr: SocketAddr,
) -> tokio::process::Child {
    let log = data_dir.join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plinth"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(vars)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .kill_on_drop(true)
        .spawn()
        .expect("starting plinth serve");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Ok(resp) = client.get(format!("http://{addr}/readyz")).send().await {
            if resp.status().is_success() {
                return child;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("plinth serve stopped ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(started.elapsed().as_secs() < 60, "plinth serve not ready on {addr} within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A server process of its own is killed with its handle, before its data dir goes.
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The text of a MIME message with its quoted-printable soft breaks and escapes undone
/// and its base64 parts decoded (enough to find a link in it).
pub fn decoded_mail(eml: &str) -> String {
    use base64::Engine;
    let unfolded = eml.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::new();
    let bytes = unfolded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&unfolded[i + 1..i + 3], 16) {
                out.push(b as char);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    let mut block = String::new();
    for line in eml.lines() {
        let l = line.trim();
        if !l.is_empty() && l.len() >= 16 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)) {
            block.push_str(l);
        } else if !block.is_empty() {
            if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(&block) {
                out.push_str(&String::from_utf8_lossy(&d));
            }
            block.clear();
        }
    }
    out
}

/// The `.eml` the file mailer wrote for outbox row `id`: under this instance's data dir,
/// or, when another instance of the deployment delivered it, under that one's (every
/// test instance's data dir is a `plinth-test-*` folder of the temp dir; row ids are
/// unique).
fn delivered_file(data_dir: &Path, id: Uuid) -> PathBuf {
    let name = format!("{id}.eml");
    let own = data_dir.join("mail").join(&name);
    if own.exists() {
        return own;
    }
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("mail").join(&name))
        .find(|p| p.exists())
        .unwrap_or(own)
}

/// The value of the first `token=` in `text`.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.~".contains(*c)).collect();
    (!token.is_empty()).then_some(token)
}
