#![forbid(unsafe_code)]
//! A private PostgreSQL cluster that Plinth runs for itself when no `DATABASE_URL`
//! is configured, so a development setup needs nothing but the PostgreSQL server
//! binaries.
//!
//! [`EmbeddedPostgres::start`] creates the cluster under a directory on first use and
//! starts it on a free loopback port. One process owns a running cluster (an flock on
//! a lock file in the directory); a start while another live process owns it attaches
//! to that cluster instead, without starting or stopping anything. Only the owner
//! stops it.
//!
//! The crate reads no configuration from the environment: the caller passes the bin
//! directory in [`Options`]. It reads `PATH` to find the binaries, and removes `PG*`
//! variables from the environment of the tools it runs. Its messages name Plinth's
//! settings (`PLINTH_PG_BIN_DIR`, `DATABASE_URL`) because that is how a user changes
//! what it is given.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{geteuid, Pid, User};
use rand::RngCore;

const OWNER_ROLE: &str = "plinth_owner";
const DATABASE: &str = "plinth";
const DATA_SUBDIR: &str = "data";
// initdb writes here first so that a half-finished initdb never looks like a
// reusable cluster: `data` only appears, by rename, once initdb succeeded.
const INITDB_STAGING_SUBDIR: &str = "data.initdb";
const OWNER_PASSWORD_FILE: &str = "owner.password";
const APP_PASSWORD_FILE: &str = "app.password";
const INITDB_PWFILE: &str = "initdb.pwfile";
const LOCK_FILE: &str = "plinth.lock";
// Written by the owner once its server is ready: how an attacher finds it.
const STATE_FILE: &str = "plinth.state";
const STATE_TMP_FILE: &str = "plinth.state.tmp";
const LOG_FILE: &str = "postgres.log";
const OLD_LOG_FILE: &str = "postgres.log.old";
// The server appends to its log on every start; keep one old generation so
// a long-lived development setup does not grow it without bound.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;
// Used when the data directory's ancestors are closed to the unprivileged
// server user, which we must not fix by opening up someone's home directory.
const RELOCATION_ROOT: &str = "/var/lib/plinth";
const FALLBACK_SYSTEM_USER: &str = "plinth-pg";
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
const NO_BINARIES: &str = "no PostgreSQL server binaries found: install postgresql (Debian: apt-get install postgresql-15), set PLINTH_PG_BIN_DIR, or set DATABASE_URL";
const PG_CTL_WAIT_SECS: u64 = 60;
// Another process can grab the port between our probe and the server's bind.
const START_ATTEMPTS: usize = 3;
const SECRET_BYTES: usize = 16;
// How long a start waits for another process to finish starting the cluster.
const ATTACH_WAIT_SECS: u64 = 120;
const ATTACH_POLL: Duration = Duration::from_millis(100);

/// Where to find the PostgreSQL server binaries; the rest is found or generated.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Directory holding `initdb`, `pg_ctl` and `postgres`. None: found with
    /// `pg_config --bindir`, then the newest `/usr/lib/postgresql/<major>/bin`, then
    /// `initdb` on `PATH`.
    pub bin_dir: Option<PathBuf>,
}

/// A handle on a private PostgreSQL cluster under a directory, for development: either
/// its owner, which started the server and stops it, or an attachment to a server
/// that another live handle (this process or another) owns.
pub struct EmbeddedPostgres {
    cluster: Cluster,
    port: u16,
    owner_url: String,
    app_password: String,
    ownership: Ownership,
}

enum Ownership {
    /// This handle started the server and stops it (on `stop`, or on drop).
    Owner {
        running: bool,
        // Held (flock) for as long as we own the cluster; the kernel releases it
        // when the process dies, which is how a later start tells a crashed owner
        // from a live one.
        _lock: File,
    },
    /// Another handle runs the server; this one only connects to it.
    Attached { owner_pid: u32 },
}

/// Unprivileged account that runs the server binaries when we are root.
#[derive(Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

/// Where the cluster lives and how to run its binaries.
struct Cluster {
    bin_dir: PathBuf,
    // Canonical location of the cluster (the symlink target after relocation).
    root: PathBuf,
    data: PathBuf,
    // The directory as the caller named it, for messages.
    shown: PathBuf,
    run_as: Option<RunAs>,
}

/// What the cluster's lock file told us.
enum Lock {
    /// We hold it: the cluster is ours to start and stop.
    Owned(File),
    /// A live handle holds it; its pid when the file names one yet.
    Busy(Option<u32>),
}

