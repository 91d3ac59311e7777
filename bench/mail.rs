//! Mail delivery throughput: `--messages` rows queued in the outbox at once, then the
//! time until the delivery workers of one process (`--workers` loops, the code `plinth
//! serve` and `plinth mailer` run) have sent them all, to a local SendGrid stand-in
//! (started here: 202 and an `X-Message-Id`, like SendGrid's v3 mail send) or to an SMTP
//! server (`--smtp-url`, e.g. aiosmtpd on loopback; see `bench/mail.sh`).
//!
//! Each run creates a fresh database on `--admin-url`'s server (dropped at the end),
//! migrates it through `Services::build`, queues the rows with one INSERT (as domains
//! would, a NOTIFY wakes the workers) and polls the count of sent rows every 50 ms.
//!
//! Usage: `mail --provider sendgrid|smtp [--smtp-url smtp://127.0.0.1:2525]
//! [--workers 1] [--messages 10000] [--batch 20]`.
use clap::Parser;
use poem::{
    handler,
    listener::{Acceptor, Listener, TcpListener},
    Response, Route, Server,
};
use sqlx::{Connection, Executor};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Parser)]
struct Args {
    /// `sendgrid` (the stand-in started here) or `smtp` (`--smtp-url`).
    #[arg(long, default_value = "sendgrid")]
    provider: String,
    /// The SMTP server, for `--provider smtp`.
    #[arg(long)]
    smtp_url: Option<String>,
    /// Delivery loops.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Rows queued.
    #[arg(long, default_value_t = 10_000)]
    messages: i64,
    /// Rows a loop claims at a time (and sends concurrently).
    #[arg(long, default_value_t = 20)]
    batch: u32,
    /// A superuser URL of the PostgreSQL server (a database is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
}

#[handler]
fn mail_send() -> Response {
    Response::builder()
        .status(poem::http::StatusCode::ACCEPTED)
        .header("X-Message-Id", uuid::Uuid::new_v4().simple().to_string())
        .finish()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("plinth_bench_mail_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut admin = sqlx::PgConnection::connect(&args.admin_url).await?;
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    let mut db_url = url::Url::parse(&args.admin_url)?;
    db_url.set_path(&name);
    let data_dir = std::env::temp_dir().join(&name);
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db_url.to_string()),
        ("PLINTH_DATA_DIR".into(), data_dir.display().to_string()),
        ("PLINTH_ADDR".into(), "127.0.0.1:0".into()),
        ("PLINTH_DB_POOL_SIZE".into(), (4 + args.workers * 2).to_string()),
        ("PLINTH_MAIL_BATCH".into(), args.batch.to_string()),
        ("PLINTH_MAIL_POLL_MS".into(), "100".into()),
    ]);
    match args.provider.as_str() {
        "sendgrid" => {
            let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
            let addr = *acceptor.local_addr()[0].as_socket_addr().expect("a TCP address");
            tokio::spawn(
                Server::new_with_acceptor(acceptor).run(Route::new().at("/v3/mail/send", poem::post(mail_send))),
            );
            vars.insert("PLINTH_SENDGRID_API_KEY".into(), "SG.bench".into());
            vars.insert("PLINTH_SENDGRID_API_BASE".into(), format!("http://{addr}"));
        }
        "smtp" => {
            let url =
                args.smtp_url.clone().ok_or_else(|| anyhow::anyhow!("--smtp-url is required with --provider smtp"))?;
            vars.insert("PLINTH_SMTP_URL".into(), url);
        }
        other => anyhow::bail!("unknown provider {other}"),
    }
    let config = api::config::Config::from_vars(vars)?;
    let services = api::startup::Services::build(config, "http://127.0.0.1".into()).await?;
    let mut db = sqlx::PgConnection::connect(db_url.as_str()).await?;
    let user = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, plan, created_at, updated_at)
         VALUES ($1, 'bench@example.com', 'x', 'user', 'free', now(), now())",
    )
    .bind(user)
    .execute(&mut db)
    .await?;
    sqlx::query(
        "INSERT INTO email_outbox (id, user_id, to_email, template, subject, body_text, data, locale)
         SELECT gen_random_uuid(), $1, 'bench' || g || '@example.com', 'receipt', 's', 'b',
                jsonb_build_object('plan', 'Pro', 'detail', 'INV-' || g), CASE WHEN g % 2 = 0 THEN 'fr' ELSE 'en' END
           FROM generate_series(1, $2) g",
    )
    .bind(user)
    .bind(args.messages)
    .execute(&mut db)
    .await?;
    let started = Instant::now();
    let handles = services.start_mail_workers(args.workers);
    let mut sent = 0i64;
    while sent < args.messages {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status <> 'pending'")
            .fetch_one(&mut db)
            .await?;
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "only {sent} sent after 10 minutes");
    }
    let elapsed = started.elapsed();
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status = 'failed'").fetch_one(&mut db).await?;
    for h in &handles {
        h.abort();
    }
    println!(
        "provider={} workers={} batch={} messages={} failed={} elapsed={:.2}s throughput={:.0} msgs/s",
        args.provider,
        args.workers,
        args.batch,
        args.messages,
        failed,
        elapsed.as_secs_f64(),
        args.messages as f64 / elapsed.as_secs_f64()
    );
    drop(db);
    drop(services);
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
