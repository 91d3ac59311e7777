//! The black-box harness: the real server (the same `Application::build` as `main`)
//! on a random port, against a fresh database cloned from a migrated template, spoken
//! to over HTTP and WebSocket like a client.
#![allow(dead_code)]

pub mod stripe;

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
    format!("plinth_tpl_{}", api::db::schema_fingerprint())
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
    // The catalog is configuration now; this process's plans file goes in the vars.
    if let Some(plans) = std::env::var_os("PLINTH_PLANS_FILE") {
        vars.insert("PLINTH_PLANS_FILE".into(), plans.to_string_lossy().into_owned());
    }
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
        if std::env::var_os("PLINTH_PLANS_FILE").is_none() {
            free_plan_with(&[]);
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
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("plinth-test-key-{}", self.database)));
    }
}

/// The `extensions.code` of the first error.
pub fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error>")
}

/// Makes every app this test process starts use the built-in catalog with the Free
/// plan's lines replaced as given (`("scans = 20", "scans = 10")`). The request rate is
/// lifted unless an edit sets it: tests send far more than 60 requests a minute.
pub fn free_plan_with(edits: &[(&str, &str)]) {
    let mut text = include_str!("../../../plans.toml").to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "plans.toml has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    if !edits.iter().any(|(from, _)| from.starts_with("api_requests_per_minute")) {
        text = text.replacen("api_requests_per_minute = 60", "api_requests_per_minute = 1000000", 1);
    }
    let path = std::env::temp_dir().join(format!("plinth-plans-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    // Passed to Config by test_config; each test runs in its own process.
    std::env::set_var("PLINTH_PLANS_FILE", &path);
}

/// A Free plan without practical limits, for tests about something other than quotas.
pub fn unlimited_free_plan() {
    free_plan_with(&[
        ("scans = 20", "scans = 1000000"),
        ("preparations = 10", "preparations = 1000000"),
        ("connected_accounts = 1", "connected_accounts = 1000000"),
    ]);
}

/// The S3-compatible server the tests use (`.ci/run` starts s3s-fs there).
pub fn s3_endpoint() -> String {
    std::env::var("PLINTH_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9014".into())
}

/// Test S3 credentials (s3s-fs is started with these).
pub const S3_ACCESS_KEY: &str = "plinth-test";
/// Test S3 secret.
pub const S3_SECRET_KEY: &str = "plinth-test-secret";

/// Creates a fresh bucket on the test S3 server and returns its name.
pub async fn fresh_bucket() -> String {
    let name = format!("plinth-{}", &Uuid::new_v4().simple().to_string()[..16]);
    let region = s3::Region::Custom { region: "us-east-1".into(), endpoint: s3_endpoint() };
    let creds = s3::creds::Credentials::new(Some(S3_ACCESS_KEY), Some(S3_SECRET_KEY), None, None, None).unwrap();
    let created = s3::Bucket::create_with_path_style(&name, region, creds, s3::BucketConfiguration::default())
        .await
        .expect("creating a bucket on the test S3 server (is s3s-fs running? see .ci/run)");
    assert!(created.success(), "bucket creation answered {}", created.response_code);
    name
}

impl TestApp {
    /// A server whose photos go to a fresh bucket on the test S3 server.
    pub async fn spawn_with_s3() -> TestApp {
        let bucket = fresh_bucket().await;
        let endpoint = s3_endpoint();
        TestApp::spawn_with(&[
            ("PLINTH_S3_ENDPOINT", endpoint.as_str()),
            ("PLINTH_S3_BUCKET", bucket.as_str()),
            ("PLINTH_S3_REGION", "us-east-1"),
            ("PLINTH_S3_ACCESS_KEY", S3_ACCESS_KEY),
            ("PLINTH_S3_SECRET_KEY", S3_SECRET_KEY),
        ])
        .await
    }

    /// Creates a draft as `token`; returns its id.
    pub async fn create_draft(&self, token: &str, title: &str) -> String {
        let r = self
            .gql(
                Some(token),
                "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id } }",
                json!({ "i": { "title": title } }),
            )
            .await;
        r["data"]["createDraft"]["id"].as_str().unwrap_or_else(|| panic!("createDraft failed: {r}")).to_owned()
    }

    /// Uploads `bytes` as a photo of `content_type` through the presigned URL and
    /// confirms it, attached to `draft_id`; returns the confirmed photo.
    pub async fn upload_photo(&self, token: &str, draft_id: Option<&str>, content_type: &str, bytes: &[u8]) -> Value {
        let r = self
            .gql(
                Some(token),
                "mutation($ct: String!, $n: Int!, $d: ID) { createUpload(contentType: $ct, byteSize: $n, draftId: $d) {
                   photo { id } uploadUrl headers { name value } } }",
                json!({ "ct": content_type, "n": bytes.len(), "d": draft_id }),
            )
            .await;
        let up = &r["data"]["createUpload"];
        assert!(up.is_object(), "createUpload failed: {r}");
        let mut put = self.client.put(up["uploadUrl"].as_str().unwrap()).body(bytes.to_vec());
        for h in up["headers"].as_array().unwrap() {
            put = put.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
        }
        let status = put.send().await.unwrap().status();
        assert!(status.is_success(), "upload answered {status}");
        let c = self
            .gql(
                Some(token),
                "mutation($p: ID!) { confirmUpload(photoId: $p) { id draftId position width height sha256 status url byteSize contentType } }",
                json!({ "p": up["photo"]["id"] }),
            )
            .await;
        assert!(c["data"]["confirmUpload"].is_object(), "confirmUpload failed: {c}");
        c["data"]["confirmUpload"].clone()
    }
}

