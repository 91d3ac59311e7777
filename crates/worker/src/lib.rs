//! `plinth worker`: the reference worker. It speaks the same GraphQL API as any
//! integrator (claimJob, reportJobProgress, completeJob, failJob) with a worker token,
//! and runs built-in handlers so the whole loop works on a laptop: SCAN downloads the
//! job's photos and measures them, PREPARE writes a description from the photos'
//! metadata, PUBLISH marks the draft published. The listing engine plugs in the same way.
//!
//! It claims as soon as it is told: a `jobQueued` subscription over WebSocket
//! (`/graphql/ws`, graphql-transport-ws, see [`listen`]) wakes it when a job of its
//! kinds is queued. The poll stays as the fallback: every `idle_poll` while the queue is
//! empty, which finds what no event announces (a job whose lease expired) and
//! everything while the socket is down (reconnected with backoff meanwhile).
//!
//! It knows the server only through that API (it does not depend on the `api` crate)
//! and reads no environment: the caller passes [`WorkerSettings`].
use anyhow::{bail, Context};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};
use tokio::sync::{watch, Notify};

mod listen;

/// The type of [`WorkerSettings::token`], re-exported so callers need no `secrecy` of their own.
pub use secrecy::SecretString;

/// Where the worker finds the API and what it works on.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// The GraphQL endpoint, e.g. `http://127.0.0.1:8080/graphql`.
    pub api_url: String,
    /// The worker token (from `plinth admin worker-token`).
    pub token: SecretString,
    /// Kinds to claim (`SCAN`, `PREPARE`, `PUBLISH`).
    pub kinds: Vec<String>,
    /// Pause between claims when the queue is empty and no `jobQueued` event came.
    pub idle_poll: Duration,
    /// Whether to listen for `jobQueued` over WebSocket; false: poll only.
    pub listen: bool,
}

/// A worker's connection to the API.
pub struct Worker {
    settings: WorkerSettings,
    http: reqwest::Client,
    /// Set by the `jobQueued` listener: claim now.
    wake: Arc<Notify>,
    /// Whether the listener's subscription is listening on the server right now.
    listening: watch::Sender<bool>,
}

const JOB_FIELDS: &str = "id kind status input";

impl Worker {
    /// A worker with its own HTTP client.
    pub fn new(settings: WorkerSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let (listening, _) = watch::channel(false);
        Ok(Worker { settings, http, wake: Arc::new(Notify::new()), listening })
    }

    /// Whether the worker hears `jobQueued` now: true once the server confirmed its
    /// subscription listens (its first item), false while the socket is down.
    pub fn listening(&self) -> watch::Receiver<bool> {
        self.listening.subscribe()
    }