impl EmbeddedPostgres {
    /// Starts the cluster in `dir` (created and initdb'd on first use, reused after) on
    /// a free loopback port, and owns it. When another live handle already owns the
    /// cluster in `dir`, waits until that owner has it running (at most two minutes)
    /// and attaches to it instead: the returned handle connects, and never stops it.
    pub async fn start(dir: &Path, options: &Options) -> Result<Self> {
        let bin_dir =
            find_bin_dir(options.bin_dir.as_deref(), std::env::var_os("PATH").as_deref(), Path::new(DEBIAN_PG_ROOT))
                .await?;
        let run_as = if geteuid().is_root() { Some(unprivileged_user().await?) } else { None };
        let root = prepare_cluster_dir(dir, run_as.as_ref())?;
        let cluster = Cluster { bin_dir, data: root.join(DATA_SUBDIR), root, shown: dir.to_path_buf(), run_as };

        let deadline = Instant::now() + Duration::from_secs(ATTACH_WAIT_SECS);
        let mut waiting_told = false;
        loop {
            let holder = match cluster.lock()? {
                Lock::Owned(lock) => return Self::start_owned(cluster, lock).await,
                Lock::Busy(holder) => holder,
            };
            if let Some(owner_pid) = holder {
                if let Some(port) = cluster.running_port(owner_pid).await? {
                    return Self::attach(cluster, port, owner_pid);
                }
            }
            let shown = cluster.shown.display();
            let pid = holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
            if Instant::now() >= deadline {
                bail!(
                    "the embedded database in {shown} is in use by another process{pid}, which has not finished starting it within {ATTACH_WAIT_SECS}s"
                );
            }
            if !waiting_told {
                tracing::info!(dir = %shown, "waiting for another process{pid} to finish starting the embedded database");
                waiting_told = true;
            }
            tokio::time::sleep(ATTACH_POLL).await;
        }
    }

    /// Starts the server of a cluster whose lock we hold.
    async fn start_owned(cluster: Cluster, lock: File) -> Result<Self> {
        // Left by an owner that crashed; it no longer describes a running server.
        cluster.remove_state();
        let initialized = cluster.data.join("PG_VERSION").is_file();
        let owner_password_path = cluster.root.join(OWNER_PASSWORD_FILE);
        if initialized && !owner_password_path.exists() {
            bail!(
                "the embedded database in {} has lost its owner password file {}: restore it, or delete {} to start over (this deletes its data)",
                cluster.shown.display(),
                owner_password_path.display(),
                cluster.shown.display()
            );
        }
        let owner_password = load_or_create_secret(&owner_password_path)?;
        let app_password = load_or_create_secret(&cluster.root.join(APP_PASSWORD_FILE))?;

        cluster.clear_leftover_postmaster().await?;
        if let Some(user) = &cluster.run_as {
            chown_tree(&cluster.root, user, &[OWNER_PASSWORD_FILE, APP_PASSWORD_FILE, LOCK_FILE, STATE_FILE])
                .with_context(|| format!("could not give {} to user {}", cluster.root.display(), user.name))?;
        }

        if initialized {
            cluster.check_version().await?;
        } else {
            tracing::info!(dir = %cluster.shown.display(), "initializing embedded PostgreSQL cluster");
            cluster.initdb(&owner_password).await?;
        }

        let port = cluster.start_server().await?;
        let mut pg = EmbeddedPostgres {
            owner_url: owner_url(&owner_password, port),
            cluster,
            port,
            app_password,
            ownership: Ownership::Owner { running: true, _lock: lock },
        };
        // Only a server that is up with its database is announced to attachers.
        let ready = match pg.cluster.ensure_database(port, &owner_password).await {
            Ok(()) => pg.cluster.write_state(port),
            Err(err) => Err(err),
        };
        if let Err(err) = ready {
            if let Ownership::Owner { running, .. } = &mut pg.ownership {
                *running = false;
            }
            pg.cluster.remove_state();
            if let Err(stop_err) = pg.cluster.stop_server().await {
                tracing::warn!(error = %stop_err, "could not stop the embedded database after a failed start");
            }
            return Err(err);
        }
        tracing::info!(
            dir = %pg.cluster.shown.display(),
            port,
            "embedded PostgreSQL is running on 127.0.0.1"
        );
        Ok(pg)
    }

    /// A handle on the server that `owner_pid` runs on `port`.
    fn attach(cluster: Cluster, port: u16, owner_pid: u32) -> Result<Self> {
        let owner_password = read_secret(&cluster.root.join(OWNER_PASSWORD_FILE))?;
        let app_password = read_secret(&cluster.root.join(APP_PASSWORD_FILE))?;
        tracing::info!(
            dir = %cluster.shown.display(),
            port,
            owner_pid,
            "attached to the embedded PostgreSQL that another process runs"
        );
        Ok(EmbeddedPostgres {
            owner_url: owner_url(&owner_password, port),
            cluster,
            port,
            app_password,
            ownership: Ownership::Attached { owner_pid },
        })
    }

    /// URL of the cluster's superuser ("plinth_owner") on database "plinth" (created if missing), e.g. postgres://plinth_owner:PW@127.0.0.1:PORT/plinth
    pub fn owner_url(&self) -> &str {
        &self.owner_url
    }

