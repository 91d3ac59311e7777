//! The closed-loop load: `connections` keep-alive connections, each sending its next
//! request as soon as the previous answer is read, for a warm-up (not recorded) then
//! the measured duration. Every request is checked (a 200 without `errors`); each
//! request of a step goes out as a different user, round-robin over all of them.
use crate::{
    http::{request, Conn},
    seed::User,
};
use hdrhistogram::Histogram;
use serde_json::json;
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// The newest 20 drafts: the request the ceiling is the raw equivalent of.
pub const READ: &str = "query { drafts(first: 20) { edges { node { id title priceCents status createdAt } } } }";
/// The same with each draft's photos.
pub const READ_PHOTOS: &str = "query { drafts(first: 20) { edges { node { id title priceCents status createdAt \
                               photos { id contentType byteSize width height } } } } }";
const CREATE: &str = "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id } }";
const UPDATE: &str = "mutation($id: ID!, $i: UpdateDraftInput!) { updateDraft(id: $id, input: $i) { id updatedAt } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";

/// What one step of a connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `drafts(first: 20)`.
    Read,
    /// `drafts(first: 20)` with photos.
    ReadPhotos,
    /// `createDraft` then `updateDraft` of it (two requests).
    Write,
    /// Nine reads in ten steps, one write.
    Mixed,
    /// `login` with the production password hashing.
    Login,
}

/// What a run measured.
pub struct Measured {
    /// Requests answered correctly during the measured time.
    pub ok: u64,
    /// Requests answered with a non-200 status or `errors` (or a broken connection).
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Latency of every request, µs.
    pub latency: Histogram<u64>,
    /// The measured time.
    pub elapsed: Duration,
}

impl Measured {
    /// Nothing measured yet (latencies from 1 µs to 60 s, 3 significant digits), over
    /// `elapsed`.
    pub fn empty(elapsed: Duration) -> anyhow::Result<Self> {
        Ok(Measured {
            ok: 0,
            errors: 0,
            first_error: None,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            elapsed,
        })
    }

    /// Adds what another connection measured.
    pub fn absorb(&mut self, other: Measured) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latency.add(&other.latency)?;
        Ok(())
    }
}

/// Runs `step` over `connections` connections: `warmup`, then `duration` measured.
pub async fn run(
    addr: SocketAddr,
    users: Arc<Vec<User>>,
    step: Step,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let next_user = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (users, next_user) = (users.clone(), next_user.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut m = Measured::empty(Duration::ZERO)?;
            let mut n = c as u64;
            while Instant::now() < until {
                let user = &users[next_user.fetch_add(1, Ordering::Relaxed) % users.len()];
                let write = match step {
                    Step::Write => true,
                    Step::Mixed => n.is_multiple_of(10),
                    _ => false,
                };
                n += 1;
                if write {
                    let title = format!("New listing {n}");
                    let created =
                        timed(&mut conn, user, CREATE, json!({ "i": { "title": title, "priceCents": 2500 } })).await;
                    let id = created
                        .as_ref()
                        .ok()
                        .and_then(|(_, v)| v["data"]["createDraft"]["id"].as_str().map(str::to_owned));
                    record(&mut m, measure_from, created.map(|(t, _)| t));
                    if let Some(id) = id {
                        let updated =
                            timed(&mut conn, user, UPDATE, json!({ "id": id, "i": { "priceCents": 2200 } })).await;
                        record(&mut m, measure_from, updated.map(|(t, _)| t));
                    }
                } else {
                    let r = match step {
                        Step::Login => {
                            timed_anon(
                                &mut conn,
                                LOGIN,
                                json!({ "i": { "email": user.email, "password": crate::seed::PASSWORD } }),
                            )
                            .await
                        }
                        Step::ReadPhotos => timed(&mut conn, user, READ_PHOTOS, json!({})).await,
                        _ => timed(&mut conn, user, READ, json!({})).await,
                    };
                    record(&mut m, measure_from, r.map(|(t, _)| t));
                }
                if m.errors > 0 && conn_broken(&m) {
                    conn = Conn::connect(addr).await?;
                }
            }
            Ok::<_, anyhow::Error>(m)
        }));
    }
    let mut total = Measured::empty(duration)?;
    for t in tasks {
        total.absorb(t.await??)?;
    }
    total.elapsed = Instant::now().saturating_duration_since(measure_from).min(duration + Duration::from_secs(60));
    Ok(total)
}

fn conn_broken(m: &Measured) -> bool {
    m.first_error.as_deref().is_some_and(|e| e.starts_with("connection:"))
}

/// One request's outcome: its latency when it succeeded (with the answer's JSON), or why not.
type Outcome = Result<(Duration, serde_json::Value), String>;

async fn timed(conn: &mut Conn, user: &User, query: &str, variables: serde_json::Value) -> Outcome {
    send(conn, Some(&user.token), query, variables).await
}

async fn timed_anon(conn: &mut Conn, query: &str, variables: serde_json::Value) -> Outcome {
    send(conn, None, query, variables).await
}

async fn send(conn: &mut Conn, token: Option<&str>, query: &str, variables: serde_json::Value) -> Outcome {
    let body = request(query, variables);
    let t = Instant::now();
    let a = conn.graphql(token, body).await.map_err(|e| format!("connection: {e:#}"))?;
    let took = t.elapsed();
    if !a.ok() {
        return Err(format!("status {}: {}", a.status, String::from_utf8_lossy(&a.body)));
    }
    // Only writes need the answer (the new draft's id): reads are not parsed.
    let v = if query.starts_with("mutation") { a.json().map_err(|e| e.to_string())? } else { serde_json::Value::Null };
    Ok((took, v))
}

/// Records a success measured after the warm-up, and every error (warm-up included).
fn record(m: &mut Measured, measure_from: Instant, r: Result<Duration, String>) {
    match r {
        Ok(_) if Instant::now() < measure_from => {}
        Ok(t) => {
            m.ok += 1;
            let _ = m.latency.record(t.as_micros().max(1) as u64);
        }
        Err(e) => {
            m.errors += 1;
            m.first_error.get_or_insert(e);
        }
    }
}
