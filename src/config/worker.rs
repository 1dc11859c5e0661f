//! `[worker]`: the background worker's schedule.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Run the background jobs inside this process (alerts, notifications, rollups, retention).
    pub enabled: bool,
    /// How long a job lease lasts without renewal before another instance may take it over.
    pub lease_ttl_ms: u64,
    /// A job run longer than this is cut off (and recorded as failed).
    pub job_timeout_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            lease_ttl_ms: 5000,
            job_timeout_ms: 60000,
        }
    }
}