    /// Password for the runtime login role "plinth_app" (generated once, kept in `dir`); the caller creates that role and sets this password.
    pub fn app_password(&self) -> &str {
        &self.app_password
    }

    /// Loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this handle started the server and stops it; false when it attached to
    /// a server that another handle owns.
    pub fn is_owner(&self) -> bool {
        matches!(self.ownership, Ownership::Owner { .. })
    }

    /// The owner stops the cluster (fast shutdown) and waits for it; an attached handle
    /// only lets go of it, leaving the server running.
    pub async fn stop(mut self) -> Result<()> {
        match &mut self.ownership {
            Ownership::Attached { owner_pid } => {
                tracing::debug!(dir = %self.cluster.shown.display(), owner_pid, "detached from the embedded PostgreSQL");
                Ok(())
            }
            Ownership::Owner { running, .. } => {
                // Whatever the outcome, Drop must not try a second time.
                *running = false;
                self.cluster.remove_state();
                self.cluster.stop_server().await?;
                tracing::info!(dir = %self.cluster.shown.display(), "embedded PostgreSQL stopped");
                Ok(())
            }
        }
    }
}

/// The owner's best-effort synchronous fast stop, for when `stop` was not awaited; an
/// attached handle leaves the server alone.
impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let Ownership::Owner { running, .. } = &mut self.ownership else {
            return;
        };
        if !*running {
            return;
        }
        *running = false;
        self.cluster.remove_state();
        if !self.cluster.data.join("postmaster.pid").exists() {
            return;
        }
        // Drop cannot await; a blocking fast shutdown is bounded by pg_ctl's -t.
        match self.cluster.pg_ctl_stop_command().output() {
            Ok(out) if out.status.success() => {
                tracing::info!(dir = %self.cluster.shown.display(), "embedded PostgreSQL stopped");
            }
            Ok(out) => tracing::warn!(
                dir = %self.cluster.shown.display(),
                status = %out.status,
                stderr = %one_line(&out.stderr),
                "could not stop the embedded database"
            ),
            Err(err) => tracing::warn!(
                dir = %self.cluster.shown.display(),
                error = %err,
                "could not run pg_ctl to stop the embedded database"
            ),
        }
    }
}

/// Shows where and how the cluster runs, with both passwords redacted.
impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (running, owner_pid) = match &self.ownership {
            Ownership::Owner { running, .. } => (*running, None),
            Ownership::Attached { owner_pid } => (true, Some(*owner_pid)),
        };
        f.debug_struct("EmbeddedPostgres")
            .field("dir", &self.cluster.shown)
            .field("cluster_dir", &self.cluster.root)
            .field("bin_dir", &self.cluster.bin_dir)
            .field("run_as", &self.cluster.run_as.as_ref().map(|u| &u.name))
            .field("port", &self.port)
            .field("owner_url", &format!("postgres://{OWNER_ROLE}:<redacted>@127.0.0.1:{}/{DATABASE}", self.port))
            .field("app_password", &"<redacted>")
            .field("running", &running)
            .field("attached_to_pid", &owner_pid)
            .finish()
    }
}

fn owner_url(owner_password: &str, port: u16) -> String {
    format!("postgres://{OWNER_ROLE}:{owner_password}@127.0.0.1:{port}/{DATABASE}")
}

