//! Token verification cost, measured in-process (no network): a fresh access token
//! (signature check + Datalog run, the cache's miss path), a cached one (hash lookup +
//! revocation check), and one API-token field authorization. Prints p50/p99 in µs. Then
//! the cached path contended: 1, 2 and 8 threads verifying cached tokens at once, as a
//! server's workers do, with the total rate and each call's p50/p99.
//! Run: `cargo run --release --example tokens`.
use api::{
    auth::tokens::{TokenGrant, TokenService},
    model::{AccountState, ApiScope, PlanCode, QuotaMetric, Role},
    principal::Limits,
};
use biscuit_auth::KeyPair;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn main() -> anyhow::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let mut policies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        policies.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path)?));
    }
    let tokens = TokenService::new(KeyPair::new(), &policies, Duration::from_secs(900))?;
    let quotas = Limits(vec![
        (QuotaMetric::Scans, 500),
        (QuotaMetric::Preparations, 200),
        (QuotaMetric::ConnectedAccounts, 2),
        (QuotaMetric::StorageBytes, 1 << 30),
    ]);
    let n = 2_000;
    let issued: Vec<String> = (0..n)
        .map(|_| {
            let grant = TokenGrant {
                user_id: Uuid::new_v4(),
                role: Role::User,
                session_id: Uuid::new_v4(),
                plan: PlanCode::Starter,
                account_state: AccountState::Active,
                quotas: &quotas,
            };
            tokens.issue(&grant).map(|t| t.0)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut miss = Vec::with_capacity(n);
    for t in &issued {
        let start = Instant::now();
        tokens.verify(t).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        miss.push(start.elapsed());
    }
    let mut hit = Vec::with_capacity(n);
    for t in &issued {
        let start = Instant::now();
        tokens.verify(t).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        hit.push(start.elapsed());
    }
    let (api, _) = tokens.issue_api(
        Uuid::new_v4(),
        Uuid::new_v4(),
        &[ApiScope::DraftsRead],
        chrono::Utc::now() + chrono::Duration::days(1),
    )?;
    let principal = tokens.verify(&api).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let auth = principal.claims().and_then(|c| c.api.clone()).expect("an API token");
    let mut field = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        tokens
            .authorize_api(&auth, ApiScope::DraftsRead, "drafts", None)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        field.push(start.elapsed());
    }
    for (name, samples) in [
        ("access token, first verification (signature + Datalog)", miss),
        ("access token, cached (hash + revocation check)", hit),
        ("API token, one root field authorized", field),
    ] {
        let (p50, p99) = percentiles(samples);
        println!("{name:<58} p50 {p50:>8.1} µs   p99 {p99:>8.1} µs   (n={n})");
    }
    // Each thread verifies every cached token `rounds` times, starting at its own offset.
    let rounds = 50;
    for threads in [1, 2, 8] {
        let start = Instant::now();
        let samples: Vec<Duration> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (tokens, issued) = (&tokens, &issued);
                    scope.spawn(move || {
                        let mut took = Vec::with_capacity(rounds * n);
                        for i in 0..rounds * n {
                            let token = &issued[(i + t * n / threads) % n];
                            let call = Instant::now();
                            tokens.verify(token).expect("a cached token verifies");
                            took.push(call.elapsed());
                        }
                        took
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("a worker thread")).collect()
        });
        let rate = samples.len() as f64 / start.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(samples);
        let name = format!("cached, {threads} thread(s) at once");
        println!("{name:<58} p50 {p50:>8.1} µs   p99 {p99:>8.1} µs   {rate:>10.0} verifications/s");
    }
    Ok(())
}
