//! The database: the runtime pool, migrations, and the per-request transaction that
//! row-level security is keyed to (`RequestTx`). The embedded development cluster is
//! the `embedded-pg` crate.
pub mod live;
pub mod pool;
pub mod request;

/// Identifies the schema the migrations build: their names and a hash of their sources,
/// so a test template database is rebuilt whenever a migration is added or edited.
pub fn schema_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(migration::FINGERPRINT.as_bytes());
    for m in <migration::Migrator as MigratorTrait>::migrations() {
        h.update(m.name().as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}
pub use pool::RuntimePool;
pub use request::{data, RequestMeta, RequestTx};

use crate::model::DbRole;
use anyhow::Context;
use migration::MigratorTrait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};
use std::time::Duration;
use uuid::Uuid;

/// The runtime's login role: owns nothing, cannot bypass RLS, may only switch to the
/// app roles (`model::DbRole`).
pub const APP_ROLE: &str = "plinth_app";

/// Key of the advisory lock that serializes migrations between instances starting at once.
const MIGRATION_LOCK: i64 = 0x706c_696e_7468; // "plinth"

/// Statements sent by the runtime pool since start (`plinth_db_statements_total`).
pub static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Opens the runtime pool (`pool::RuntimePool`) and one of its connections, so an
/// unreachable database or a refused login fails here, at start. No ping when a
/// connection is lent nor when it comes back: a dead connection fails its first
/// statement just as clearly. Waiting for a connection (and opening one) is bounded by
/// `acquire_timeout`, so an unreachable database answers fast.
///
/// Errors: the database refused or could not be reached.
pub async fn connect_runtime(url: &str, pool_size: u32, acquire_timeout: Duration) -> anyhow::Result<RuntimePool> {
    let pool = RuntimePool::new(url, pool_size, acquire_timeout).context("the runtime database URL")?;
    let conn = pool.acquire().await.context("connecting the runtime pool to the database")?;
    conn.release();
    Ok(pool)
}

/// One sea-orm connection as `url`'s role, outside any request (the schema check at
/// start, `plinth doctor`); close it when done.
///
/// Errors: the database refused or could not be reached.
pub async fn connect_direct(url: &str, timeout: Duration) -> anyhow::Result<DatabaseConnection> {
    let mut opts = one_connection(url);
    opts.acquire_timeout(timeout).connect_timeout(timeout).test_before_acquire(false);
    Database::connect(opts).await.context("connecting to the database")
}

/// sea-orm's options for one connection to `url`, its statements not logged.
fn one_connection(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1).min_connections(1).sqlx_logging(false);
    opts
}

/// Runs pending migrations as the owner, under an advisory lock so two instances
/// starting together do not race, then sets the runtime role's password if given.
///
/// Errors: the owner connection, the lock, or a migration failed.
pub async fn migrate(owner_url: &str, app_password: Option<&str>) -> anyhow::Result<()> {
    let db = Database::connect(one_connection(owner_url)).await.context("connecting to the database as its owner")?;
    db.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).await?;
    let result = migration::Migrator::up(&db, None).await.context("running migrations");
    db.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await?;
    result?;
    if let Some(password) = app_password {
        // ALTER ROLE takes no bind parameters: quote the literal (doubling quotes).
        let literal = password.replace('\'', "''");
        db.execute_unprepared(&format!("ALTER ROLE {APP_ROLE} PASSWORD '{literal}'"))
            .await
            .context("setting the runtime role's password")?;
    }
    db.close().await.ok();
    Ok(())
}

/// The migration that lets the runtime role read `seaql_migrations`: while it is not
/// applied, the read is refused, and this is the first migration the schema lacks.
const HISTORY_GRANT: &str = "m20261204_000201_read_migration_history";

/// The migrations this binary knows and the database has not applied, in order (empty:
/// the schema is current). Read as the runtime role, which may read only the applied
/// versions. Migrations the database has and this binary does not know (a newer release
/// migrated while this one still runs) are allowed: expand/contract keeps the previous
/// release working on the next schema (docs/deploy.md).
///
/// Errors: the database's, other than the refused read before the grant.
pub async fn missing_migrations(conn: &impl ConnectionTrait) -> anyhow::Result<Vec<String>> {
    let known: Vec<String> =
        <migration::Migrator as MigratorTrait>::migrations().iter().map(|m| m.name().to_owned()).collect();
    let sql = "SELECT version FROM seaql_migrations";
    let applied: std::collections::HashSet<String> =
        match conn.query_all(Statement::from_string(DbBackend::Postgres, sql)).await {
            Ok(rows) => rows.iter().map(|r| r.try_get::<String>("", "version")).collect::<Result<_, _>>()?,
            Err(e) => match sqlstate(&e).as_deref() {
                // No history at all: nothing was migrated.
                Some("42P01") => Default::default(),
                // Refused: the grant (and whatever follows it) is not applied yet.
                Some("42501") => {
                    let missing: Vec<String> = known.into_iter().skip_while(|m| m != HISTORY_GRANT).collect();
                    anyhow::ensure!(!missing.is_empty(), "the runtime role may not read seaql_migrations");
                    return Ok(missing);
                }
                _ => return Err(anyhow::Error::new(e).context("reading the applied migrations")),
            },
        };
    Ok(known.into_iter().filter(|m| !applied.contains(m)).collect())
}

