//! The job list this build runs, assembled above the worker: the worker schedules jobs it knows
//! only as `worker::Job` (a name, an interval, a function), so it never imports the alert engine,
//! notifications or anything else that runs as a job. The CLI starts the worker through here.

use std::sync::Arc;

use crate::config::Config;
use crate::db::Db;
use crate::worker::wake::Wake;
use crate::worker::{Job, WorkerHandle};

/// Every background job, in the order their loops start.
pub fn all(cfg: &Config) -> Vec<Job> {
    // One wake-up listener for the jobs that would otherwise poll every tick.
    let wake = Wake::default();
    vec![
        crate::alerts::engine::job(cfg, &wake),
        crate::notify::job(cfg, &wake),
        crate::alerts::external::job(),
        crate::worker::health::job(),
        crate::worker::rollup::job(),
        crate::worker::seal::job(),
        crate::worker::retention::job(),
        crate::worker::statements::job(),
    ]
}

/// Starts the worker with every job. With `worker.enabled = false` no job runs in this process.
pub async fn spawn(db: Db, cfg: impl Into<Arc<Config>>) -> WorkerHandle {
    spawn_as(db, cfg, crate::worker::instance_id()).await
}

/// Like `spawn`, under a given instance id (the TUI shows the same id in its header).
pub async fn spawn_as(db: Db, cfg: impl Into<Arc<Config>>, instance: String) -> WorkerHandle {
    let cfg: Arc<Config> = cfg.into();
    let jobs = if cfg.worker.enabled {
        all(&cfg)
    } else {
        Vec::new()
    };
    crate::worker::spawn_jobs(db, cfg, jobs, instance)
}
