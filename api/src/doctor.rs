//! `plinth doctor`: checks a production configuration without starting anything. Each
//! check is one [`Check`] (a name, whether it passed, a detail that never carries a
//! secret): every required variable, the keys' formats, the Stripe prices, the
//! database as the runtime role (reachable, unable to bypass row-level security, the
//! schema current), Redis, the bucket (a probe object written and deleted), the mail
//! provider (SMTP: EHLO and AUTH; SendGrid: the API key against its base URL) and the
//! span export's collector when one is configured.
use crate::{
    auth::tokens::TokenService,
    catalog::Catalog,
    config::{Config, MailProvider},
    db,
    secretbox::SecretBox,
    storage::Storage,
};
use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use secrecy::ExposeSecret;
use std::{collections::HashMap, time::Duration};

/// The longest one network check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// Its name: `env.REDIS_URL`, `database.role`, `s3` ...
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (never a secret's value).
    pub detail: String,
}

impl Check {
    fn new(check: impl Into<String>, result: anyhow::Result<String>) -> Self {
        match result {
            Ok(detail) => Check { check: check.into(), ok: true, detail },
            Err(e) => Check { check: check.into(), ok: false, detail: format!("{e:#}") },
        }
    }
}

/// The variables production requires; alternatives separated by `|`.
const REQUIRED: &[&str] = &[
    "PLINTH_APP_DATABASE_URL|DATABASE_URL",
    "PLINTH_TOKEN_KEY",
    "PLINTH_CREDENTIALS_KEY",
    "REDIS_URL",
    "PLINTH_S3_ENDPOINT",
    "PLINTH_S3_BUCKET",
    "PLINTH_S3_ACCESS_KEY",
    "PLINTH_S3_SECRET_KEY",
    "PLINTH_PUBLIC_URL",
    "PLINTH_STRIPE_SECRET_KEY",
    "PLINTH_STRIPE_WEBHOOK_SECRET",
    "PLINTH_SENDGRID_API_KEY|PLINTH_SMTP_URL",
];

/// Runs every check on `vars` (the process environment), in order.
pub async fn run(vars: HashMap<String, String>) -> Vec<Check> {
    let set = |name: &str| vars.get(name).is_some_and(|v| !v.trim().is_empty());
    let mut checks = vec![Check::new(
        "env.PLINTH_ENV",
        match vars.get("PLINTH_ENV").map(|v| v.trim()) {
            Some("production") => Ok("production".into()),
            other => Err(anyhow::anyhow!("expected production, found {:?}", other.unwrap_or("(unset)"))),
        },
    )];
    for names in REQUIRED {
        let found = names.split('|').find(|n| set(n));
        checks.push(Check::new(
            format!("env.{names}"),
            found.map(|n| format!("{n} is set")).ok_or_else(|| anyhow::anyhow!("missing")),
        ));
    }
    let config = match Config::from_vars(vars) {
        Ok(c) => {
            checks.push(Check::new("config", Ok("every variable parses".into())));
            c
        }
        Err(e) => {
            checks.push(Check::new("config", Err(anyhow::anyhow!("{e}"))));
            return checks;
        }
    };
    checks.push(Check::new("keys.token", token_key(&config)));
    checks.push(Check::new("keys.credentials", credentials_key(&config)));
    checks.push(Check::new("stripe.prices", stripe_prices(&config)));
    match runtime_connection(&config).await {
        Ok((pool, role)) => {
            checks.push(Check::new("database", Ok(format!("reachable as {role}"))));
            checks.push(Check::new("database.role", runtime_role(&pool).await));
            checks.push(Check::new("database.schema", schema(&pool).await));
            pool.close().await.ok();
        }
        Err(e) => {
            let why = format!("{e:#}");
            checks.push(Check::new("database", Err(e)));
            for check in ["database.role", "database.schema"] {
                checks.push(Check::new(check, Err(anyhow::anyhow!("not checked: {why}"))));
            }
        }
    }
    checks.push(Check::new("redis", redis(&config).await));
    checks.push(Check::new("s3", s3(&config).await));
    checks.push(Check::new("mail", mail(&config).await));
    checks.push(Check::new("traces", traces(&config).await));
    checks
}