/// Refuses to go on when the schema lacks a migration of this binary, naming the first.
///
/// Errors: the schema is behind, or the history cannot be read.
pub async fn ensure_schema_current(conn: &impl ConnectionTrait) -> anyhow::Result<()> {
    let missing = missing_migrations(conn).await?;
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "the database schema is behind this release: migration {first} is not applied ({} missing); \
             run `plinth migrate` (Fly's release command) first",
            missing.len()
        );
    }
    Ok(())
}

/// The SQLSTATE of a database error, when the database answered one.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
        }
        _ => None,
    }
}

/// Whether the database answers (`SELECT 1` on a connection of the pool).
///
/// Errors: the pool's or the database's.
pub async fn ping(pool: &RuntimePool) -> Result<(), DbErr> {
    let mut conn = pool.acquire().await.map_err(request::acquire_err)?;
    sea_orm::sqlx::Executor::execute(&mut *conn, "SELECT 1").await.map_err(request::exec_err)?;
    conn.release();
    Ok(())
}

/// The runtime URL derived from the owner's: same host and database, the app role.
///
/// Errors: DATABASE_URL is not a URL that can carry a user and password.
pub fn runtime_url(owner_url: &str, app_password: Option<&str>) -> anyhow::Result<String> {
    let mut url = url::Url::parse(owner_url).context("parsing DATABASE_URL")?;
    url.set_username(APP_ROLE).map_err(|_| anyhow::anyhow!("DATABASE_URL cannot carry a user name"))?;
    url.set_password(app_password).map_err(|_| anyhow::anyhow!("DATABASE_URL cannot carry a password"))?;
    Ok(url.to_string())
}

/// The statement that begins a request's transaction and switches it to `db_role`
/// acting for `user_id` (and `worker_id`), bounding its statements' time: one
/// simple-protocol message, so the transaction is ready after one round trip. The
/// values are inlined: a role name from [`DbRole`], UUIDs and a number, nothing a
/// client wrote.
fn begin_sql(db_role: DbRole, user_id: Option<Uuid>, worker_id: Option<Uuid>, statement_timeout_ms: u64) -> String {
    // An empty id is what the policies read as "nobody": they match no row.
    let user = user_id.map(|u| u.to_string()).unwrap_or_default();
    let worker = worker_id.map(|w| w.to_string()).unwrap_or_default();
    format!(
        "BEGIN; SELECT set_config('role', '{}', true), set_config('plinth.user_id', '{user}', true), \
         set_config('plinth.worker_id', '{worker}', true), set_config('statement_timeout', '{statement_timeout_ms}', true){}",
        db_role.as_str(),
        if db_role == DbRole::Metrics { NO_JIT } else { "" }
    )
}

// The business metrics are a few analytic statements under a second, which JIT
// compilation slows (by 50 to 170 ms each on the benchmark's 100,000 customers) far
// more than it speeds them; it stays off for the rest of the transaction (no other
// statement of a request costs enough to be compiled).
const NO_JIT: &str = ", set_config('jit', 'off', true)";

/// Switches the open transaction `tx` to `db_role` acting for `user_id` (and
/// `worker_id`) until it ends or switches again, in one statement.
async fn set_identity(
    tx: &impl ConnectionTrait,
    db_role: DbRole,
    user_id: Option<Uuid>,
    worker_id: Option<Uuid>,
) -> Result<(), DbErr> {
    let user = user_id.map(|u| u.to_string()).unwrap_or_default();
    let worker = worker_id.map(|w| w.to_string()).unwrap_or_default();
    const SWITCH: &str = "SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true), \
                          set_config('plinth.worker_id', $3, true)";
    let sql = if db_role == DbRole::Metrics { [SWITCH, NO_JIT].concat() } else { SWITCH.to_owned() };
    let values: Vec<sea_orm::Value> = vec![db_role.as_str().into(), user.into(), worker.into()];
    tx.execute(Statement::from_sql_and_values(DbBackend::Postgres, &sql, values)).await?;
    Ok(())
}

/// Wakes `wake`'s waiters whenever a transaction that wrote to an outbox whose trigger
/// announces it on `channel` commits (`NOTIFY plinth_email_outbox`,
/// `plinth_chatwoot_outbox`), reconnecting after a second when the link drops (and waking
/// them then, for whatever arrived meanwhile).
pub async fn listen(runtime_url: String, channel: &'static str, wake: std::sync::Arc<tokio::sync::Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        match PgListener::connect(&runtime_url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(channel).await {
                    tracing::warn!(error = %e, channel, "LISTEN failed");
                } else {
                    while listener.recv().await.is_ok() {
                        wake.notify_waiters();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, channel, "connecting an outbox listener"),
        }
        // Whatever arrived while the link was down is found by this wake-up.
        wake.notify_waiters();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
