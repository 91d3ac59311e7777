//! `plinth demo`: a development account with something in every section, made through
//! the same services and row-level-secured transactions as the API's requests: it
//! registers like a visitor, connects a marketplace account, writes drafts, uploads
//! photos (PNGs drawn here) through the upload path, runs jobs to every status through
//! the worker's own steps (a worker token issued for the run, then revoked), opens a
//! support ticket, creates an API token (its secret discarded: the web app lists it, as
//! an integration would have it), and receives invoices as the Stripe webhook stores
//! them.
//!
//! Refused in production ([`create`]). Run twice, it refuses: the address has an
//! account (CONFLICT), and the message says how to get another one.
use crate::{
    accounts::service::SignedIn,
    api_tokens::service as api_tokens,
    auth::workers,
    billing::{events::StripeInvoice, store as billing},
    db::{RequestMeta, RequestTx},
    drafts::{
        domain::{Condition, DraftFields, Patch},
        service as drafts,
    },
    email::templates,
    error::AppError,
    jobs::service::{self as jobs, QueueSettings},
    marketplace::{domain::MarketplacePlatform, service as marketplace},
    model::{DbRole, JobKind, Locale},
    notifications::service as notifications,
    principal::Principal,
    startup::Services,
    support::{
        domain::{Body, Subject, TicketCategory},
        service::{self as support, OpenTicket, SupportLimits},
    },
};
use anyhow::Context as _;
use chrono::Utc;
use rand::{distributions::Alphanumeric, Rng};
use serde::Serialize;
use uuid::Uuid;

/// The demo account's address unless `--email` names another.
pub const DEFAULT_EMAIL: &str = "demo@example.com";

/// What `plinth demo` made: how to sign in, and what the account holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Demo {
    /// Where the web app is.
    pub url: String,
    /// The account's id.
    pub user_id: Uuid,
    /// Its address.
    pub email: String,
    /// Its generated password (shown once).
    pub password: String,
    /// Drafts made.
    pub drafts: usize,
    /// Photos uploaded and confirmed.
    pub photos: usize,
    /// Jobs, by final status (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED).
    pub jobs: Vec<(Uuid, String)>,
    /// Invoices stored.
    pub invoices: usize,
    /// Marketplace accounts connected.
    pub marketplace_accounts: usize,
    /// The support ticket opened.
    pub ticket_id: Uuid,
    /// The API token created (listed in the web app; its secret was not kept).
    pub api_token_id: Uuid,
}

/// The demo API token's name, and its scopes (read-only).
pub const API_TOKEN_NAME: &str = "Demo integration";
const API_TOKEN_SCOPES: [&str; 3] = ["drafts:read", "jobs:read", "usage:read"];

/// The drafts: title, description, price in cents, brand, size, condition.
const DRAFTS: [(&str, &str, i64, &str, &str, Condition); 4] = [
    (
        "Denim jacket",
        "Classic blue denim jacket, barely worn, all buttons intact.",
        3500,
        "Levi's",
        "M",
        Condition::VeryGood,
    ),
    ("Leather boots", "Brown leather ankle boots, resoled last winter.", 5900, "Dr. Martens", "42", Condition::Good),
    ("Wool scarf", "Hand-knitted grey wool scarf, 180 cm.", 1200, "Handmade", "One size", Condition::NewWithoutTags),
    ("Summer dress", "Floral cotton dress with pockets, tags still on.", 2800, "Zara", "S", Condition::NewWithTags),
];

