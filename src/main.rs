//! `plinth`: the command line over the `api` library.
//!
//! Standard output carries a command's result only (with `--json`, one JSON document;
//! without, the values alone: a token, a password, a count, a row per item), so
//! `TOKEN=$(plinth admin worker-token --kinds scan)` captures the token. Logs, progress and
//! the sentences that explain a result go to standard error, in colour only when it is a
//! terminal without `NO_COLOR`. Every command logs there, the long-running processes
//! (`serve`, `mailer`, `worker`) too: they print no result, and their readers (the
//! end-to-end setup among them) read the listen address from the `listening` log line
//! on standard error.
use api::{
    auth::workers,
    config::{Base, Config, ConfigError, DatabaseConfig, LogFormat, Section, WorkerConfig},
    reports::service::{self as reports, Metric},
    startup, telemetry,
};
use clap::{CommandFactory, Parser, Subcommand};
use plinth_worker::{Worker, WorkerSettings};
use serde_json::json;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Plinth: the multi-tenant backend of the listing-automation product.
#[derive(Parser)]
#[command(name = "plinth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Server(ServerCommand),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Check a production configuration without starting: variables, keys, Stripe
    /// prices, the database as the runtime role, the schema, Redis, the bucket, the mail
    /// provider. One line per check; exits non-zero when any fails.
    Doctor {
        /// Print a JSON array of {check, ok, detail} instead.
        #[arg(long)]
        json: bool,
    },
    /// Run the reference job worker against PLINTH_API_URL with PLINTH_WORKER_TOKEN.
    Worker {
        /// Job kinds to claim.
        #[arg(long, value_delimiter = ',', default_value = "scan,prepare,publish")]
        kinds: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh or fish).
    ///
    /// `plinth completions bash > /etc/bash_completion.d/plinth`,
    /// `plinth completions zsh > "${fpath[1]}/_plinth"`,
    /// `plinth completions fish > ~/.config/fish/completions/plinth.fish`.
    Completions {
        /// bash, zsh or fish.
        shell: CompletionShell,
    },
}

