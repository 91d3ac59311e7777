//! `plinth`: the command line over the `api` library.
use api::{config::Config, startup, telemetry};
use clap::{Parser, Subcommand};
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
    /// Run the server (the default): migrate, then serve on PLINTH_ADDR.
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Run the reference job worker against PLINTH_API_URL with PLINTH_WORKER_TOKEN.
    Worker {
        /// Job kinds to claim.
        #[arg(long, value_delimiter = ',', default_value = "scan,prepare,publish")]
        kinds: Vec<String>,
    },
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
}

#[derive(Subcommand)]
enum BillingCommand {
    /// List subscriptions from Stripe and repair any drift; prints what it changed.
    Reconcile,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account; its generated password is printed once.
    Create {
        /// The admin's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Issue a worker token for the given job kinds; printed once.
    WorkerToken {
        /// Job kinds the worker may claim: scan, prepare, publish.
        #[arg(long, value_delimiter = ',', required = true)]
        kinds: Vec<String>,
        /// Days until the token expires.
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", api::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plinth: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plinth: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why, with its causes.
            eprintln!("plinth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => startup::Application::build(config).await?.run_until_stopped().await,
        Command::Migrate => {
            let database = startup::DatabaseSetup::from_config(&config).await?;
            let migrated = database.migrate().await;
            database.shutdown().await?;
            migrated?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { email } } => {
            let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.addr));
            let services = startup::Services::build(config, public_url).await?;
            let created = services.accounts.create_admin(&email).await;
            services.database.shutdown().await?;
            let (user, password) = created.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            println!("admin {} created with id {}", user.email, user.id);
            println!("password (shown once): {password}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", api::graphql::sdl());
            Ok(())
        }
        Command::Billing { command: BillingCommand::Reconcile } => {
            let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.addr));
            let services = startup::Services::build(config, public_url).await?;
            let result = services.billing.reconcile().await;
            services.database.shutdown().await?;
            let changes = result.map_err(|e| e.into_anyhow())?;
            for line in &changes {
                println!("{line}");
            }
            println!("reconciled: {} change(s)", changes.len());
            Ok(())
        }
        Command::Admin { command: AdminCommand::WorkerToken { kinds, days } } => {
            let kinds = kinds
                .iter()
                .map(|k| {
                    api::model::JobKind::parse(&k.trim().to_lowercase())
                        .map_err(|_| anyhow::anyhow!("--kinds: unknown job kind {k:?} (scan, prepare, publish)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let tokens = api::auth::tokens::TokenService::from_settings(&startup::token_settings(&config))?;
            let worker_id = uuid::Uuid::now_v7();
            let token = tokens.issue_worker(worker_id, &kinds, std::time::Duration::from_secs(days * 86_400))?;
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            println!("worker {worker_id} may claim {}; token (shown once):", names.join(", "));
            println!("{token}");
            Ok(())
        }
        Command::Worker { kinds } => {
            let token = std::env::var("PLINTH_WORKER_TOKEN").map_err(|_| {
                anyhow::anyhow!("PLINTH_WORKER_TOKEN: required (issue one with `plinth admin worker-token`)")
            })?;
            let api_url = std::env::var("PLINTH_API_URL").unwrap_or_else(|_| format!("http://{}/graphql", config.addr));
            let settings = api::jobs::worker::WorkerSettings {
                api_url,
                token: token.into(),
                kinds: kinds.iter().map(|k| k.trim().to_uppercase()).collect(),
                idle_poll: std::time::Duration::from_secs(1),
            };
            api::jobs::worker::Worker::new(settings)?.run(startup::shutdown_signal()).await
        }
    }
}
