//! Plinth's load benchmarks (README, "Benchmarks"):
//! `cargo run -p bench --release -- <scenario>...`.
//!
//! Starts the release server on a fresh database of the local PostgreSQL (or targets
//! `--url`), signs `--users` users up through the API, seeds `--drafts` drafts each
//! through `COPY`, then drives each scenario from its own closed-loop client over
//! loopback and prints one table: requests/s, p50/p95/p99 (ms), errors, the server's
//! CPU time per request and its resident memory, and each HTTP read scenario's ratio
//! to the `ceiling` measured in the same run. `--json FILE` writes the same rows.
//!
//! Scenarios: `read`, `read-photos`, `write`, `mixed`, `ceiling`, `login`; `all` runs
//! them in that order. `read` and `mixed` always run the ceiling too (their ratio is
//! the benchmark's point). `fanout` (WebSocket subscribers, commit-to-receive latency,
//! memory per idle subscriber) and `webhook` (signed Stripe events with redeliveries)
//! have options of their own and print their own report.
mod ceiling;
mod dist;
mod fanout;
mod http;
mod load;
mod seed;
mod server;
mod webhook;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use load::{Measured, Step};
use serde::Serialize;
use server::{Launch, Server};
use std::{sync::Arc, time::Duration};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// `drafts(first: 20)` as a different user each request.
    Read,
    /// The same with each draft's photos (3 each).
    ReadPhotos,
    /// `createDraft` then `updateDraft`.
    Write,
    /// 90% read, 10% write.
    Mixed,
    /// The read as a raw PostgreSQL transaction with the same row-level security set-up.
    Ceiling,
    /// `login` with the production argon2id parameters.
    Login,
    /// Every scenario above.
    All,
}

#[derive(Parser, Debug)]
#[command(about = "Plinth's load benchmarks beside the database's own ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// `drafts(first: 20)` as a different user each request, beside the ceiling.
    Read(Args),
    /// The same with each draft's 3 photos.
    ReadPhotos(Args),
    /// `createDraft` then `updateDraft`.
    Write(Args),
    /// 90% read, 10% write, beside the ceiling.
    Mixed(Args),
    /// The read as a raw PostgreSQL transaction with the same row-level security set-up.
    Ceiling(Args),
    /// `login` with the production argon2id parameters.
    Login(Args),
    /// Every HTTP scenario above, on one server.
    All(Args),
    /// WebSocket fan-out: subscribers of `jobUpdated`, commit-to-receive latency, memory
    /// per idle subscriber (the server is a separate process).
    Fanout(FanoutArgs),
    /// Signed Stripe webhook events per second, with redeliveries.
    Webhook(WebhookArgs),
}

#[derive(clap::Args, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    run: fanout::Args,
    /// Fan out through Redis (`REDIS_URL=redis://127.0.0.1:6379`) rather than in process.
    #[arg(long)]
    redis: bool,
    /// Target the server at `--url` rather than starting one.
    #[arg(long)]
    external: bool,
    /// The cluster's superuser URL (a fresh database is made in it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    cluster_url: String,
}

#[derive(clap::Args, Debug)]
struct WebhookArgs {
    #[command(flatten)]
    run: webhook::Args,
    /// Target the server at `--url` rather than starting one.
    #[arg(long)]
    external: bool,
    /// The cluster's superuser URL (a fresh database is made in it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    cluster_url: String,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Target a running server (`http://127.0.0.1:PORT`) instead of starting one;
    /// needs `--database-url` of its database.
    #[arg(long)]
    url: Option<String>,
    /// With `--url`: the server's process id (CPU time and memory are read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The cluster's superuser URL (a fresh database is made in it), or with `--url`
    /// the server's database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    database_url: String,
    /// Users signed up (each request goes out as the next one).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Drafts per user.
    #[arg(long, default_value_t = 200)]
    drafts: usize,
    /// Concurrent keep-alive connections (and database connections for the ceiling).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds before each scenario.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// The server's tokio worker threads (default: one per core).
    #[arg(long)]
    server_workers: Option<usize>,
    /// More settings for a server started here, `NAME=value` (repeat: `--server-env
    /// PLINTH_DB_POOL_SIZE=16`).
    #[arg(long, value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// Write the rows as JSON to this file (to compare commits).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One scenario's row of the table.
#[derive(Serialize, Debug)]
struct Row {
    scenario: Scenario,
    connections: usize,
    requests: u64,
    requests_per_second: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    errors: u64,
    first_error: Option<String>,
    /// Server CPU time (user + system) per request, ms; None for the ceiling.
    server_cpu_ms_per_request: Option<f64>,
    /// Server VmRSS after the scenario, MiB.
    server_rss_mib: Option<f64>,
    /// requests/s over the ceiling's in the same run.
    ratio_to_ceiling: Option<f64>,
}

/// Whatever happens, the program ends: after `secs` seconds a thread of its own exits
/// with code 3, saying that `scenario` gave up.
fn exit_after(scenario: &'static str, secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        eprintln!("{scenario}: still running after {secs}s; giving up");
        std::process::exit(3);
    });
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s}: expected NAME=value"))
}

