//! The server under load: the release `plinth serve` started as a child process on a
//! fresh database of the local PostgreSQL (the same cluster the ceiling measures), or
//! an existing server given by `--url`; and what `/proc` says about its process.
use anyhow::{bail, Context};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// The workspace the bench was built from (its `plans.toml`, and where `cargo build` runs).
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Every request-rate and sign-in limit lifted: the plan's `api_requests_per_minute`
/// must not be what the benchmark measures.
pub const UNLIMITED: u64 = 1_000_000_000;

/// A server the load goes to.
pub struct Server {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    /// Its process id when known (started here, or `--server-pid`): CPU time and memory.
    pub pid: Option<u32>,
    /// The database it runs on (superuser URL) when started here: the seeding's.
    pub database_url: String,
    started: Option<Started>,
}

struct Started {
    child: Child,
    admin_url: String,
    database: String,
    data_dir: PathBuf,
}

/// Options of a server started here.
pub struct Launch<'a> {
    /// A superuser URL of the cluster, without database (`postgres://postgres@127.0.0.1:5432`).
    pub cluster_url: &'a str,
    /// Extra environment (a fake Stripe's base URL, a webhook secret).
    pub env: Vec<(String, String)>,
    /// The server's tokio worker threads (`TOKIO_WORKER_THREADS`); None: one per core.
    pub workers: Option<usize>,
}

impl Server {
    /// A server already running at `url` (`http://127.0.0.1:PORT`), seeded through
    /// `database_url`.
    pub fn external(url: &str, pid: Option<u32>, database_url: &str) -> anyhow::Result<Self> {
        let rest = url.trim_start_matches("http://").trim_end_matches('/');
        let addr = rest.parse().with_context(|| format!("--url {url}: expected http://IP:PORT"))?;
        Ok(Server { addr, pid, database_url: database_url.to_owned(), started: None })
    }

    /// Builds the release server if needed, creates a fresh database, starts `plinth serve`
    /// on a free loopback port with the request limits lifted, and waits until `/readyz`
    /// answers (60 s at most).
    ///
    /// Errors: the build, the database, or a server that does not become ready (its log
    /// is in the error).
    pub async fn start(launch: Launch<'_>) -> anyhow::Result<Self> {
        let binary = build_server().await?;
        let database = format!("plinth_bench_{}", std::process::id());
        let admin_url = format!("{}/postgres", launch.cluster_url);
        psql(&admin_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await?;
        psql(&admin_url, &format!("CREATE DATABASE {database}")).await?;
        let data_dir = std::env::temp_dir().join(&database);
        std::fs::create_dir_all(&data_dir)?;
        let plans = data_dir.join("plans.toml");
        std::fs::write(&plans, unlimited_plans(&std::fs::read_to_string(Path::new(WORKSPACE).join("plans.toml"))?))?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let database_url = format!("{}/{database}", launch.cluster_url);
        let log = std::fs::File::create(data_dir.join("server.log"))?;
        let mut cmd = Command::new(&binary);
        // Loopback: no TLS between the server and PostgreSQL, as the ceiling's client
        // (over a network, keep the URL's `sslmode`).
        cmd.arg("serve")
            .env("DATABASE_URL", format!("{database_url}?sslmode=disable"))
            .env("PLINTH_ADDR", addr.to_string())
            .env("PLINTH_DATA_DIR", &data_dir)
            .env("PLINTH_PLANS_FILE", &plans)
            .env("PLINTH_IN_PROCESS_WORKER", "false")
            .env("RUST_LOG", "warn")
            .envs(
                [
                    "PLINTH_LOGIN_LIMIT_PER_EMAIL",
                    "PLINTH_LOGIN_LIMIT_PER_IP",
                    "PLINTH_SIGNUP_LIMIT_PER_IP",
                    "PLINTH_LOGIN_CEILING_PER_EMAIL",
                ]
                .map(|k| (k, UNLIMITED.to_string())),
            )
            .envs(launch.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(w) = launch.workers {
            cmd.env("TOKIO_WORKER_THREADS", w.to_string());
        }
        let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let server = Server {
            addr,
            pid,
            database_url,
            started: Some(Started { child, admin_url, database, data_dir: data_dir.clone() }),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.ready().await {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                server.stop().await;
                bail!("the server did not become ready within 60 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    async fn ready(&self) -> bool {
        match crate::http::Conn::connect(self.addr).await {
            Ok(mut c) => c.get("/readyz").await.map(|(s, _)| s == 200).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The server's CPU time so far (user + system), from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // Fields after the command (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks_per_second())
    }

    /// The server's resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid?)
    }

    /// Stops a server started here (SIGTERM, then its drain) and drops its database.
    pub async fn stop(mut self) {
        let Some(mut s) = self.started.take() else { return };
        if let Some(pid) = s.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(15), s.child.wait()).await.is_err() {
            let _ = s.child.kill().await;
        }
        if let Err(e) = psql(&s.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.database)).await {
            eprintln!("bench: dropping {}: {e:#}", s.database);
        }
        let _ = std::fs::remove_dir_all(&s.data_dir);
    }
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux architecture this runs on (`getconf CLK_TCK`).
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `plans.toml` with every plan's request rate lifted to [`UNLIMITED`].
fn unlimited_plans(toml: &str) -> String {
    toml.lines()
        .map(|l| {
            if l.trim_start().starts_with("api_requests_per_minute") {
                format!("api_requests_per_minute = {UNLIMITED}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cargo build --release --bin plinth` into the target directory this bench runs from;
/// the binary's path.
async fn build_server() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().context("the bench binary's directory")?;
    let target_dir = profile_dir.parent().context("the target directory")?;
    let binary = profile_dir.join("plinth");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Under `cargo run`, the bench's environment holds the variables cargo sets for the
    // program it runs (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...). Some build scripts watch
    // them (ring's `rerun-if-env-changed=CARGO_PKG_VERSION_PRE`): passed on, they would
    // make this build rerun ring's script and recompile everything above it, and the
    // next `cargo build` from a shell do it all again.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(&*name, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR")
        {
            cargo.env_remove(&*name);
        }
    }
    let status = cargo
        .args(["build", "--release", "--quiet", "--bin", "plinth", "--target-dir"])
        .arg(target_dir)
        .current_dir(WORKSPACE)
        .status()
        .await
        .context("running cargo build for the server")?;
    if !status.success() {
        bail!("cargo build --release --bin plinth failed");
    }
    Ok(binary)
}

/// Runs one statement through `psql` (creating and dropping databases).
async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql").args([url, "-qXc", sql]).output().await.context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_plan_is_lifted() {
        let out = super::unlimited_plans("[[plans]]\napi_requests_per_minute = 60\nscans = 20\n");
        assert!(out.contains(&format!("api_requests_per_minute = {}", super::UNLIMITED)));
        assert!(out.contains("scans = 20"));
    }
}
