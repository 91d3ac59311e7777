//! The machine's services the suite runs against. Each is found at a fixed address
//! (overridable with `PLINTH_TEST_*`); an absent one fails the test with a line that
//! says how to get it, never with a bare connection error.
use sqlx::{Connection, Executor, PgConnection};
use std::time::Duration;
use uuid::Uuid;

/// Where every "service absent" message sends the reader.
const HOW_TO_GET_IT: &str = "run scripts/test, which starts one";

/// The machine's PostgreSQL as its superuser, on database `db`; tests create databases there.
pub fn admin_url(db: &str) -> String {
    let base = std::env::var("PLINTH_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{base}/{db}")
}

/// The Redis the suite shares (rate limits and events of multi-instance tests).
pub fn redis_url() -> String {
    std::env::var("PLINTH_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The S3-compatible server the photo tests use (s3s-fs, started by scripts/test).
pub fn s3_endpoint() -> String {
    std::env::var("PLINTH_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9014".into())
}

/// The access key s3s-fs is started with.
pub const S3_ACCESS_KEY: &str = "plinth-test";
/// The secret key s3s-fs is started with.
pub const S3_SECRET_KEY: &str = "plinth-test-secret";

/// `host:port` of a URL.
fn host_port(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    format!("{}:{}", u.host_str().unwrap_or("127.0.0.1"), u.port_or_known_default().unwrap_or(0))
}

/// Fails the test unless something listens at `url`'s host and port.
pub async fn require(service: &str, url: &str) {
    let addr = host_port(url);
    let reachable = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&addr)).await;
    if !matches!(reachable, Ok(Ok(_))) {
        panic!("no {service} on {addr}: {HOW_TO_GET_IT}");
    }
}

/// The template every test database is cloned from: one per schema version.
fn template_name() -> String {
    format!("plinth_tpl_{}", api::db::schema_fingerprint())
}

/// A superuser connection to the machine's PostgreSQL.
async fn connect_admin() -> PgConnection {
    let url = admin_url("postgres");
    match PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(e) => panic!("no PostgreSQL at {} ({e}): {HOW_TO_GET_IT}", host_port(&url)),
    }
}

/// Creates the migrated template once per schema version, across test processes.
async fn ensure_template() {
    let mut conn = connect_admin().await;
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
    let mut conn = connect_admin().await;
    conn.execute(format!("CREATE DATABASE {name} TEMPLATE {}", template_name()).as_str()).await.unwrap();
    name
}

/// Creates a fresh bucket on the test S3 server and returns its name.
pub async fn fresh_bucket() -> String {
    let endpoint = s3_endpoint();
    require("S3-compatible server", &endpoint).await;
    let name = format!("plinth-{}", &Uuid::new_v4().simple().to_string()[..16]);
    let region = s3::Region::Custom { region: "us-east-1".into(), endpoint };
    let creds = s3::creds::Credentials::new(Some(S3_ACCESS_KEY), Some(S3_SECRET_KEY), None, None, None).unwrap();
    let created = s3::Bucket::create_with_path_style(&name, region, creds, s3::BucketConfiguration::default())
        .await
        .unwrap_or_else(|e| panic!("creating a bucket on the test S3 server: {e} ({HOW_TO_GET_IT})"));
    assert!(created.success(), "bucket creation answered {}", created.response_code);
    name
}