/// The shells `plinth completions` writes for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// The commands that load the server's whole configuration (`Config`).
#[derive(Subcommand)]
enum ServerCommand {
    /// Run the server (the default): migrate, then serve on PLINTH_ADDR.
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Operator steps on a user account, as an administrator, audited as staff steps
    /// are (the operator recorded as `cli:<OS user>@<host>`).
    User(UserArgs),
    /// Billing tasks.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Deliver the outbox only (no HTTP server): PLINTH_MAIL_WORKERS loops (at least one).
    Mailer,
    /// Mail tasks.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Bring a folder in the import format (docs/import.md) into an account: checked
    /// first, then written in batches as that account; run again to resume.
    Import(ImportArgs),
    /// Write an account's data (the GDPR export's rows and photos) as an import folder.
    Export {
        /// The account, by e-mail.
        #[arg(long)]
        user: String,
        /// The folder to create (it must not exist or be empty).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Print {user, out, counts} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Development only: create a demo account with something in every section (drafts
    /// with photos, jobs in every status, notifications, invoices, a marketplace account,
    /// a support ticket, an API token) and say how to sign in: its password alone on
    /// standard output, once, the address on standard error. Refused
    /// when PLINTH_ENV=production; refused when the address has an account already.
    Demo {
        /// The demo account's address.
        #[arg(long, default_value = api::demo::DEFAULT_EMAIL)]
        email: String,
        /// Print {url, userId, email, password, drafts, photos, jobs, invoices,
        /// marketplaceAccounts, ticketId, apiTokenId} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Business metrics.
    Metrics {
        #[command(subcommand)]
        command: MetricsCommand,
    },
}

/// `plinth user`: the administrator to act as, and the step.
#[derive(clap::Args)]
struct UserArgs {
    /// The administrator the step is done as, by e-mail (default: the first
    /// administrator); the audit records it beside the operator.
    #[arg(long, global = true)]
    admin: Option<String>,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Find the account with this address.
    Find {
        /// Its e-mail address.
        email: String,
    },
    /// Show an account as staff see it: plan, usage, recent jobs, invoices, e-mails.
    Show {
        /// Its id or e-mail address.
        user: String,
    },
    /// Suspend an account: it cannot sign in, its sessions end, its sockets close.
    Suspend {
        /// Its id or e-mail address.
        user: String,
        /// Why (1 to 500 characters, one line; the account's error message carries it).
        #[arg(long)]
        reason: String,
    },
    /// Lift a suspension.
    Unsuspend {
        /// Its id or e-mail address.
        user: String,
        /// Why (1 to 500 characters, one line).
        #[arg(long)]
        reason: String,
    },
    /// Credit a counter for the account's current period: its limit this period is
    /// the plan's plus every credit.
    GrantCredit {
        /// Its id or e-mail address.
        user: String,
        /// scans or preparations.
        #[arg(long)]
        metric: String,
        /// How many, 1 to 1,000,000.
        #[arg(long)]
        amount: i64,
        /// Why (1 to 500 characters, one line).
        #[arg(long)]
        reason: String,
    },
    /// Sign the account out everywhere: its sessions end, its tokens are refused at
    /// once, its sockets close.
    RevokeSessions {
        /// Its id or e-mail address.
        user: String,
    },
    /// Give the account another role; its sessions end so the new one applies at once.
    SetRole {
        /// Its id or e-mail address.
        user: String,
        /// user, support or admin.
        role: RoleArg,
        /// Why (1 to 500 characters, one line).
        #[arg(long)]
        reason: String,
    },
}

/// The roles `plinth user set-role` gives.
#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    User,
    Support,
    Admin,
}

#[derive(Subcommand)]
enum MetricsCommand {
    /// Write one metric as CSV (RFC 4180) to standard output or --out, as an
    /// administrator; logs go to standard error. The numbers are the GraphQL field's.
    Export(Box<ExportArgs>),
}

/// The parameters of `plinth metrics export`, named as the HTTP export's.
#[derive(clap::Args)]
struct ExportArgs {
    /// mrr, churn, conversion, activation, cohorts, supportMetrics, usageTotals,
    /// experimentResults or npsSummary.
    metric: String,
    /// Start of the range: RFC 3339 or YYYY-MM-DD (UTC midnight).
    #[arg(long)]
    from: Option<String>,
    /// End of the range (exclusive), as --from.
    #[arg(long)]
    to: Option<String>,
    /// Buckets of mrr and churn: DAY, WEEK or MONTH (default MONTH).
    #[arg(long)]
    interval: Option<String>,
    /// Window of activation, in days (default 7).
    #[arg(long)]
    within_days: Option<String>,
    /// What cohorts count: ACTIVE or REVENUE (default ACTIVE).
    #[arg(long)]
    cohort: Option<String>,
    /// The experiment of experimentResults.
    #[arg(long)]
    key: Option<String>,
    /// Its goal (default: every derived and tracked goal).
    #[arg(long)]
    goal: Option<String>,
    /// The administrator to act as, by e-mail (default: the first administrator).
    #[arg(long)]
    admin: Option<String>,
    /// Write the CSV to this file instead of standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print the rows as a JSON array of objects keyed by the CSV's header instead
    /// (numbers as numbers).
    #[arg(long, conflicts_with = "out")]
    json: bool,
}

impl ExportArgs {
    /// The given parameters as name–value pairs.
    fn pairs(&self) -> Vec<(String, String)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("interval", &self.interval),
            ("withinDays", &self.within_days),
            ("cohort", &self.cohort),
            ("key", &self.key),
            ("goal", &self.goal),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), v)))
        .collect()
    }
}