/// Creates the demo account at `email` (see the module's docs) and returns how to sign
/// in. `services` must be a development instance's.
///
/// Errors: production (refused before anything is written); the address has an
/// account already (with how to get another); any service's error, with its step.
pub async fn create(services: &Services, email: &str, url: String) -> anyhow::Result<Demo> {
    anyhow::ensure!(
        !services.config.base.is_production(),
        "plinth demo is for development only: PLINTH_ENV=production refuses it"
    );
    let timeout = services.config.database.statement_timeout_ms;
    let begin =
        |principal: Principal| RequestTx::new(&services.pool, principal, RequestMeta::internal("demo"), timeout);
    let step = |what: &'static str| move |e: AppError| e.into_anyhow().context(what);

    // 1. Registration, as a visitor would (the verification e-mail goes to the outbox).
    let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect();
    let tx = begin(Principal::Anonymous);
    let signed_in: Result<SignedIn, AppError> = services.accounts.register(&tx, email, &password, Locale::En).await;
    let signed_in = match signed_in {
        Ok(s) => s,
        Err(AppError::Conflict(_)) => {
            tx.rollback().await;
            anyhow::bail!(
                "the address {email} has an account already (an earlier `plinth demo`, whose password was \
                 printed then): run `plinth demo --email another@example.com` for a new demo account, or stop \
                 the server and delete the development data directory (PLINTH_DATA_DIR, ./.data by default; or use a fresh DATABASE_URL) to start from nothing"
            );
        }
        Err(e) => {
            tx.rollback().await;
            return Err(step("registering the demo account")(e));
        }
    };
    tx.commit(&services.bus).await?;
    let user_id = signed_in.user.id;
    let me = services.tokens.verify(&signed_in.access_token).map_err(step("reading the session"))?;
    tracing::info!(%user_id, "demo account registered");

    // 2. A marketplace account and the drafts.
    let tx = begin(me.clone());
    let made = async {
        let creds = serde_json::json!({ "username": "demo-shop", "apiKey": "demo-not-a-real-key" });
        marketplace::connect(&tx, &services.sealer, MarketplacePlatform::Vinted, "Demo shop (Vinted)", &creds).await?;
        let mut ids = Vec::new();
        for (title, description, price, brand, size, condition) in DRAFTS {
            let fields = DraftFields {
                title: Some(title.into()),
                description: Some(description.into()),
                price_cents: Patch::Set(price),
                currency: Some("EUR".into()),
                brand: Patch::Set(brand.into()),
                size: Patch::Set(size.into()),
                condition: Patch::Set(condition),
                category: Patch::Set("Clothing".into()),
                status: None,
            };
            ids.push(drafts::create(&tx, fields).await?.id);
        }
        Ok(ids)
    }
    .await;
    let draft_ids = finish(&tx, services, made).await.map_err(step("writing the drafts"))?;

    // 3. Photos: reserved, their bytes put where the upload URL points, then confirmed,
    //    as the web app's upload does (the bytes go to storage between transactions).
    let mut photos = 0;
    for (i, draft_id) in draft_ids.iter().enumerate() {
        for j in 0..2u8 {
            let bytes = picture(i as u8, j, 480, 360);
            let tx = begin(me.clone());
            let reserved = services.photos.create_upload(&tx, "image/png", bytes.len() as i64, Some(*draft_id)).await;
            let upload = finish(&tx, services, reserved).await.map_err(step("reserving a photo"))?;
            services.storage.put(&upload.photo.object_key, "image/png", &bytes).await.context("storing a photo")?;
            let tx = begin(me.clone());
            let confirmed = services.photos.confirm_upload(&tx, upload.photo.id, Some(*draft_id)).await;
            finish(&tx, services, confirmed).await.map_err(step("confirming a photo"))?;
            photos += 1;
        }
    }

    // 4. Jobs in every status, through the worker's steps.
    let jobs = run_jobs(services, &me, &draft_ids).await?;

    // 5. A support ticket, then the owner's follow-up in it.
    let tx = begin(me.clone());
    let limits = SupportLimits {
        max_open_tickets: services.config.support.max_open_tickets,
        messages_per_hour: services.config.support.messages_per_hour,
        reply_mail_delay_secs: services.config.support.reply_mail_delay.as_secs() as i64,
        mirror: false,
    };
    let opened = async {
        let input = OpenTicket {
            subject: Subject::parse("subject", "Publishing failed for my leather boots")?,
            category: TicketCategory::Jobs,
            priority: None,
            body: Body::parse("body", "The PUBLISH job for the boots failed. Could you have a look?")?,
            job_id: jobs.iter().find(|(_, s)| s == "FAILED").map(|(id, _)| *id),
            draft_id: draft_ids.get(1).copied(),
        };
        let (ticket, _) = support::open(&tx, limits, input).await?;
        let more = Body::parse("body", "I reconnected the marketplace account since; the photos are the same.")?;
        support::reply(&tx, limits, ticket.id, more, &[]).await?;
        Ok(ticket.id)
    }
    .await;
    let ticket_id = finish(&tx, services, opened).await.map_err(step("opening the support ticket"))?;

    // 6. An API token, created as the web app's tokens page does (its secret, shown once
    //    there, is not kept: the account lists it, as an integration would have it).
    let tx = begin(me.clone());
    let scopes: Vec<String> = API_TOKEN_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let created = api_tokens::create(&tx, &services.tokens, API_TOKEN_NAME, &scopes, None).await;
    let (_, api_token) = finish(&tx, services, created).await.map_err(step("creating the API token"))?;

    // 7. Invoices, stored as the Stripe webhook stores `invoice.paid` (billing role,
    //    acting for the account), each with its receipt notification.
    let months = 3;
    for m in 0..months {
        let tx = begin(Principal::System);
        let stored = async {
            tx.act_for_system(DbRole::Billing, user_id).await?;
            let start = Utc::now() - chrono::Duration::days(30 * (months - m));
            let number = format!("DEMO-{:04}", m + 1);
            let inv = StripeInvoice {
                id: format!("in_demo_{}_{}", user_id.simple(), m + 1),
                number: Some(number.clone()),
                status: Some("paid".into()),
                currency: Some("eur".into()),
                subtotal: Some(1500),
                total: Some(1800),
                tax: Some(300),
                amount_paid: Some(1800),
                amount_due: Some(0),
                period_start: Some(start.timestamp()),
                period_end: Some((start + chrono::Duration::days(30)).timestamp()),
                created: Some(start.timestamp()),
                ..StripeInvoice::default()
            };
            billing::upsert_invoice(&tx, user_id, &inv, start.timestamp()).await?;
            notifications::notify(&tx, user_id, templates::receipt("Pro", &number, None, None)).await
        }
        .await;
        finish(&tx, services, stored).await.map_err(step("storing an invoice"))?;
    }

    Ok(Demo {
        url,
        user_id,
        email: signed_in.user.email,
        password,
        drafts: draft_ids.len(),
        photos,
        jobs,
        invoices: months as usize,
        marketplace_accounts: 1,
        ticket_id,
        api_token_id: api_token.id,
    })
}