impl Cluster {
    /// A server-side binary from `bin_dir`, run as the unprivileged user if we are root.
    fn server_command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin_dir.join(program));
        // Our own working directory may be closed to the server user.
        cmd.current_dir(&self.root);
        scrub_pg_env(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    fn pg_ctl_stop_command(&self) -> std::process::Command {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "-t"]).arg(PG_CTL_WAIT_SECS.to_string()).arg("stop");
        cmd
    }

    /// Takes the cluster's lock, or says which live process holds it.
    fn lock(&self) -> Result<Lock> {
        let path = self.root.join(LOCK_FILE);
        let mut file =
            open_nofollow(&path, OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600))
                .with_context(|| format!("could not open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                // Empty for a moment after the holder took the lock, before it wrote its pid.
                return Ok(Lock::Busy(holder.trim().parse::<u32>().ok()));
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("could not lock {}", path.display()))
            }
        }
        // Recorded so that another process can name the holder and match its state file.
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Lock::Owned(file))
    }

    /// Tells attachers that the server is up, with its database, on `port`.
    fn write_state(&self, port: u16) -> Result<()> {
        let path = self.root.join(STATE_FILE);
        let tmp = self.root.join(STATE_TMP_FILE);
        write_private_file(&tmp, format!("pid={}\nport={port}\n", std::process::id()).as_bytes())?;
        // Renamed into place so that an attacher never reads half of it.
        fs::rename(&tmp, &path).with_context(|| format!("could not create {}", path.display()))
    }

    /// Withdraws the state file, before the server stops or after a crash.
    fn remove_state(&self) {
        let path = self.root.join(STATE_FILE);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(error = %err, "could not remove {}", path.display());
            }
            _ => {}
        }
    }

    /// The port of the server that `owner_pid` runs for this cluster, once its state
    /// file says it is ready; None while it is still starting (or stopping).
    async fn running_port(&self, owner_pid: u32) -> Result<Option<u16>> {
        let path = self.root.join(STATE_FILE);
        let mut contents = String::new();
        match open_nofollow(&path, OpenOptions::new().read(true)) {
            Ok(mut file) => {
                file.read_to_string(&mut contents).with_context(|| format!("could not read {}", path.display()))?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
        }
        let field =
            |name: &str| contents.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')).map(str::trim);
        let (Some(pid), Some(port)) =
            (field("pid").and_then(|p| p.parse::<u32>().ok()), field("port").and_then(|p| p.parse::<u16>().ok()))
        else {
            return Ok(None);
        };
        if pid != owner_pid {
            // Written by an earlier owner; the current one has not announced its server yet.
            return Ok(None);
        }
        // The server's own record, and a connection, confirm that it still runs there.
        let postmaster_port = fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|pid_file| pid_file.lines().nth(3).and_then(|line| line.trim().parse::<u16>().ok()));
        let reachable = postmaster_port == Some(port)
            && matches!(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                )
                .await,
                Ok(Ok(_))
            );
        if !reachable {
            if !path.exists() {
                // The owner withdrew it while we looked: it is stopping its server.
                return Ok(None);
            }
            bail!(
                "the embedded database in {} is in use by another process (pid {owner_pid}), but its server is not running on port {port} (see {}): stop that process and start again",
                self.shown.display(),
                self.root.join(LOG_FILE).display()
            );
        }
        Ok(Some(port))
    }

    /// Deals with a server still running on our data directory although no process holds our lock.
    async fn clear_leftover_postmaster(&self) -> Result<()> {
        let pid_file = self.data.join("postmaster.pid");
        let contents = match fs::read_to_string(&pid_file) {
            Ok(contents) => contents,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("could not read {}", pid_file.display())),
        };
        let Some(pid) = contents.lines().next().and_then(|line| line.trim().parse::<i32>().ok()).filter(|pid| *pid > 0)
        else {
            // Malformed: the server itself knows best how to treat it.
            return Ok(());
        };
        if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
            // A crash leftover with no process behind it: the server removes it.
            return Ok(());
        }
        // A postmaster always runs inside its data directory; any other
        // process with that pid means the pid was reused after a crash, and
        // the server would refuse to start until the stale file goes.
        let data = fs::canonicalize(&self.data).unwrap_or_else(|_| self.data.clone());
        if let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) {
            if cwd != data {
                tracing::warn!(pid, "removing a stale postmaster.pid whose pid now belongs to another program");
                fs::remove_file(&pid_file).with_context(|| format!("could not remove {}", pid_file.display()))?;
                return Ok(());
            }
        }
        // We hold the lock, so the process that started this server is gone
        // (crashed or killed before it could stop it): take the cluster back.
        tracing::warn!(
            pid,
            dir = %self.shown.display(),
            "stopping an embedded PostgreSQL server left running by an earlier process"
        );
        let out = run(self.pg_ctl_stop_command(), pg_ctl_timeout()).await?;
        if !out.status.success() {
            bail!("the embedded database in {} is in use by another process (pid {pid})", self.shown.display());
        }
        Ok(())
    }

    async fn check_version(&self) -> Result<()> {
        let data_version = fs::read_to_string(self.data.join("PG_VERSION"))
            .with_context(|| format!("could not read {}/PG_VERSION", self.data.display()))?;
        let data_version = data_version.trim();
        let mut cmd = self.server_command("postgres");
        cmd.arg("--version");
        let out = expect_success(run(cmd, Duration::from_secs(30)).await?, "postgres --version")?;
        let text = String::from_utf8_lossy(&out.stdout);
        // Unparseable output is left for the server itself to judge.
        if let Some(binary_version) = major_version(&text) {
            if binary_version != data_version {
                bail!(
                    "the embedded database in {} was created by PostgreSQL {data_version} but {} holds PostgreSQL {binary_version}: set PLINTH_PG_BIN_DIR to a PostgreSQL {data_version} bin directory",
                    self.shown.display(),
                    self.bin_dir.display()
                );
            }
        }
        Ok(())
    }

    async fn initdb(&self, owner_password: &str) -> Result<()> {
        let staging = self.root.join(INITDB_STAGING_SUBDIR);
        match fs::remove_dir_all(&staging) {
            Ok(()) => tracing::warn!("discarding the remains of an interrupted initdb"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("could not remove {}", staging.display())),
        }
        match fs::remove_dir(&self.data) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(_) => bail!(
                "{} exists but is not a PostgreSQL data directory (no PG_VERSION): move it away or delete it",
                self.data.display()
            ),
        }

        let pwfile = self.root.join(INITDB_PWFILE);
        let _remove_pwfile = RemoveOnDrop(pwfile.clone());
        let file = write_private_file(&pwfile, format!("{owner_password}\n").as_bytes())?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::fchown(&file, Some(user.uid), Some(user.gid))
                .with_context(|| format!("could not chown {}", pwfile.display()))?;
        }
        drop(file);

        let mut result = self.run_initdb(&staging, &pwfile, "C.UTF-8").await;
        if let Err(err) = &result {
            if err.to_string().contains("locale") {
                tracing::warn!("initdb rejected locale C.UTF-8, retrying with locale C");
                result = self.run_initdb(&staging, &pwfile, "C").await;
            }
        }
        result?;
        fs::rename(&staging, &self.data)
            .with_context(|| format!("could not rename {} to {}", staging.display(), self.data.display()))?;
        Ok(())
    }

    async fn run_initdb(&self, staging: &Path, pwfile: &Path, locale: &str) -> Result<()> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D")
            .arg(staging)
            .args(["-U", OWNER_ROLE])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8"])
            .arg(format!("--locale={locale}"));
        expect_success(run(cmd, Duration::from_secs(300)).await?, "initdb")?;
        Ok(())
    }

    /// Starts the server and returns its port.
    async fn start_server(&self) -> Result<u16> {
        let log = self.root.join(LOG_FILE);
        if fs::metadata(&log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            if let Err(err) = fs::rename(&log, self.root.join(OLD_LOG_FILE)) {
                tracing::warn!(error = %err, "could not rotate {}", log.display());
            }
        }
        for attempt in 1..=START_ATTEMPTS {
            let port = free_loopback_port()?;
            let log_offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let mut cmd = self.server_command("pg_ctl");
            // No unix socket: the length and permissions of the data path then
            // never matter, and pg_ctl -w waits on postmaster.pid, not a socket.
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-w", "-t"])
                .arg(PG_CTL_WAIT_SECS.to_string())
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"))
                .arg("start");
            let out = run(cmd, pg_ctl_timeout()).await?;
            if out.status.success() {
                return Ok(port);
            }
            let log_tail = read_from(&log, log_offset);
            if log_tail.contains("Address already in use") && attempt < START_ATTEMPTS {
                tracing::warn!(port, "port was taken before the server could bind it, retrying");
                continue;
            }
            // pg_ctl gives up after -t but the server may still come up; do
            // not leave it running unowned.
            if self.data.join("postmaster.pid").exists() {
                if let Err(err) = self.stop_server().await {
                    tracing::warn!(error = %err, "could not stop the embedded database after a failed start");
                }
            }
            let reason = last_server_error(&log_tail).unwrap_or_else(|| one_line(&out.stderr));
            bail!(
                "could not start the embedded database in {}: {reason} (see {})",
                self.shown.display(),
                log.display()
            );
        }
        bail!("could not start the embedded database in {}: no free port", self.shown.display())
    }

    async fn stop_server(&self) -> Result<()> {
        if !self.data.join("postmaster.pid").exists() {
            return Ok(());
        }
        expect_success(run(self.pg_ctl_stop_command(), pg_ctl_timeout()).await?, "pg_ctl stop")?;
        Ok(())
    }

    async fn ensure_database(&self, port: u16, owner_password: &str) -> Result<()> {
        let exists =
            self.psql(port, owner_password, &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")).await?;
        if exists.trim() != "1" {
            self.psql(port, owner_password, &format!("CREATE DATABASE {DATABASE}")).await?;
            tracing::info!("created database {DATABASE} in the embedded cluster");
        }
        Ok(())
    }

    async fn psql(&self, port: u16, owner_password: &str, sql: &str) -> Result<String> {
        let psql = self.psql_path()?;
        // A client: it needs no privilege switch, only the password.
        let mut cmd = std::process::Command::new(&psql);
        scrub_pg_env(&mut cmd);
        cmd.env("PGPASSWORD", owner_password)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={port} user={OWNER_ROLE} dbname=postgres sslmode=disable connect_timeout=10"
            ))
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = expect_success(run(cmd, Duration::from_secs(60)).await?, "psql")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn psql_path(&self) -> Result<PathBuf> {
        let in_bin_dir = self.bin_dir.join("psql");
        if is_executable(&in_bin_dir) {
            return Ok(in_bin_dir);
        }
        find_on_path("psql", std::env::var_os("PATH").as_deref()).with_context(|| {
            format!(
                "psql not found in {} or on PATH: install the PostgreSQL client (Debian: apt-get install postgresql-client-15), or set DATABASE_URL",
                self.bin_dir.display()
            )
        })
    }
}