/// The parameters of `plinth import`.
#[derive(clap::Args)]
struct ImportArgs {
    /// The account to import into, by e-mail.
    #[arg(long)]
    user: String,
    /// The folder to import.
    #[arg(long)]
    from: std::path::PathBuf,
    /// Check everything and print the report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Records per transaction.
    #[arg(long, default_value_t = api::imports::service::DEFAULT_BATCH)]
    batch_size: usize,
    /// Pause between batches, in milliseconds (tests of an interrupted import).
    #[arg(long, default_value_t = 0, hide = true)]
    batch_pause_ms: u64,
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send one test message through the configured provider and print the outcome.
    Test {
        /// The recipient.
        #[arg(long)]
        to: String,
        /// Its language: fr or en.
        #[arg(long, default_value = "fr")]
        locale: String,
        /// Print {provider, providerId} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Queue the reminders due now (or at --at, an RFC 3339 time) and print how many;
    /// each is sent once however often this runs.
    Remind {
        /// The moment to schedule for (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Print {queued} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BillingCommand {
    /// List subscriptions from Stripe and repair any drift; prints what it changed.
    Reconcile {
        /// Print {changes: [..], count} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account; its generated password is printed once.
    Create {
        /// The admin's e-mail address.
        #[arg(long)]
        email: String,
        /// Print {id, email, password} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a worker token for the given job kinds (printed once, recorded so it can be
    /// listed and revoked); `list` and `revoke ID` manage the issued ones.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    WorkerToken {
        #[command(subcommand)]
        action: Option<WorkerTokenAction>,
        /// Job kinds the worker may claim: scan, prepare, publish.
        #[arg(long, value_delimiter = ',', required = true)]
        kinds: Vec<String>,
        /// Days until the token expires.
        #[arg(long, default_value_t = 90)]
        days: u64,
        /// Print {id, kinds, expiresAt, token} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkerTokenAction {
    /// List issued worker tokens: id, kinds, root key id, issued, expires, revoked.
    List {
        /// Print a JSON array of {id, kinds, keyId, createdAt, expiresAt, revokedAt}.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a worker token: every instance refuses it at once and closes its sockets.
    Revoke {
        /// The worker token's id (as `list` shows it).
        id: uuid::Uuid,
        /// Print {id, revoked} as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each command reads only the configuration it uses: `schema` none, `worker` its
    // token and the API's address, the others the server's.
    match cli.command.unwrap_or(Command::Server(ServerCommand::Serve)) {
        Command::Schema => {
            print!("{}", api::graphql::sdl());
            ExitCode::SUCCESS
        }
        Command::Doctor { json } => doctor(json),
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            // Written whole, so a closed pipe is an error message, not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "plinth", &mut script);
            use std::io::Write;
            match std::io::stdout().lock().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("plinth: writing the completion script: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Worker { kinds } => with(WorkerConfig::from_env(), |c| c.log_format, |c| work(c, kinds)),
        Command::Server(ServerCommand::Migrate) => {
            let sections = Base::from_env().and_then(|b| Ok((b, DatabaseConfig::from_env()?)));
            with(sections, |(b, _)| b.log_format, |(b, d)| migrate(b, d))
        }
        Command::Server(ServerCommand::Admin { command: AdminCommand::WorkerToken { action, kinds, days, json } }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| worker_token(c, action, kinds, days, json))
        }
        // The server alone exports spans (OTEL_EXPORTER_OTLP_ENDPOINT): one trace per request.
        Command::Server(ServerCommand::Serve) => match Config::from_env() {
            Ok(c) => {
                telemetry::init_with_traces(c.base.log_format, c.base.traces.as_ref());
                let code = execute(serve(c));
                // The drain flushed the export; an early failure leaves spans to send.
                telemetry::shutdown();
                code
            }
            Err(e) => config_error(e),
        },
        Command::Server(ServerCommand::Mailer) => with(Config::from_env(), |c| c.base.log_format, mailer),
        Command::Server(ServerCommand::Mail { command: MailCommand::Test { to, locale, json } }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| mail_test(c, to, locale, json))
        }
        Command::Server(ServerCommand::Mail { command: MailCommand::Remind { at, json } }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| mail_remind(c, at, json))
        }
        Command::Server(ServerCommand::Admin { command: AdminCommand::Create { email, json } }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| create_admin(c, email, json))
        }
        Command::Server(ServerCommand::Billing { command: BillingCommand::Reconcile { json } }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| reconcile(c, json))
        }
        Command::Server(ServerCommand::User(args)) => {
            with(Config::from_env(), |c| c.base.log_format, |c| user_command(c, args))
        }
        Command::Server(ServerCommand::Import(args)) => {
            with(Config::from_env(), |c| c.base.log_format, |c| import(c, args))
        }
        Command::Server(ServerCommand::Export { user, out, json }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| export_folder(c, user, out, json))
        }
        Command::Server(ServerCommand::Demo { email, json }) => {
            // Refused on PLINTH_ENV alone, before a production configuration is read.
            if Base::from_env().is_ok_and(|b| b.is_production()) {
                eprintln!("plinth demo: development only; refused because PLINTH_ENV=production");
                return ExitCode::FAILURE;
            }
            with(Config::from_env(), |c| c.base.log_format, |c| demo(c, email, json))
        }
        Command::Server(ServerCommand::Metrics { command: MetricsCommand::Export(args) }) => {
            with(Config::from_env(), |c| c.base.log_format, |c| metrics_export(c, *args))
        }
    }
}

/// Runs a command on the configuration it read, or stops with the variable at fault;
/// its logs go to standard error (standard output is its result).
fn with<C, F: std::future::Future<Output = anyhow::Result<()>>>(
    config: Result<C, ConfigError>,
    log_format: impl FnOnce(&C) -> LogFormat,
    command: impl FnOnce(C) -> F,
) -> ExitCode {
    match config {
        Ok(c) => {
            telemetry::init(log_format(&c));
            execute(command(c))
        }
        Err(e) => config_error(e),
    }
}

/// Writes `value` as pretty JSON and a newline to standard output.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    out.flush()?;
    Ok(())
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("plinth: {e}");
    ExitCode::from(2)
}

