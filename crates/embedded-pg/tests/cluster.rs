//! The embedded cluster as its callers use it: a first start creates it, a later start
//! reuses it, a start while it runs attaches to it, and only its owner stops it.
//! Runs the machine's PostgreSQL server binaries (as the `postgres` user under root).
use embedded_pg::{EmbeddedPostgres, Options};
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir (reachable by the server user), removed at the end.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        ScratchDir(std::env::temp_dir().join(format!("embedded-pg-{name}-{}-{nanos}", std::process::id())))
    }

    fn cluster(&self) -> PathBuf {
        self.0.join("postgres")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn query_one(url: &str, sql: &str) -> Result<String, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let value: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(value)
}

fn server_running(cluster: &Path) -> bool {
    cluster.join("data/postmaster.pid").exists()
}

#[tokio::test]
async fn a_first_start_creates_the_cluster_and_a_later_start_reuses_it() {
    let scratch = ScratchDir::new("reuse");
    let dir = scratch.cluster();

    let first = EmbeddedPostgres::start(&dir, &Options::default()).await.unwrap();
    assert!(first.is_owner());
    assert!(dir.join("data/PG_VERSION").is_file(), "initdb ran");
    assert!(first.owner_url().ends_with(&format!("@127.0.0.1:{}/plinth", first.port())));
    let mut conn = PgConnection::connect(first.owner_url()).await.unwrap();
    sqlx::query("CREATE TABLE kept (note text)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO kept VALUES ('still here')").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let app_password = first.app_password().to_owned();
    first.stop().await.unwrap();
    assert!(!server_running(&dir), "stop leaves no postmaster.pid");

    let second = EmbeddedPostgres::start(&dir, &Options::default()).await.unwrap();
    assert!(second.is_owner());
    assert_eq!(second.app_password(), app_password, "the generated password is kept");
    assert_eq!(query_one(second.owner_url(), "SELECT note FROM kept").await.unwrap(), "still here");
    drop(second);
    assert!(!server_running(&dir), "dropping the owner stops the server too");
}

#[tokio::test]
async fn a_start_while_the_cluster_runs_attaches_and_only_the_owner_stops_it() {
    let scratch = ScratchDir::new("attach");
    let dir = scratch.cluster();
    let owner = EmbeddedPostgres::start(&dir, &Options::default()).await.unwrap();

    let attached = EmbeddedPostgres::start(&dir, &Options::default()).await.unwrap();
    assert!(!attached.is_owner());
    assert_eq!(attached.port(), owner.port());
    assert_eq!(attached.owner_url(), owner.owner_url());
    assert_eq!(attached.app_password(), owner.app_password());
    assert_eq!(query_one(owner.owner_url(), "SELECT 'through the owner'").await.unwrap(), "through the owner");
    assert_eq!(query_one(attached.owner_url(), "SELECT current_database()::text").await.unwrap(), "plinth");

    drop(attached);
    assert!(server_running(&dir));
    assert_eq!(query_one(owner.owner_url(), "SELECT 'still running'").await.unwrap(), "still running");
    let again = EmbeddedPostgres::start(&dir, &Options::default()).await.unwrap();
    assert!(!again.is_owner());
    again.stop().await.unwrap();
    assert_eq!(query_one(owner.owner_url(), "SELECT 'still running'").await.unwrap(), "still running");

    let url = owner.owner_url().to_owned();
    owner.stop().await.unwrap();
    assert!(!server_running(&dir), "stop leaves no postmaster.pid");
    assert!(query_one(&url, "SELECT 'gone'").await.is_err());
}

#[tokio::test]
async fn two_starts_at_once_give_one_owner_and_one_attachment() {
    let scratch = ScratchDir::new("race");
    let dir = scratch.cluster();
    let options = Options::default();
    let (a, b) = tokio::join!(EmbeddedPostgres::start(&dir, &options), EmbeddedPostgres::start(&dir, &options));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_owner() != b.is_owner(), "exactly one owns the cluster");
    assert_eq!(a.port(), b.port());
    let (owner, attached) = if a.is_owner() { (a, b) } else { (b, a) };
    assert_eq!(query_one(attached.owner_url(), "SELECT 'attached'").await.unwrap(), "attached");
    drop(attached);
    owner.stop().await.unwrap();
    assert!(!server_running(&dir));
}

#[tokio::test]
async fn a_bin_dir_without_initdb_is_refused_in_one_line() {
    let scratch = ScratchDir::new("nobin");
    let options = Options { bin_dir: Some(scratch.0.join("no-such-bin")) };
    let err = EmbeddedPostgres::start(&scratch.cluster(), &options).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("no-such-bin does not contain initdb"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(!scratch.cluster().exists(), "nothing is created without binaries");
}