/// The server bin directory: `explicit` if given, else found through `pg_config` and
/// `initdb` on `search_path` (PATH), or under `debian_root`.
async fn find_bin_dir(explicit: Option<&Path>, search_path: Option<&OsStr>, debian_root: &Path) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        if has_initdb(dir) {
            return Ok(dir.to_path_buf());
        }
        bail!(
            "PLINTH_PG_BIN_DIR={} does not contain initdb: point it at a PostgreSQL server bin directory, or set DATABASE_URL",
            dir.display()
        );
    }
    if let Some(dir) = pg_config_bindir(search_path).await {
        if has_initdb(&dir) {
            return Ok(dir);
        }
    }
    if let Some(dir) = newest_versioned_bindir(debian_root) {
        return Ok(dir);
    }
    if let Some(initdb) = find_on_path("initdb", search_path) {
        if let Some(dir) = initdb.parent() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(NO_BINARIES)
}

async fn pg_config_bindir(search_path: Option<&OsStr>) -> Option<PathBuf> {
    let mut cmd = tokio::process::Command::new(find_on_path("pg_config", search_path)?);
    cmd.arg("--bindir").stdin(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output()).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Debian-style layout: `<root>/<major>/bin`, several majors side by side.
fn newest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn has_initdb(dir: &Path) -> bool {
    is_executable(&dir.join("initdb"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(program: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(search_path?).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

async fn unprivileged_user() -> Result<RunAs> {
    if let Some(user) = lookup_user("postgres")? {
        return Ok(user);
    }
    if let Some(user) = lookup_user(FALLBACK_SYSTEM_USER)? {
        return Ok(user);
    }
    tracing::info!("creating system user {FALLBACK_SYSTEM_USER} to run the embedded database");
    let mut cmd = tokio::process::Command::new("useradd");
    cmd.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_SYSTEM_USER])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let outcome = match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(one_line(&out.stderr)),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    // A concurrent start may have created the user first.
    match lookup_user(FALLBACK_SYSTEM_USER)? {
        Some(user) => Ok(user),
        None => bail!(
            "initdb cannot run as root and there is no postgres user, and `useradd --system {FALLBACK_SYSTEM_USER}` failed ({}): create an unprivileged user named postgres, run as a non-root user, or set DATABASE_URL",
            outcome.err().unwrap_or_default()
        ),
    }
}

fn lookup_user(name: &str) -> Result<Option<RunAs>> {
    let user = User::from_name(name).with_context(|| format!("could not look up user {name}"))?;
    Ok(user.map(|u| RunAs { name: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw() }))
}

/// Creates or finds the cluster location for `dir` and returns its canonical path.
fn prepare_cluster_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<PathBuf> {
    let dir = std::path::absolute(dir).with_context(|| format!("invalid path {}", dir.display()))?;
    let meta = match fs::symlink_metadata(&dir) {
        Ok(meta) => Some(meta),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(|| format!("could not inspect {}", dir.display())),
    };
    let root = match meta {
        Some(meta) if meta.file_type().is_symlink() => {
            let target = follow_relocation_link(&dir)?;
            if let Some(user) = run_as {
                if !traversable(&target, user)? {
                    bail!(
                        "{} links to {}, which user {} cannot reach (a parent directory is closed to it): point the link elsewhere, or remove it",
                        dir.display(),
                        target.display(),
                        user.name
                    );
                }
            }
            target
        }
        Some(meta) if meta.is_dir() => {
            let canonical = fs::canonicalize(&dir).with_context(|| format!("could not resolve {}", dir.display()))?;
            match run_as {
                Some(user) if !traversable(&canonical, user)? => {
                    if !is_empty_dir(&canonical)? {
                        bail!(
                            "the embedded database in {} is not reachable by user {} (a parent directory is closed to it): move it to a place that user can reach, or delete it",
                            dir.display(),
                            user.name
                        );
                    }
                    fs::remove_dir(&canonical).with_context(|| format!("could not remove {}", canonical.display()))?;
                    relocate(&dir, &canonical, user)?
                }
                _ => canonical,
            }
        }
        Some(_) => bail!("{} exists but is not a directory", dir.display()),
        None => {
            let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
                bail!("{} cannot hold the embedded database", dir.display());
            };
            fs::create_dir_all(parent).with_context(|| format!("could not create {}", parent.display()))?;
            let canonical =
                fs::canonicalize(parent).with_context(|| format!("could not resolve {}", parent.display()))?.join(name);
            match run_as {
                Some(user) if !traversable(&canonical, user)? => relocate(&dir, &canonical, user)?,
                _ => {
                    create_dir_if_missing(&canonical)?;
                    canonical
                }
            }
        }
    };
    secure_dir(&root, run_as)?;
    Ok(root)
}

fn follow_relocation_link(link: &Path) -> Result<PathBuf> {
    match fs::canonicalize(link) {
        Ok(target) if target.is_dir() => Ok(target),
        Ok(target) => bail!("{} points to {}, which is not a directory", link.display(), target.display()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            // The relocated cluster vanished (e.g. /var/lib was not kept);
            // start a new one where the link says rather than failing forever.
            let target = fs::read_link(link).with_context(|| format!("could not read link {}", link.display()))?;
            let target = link.parent().unwrap_or(Path::new("/")).join(target);
            tracing::warn!(
                link = %link.display(),
                target = %target.display(),
                "embedded database location is missing, creating a new cluster there"
            );
            fs::create_dir_all(&target).with_context(|| format!("could not create {}", target.display()))?;
            fs::canonicalize(&target).with_context(|| format!("could not resolve {}", target.display()))
        }
        Err(err) => Err(err).with_context(|| format!("could not resolve {}", link.display())),
    }
}

/// Puts the cluster under RELOCATION_ROOT and leaves a symlink at `link`.
fn relocate(link: &Path, canonical: &Path, user: &RunAs) -> Result<PathBuf> {
    let base = Path::new(RELOCATION_ROOT);
    fs::create_dir_all(base).with_context(|| format!("could not create {}", base.display()))?;
    let base_meta = fs::metadata(base)?;
    // A restrictive umask must not lock the server user out of our own directory.
    if base_meta.uid() == geteuid().as_raw() && base_meta.mode() & 0o001 == 0 {
        fs::set_permissions(base, fs::Permissions::from_mode(0o755))?;
    }
    let target = base.join(format!("pg-{:016x}", fnv1a64(canonical.as_os_str().as_bytes())));
    create_dir_if_missing(&target)?;
    if !traversable(&target, user)? {
        bail!(
            "{} is not reachable by user {}: make {RELOCATION_ROOT} searchable by it, or set DATABASE_URL",
            target.display(),
            user.name
        );
    }
    std::os::unix::fs::symlink(&target, link)
        .with_context(|| format!("could not link {} to {}", link.display(), target.display()))?;
    tracing::info!(
        dir = %link.display(),
        target = %target.display(),
        "embedded database placed outside the data directory because user {} cannot reach it",
        user.name
    );
    Ok(target)
}

fn create_dir_if_missing(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(err) => Err(err).with_context(|| format!("could not create {}", path.display())),
    }
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    Ok(fs::read_dir(path).with_context(|| format!("could not read {}", path.display()))?.next().is_none())
}

fn secure_dir(path: &Path, run_as: Option<&RunAs>) -> Result<()> {
    let meta = fs::metadata(path)?;
    if meta.mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("could not chmod {}", path.display()))?;
    }
    if let Some(user) = run_as {
        if meta.uid() != user.uid || meta.gid() != user.gid {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .with_context(|| format!("could not chown {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether `user` can reach `path`: every ancestor must be searchable by it.
fn traversable(path: &Path, user: &RunAs) -> Result<bool> {
    for ancestor in path.ancestors().skip(1) {
        let meta = fs::metadata(ancestor).with_context(|| format!("could not inspect {}", ancestor.display()))?;
        let mode = meta.mode();
        let searchable = mode & 0o001 != 0 || meta.uid() == user.uid || (meta.gid() == user.gid && mode & 0o010 != 0);
        if !searchable {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Gives everything below `root` to `user`, except the top-level names in `skip`.
///
/// Children are done before their directory, so a directory that already
/// belongs to `user` is complete and is not entered: that keeps restarts
/// cheap and never walks into directories the server user could rearrange
/// under us.
fn chown_tree(root: &Path, user: &RunAs, skip: &[&str]) -> io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if skip.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        chown_entry(&entry.path(), user)?;
    }
    Ok(())
}

fn chown_entry(path: &Path, user: &RunAs) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    if meta.uid() == user.uid && meta.gid() == user.gid {
        return Ok(());
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_entry(&entry?.path(), user)?;
        }
    }
    match std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Returns the secret stored in `path`, creating it on first use.
fn load_or_create_secret(path: &Path) -> Result<String> {
    match open_nofollow(path, OpenOptions::new().read(true)) {
        Ok(file) => secret_from(file, path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let mut bytes = [0u8; SECRET_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let secret = hex::encode(bytes);
            // Written aside and renamed so a crash never leaves a truncated
            // password that no longer matches the cluster.
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            write_private_file(&tmp, format!("{secret}\n").as_bytes())?;
            fs::rename(&tmp, path).with_context(|| format!("could not create {}", path.display()))?;
            Ok(secret)
        }
        Err(err) => Err(err).with_context(|| format!("could not read {}", path.display())),
    }
}

/// Returns the secret that the cluster's owner stored in `path`.
fn read_secret(path: &Path) -> Result<String> {
    let file = open_nofollow(path, OpenOptions::new().read(true))
        .with_context(|| format!("could not read {}", path.display()))?;
    secret_from(file, path)
}

/// Reads and checks a secret from its open file, making the file private if it is not.
fn secret_from(mut file: File, path: &Path) -> Result<String> {
    let mut contents = String::new();
    file.read_to_string(&mut contents).with_context(|| format!("could not read {}", path.display()))?;
    let secret = contents.trim();
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        // Callers splice it into URLs and SQL.
        bail!("{} must hold at least 16 ASCII letters or digits", path.display());
    }
    if file.metadata()?.mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .with_context(|| format!("could not chmod {}", path.display()))?;
    }
    Ok(secret.to_owned())
}

/// Creates `path` afresh with mode 0600 and `contents`.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<File> {
    // Exclusive creation never follows a link; an old file is removed
    // (unlink only removes the link itself) rather than written through.
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("could not remove {}", path.display()))
        }
        _ => {}
    }
    let mut file = open_nofollow(path, OpenOptions::new().write(true).create_new(true).mode(0o600))
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(file)
}

