//! The background worker: every opsdash process runs the same job loop; a lease per job (row in
//! `opsdash.worker_lease`, with an epoch for fencing) makes sure each job runs in one instance at
//! a time, so N dashboards on N boxes evaluate each rule and send each notification once.
//!
//! A job is a name, an interval and an async function of a `JobContext`. Jobs live in their own
//! modules (alerts, notify, rollup, retention, health checks) and are listed above the worker by
//! `crate::jobs::all`, so the worker knows them only as `Job`s.

pub mod health;
pub mod retention;
pub mod rollup;
pub mod seal;
pub mod statements;
pub mod wake;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::db::Db;

/// Lease SQL lives with the other queries; the worker API keeps its name.
pub use crate::query::lease;
pub mod scheduler;

pub use scheduler::{spawn_jobs, WorkerHandle};

/// What a job run gets: the pools, the config, who we are, and the lease epoch that fences our
/// writes (a write guarded by `epoch` is refused once another instance took the lease over).
#[derive(Clone, Debug)]
pub struct JobContext {
    pub db: Db,
    pub cfg: Arc<Config>,
    /// Unique per process: host:pid:random.
    pub instance: String,
    pub epoch: i64,
}

pub type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
pub type JobFn = Arc<dyn Fn(JobContext) -> JobFuture + Send + Sync>;

/// A periodic job.
#[derive(Clone)]
pub struct Job {
    pub name: &'static str,
    pub interval: Duration,
    pub run: JobFn,
}

impl Job {
    pub fn new<F, Fut>(name: &'static str, interval: Duration, f: F) -> Job
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Job {
            name,
            interval,
            run: Arc::new(move |ctx| Box::pin(f(ctx))),
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish()
    }
}

/// A process-unique instance id for leases and `worker_instance`.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