    /// Claims and runs jobs until `stop` resolves. A job under way when it does runs to
    /// its end (completed or failed, so its lease is released) before this returns: a
    /// drain does not leave it to its lease's expiry.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        // The listener ends with the worker, whichever way `run` returns.
        let _listener = self.settings.listen.then(|| {
            AbortOnDrop(tokio::spawn(listen::listen(self.settings.clone(), self.wake.clone(), self.listening.clone())))
        });
        tokio::pin!(stop);
        let mut stopping = false;
        loop {
            let cycle = self.run_once();
            tokio::pin!(cycle);
            let worked = loop {
                tokio::select! {
                    r = &mut cycle => break r,
                    _ = &mut stop, if !stopping => {
                        stopping = true;
                        tracing::info!("stopping once the job under way ends");
                    }
                }
            };
            if let Err(e) = &worked {
                tracing::warn!(error = format!("{e:#}"), "worker cycle failed");
            }
            if stopping {
                return Ok(());
            }
            if !matches!(worked, Ok(true)) {
                tokio::select! {
                    _ = &mut stop => return Ok(()),
                    _ = self.wake.notified() => tracing::debug!("told a job was queued"),
                    _ = tokio::time::sleep(self.settings.idle_poll) => {}
                }
            }
        }
    }

    /// Claims one job and runs it to the end; false when none was due.
    pub async fn run_once(&self) -> anyhow::Result<bool> {
        let claimed = self
            .call(
                &format!("mutation($k: [JobKind!]!) {{ claimJob(kinds: $k) {{ {JOB_FIELDS} }} }}"),
                json!({ "k": self.settings.kinds }),
            )
            .await?;
        let job = &claimed["claimJob"];
        if job.is_null() {
            return Ok(false);
        }
        let id = job["id"].as_str().context("claimed job without id")?.to_owned();
        tracing::info!(job_id = %id, kind = %job["kind"], "claimed a job");
        match self.handle(&id, job).await {
            Ok(Some(result)) => {
                self.call(
                    &format!("mutation($id: ID!, $r: JSON) {{ completeJob(id: $id, result: $r) {{ {JOB_FIELDS} }} }}"),
                    json!({ "id": id, "r": result }),
                )
                .await?;
            }
            Ok(None) => tracing::info!(job_id = %id, "the job was canceled; stopped"),
            Err(e) => {
                self.call(
                    "mutation($id: ID!, $e: String!) { failJob(id: $id, error: $e) { id } }",
                    json!({ "id": id, "e": format!("{e:#}") }),
                )
                .await?;
            }
        }
        Ok(true)
    }

    /// Runs a job's handler; None when the job was canceled midway.
    async fn handle(&self, id: &str, job: &Value) -> anyhow::Result<Option<Value>> {
        let input = &job["input"];
        let photos = input["photos"].as_array().cloned().unwrap_or_default();
        match job["kind"].as_str() {
            Some("SCAN") => {
                let mut measured = Vec::with_capacity(photos.len());
                for (i, p) in photos.iter().enumerate() {
                    let url = p["url"].as_str().context("photo without url")?;
                    let bytes = self.http.get(url).send().await?.error_for_status()?.bytes().await?;
                    let size = imagesize::blob_size(&bytes).context("reading the image's size")?;
                    measured.push(json!({
                        "id": p["id"], "width": size.width, "height": size.height,
                        "sha256": hex::encode(Sha256::digest(&bytes)),
                    }));
                    let progress = (i + 1) as f64 / photos.len() as f64;
                    if !self.progress(id, progress, &format!("scanned {} of {}", i + 1, photos.len())).await? {
                        return Ok(None);
                    }
                }
                Ok(Some(json!({ "photos": measured })))
            }
            Some("PREPARE") => {
                let largest = photos
                    .iter()
                    .filter_map(|p| Some((p["width"].as_i64()?, p["height"].as_i64()?)))
                    .max_by_key(|(w, h)| w * h);
                let description = match largest {
                    Some((w, h)) => format!("{} photo(s); the largest is {w}×{h} px.", photos.len()),
                    None => format!("{} photo(s).", photos.len()),
                };
                if !self.progress(id, 0.5, "writing the description").await? {
                    return Ok(None);
                }
                Ok(Some(json!({ "description": description })))
            }
            Some("PUBLISH") => {
                if !self.progress(id, 0.5, "publishing").await? {
                    return Ok(None);
                }
                Ok(Some(json!({ "publishedAt": chrono::Utc::now() })))
            }
            other => bail!("no handler for job kind {other:?}"),
        }
    }

    /// Reports progress; false when the job was canceled and the worker must stop.
    async fn progress(&self, id: &str, progress: f64, message: &str) -> anyhow::Result<bool> {
        let r = self
            .call(
                "mutation($id: ID!, $p: Float!, $m: String) { reportJobProgress(id: $id, progress: $p, message: $m) { status } }",
                json!({ "id": id, "p": progress, "m": message }),
            )
            .await?;
        Ok(r["reportJobProgress"]["status"] != "CANCELED")
    }

    async fn call(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        use secrecy::ExposeSecret;
        let resp: Value = self
            .http
            .post(&self.settings.api_url)
            .bearer_auth(self.settings.token.expose_secret())
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if let Some(errors) = resp.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            bail!("the API answered: {}", errors[0]["message"]);
        }
        Ok(resp["data"].clone())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