/// Opens a file in the cluster directory without following a symlink.
///
/// The server user owns that directory; were we root and to follow a link it
/// planted (say, through the superuser's COPY ... TO PROGRAM), our writes and
/// chowns would land on files of its choosing.
fn open_nofollow(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    // O_NONBLOCK so that a planted FIFO is rejected below instead of hanging the open.
    let file = options.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    // A hard link would be the other way to alias a foreign file.
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::other(format!("{} is not a plain file", path.display())));
    }
    Ok(file)
}

/// Removes a file when dropped, so it goes even if the caller is cancelled.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Keeps a developer's PG* environment from redirecting our tools.
fn scrub_pg_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.as_bytes().starts_with(b"PG") {
            cmd.env_remove(key);
        }
    }
}

fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("could not find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn pg_ctl_timeout() -> Duration {
    Duration::from_secs(PG_CTL_WAIT_SECS + 30)
}

async fn run(cmd: std::process::Command, timeout: Duration) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::from(cmd);
    // On timeout the future is dropped; the child must not outlive it.
    cmd.kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => bail!("{program} not found"),
        Ok(Err(err)) => Err(err).with_context(|| format!("could not run {program}")),
        Err(_) => bail!("{program} did not finish within {}s", timeout.as_secs()),
    }
}

