//! The GDPR background loops: building queued exports (every instance: exports are
//! claimed with `FOR UPDATE SKIP LOCKED`), sweeping expired archives and erasing the
//! accounts whose grace period ended (one instance per interval).
use super::privacy::Privacy;
use crate::tasks::{Runs, Task};
use chrono::Utc;
use std::{sync::Arc, time::Duration};

/// Builds queued data exports every `every`.
pub fn build_exports(privacy: Arc<Privacy>, every: Duration) -> Task {
    Task::new("accounts.build_exports", every, Runs::EveryInstance, move || {
        let privacy = privacy.clone();
        async move { privacy.build_pending().await }
    })
}

/// Deletes expired export archives every `every`.
pub fn sweep_exports(privacy: Arc<Privacy>, every: Duration) -> Task {
    Task::new("accounts.sweep_exports", every, Runs::OneInstance, move || {
        let privacy = privacy.clone();
        async move { privacy.sweep_exports(Utc::now()).await }
    })
}

/// Erases the accounts whose deletion is due, every `every`.
pub fn erase_due_accounts(privacy: Arc<Privacy>, every: Duration) -> Task {
    Task::new("accounts.erase_due", every, Runs::OneInstance, move || {
        let privacy = privacy.clone();
        async move { privacy.erase_due(Utc::now()).await }
    })
}