/// Runs `command` to its end on a multi-threaded runtime.
fn execute(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plinth: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why, with its causes.
            eprintln!("plinth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `plinth doctor`: every check on standard output (logs on standard error), whatever
/// the configuration holds; exit 1 when a check fails.
fn doctor(json: bool) -> ExitCode {
    telemetry::init(LogFormat::Pretty);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plinth: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(api::doctor::run(std::env::vars().collect()));
    if json {
        match serde_json::to_string_pretty(&checks) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("plinth: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for c in &checks {
            println!("{} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.check, c.detail);
        }
    }
    if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `plinth worker`: claims and runs jobs until SIGINT or SIGTERM.
async fn work(config: WorkerConfig, kinds: Vec<String>) -> anyhow::Result<()> {
    let settings = WorkerSettings {
        api_url: config.api_url,
        token: config.token,
        kinds: kinds.iter().map(|k| k.trim().to_uppercase()).collect(),
        idle_poll: std::time::Duration::from_secs(1),
        listen: config.listen,
    };
    Worker::new(settings)?.run(startup::shutdown_signal()).await
}

/// `plinth migrate`: the database section only.
async fn migrate(base: Base, database: DatabaseConfig) -> anyhow::Result<()> {
    let setup = startup::DatabaseSetup::from_config(&base, &database).await?;
    let migrated = setup.migrate().await;
    setup.shutdown().await?;
    migrated?;
    eprintln!("plinth migrate: migrations applied");
    Ok(())
}

/// `plinth admin worker-token`: issue (recorded), list or revoke worker tokens, through
/// the server's services (the database, and the bus that tells every instance).
async fn worker_token(
    config: Config,
    action: Option<WorkerTokenAction>,
    kinds: Vec<String>,
    days: u64,
    json: bool,
) -> anyhow::Result<()> {
    let kinds = kinds
        .iter()
        .map(|k| {
            api::model::JobKind::parse(&k.trim().to_lowercase())
                .map_err(|_| anyhow::anyhow!("--kinds: unknown job kind {k:?} (scan, prepare, publish)"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let timeout = config.database.statement_timeout_ms;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let done = async {
        match action {
            None => {
                let ttl = std::time::Duration::from_secs(days * 86_400);
                let (id, token) = workers::issue(&services.pool, &services.tokens, timeout, &kinds, ttl).await?;
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                if json {
                    let expires_at = services.tokens.verify(&token).ok().and_then(|p| p.worker().map(|w| w.expires_at));
                    print_json(&json!({ "id": id, "kinds": names, "expiresAt": expires_at, "token": token }))?;
                } else {
                    // The token alone on standard output: `TOKEN=$(plinth admin worker-token ...)`.
                    eprintln!(
                        "plinth admin worker-token: worker {id} may claim {}; its token (shown once) is on \
                         standard output",
                        names.join(", ")
                    );
                    println!("{token}");
                }
            }
            Some(WorkerTokenAction::List { json: true }) => {
                let tokens: Vec<serde_json::Value> = workers::list(&services.pool, timeout)
                    .await?
                    .into_iter()
                    .map(|t| {
                        json!({
                            "id": t.id,
                            "kinds": t.kinds,
                            "keyId": t.key_id,
                            "createdAt": t.created_at,
                            "expiresAt": t.expires_at,
                            "revokedAt": t.revoked_at,
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(tokens))?;
            }
            Some(WorkerTokenAction::List { json: false }) => {
                for t in workers::list(&services.pool, timeout).await? {
                    let revoked = t.revoked_at.map(|r| r.to_rfc3339()).unwrap_or_else(|| "-".into());
                    println!(
                        "{}\t{}\tkey {}\tissued {}\texpires {}\trevoked {revoked}",
                        t.id,
                        t.kinds.join(","),
                        t.key_id,
                        t.created_at.to_rfc3339(),
                        t.expires_at.to_rfc3339()
                    );
                }
            }
            Some(WorkerTokenAction::Revoke { id, json }) => {
                let revoked = workers::revoke(&services.pool, &services.bus, timeout, id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
                anyhow::ensure!(revoked, "no worker token {id} (or it was already revoked)");
                if json {
                    print_json(&json!({ "id": id, "revoked": true }))?;
                } else {
                    eprintln!("plinth admin worker-token: worker token {id} revoked");
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    services.database.shutdown().await?;
    done
}

/// `plinth serve`: the whole server.
async fn serve(config: Config) -> anyhow::Result<()> {
    startup::Application::build(config, plinth_webapp::file).await?.run_until_stopped().await
}

/// `plinth mailer`: the delivery loops alone, until SIGINT or SIGTERM.
async fn mailer(config: Config) -> anyhow::Result<()> {
    let public_url = config.server.public_url_or_addr();
    let workers = config.mail.workers.max(1);
    let services = startup::Services::build(config, public_url).await?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (listener, loops) = services.start_mail_workers_until(workers, stopping);
    eprintln!("plinth mailer: {workers} delivery loop(s) running");
    startup::shutdown_signal().await;
    // Flush: each loop ends after its batch under way (its sends recorded), within 10 s.
    stop.send_replace(true);
    let flushed = async {
        for l in loops {
            let _ = l.await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(10), flushed).await.is_err() {
        eprintln!("plinth mailer: a batch did not end in time; its rows are retried after their lease");
    }
    if let Some(l) = listener {
        l.abort();
    }
    services.database.shutdown().await
}

/// `plinth mail test --to`: one message straight through the provider.
async fn mail_test(config: Config, to: String, locale: String, json: bool) -> anyhow::Result<()> {
    let locale = api::model::Locale::parse(&locale).map_err(|e| anyhow::anyhow!("--locale: {e}"))?;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let sent = services.delivery.send_test(&to, locale).await;
    services.database.shutdown().await?;
    let id = sent?;
    if json {
        return print_json(&json!({ "provider": services.delivery.provider_name(), "providerId": id }));
    }
    let provider = services.delivery.provider_name();
    match id {
        // The provider's message id alone on standard output.
        Some(id) => {
            eprintln!("plinth mail test: sent through {provider}, provider id {id}");
            println!("{id}");
        }
        None => eprintln!("plinth mail test: sent through {provider} (no provider id)"),
    }
    Ok(())
}

/// `plinth mail remind`: the reminders due at a moment, queued once.
async fn mail_remind(config: Config, at: Option<String>, json: bool) -> anyhow::Result<()> {
    let at = api::email::reminders::moment(at.as_deref()).map_err(|e| anyhow::anyhow!("--at: {e}"))?;
    let public_url = config.server.public_url_or_addr();
    let statement_timeout_ms = config.database.statement_timeout_ms;
    let services = startup::Services::build(config, public_url.clone()).await?;
    let reminders = api::email::reminders::Reminders {
        pool: services.pool.clone(),
        sealer: services.sealer.clone(),
        public_url,
        statement_timeout_ms,
    };
    let queued = reminders.run_at(at).await;
    services.database.shutdown().await?;
    let queued = queued?;
    if json {
        return print_json(&json!({ "queued": queued }));
    }
    eprintln!("plinth mail remind: {queued} reminders queued");
    println!("{queued}");
    Ok(())
}

/// `plinth admin create`: an admin account, through the server's services.
async fn create_admin(config: Config, email: String, json: bool) -> anyhow::Result<()> {
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let created = services.accounts.create_admin(&email).await;
    services.database.shutdown().await?;
    let (user, password) = created.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    if json {
        return print_json(&json!({ "id": user.id, "email": user.email, "password": password }));
    }
    eprintln!(
        "plinth admin create: admin {} created with id {}; its password (shown once) is on standard output",
        user.email, user.id
    );
    println!("{password}");
    Ok(())
}

/// `plinth demo`: refused in production before anything connects; else the demo
/// account, through the server's services.
async fn demo(config: Config, email: String, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.base.is_production(),
        "plinth demo is for development only: PLINTH_ENV=production refuses it"
    );
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url.clone()).await?;
    let made = api::demo::create(&services, &email, format!("{}/", public_url.trim_end_matches('/'))).await;
    services.database.shutdown().await?;
    let d = made?;
    if json {
        let jobs: Vec<_> = d.jobs.iter().map(|(id, status)| json!({ "id": id, "status": status })).collect();
        return print_json(&json!({
            "url": d.url,
            "userId": d.user_id,
            "email": d.email,
            "password": d.password,
            "drafts": d.drafts,
            "photos": d.photos,
            "jobs": jobs,
            "invoices": d.invoices,
            "marketplaceAccounts": d.marketplace_accounts,
            "ticketId": d.ticket_id,
            "apiTokenId": d.api_token_id,
        }));
    }
    eprintln!(
        "plinth demo: demo account created: {} drafts, {} photos, {} jobs, {} invoices, 1 ticket, 1 API token",
        d.drafts,
        d.photos,
        d.jobs.len(),
        d.invoices
    );
    eprintln!("plinth demo: sign in at {} as {} with the password on standard output (shown once)", d.url, d.email);
    println!("{}", d.password);
    Ok(())
}

/// `plinth billing reconcile`: Stripe's list against what is stored.
async fn reconcile(config: Config, json: bool) -> anyhow::Result<()> {
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let result = services.billing.reconcile().await;
    services.database.shutdown().await?;
    let changes = result.map_err(|e| e.into_anyhow())?;
    if json {
        return print_json(&json!({ "changes": changes, "count": changes.len() }));
    }
    for line in &changes {
        println!("{line}");
    }
    eprintln!("plinth billing reconcile: reconciled: {} change(s)", changes.len());
    Ok(())
}

/// `plinth metrics export`: one metric as CSV, to standard output or `--out`.
async fn metrics_export(config: Config, args: ExportArgs) -> anyhow::Result<()> {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let metric = Metric::parse(&args.metric)
        .ok_or_else(|| anyhow::anyhow!("no metric {:?}: one of {}", args.metric, names.join(", ")))?;
    let timeout = config.database.statement_timeout_ms;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let admin = args.admin.as_deref();
    let exported =
        reports::export_as_operator(&services.pool, timeout, &services.catalog, admin, metric, &args.pairs()).await;
    services.database.shutdown().await?;
    let export = exported?;
    if args.json {
        return print_json(&export.to_json()?);
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, &export.csv).map_err(|e| anyhow::anyhow!("--out {}: {e}", path.display()))?
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&export.csv)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// `plinth import`: checks the folder, prints the report (stdout), imports in batches
/// with a progress bar on a terminal or a line per batch otherwise (stderr). Ctrl-C
/// stops between two batches; a second Ctrl-C is the default (immediate) one.
async fn import(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    use api::imports::service::{Importer, Options, Progress};
    use std::{
        io::IsTerminal,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
    };
    let timeout = config.database.statement_timeout_ms;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                eprintln!("plinth import: stopping after the current batch (Ctrl-C)");
            }
        })
    };
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    if terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let pause = std::time::Duration::from_millis(args.batch_pause_ms);
    let progress = |p: Progress| {
        if terminal {
            bar.set_length(p.all_total as u64);
            bar.set_position(p.all_done as u64);
            bar.set_message(p.kind.file());
        } else {
            eprintln!(
                "plinth import: {} {}/{} (all files {}/{})",
                p.kind.file(),
                p.done,
                p.total,
                p.all_done,
                p.all_total
            );
        }
    };
    let importer = Importer {
        pool: &services.pool,
        statement_timeout_ms: timeout,
        catalog: &services.catalog,
        photos: &services.photos,
        sealer: &services.sealer,
    };
    let options = Options { dry_run: args.dry_run, batch_size: args.batch_size, pause };
    let result = importer.run(&args.user, &args.from, options, &stop, &progress).await;
    bar.finish_and_clear();
    watcher.abort();
    services.database.shutdown().await?;
    let report = result?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            write!(out, "{}", report.to_text())?;
        }
        out.flush()?;
    }
    if report.interrupted {
        anyhow::bail!("interrupted: run the same command again to resume");
    }
    match report.stopped {
        Some(why) if !report.dry_run => anyhow::bail!("{why}"),
        _ => Ok(()),
    }
}

/// `plinth export --user --out`: the account's data as an import folder.
async fn export_folder(config: Config, user: String, out: std::path::PathBuf, json: bool) -> anyhow::Result<()> {
    let timeout = config.database.statement_timeout_ms;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let written = api::imports::service::export_folder(&services.pool, timeout, &services.storage, &user, &out).await;
    services.database.shutdown().await?;
    let manifest = written?;
    if json {
        return print_json(&json!({ "user": user, "out": out, "counts": manifest["counts"] }));
    }
    eprintln!("plinth export: exported {user} to {}: {}", out.display(), manifest["counts"]);
    Ok(())
}

/// `plinth user ...`: one staff step as an administrator, audited with the operator.
async fn user_command(config: Config, args: UserArgs) -> anyhow::Result<()> {
    use api::support::operator::{self, Operator, Target, User};
    let timeout = config.database.statement_timeout_ms;
    let public_url = config.server.public_url_or_addr();
    let services = startup::Services::build(config, public_url).await?;
    let done = async {
        let admin = reports::operator(&services.pool, timeout, args.admin.as_deref()).await?;
        let op = Operator {
            pool: &services.pool,
            bus: &services.bus,
            statement_timeout_ms: timeout,
            admin,
            label: operator::label(),
        };
        let show_user = |u: &User| -> anyhow::Result<()> {
            if args.json {
                return print_json(&serde_json::to_value(u)?);
            }
            let suspended = match (&u.suspended_at, &u.suspension_reason) {
                (Some(at), reason) => format!("suspended {} ({})", at.to_rfc3339(), reason.as_deref().unwrap_or("")),
                (None, _) => "active".to_owned(),
            };
            println!("{}\t{}\t{}\t{suspended}", u.id, u.email, u.role);
            Ok(())
        };
        match &args.command {
            UserCommand::Find { email } => show_user(&op.find(email).await?)?,
            UserCommand::Show { user } => {
                let summary = op.show(&Target::parse(user)).await?;
                if args.json {
                    print_json(&summary)?;
                } else {
                    print_summary(&summary);
                }
            }
            UserCommand::Suspend { user, reason } => show_user(&op.suspend(&Target::parse(user), reason).await?)?,
            UserCommand::Unsuspend { user, reason } => show_user(&op.unsuspend(&Target::parse(user), reason).await?)?,
            UserCommand::RevokeSessions { user } => {
                let result = op.revoke_sessions(&Target::parse(user)).await?;
                if args.json {
                    print_json(&result)?;
                } else {
                    eprintln!(
                        "plinth user revoke-sessions: {}: {} session(s) ended",
                        result["email"].as_str().unwrap_or(""),
                        result["sessionsEnded"]
                    );
                    println!("{}", result["sessionsEnded"]);
                }
            }
            UserCommand::GrantCredit { user, metric, amount, reason } => {
                let metric = api::model::QuotaMetric::parse(&metric.trim().to_lowercase())
                    .map_err(|_| anyhow::anyhow!("--metric: {metric:?} is not a counter (scans, preparations)"))?;
                let result = op.grant_credit(&Target::parse(user), metric, *amount, reason).await?;
                if args.json {
                    print_json(&result)?;
                } else {
                    eprintln!(
                        "plinth user grant-credit: {}: {} {} credited; credit this period {}",
                        result["email"].as_str().unwrap_or(""),
                        amount,
                        metric.as_str(),
                        result["creditThisPeriod"]
                    );
                    println!("{}", result["creditThisPeriod"]);
                }
            }
            UserCommand::SetRole { user, role, reason } => {
                let role = match role {
                    RoleArg::User => api::model::Role::User,
                    RoleArg::Support => api::model::Role::Support,
                    RoleArg::Admin => api::model::Role::Admin,
                };
                let (account, changed) = op.set_role(&Target::parse(user), role, reason).await?;
                if args.json {
                    let mut value = serde_json::to_value(&account)?;
                    value["changed"] = json!(changed);
                    print_json(&value)?;
                } else {
                    show_user(&account)?;
                    if !changed {
                        eprintln!("plinth user set-role: {} already had the role {}", account.email, account.role);
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    services.database.shutdown().await?;
    done
}

/// `plinth user show` for a person: the account, then a line per section.
fn print_summary(s: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let u = &s["user"];
    println!("{}\t{}\t{}", text(&u["id"]), text(&u["email"]), text(&u["role"]));
    if !u["suspendedAt"].is_null() {
        println!("suspended {} ({})", text(&u["suspendedAt"]), text(&u["suspensionReason"]));
    }
    println!("plan {} ({}), trial end {}", text(&s["plan"]), text(&s["accountState"]), text(&s["trialEnd"]));
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let usage: Vec<String> = list(&s["usage"])
        .iter()
        .map(|u| format!("{} {} (+{} credit)", text(&u["metric"]), u["used"], u["credit"]))
        .collect();
    println!("usage: {}; storage {} bytes", usage.join(", "), s["storageBytes"]);
    for j in list(&s["jobs"]) {
        println!("job {} {} {} {}", text(&j["id"]), text(&j["kind"]), text(&j["status"]), text(&j["createdAt"]));
    }
    for i in list(&s["invoices"]) {
        println!(
            "invoice {} {} {} {} {}",
            text(&i["number"]),
            text(&i["status"]),
            i["totalCents"],
            text(&i["currency"]),
            text(&i["createdAt"])
        );
    }
    for e in list(&s["emails"]) {
        println!("e-mail {} {} {}", text(&e["template"]), text(&e["status"]), text(&e["queuedAt"]));
    }
}