/// The span export, when configured: the collector accepts an empty export (an empty
/// `ExportTraceServiceRequest` is an empty protobuf body) with the configured headers.
async fn traces(config: &Config) -> anyhow::Result<String> {
    let Some(traces) = &config.base.traces else {
        return Ok("off (OTEL_EXPORTER_OTLP_ENDPOINT is not set)".into());
    };
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let mut request = client.post(&traces.endpoint).header("content-type", "application/x-protobuf").body(Vec::new());
    for (name, value) in &traces.headers {
        request = request.header(name.as_str(), value.expose_secret());
    }
    let shown = traces.endpoint_shown();
    let status = request.send().await.map_err(|e| anyhow::anyhow!("{shown}: {}", e.without_url()))?.status();
    anyhow::ensure!(status.is_success(), "{shown} refused an empty export: HTTP {}", status.as_u16());
    Ok(format!("{shown} accepts OTLP/HTTP exports (service.name {})", traces.service_name))
}

fn token_key(config: &Config) -> anyhow::Result<String> {
    anyhow::ensure!(config.auth.token_key.is_some(), "PLINTH_TOKEN_KEY is not set");
    TokenService::from_settings(&crate::startup::token_settings(&config.base, &config.auth))?;
    Ok("PLINTH_TOKEN_KEY is an Ed25519 private key".into())
}

fn credentials_key(config: &Config) -> anyhow::Result<String> {
    let key =
        config.storage.credentials_key.as_ref().ok_or_else(|| anyhow::anyhow!("PLINTH_CREDENTIALS_KEY is not set"))?;
    SecretBox::from_hex(key.expose_secret()).context("PLINTH_CREDENTIALS_KEY")?;
    Ok("PLINTH_CREDENTIALS_KEY is 32 bytes of hex".into())
}

/// Every paid plan names Stripe prices, none of them the built-in catalog's
/// placeholders (`price_starter_monthly` ...), which no Stripe account has.
fn stripe_prices(config: &Config) -> anyhow::Result<String> {
    let catalog = Catalog::load(config.billing.plans_file.as_deref())?;
    let builtin = Catalog::load(None)?;
    let placeholders: Vec<&str> = builtin
        .plans
        .iter()
        .flat_map(|p| [p.stripe_price_monthly.as_deref(), p.stripe_price_yearly.as_deref()])
        .flatten()
        .collect();
    let mut prices = 0;
    for plan in &catalog.plans {
        for price in [&plan.stripe_price_monthly, &plan.stripe_price_yearly].into_iter().flatten() {
            anyhow::ensure!(
                !placeholders.contains(&price.as_str()),
                "plan {}: {price} is a placeholder of the built-in catalog (set PLINTH_PLANS_FILE with the account's prices)",
                plan.code.as_str()
            );
            prices += 1;
        }
    }
    anyhow::ensure!(prices > 0, "no plan names a Stripe price");
    Ok(format!("{prices} prices, none a placeholder"))
}

/// One connection as the runtime role, never the owner: `PLINTH_APP_DATABASE_URL`, or
/// `DATABASE_URL`'s host with the runtime role.
async fn runtime_connection(config: &Config) -> anyhow::Result<(DatabaseConnection, String)> {
    let url = match (&config.database.app_url, &config.database.url) {
        (Some(app), _) => app.expose_secret().to_owned(),
        (None, Some(owner)) => {
            let password = config.database.app_password.as_ref().map(|p| p.expose_secret().to_owned());
            db::runtime_url(owner.expose_secret(), password.as_deref())?
        }
        (None, None) => anyhow::bail!("no database URL (PLINTH_APP_DATABASE_URL)"),
    };
    let pool = db::connect_direct(&url, TIMEOUT).await?;
    let row = pool
        .query_one(Statement::from_string(DbBackend::Postgres, "SELECT current_user::text AS role"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no answer"))?;
    let role = row.try_get("", "role")?;
    Ok((pool, role))
}

/// The runtime role cannot bypass row-level security: no superuser, no BYPASSRLS,
/// owner of no relation of this database.
async fn runtime_role(pool: &DatabaseConnection) -> anyhow::Result<String> {
    let row = pool
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolname::text AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relowner = r.oid
                        AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS owned
               FROM pg_roles r WHERE r.rolname = current_user",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the current role is not in pg_roles"))?;
    let role: String = row.try_get("", "role")?;
    let (superuser, bypass, owned): (bool, bool, i64) =
        (row.try_get("", "superuser")?, row.try_get("", "bypassrls")?, row.try_get("", "owned")?);
    anyhow::ensure!(!superuser, "{role} is a superuser: row-level security does not apply to it");
    anyhow::ensure!(!bypass, "{role} has BYPASSRLS: row-level security does not apply to it");
    anyhow::ensure!(owned == 0, "{role} owns {owned} relations: use a role that owns nothing (plinth_app)");
    Ok(format!("{role}: no superuser, no BYPASSRLS, owns nothing"))
}