fn expand(scenarios: &[Scenario]) -> Vec<Scenario> {
    let mut out = Vec::new();
    let order =
        [Scenario::Ceiling, Scenario::Read, Scenario::ReadPhotos, Scenario::Write, Scenario::Mixed, Scenario::Login];
    for s in order {
        let asked = scenarios.contains(&s) || scenarios.contains(&Scenario::All);
        let needs_ceiling = s == Scenario::Ceiling
            && scenarios.iter().any(|x| matches!(x, Scenario::Read | Scenario::Mixed | Scenario::All));
        if asked || needs_ceiling {
            out.push(s);
        }
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Each connection is a socket on both ends of loopback (10,000 for the fan-out);
    // a server started here inherits the limit.
    let _ = rlimit::increase_nofile_limit(1 << 20);
    let (scenario, args) = match Cli::parse().command {
        Command::Read(a) => (Scenario::Read, a),
        Command::ReadPhotos(a) => (Scenario::ReadPhotos, a),
        Command::Write(a) => (Scenario::Write, a),
        Command::Mixed(a) => (Scenario::Mixed, a),
        Command::Ceiling(a) => (Scenario::Ceiling, a),
        Command::Login(a) => (Scenario::Login, a),
        Command::All(a) => (Scenario::All, a),
        Command::Fanout(a) => return fanout(a).await,
        Command::Webhook(a) => return webhook(a).await,
    };
    let scenarios = expand(&[scenario]);
    let server = match &args.url {
        Some(url) => Server::external(url, args.server_pid, &args.database_url)?,
        None => {
            eprintln!("bench: building and starting the release server on a fresh database");
            let env = args.server_env.clone();
            Server::start(Launch { cluster_url: &args.database_url, env, workers: args.server_workers }).await?
        }
    };
    let result = run(&args, &scenarios, &server).await;
    server.stop().await;
    let rows = result?;
    print_table(&args, &rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: u64 = rows.iter().map(|r| r.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} requests failed (first errors in the table)");
    Ok(())
}

/// The fan-out on a server started here (or `--external`).
async fn fanout(mut a: FanoutArgs) -> anyhow::Result<()> {
    eprintln!("bench: open files limit {:?}", rlimit::getrlimit(rlimit::Resource::NOFILE)?);
    let server = if a.external {
        None
    } else {
        let env = if a.redis { vec![("REDIS_URL".to_owned(), "redis://127.0.0.1:6379".to_owned())] } else { vec![] };
        let s = Server::start(Launch { cluster_url: &a.cluster_url, env, workers: None }).await?;
        a.run.url = format!("http://{}", s.addr);
        a.run.server_pid = s.pid;
        Some(s)
    };
    let code = fanout::main(a.run).await;
    if let Some(s) = server {
        s.stop().await;
    }
    anyhow::ensure!(code == 0, "the fan-out run failed its checks (exit code {code})");
    Ok(())
}

/// The webhook benchmark on a server started here (or `--external`), its fake Stripe
/// on a free port.
async fn webhook(mut a: WebhookArgs) -> anyhow::Result<()> {
    let server = if a.external {
        None
    } else {
        a.run.stripe_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let env = [
            ("PLINTH_STRIPE_SECRET_KEY", "sk_test_bench".to_owned()),
            ("PLINTH_STRIPE_API_BASE", format!("http://127.0.0.1:{}/", a.run.stripe_port)),
            ("PLINTH_STRIPE_WEBHOOK_SECRET", a.run.webhook_secret.clone()),
            // Registration is set-up here, not measured: cheap password hashes.
            ("PLINTH_ARGON2_MEMORY_KIB", "1024".to_owned()),
        ];
        let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let s = Server::start(Launch { cluster_url: &a.cluster_url, env, workers: None }).await?;
        a.run.url = format!("http://{}", s.addr);
        a.run.database_url = Some(s.database_url.clone());
        Some(s)
    };
    let code = webhook::main(a.run).await;
    if let Some(s) = server {
        s.stop().await;
    }
    anyhow::ensure!(code == 0, "the webhook run failed its checks (exit code {code})");
    Ok(())
}

async fn run(args: &Args, scenarios: &[Scenario], server: &Server) -> anyhow::Result<Vec<Row>> {
    let t = std::time::Instant::now();
    let users = Arc::new(seed::users(server.addr, args.users, 4).await?);
    eprintln!("bench: {} users signed up in {:.1} s", users.len(), t.elapsed().as_secs_f64());
    let photos = if scenarios.contains(&Scenario::ReadPhotos) { 3 } else { 0 };
    let t = std::time::Instant::now();
    let (drafts, photo_rows) = seed::drafts(&server.database_url, &users, args.drafts, photos).await?;
    eprintln!("bench: {drafts} drafts and {photo_rows} photos copied in {:.1} s", t.elapsed().as_secs_f64());
    let (warmup, duration) = (Duration::from_secs(args.warmup), Duration::from_secs(args.duration));
    let mut rows: Vec<Row> = Vec::new();
    for &s in scenarios {
        eprintln!(
            "bench: {s:?} ({}s warm-up, {}s measured, {} connections)",
            args.warmup, args.duration, args.connections
        );
        let cpu_before = server.cpu_seconds();
        let measured = match s {
            Scenario::Ceiling => {
                ceiling::run(&server.database_url, users.clone(), args.connections, warmup, duration).await?
            }
            _ => {
                let step = match s {
                    Scenario::Read => Step::Read,
                    Scenario::ReadPhotos => Step::ReadPhotos,
                    Scenario::Write => Step::Write,
                    Scenario::Mixed => Step::Mixed,
                    _ => Step::Login,
                };
                load::run(server.addr, users.clone(), step, args.connections, warmup, duration).await?
            }
        };
        let cpu = match (cpu_before, server.cpu_seconds()) {
            (Some(a), Some(b)) if s != Scenario::Ceiling => Some(b - a),
            _ => None,
        };
        // The CPU time covers the warm-up too: divide by every request of the run.
        let all_requests = measured.ok as f64 * (args.warmup + args.duration) as f64 / args.duration as f64;
        let mut row = row(s, args.connections, &measured);
        row.server_cpu_ms_per_request = cpu.map(|c| c * 1000.0 / all_requests.max(1.0));
        row.server_rss_mib = server.rss_kib().map(|k| k as f64 / 1024.0);
        rows.push(row);
    }
    let ceiling = rows.iter().find(|r| r.scenario == Scenario::Ceiling).map(|r| r.requests_per_second);
    for r in &mut rows {
        if matches!(r.scenario, Scenario::Read | Scenario::ReadPhotos | Scenario::Mixed) {
            r.ratio_to_ceiling = ceiling.map(|c| r.requests_per_second / c);
        }
    }
    Ok(rows)
}

fn row(scenario: Scenario, connections: usize, m: &Measured) -> Row {
    let ms = |q: f64| m.latency.value_at_quantile(q) as f64 / 1000.0;
    Row {
        scenario,
        connections,
        requests: m.ok,
        requests_per_second: m.ok as f64 / m.elapsed.as_secs_f64().max(1e-9),
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        errors: m.errors,
        first_error: m.first_error.clone(),
        server_cpu_ms_per_request: None,
        server_rss_mib: None,
        ratio_to_ceiling: None,
    }
}

fn print_table(args: &Args, rows: &[Row]) {
    println!(
        "\n{} users x {} drafts, {} connections, {}s measured after {}s warm-up; {} cores",
        args.users,
        args.drafts,
        args.connections,
        args.duration,
        args.warmup,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>8} {:>7} {:>13} {:>10} {:>9}",
        "scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "cpu ms/req", "rss MiB", "/ceiling"
    );
    let opt = |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or_else(|| "-".into());
    for r in rows {
        let name =
            serde_json::to_value(r.scenario).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        println!(
            "{:<12} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>13} {:>10} {:>9}",
            name,
            r.requests_per_second,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.errors,
            opt(r.server_cpu_ms_per_request, 3),
            opt(r.server_rss_mib, 1),
            opt(r.ratio_to_ceiling, 2),
        );
        if let Some(e) = &r.first_error {
            println!("  first error: {}", e.chars().take(300).collect::<String>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{expand, Scenario::*};

    #[test]
    fn read_and_mixed_bring_the_ceiling_first() {
        assert_eq!(expand(&[Read]), vec![Ceiling, Read]);
        assert_eq!(expand(&[Mixed]), vec![Ceiling, Mixed]);
        assert_eq!(expand(&[Login]), vec![Login]);
        assert_eq!(expand(&[All]), vec![Ceiling, Read, ReadPhotos, Write, Mixed, Login]);
    }
}
