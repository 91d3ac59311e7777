//! The black-box harness: the real server (the same `Application::build` as `main`)
//! on a random port, against a fresh database cloned from a migrated template, spoken
//! to over HTTP and WebSocket like a client.
#![allow(dead_code)]

use api::{config::Config, Application};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, Connection, Executor, PgConnection, PgPool};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};
use uuid::Uuid;

/// The machine's PostgreSQL as its superuser; tests create databases there.
pub fn admin_url(db: &str) -> String {
    let base = std::env::var("PLINTH_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{base}/{db}")
}

/// The Redis tests may use.
pub fn redis_url() -> String {
    std::env::var("PLINTH_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn template_name() -> String {
    format!("plinth_tpl_{}", api::db::SCHEMA_FINGERPRINT)
}

/// Creates the migrated template once per schema version, across test processes.
async fn ensure_template() {
    let mut conn = PgConnection::connect(&admin_url("postgres")).await.expect("connect to test postgres");
    conn.execute("SELECT pg_advisory_lock(7261001)").await.unwrap();
    let tpl = template_name();
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&tpl)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    if exists.is_none() {
        let building = format!("{tpl}_building");
        conn.execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str()).await.unwrap();
        conn.execute(format!("CREATE DATABASE {building}").as_str()).await.unwrap();
        api::db::migrate(&admin_url(&building), None).await.expect("migrating the template");
        conn.execute(format!("ALTER DATABASE {building} RENAME TO {tpl}").as_str()).await.unwrap();
        conn.execute(format!("ALTER DATABASE {tpl} IS_TEMPLATE true").as_str()).await.unwrap();
    }
    conn.execute("SELECT pg_advisory_unlock(7261001)").await.unwrap();
}

/// A fresh database cloned from the template: milliseconds, not a migration.
pub async fn fresh_database() -> String {
    ensure_template().await;
    let name = format!("plinth_test_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin_url("postgres")).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name} TEMPLATE {}", template_name()).as_str()).await.unwrap();
    name
}

/// Builds a test configuration; `extra` overrides or adds variables.
pub fn test_config(database: &str, data_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), admin_url(database)),
        ("PLINTH_ADDR".into(), "127.0.0.1:0".into()),
        ("PLINTH_DATA_DIR".into(), data_dir.display().to_string()),
        // Cheap hashes keep the suite fast; the production cost is the default.
        ("PLINTH_ARGON2_MEMORY_KIB".into(), "1024".into()),
        ("PLINTH_DB_POOL_SIZE".into(), "4".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_vars(vars).expect("test config")
}

/// One running server and its database.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database's name.
    pub database: String,
    /// Superuser pool on its database, for assertions that look under RLS.
    pub db: PgPool,
    /// Its data dir.
    pub data_dir: PathBuf,
    client: reqwest::Client,
}

/// Authentication of a registered test user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// A server on a fresh database with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A server on a fresh database with extra configuration.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        let database = fresh_database().await;
        Self::spawn_on(&database, extra).await
    }

    /// A server on an existing test database (a second instance, say).
    pub async fn spawn_on(database: &str, extra: &[(&str, &str)]) -> TestApp {
        if std::env::var("TEST_LOG").is_ok() {
            api::telemetry::init(api::config::LogFormat::Pretty);
        }
        let data_dir = std::env::temp_dir().join(format!("plinth-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir).unwrap();
        // Instances of one test share a signing key, as instances of one deployment do.
        let key_file = std::env::temp_dir().join(format!("plinth-test-key-{database}"));
        if let Ok(key) = std::fs::read_to_string(&key_file) {
            std::fs::write(data_dir.join("token_key"), key).unwrap();
        }
        let config = test_config(database, &data_dir, extra);
        let app = Application::build(config).await.expect("building the app");
        if !key_file.exists() {
            std::fs::copy(data_dir.join("token_key"), &key_file).unwrap();
        }
        let addr = app.addr();
        tokio::spawn(app.run());
        let db = PgPoolOptions::new().max_connections(2).connect(&admin_url(database)).await.unwrap();
        TestApp {
            addr,
            database: database.to_owned(),
            db,
            data_dir,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs a GraphQL request; returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("POST /graphql");
        assert!(resp.status().is_success(), "status {}", resp.status());
        resp.json().await.expect("JSON response")
    }

    /// Registers a user with a unique e-mail.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!("{name}-{}@example.com", &Uuid::new_v4().simple().to_string()[..8]);
        let password = "correct horse battery".to_string();
        let r = self
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken user { id } } }",
                json!({ "i": { "email": email, "password": password } }),
            )
            .await;
        let p = &r["data"]["register"];
        assert!(p.is_object(), "register failed: {r}");
        TestUser {
            id: p["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            password,
            access: p["accessToken"].as_str().unwrap().to_owned(),
            refresh: p["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// The latest outbox message of `template` to `email` (read as superuser).
    pub async fn last_mail(&self, email: &str, template: &str) -> Option<Value> {
        let row: Option<(Value,)> = sqlx::query_as(
            "SELECT data FROM email_outbox WHERE to_email = $1 AND template = $2 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(email)
        .bind(template)
        .fetch_optional(&self.db)
        .await
        .unwrap();
        row.map(|r| r.0)
    }

    /// Counts rows of a table (as superuser).
    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(&self.db).await.unwrap();
        n
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The `extensions.code` of the first error.
pub fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error>")
}