/// Commits `tx` when `result` is Ok (its events published), else rolls it back.
async fn finish<T>(tx: &RequestTx, services: &Services, result: Result<T, AppError>) -> Result<T, AppError> {
    match result {
        Ok(v) => {
            tx.commit(&services.bus).await.map_err(AppError::from)?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}

/// Five jobs, one per status, made by the account and moved by a worker token issued
/// for this run (revoked at the end): QUEUED stays queued (a running server's worker
/// takes it), RUNNING is claimed with progress (its lease ends and it is queued again
/// when no worker reports), SUCCEEDED completes, FAILED fails its only attempt,
/// CANCELED is canceled by the owner while it runs and stopped at the worker's report.
async fn run_jobs(services: &Services, me: &Principal, drafts: &[Uuid]) -> anyhow::Result<Vec<(Uuid, String)>> {
    let timeout = services.config.database.statement_timeout_ms;
    let settings = QueueSettings { lease: services.config.jobs.lease };
    let kinds = [JobKind::Scan, JobKind::Prepare, JobKind::Publish];
    let ttl = std::time::Duration::from_secs(3600);
    let (worker_id, token) = workers::issue(&services.pool, &services.tokens, timeout, &kinds, ttl).await?;
    let worker = services.tokens.verify(&token).map_err(AppError::into_anyhow)?;
    let begin = |p: &Principal| RequestTx::new(&services.pool, p.clone(), RequestMeta::internal("demo"), timeout);
    let step = |what: &'static str| move |e: AppError| e.into_anyhow().context(what);
    let mut made = Vec::new();
    let plan: [(JobKind, usize, &str); 5] = [
        (JobKind::Publish, 3, "SUCCEEDED"),
        (JobKind::Publish, 1, "FAILED"),
        (JobKind::Publish, 2, "CANCELED"),
        (JobKind::Publish, 0, "RUNNING"),
        (JobKind::Publish, 3, "QUEUED"),
    ];
    let done = async {
        for (kind, draft, status) in plan {
            let tx = begin(me);
            let max_attempts = if status == "FAILED" { Some(1) } else { None };
            let created = jobs::create(&tx, kind, drafts.get(draft).copied(), max_attempts).await;
            let job = finish(&tx, services, created).await.map_err(step("queueing a job"))?;
            match status {
                "QUEUED" => {}
                _ => {
                    // Claimed in a transaction kept only when the claim is this job: on
                    // a database with other accounts' due jobs, theirs are left alone.
                    let tx = begin(&worker);
                    let claimed = jobs::claim(&tx, &services.photos, settings, &[kind]).await.map_err(step("claiming"))?;
                    if claimed.as_ref().map(|c| c.job.id) != Some(job.id) {
                        tx.rollback().await;
                        tracing::warn!(job_id = %job.id, "another account's job was due first; the demo job stays queued");
                        made.push((job.id, "QUEUED".to_owned()));
                        continue;
                    }
                    let moved = async {
                        jobs::report_progress(&tx, settings, job.id, 0.4, Some("uploading photos")).await?;
                        match status {
                            "SUCCEEDED" => {
                                jobs::report_progress(&tx, settings, job.id, 0.9, Some("publishing the listing"))
                                    .await?;
                                jobs::complete(&tx, job.id, None).await?;
                            }
                            "FAILED" => {
                                jobs::fail(&tx, job.id, "the marketplace refused the listing: price below minimum")
                                    .await?;
                            }
                            _ => {}
                        }
                        Ok(())
                    }
                    .await;
                    finish(&tx, services, moved).await.map_err(step("running a job"))?;
                    if status == "CANCELED" {
                        // The owner cancels while it runs; the worker's next report
                        // learns it and the job ends CANCELED.
                        let tx = begin(me);
                        let canceled = jobs::cancel(&tx, job.id).await;
                        finish(&tx, services, canceled).await.map_err(step("canceling a job"))?;
                        let tx = begin(&worker);
                        let told = jobs::report_progress(&tx, settings, job.id, 0.6, Some("still uploading")).await;
                        finish(&tx, services, told).await.map_err(step("stopping a canceled job"))?;
                    }
                }
            }
            made.push((job.id, status.to_owned()));
        }
        anyhow::Ok(())
    }
    .await;
    let revoked = workers::revoke(&services.pool, &services.bus, timeout, worker_id).await;
    done?;
    revoked.map_err(|e| e.into_anyhow().context("revoking the demo worker token"))?;
    Ok(made)
}

/// A `w`×`h` PNG: a diagonal gradient whose colours depend on `draft` and `n`, so every
/// photo differs.
pub fn picture(draft: u8, n: u8, w: u32, h: u32) -> Vec<u8> {
    let (r0, g0, b0) = [(200u32, 90u32, 60u32), (60, 120, 200), (90, 170, 90), (210, 160, 60)][draft as usize % 4];
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let t = (x + y) * 255 / (w + h);
            let stripe = if ((x / 40) + (y / 40) + u32::from(n)) % 2 == 0 { 30 } else { 0 };
            pixels.push(((r0 + t) / 2 + stripe).min(255) as u8);
            pixels.push(((g0 + 255 - t) / 2 + stripe).min(255) as u8);
            pixels.push(((b0 + t / 2) / 2 + stripe).min(255) as u8);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("a PNG header in memory");
        writer.write_image_data(&pixels).expect("PNG data in memory");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pictures_are_pngs_of_their_size() {
        let bytes = super::picture(1, 0, 64, 32);
        let (w, h, _) = crate::photos::service::inspect(&bytes, "image/png").expect("a PNG");
        assert_eq!((w, h), (64, 32));
    }
}