/// A valid PNG of `w`×`h` pixels (uncompressed, for tests).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in bytes {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        out.extend(&c);
        out.extend(crc32(&c).to_be_bytes());
    }
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.push(0u8);
        raw.extend(std::iter::repeat_n(0x7Fu8, (w * 3) as usize));
    }
    // zlib stream of stored (uncompressed) deflate blocks.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend((block.len() as u16).to_le_bytes());
        z.extend((!(block.len() as u16)).to_le_bytes());
        z.extend(*block);
    }
    z.extend(adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A GraphQL WebSocket client (graphql-transport-ws), as a mobile app would use.
pub struct WsClient {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What came next on a socket.
#[derive(Debug)]
pub enum WsEvent {
    /// A `next` payload (the subscription's data or errors).
    Next(Value),
    /// A protocol message other than `next` (`complete`, `pong`, `error`).
    Other(Value),
    /// The server closed the socket with this code.
    Closed(u16),
    /// Nothing within the wait.
    Timeout,
}

impl WsClient {
    /// Connects and sends `connection_init` with `token`; waits for the ack.
    pub async fn connect(app: &TestApp, token: Option<&str>) -> WsClient {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
        let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let payload = token.map(|t| json!({ "authorization": format!("Bearer {t}") })).unwrap_or(json!({}));
        ws.send(Message::Text(json!({ "type": "connection_init", "payload": payload }).to_string().into()))
            .await
            .unwrap();
        let ack = ws.next().await.unwrap().unwrap();
        let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
        assert_eq!(ack["type"], "connection_ack");
        WsClient { ws }
    }

    /// Sends a message of the protocol.
    pub async fn send(&mut self, msg: Value) {
        use futures::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::Text(msg.to_string().into())).await.unwrap();
    }

    /// Starts subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next event within `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> WsEvent {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let msg = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return WsEvent::Closed(0),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    return match v["type"].as_str() {
                        Some("next") => WsEvent::Next(v["payload"].clone()),
                        Some("ping") => {
                            self.send(json!({ "type": "pong" })).await;
                            continue;
                        }
                        _ => WsEvent::Other(v),
                    };
                }
                Message::Close(frame) => return WsEvent::Closed(frame.map(|f| f.code.into()).unwrap_or(0)),
                _ => continue,
            }
        }
    }
}

impl TestApp {
    /// A worker token for `kinds`, signed with this app's key.
    pub fn worker_token(&self, kinds: &[&str]) -> String {
        let config = test_config(&self.database, &self.data_dir, &[]);
        let tokens = api::auth::tokens::TokenService::from_config(&config).unwrap();
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        tokens.issue_worker(Uuid::now_v7(), &kinds, std::time::Duration::from_secs(3600)).unwrap()
    }

    /// The reference worker, pointed at this app.
    pub fn worker(&self, token: &str, kinds: &[&str]) -> api::jobs::worker::Worker {
        api::jobs::worker::Worker::new(api::jobs::worker::WorkerSettings {
            api_url: self.url("/graphql"),
            token: token.to_owned().into(),
            kinds: kinds.iter().map(|k| k.to_uppercase()).collect(),
            idle_poll: std::time::Duration::from_millis(100),
        })
        .unwrap()
    }
}
