//! The job queue's section.
use super::{ConfigError, Vars};
use std::time::Duration;

/// Leases and the sweeper.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// `PLINTH_JOB_LEASE_SECS`: how long a worker holds a job between reports (60).
    pub lease: Duration,
    /// `PLINTH_JOB_SWEEP_SECS`: how often expired leases are returned to the queue (5).
    pub sweep: Duration,
    /// `PLINTH_IN_PROCESS_WORKER`: whether `plinth serve` also runs the reference worker
    /// (SCAN, PREPARE, PUBLISH) in its own process, so a job started on a laptop
    /// finishes with nothing else to start. None (unset): on in development, off in
    /// production, where `true` is refused (workers are their own process group there).
    pub in_process_worker: Option<bool>,
    /// `PLINTH_WORKER_LISTEN`: whether the in-process worker listens for `jobQueued`
    /// (true) or only polls every second (false: how workers claimed before the event).
    pub worker_listen: bool,
}

impl JobsConfig {
    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        Ok(JobsConfig {
            lease: Duration::from_secs(v.parse("PLINTH_JOB_LEASE_SECS", 60)?),
            sweep: Duration::from_secs(v.parse("PLINTH_JOB_SWEEP_SECS", 5)?.max(1)),
            in_process_worker: v
                .get("PLINTH_IN_PROCESS_WORKER")
                .map(|_| v.parse("PLINTH_IN_PROCESS_WORKER", false))
                .transpose()?,
            worker_listen: v.parse("PLINTH_WORKER_LISTEN", true)?,
        })
    }
}