async fn schema(pool: &DatabaseConnection) -> anyhow::Result<String> {
    let missing = db::missing_migrations(pool).await?;
    match missing.first() {
        None => Ok("every migration of this release is applied".into()),
        Some(first) => {
            anyhow::bail!("migration {first} is not applied ({} missing): run `plinth migrate`", missing.len())
        }
    }
}

async fn redis(config: &Config) -> anyhow::Result<String> {
    let url = config.redis_url.as_ref().ok_or_else(|| anyhow::anyhow!("REDIS_URL is not set"))?;
    let client = redis::Client::open(url.expose_secret()).map_err(|_| anyhow::anyhow!("REDIS_URL is not usable"))?;
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let pong = tokio::time::timeout(TIMEOUT, ping).await.map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    Ok(format!("PING answered {pong}"))
}

/// Writes a probe object and deletes it.
async fn s3(config: &Config) -> anyhow::Result<String> {
    let settings = config.storage.s3.as_ref().ok_or_else(|| anyhow::anyhow!("PLINTH_S3_ENDPOINT is not set"))?;
    let storage = Storage::s3(settings)?;
    let key = format!("plinth-doctor/{}.txt", uuid::Uuid::new_v4().simple());
    storage.put(&key, "text/plain", b"plinth doctor probe").await.map_err(|e| anyhow::anyhow!("writing {key}: {e}"))?;
    storage.delete(&key).await.map_err(|e| anyhow::anyhow!("deleting {key}: {e}"))?;
    Ok(format!("bucket {}: a probe object written and deleted", settings.bucket))
}

async fn mail(config: &Config) -> anyhow::Result<String> {
    match &config.mail.provider {
        MailProvider::SendGrid { api_key, api_base } => {
            // The key's scopes: any valid key may read them, a bad one gets 401.
            let url = format!("{}/v3/scopes", api_base.trim_end_matches('/'));
            let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
            let resp = client.get(&url).bearer_auth(api_key.expose_secret()).send().await?;
            let status = resp.status();
            anyhow::ensure!(status.is_success(), "SendGrid refused the API key: HTTP {}", status.as_u16());
            Ok("SendGrid accepted the API key".into())
        }
        MailProvider::Smtp { url } => {
            use lettre::{AsyncSmtpTransport, Tokio1Executor};
            let transport: AsyncSmtpTransport<Tokio1Executor> =
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|_| anyhow::anyhow!("PLINTH_SMTP_URL is not a usable SMTP URL"))?
                    .timeout(Some(TIMEOUT))
                    .build();
            // Connecting says EHLO (and STARTTLS) and authenticates when the URL has
            // credentials; then NOOP.
            let ok = transport.test_connection().await.map_err(|e| anyhow::anyhow!("SMTP: {e}"))?;
            anyhow::ensure!(ok, "the SMTP relay did not answer NOOP");
            Ok("the SMTP relay accepted EHLO and the credentials".into())
        }
        MailProvider::File => {
            anyhow::bail!("the file mailer is for development: set PLINTH_SENDGRID_API_KEY or PLINTH_SMTP_URL")
        }
    }
}
