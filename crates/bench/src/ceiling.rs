//! The ceiling: the `read` scenario's database work as a raw PostgreSQL transaction from
//! tokio-postgres at the same concurrency — what this request can cost at best on this
//! machine. Each transaction is what the server's must be at the least:
//! 1. one simple-protocol message that begins the transaction and switches it to the
//!    user's role and id (`set_config('role', …)`, `plinth.user_id`, `plinth.worker_id`
//!    and the statement timeout, as the server does);
//! 2. the server's own select of the newest 21 drafts (sea-orm's statement: every
//!    column, the row-level security policies applying), prepared once per connection;
//! 3. `COMMIT`.
use crate::{load::Measured, seed::User};
use anyhow::Context;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio_postgres::NoTls;

/// The statement the server runs for `drafts(first: 20)` (sea-orm, all columns, one
/// more row than asked for `hasNextPage`).
const SELECT: &str = "SELECT \"drafts\".\"user_id\", \"drafts\".\"id\", \"drafts\".\"title\", \
    \"drafts\".\"description\", \"drafts\".\"price_cents\", \"drafts\".\"currency\", \"drafts\".\"brand\", \
    \"drafts\".\"size\", \"drafts\".\"condition\", \"drafts\".\"category\", \"drafts\".\"status\", \
    \"drafts\".\"deleted_at\", \"drafts\".\"created_at\", \"drafts\".\"updated_at\" FROM \"drafts\" \
    WHERE \"drafts\".\"user_id\" = $1 AND \"drafts\".\"deleted_at\" IS NULL \
    ORDER BY \"drafts\".\"created_at\" DESC, \"drafts\".\"id\" DESC LIMIT $2";

/// Runs the ceiling over `connections` connections to `database_url` (a superuser's:
/// the switch to `plinth_user` drops its privileges, as the server's runtime role's does).
///
/// Errors: the database's, or a transaction that returns no row.
pub async fn run(
    database_url: &str,
    users: Arc<Vec<User>>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let next_user = Arc::new(AtomicUsize::new(0));
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (users, next_user, url) = (users.clone(), next_user.clone(), database_url.to_owned());
        tasks.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await.context("connecting for the ceiling")?;
            tokio::spawn(conn);
            let select = client.prepare(SELECT).await?;
            let mut m = Measured::empty(Duration::ZERO)?;
            while Instant::now() < until {
                let user = &users[next_user.fetch_add(1, Ordering::Relaxed) % users.len()];
                let t = Instant::now();
                // The values are typed (a role name, a UUID): nothing to escape.
                client
                    .batch_execute(&format!(
                        "BEGIN; SELECT set_config('role', 'plinth_user', true), \
                         set_config('plinth.user_id', '{}', true), set_config('plinth.worker_id', '', true), \
                         set_config('statement_timeout', '5000', true)",
                        user.id
                    ))
                    .await?;
                let rows = client.query(&select, &[&user.id, &21i64]).await?;
                client.batch_execute("COMMIT").await?;
                anyhow::ensure!(!rows.is_empty(), "the ceiling's select returned no row for {}", user.id);
                if Instant::now() >= measure_from {
                    m.ok += 1;
                    m.latency.record(t.elapsed().as_micros().max(1) as u64)?;
                }
            }
            Ok::<_, anyhow::Error>(m)
        }));
    }
    let mut total = Measured::empty(duration)?;
    for t in tasks {
        total.absorb(t.await??)?;
    }
    total.elapsed = Instant::now().saturating_duration_since(measure_from);
    Ok(total)
}