fn expect_success(out: Output, what: &str) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let mut detail = one_line(&out.stderr);
    if detail.is_empty() {
        detail = one_line(&out.stdout);
    }
    bail!("{what} failed ({}): {detail}", out.status)
}

/// Collapses tool output into one bounded line for error messages.
fn one_line(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 500;
    let text = String::from_utf8_lossy(bytes);
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > MAX_CHARS {
        line = line.chars().take(MAX_CHARS).collect::<String>() + "…";
    }
    line
}

fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut file) = open_nofollow(path, OpenOptions::new().read(true)) else {
        return String::new();
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn last_server_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find(|line| ["FATAL:", "PANIC:", "ERROR:"].iter().any(|tag| line.contains(tag)))
        .map(|line| one_line(line.as_bytes()))
}

/// Major version as PG_VERSION spells it ("15", "9.6") from `postgres --version` output.
fn major_version(version_output: &str) -> Option<String> {
    let rest = version_output.split(") ").nth(1)?;
    let number = rest.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
    let mut parts = number.split('.');
    let first = parts.next()?;
    let first_num = first.parse::<u32>().ok()?;
    if first_num >= 10 {
        Some(first.to_owned())
    } else {
        Some(format!("{first}.{}", parts.next()?))
    }
}

/// Stable across builds (unlike DefaultHasher), so a lost link still finds its cluster.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_binaries_anywhere_is_the_one_line_no_binaries_message() {
        let err = find_bin_dir(None, None, Path::new("/nonexistent/postgresql")).await.unwrap_err();
        let message = format!("{err:#}");
        assert_eq!(message, NO_BINARIES);
        assert!(!message.contains('\n'));
    }

    #[tokio::test]
    async fn without_a_bin_dir_initdb_is_found_on_the_search_path() {
        let bin = std::env::temp_dir().join(format!("embedded-pg-path-{}", std::process::id()));
        fs::create_dir_all(&bin).unwrap();
        let initdb = bin.join("initdb");
        fs::write(&initdb, "#!/bin/sh\nexit 1\n").unwrap();
        fs::set_permissions(&initdb, fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_bin_dir(None, Some(bin.as_os_str()), Path::new("/nonexistent/postgresql")).await;
        let _ = fs::remove_dir_all(&bin);
        assert_eq!(found.unwrap(), bin);
    }

    #[test]
    fn major_version_reads_postgres_version_output() {
        assert_eq!(major_version("postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)").as_deref(), Some("15"));
        assert_eq!(major_version("postgres (PostgreSQL) 9.6.24").as_deref(), Some("9.6"));
        assert_eq!(major_version("something else"), None);
    }
}
