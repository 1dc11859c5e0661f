//! The job loop every opsdash process runs. Each job has its own task: it takes or renews the
//! job's lease, and only while it holds the lease does it run the job when due (`next_run_at`
//! in `worker_lease`, so the schedule survives a change of leader). While a run is in progress
//! the lease is renewed alongside it; the moment a renewal fails the run is dropped, because
//! another instance may already be doing the same work. A job that runs more often than the
//! lease is polled writes its start and outcome only every half poll (`Bookkeeping`), while the
//! lease is known locally to be fresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease;
use super::{Job, JobContext};
use crate::config::Config;
use crate::db::Db;

/// Timing of the scheduler, from `[worker]` in the config.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A lease not renewed for this long may be taken over.
    pub lease_ttl: Duration,
    /// A run longer than this is cut off.
    pub job_timeout: Duration,
}

impl Timing {
    pub fn from_config(cfg: &Config) -> Timing {
        Timing {
            lease_ttl: Duration::from_millis(cfg.worker.lease_ttl_ms.max(100)),
            job_timeout: Duration::from_millis(cfg.worker.job_timeout_ms.max(100)),
        }
    }

    /// How often leases are renewed and free leases looked for: three tries per TTL, so one slow
    /// round trip does not lose the lease.
    fn poll(&self) -> Duration {
        self.lease_ttl / 3
    }
}

/// A running worker. `shutdown` stops it and hands the leases over at once; dropping the handle
/// stops it too, without waiting.
pub struct WorkerHandle {
    pub instance: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Stops every job loop after its current run, and releases the leases.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Stops the tasks where they stand without releasing anything, as a crash would (tests).
    pub fn abort(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Whether any job loop is running.
    pub fn is_running(&self) -> bool {
        self.tasks.iter().any(|t| !t.is_finished())
    }
}

/// Starts the given jobs under `instance` (tests run several instances in one process).
pub fn spawn_jobs(db: Db, cfg: Arc<Config>, jobs: Vec<Job>, instance: String) -> WorkerHandle {
    let timing = Timing::from_config(&cfg);
    // Found by the crash fault test: an alert committed asynchronously and notified was
    // forgotten by a crash, then raised and notified again.
    let db = db.durable();
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(jobs.len() + 1);
    if !jobs.is_empty() {
        tasks.push(tokio::spawn(heartbeat_loop(
            db.write.clone(),
            instance.clone(),
            timing,
            stop_rx.clone(),
        )));
    }
    for job in jobs {
        let ctx = JobContext {
            db: db.clone(),
            cfg: cfg.clone(),
            instance: instance.clone(),
            epoch: 0,
        };
        tasks.push(tokio::spawn(job_loop(job, ctx, timing, stop_rx.clone())));
    }
    WorkerHandle {
        instance,
        stop,
        tasks,
    }
}

async fn heartbeat_loop(
    pool: PgPool,
    instance: String,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = bounded(timing.poll(), lease::heartbeat(&pool, &instance)).await {
            tracing::warn!("worker heartbeat failed: {e:#}");
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.poll()) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
        }
    }
    let _ = bounded(timing.poll(), lease::forget_instance(&pool, &instance)).await;
}

/// Runs a future under a time limit, turning the timeout into an error (a query on a half-open
/// connection must not hang the loop that decides whether we lead).
async fn bounded<T>(limit: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("timed out after {limit:?}")),
    }
}

/// How a turn at running a job ended.
#[derive(Debug, PartialEq)]
enum RunEnd {
    /// The job ran (well or not); with full bookkeeping the lease was extended when it
    /// started. `recorded_error`: whether the lease row may now show an error (None: the run
    /// succeeded and its outcome was left for a later full run to write).
    Ran { recorded_error: Option<bool> },
    /// Recording the start failed (database trouble): the job did not run.
    NotStarted,
    /// The lease was lost before or during the run: it was not started or was dropped.
    LeaseLost,
}

async fn job_loop(job: Job, mut ctx: JobContext, timing: Timing, mut stop: watch::Receiver<bool>) {
    let pool = ctx.db.write.clone();
    let name = job.name;
    let mut held: Option<i64> = None;
    // When the lease was last extended by us (taking it, or starting a run): within one poll of
    // that nobody else can hold it (the TTL is three polls), so the loop need not ask again.
    let mut renewed_at: Option<Instant> = None;
    // When the job is next due, known locally once we ran it ourselves under the lease we still
    // hold; unknown (read from the database) after a change of leader. This keeps a job that
    // runs every 250 ms at two bookkeeping statements per run, which is most of an idle
    // dashboard's CPU.
    let mut next_due: Option<Instant> = None;
    // Whether the last outcome written to the lease row was an error: a quick run that
    // succeeds after it must clear it, so such a run keeps full bookkeeping.
    let mut error_recorded = false;
    // Runs succeeded since the last outcome written (a fast job's successes are written by
    // its next full run's start).
    let mut ok_unwritten = false;
    // When a run last wrote its start (and so the schedule) under the lease we hold.
    let mut recorded_at: Option<Instant> = None;
    // A stop request, or the handle dropped, ends the loop; a run in progress finishes first.
    while !*stop.borrow() && stop.has_changed().is_ok() {
        let fresh = held.is_some() && renewed_at.is_some_and(|t| t.elapsed() < timing.poll());
        if !fresh {
            let asked_at = Instant::now();
            let got = bounded(
                timing.poll(),
                lease::acquire(&pool, name, &ctx.instance, timing.lease_ttl),
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(job = name, "lease check failed: {e:#}");
                None
            });
            if got != held {
                match got {
                    Some(epoch) => tracing::info!(job = name, epoch, "leading this job"),
                    None => tracing::info!(job = name, "no longer leading this job"),
                }
                next_due = None;
                recorded_at = None;
            }
            renewed_at = got.map(|_| asked_at);
            held = got;
        }
        let mut wait = timing.poll();
        if let Some(epoch) = held {
            let due = match next_due {
                Some(at) => Ok(at.saturating_duration_since(Instant::now())),
                None => bounded(timing.poll(), lease::due_in(&pool, name)).await,
            };
            match due {
                Ok(d) if d.is_zero() => {
                    ctx.epoch = epoch;
                    let started = Instant::now();
                    let bookkeeping =
                        Bookkeeping::choose(recorded_at, renewed_at, timing, error_recorded);
                    let books = Books {
                        bookkeeping,
                        error_recorded,
                        ok_unwritten,
                    };
                    match run_once(&job, &ctx, timing, books).await {
                        RunEnd::Ran { recorded_error } => {
                            if bookkeeping == Bookkeeping::Full {
                                renewed_at = Some(started);
                                recorded_at = Some(started);
                            }
                            match recorded_error {
                                Some(e) => {
                                    error_recorded = e;
                                    ok_unwritten = false;
                                }
                                None => ok_unwritten = true,
                            }
                            next_due = Some(started + job.interval);
                        }
                        RunEnd::NotStarted => {
                            next_due = None;
                            recorded_at = None;
                        }
                        RunEnd::LeaseLost => {
                            tracing::warn!(
                                job = name,
                                epoch,
                                "lease lost during the run: stopped it"
                            );
                            held = None;
                            renewed_at = None;
                            recorded_at = None;
                            next_due = None;
                        }
                    }
                    if let Some(at) = next_due {
                        wait = wait.min(at.saturating_duration_since(Instant::now()));
                    }
                }
                Ok(d) => {
                    wait = wait.min(d);
                    next_due = Some(Instant::now() + d);
                }
                Err(e) => tracing::warn!(job = name, "reading the schedule failed: {e:#}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = stop.changed() => if r.is_err() { break },
        }
    }
    if let Some(epoch) = held {
        let _ = bounded(
            timing.poll(),
            lease::release(&pool, name, &ctx.instance, epoch),
        )
        .await;
    }
}

/// What a run writes to its lease row besides the job's own work.
///
/// A job that runs more often than the lease is polled (alerts every 250 ms, the lease polled
/// every TTL/3) would otherwise spend two statements per run on bookkeeping: most of an idle
/// dashboard's CPU. While the lease is known locally to have most of its TTL left, a run starts
/// without asking the database; the schedule and outcome are written (and the lease extended)
/// by the first run after half a poll, and whenever an error is to be written or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bookkeeping {
    /// `record_start` before the run (refused unless the lease is ours and unexpired; extends
    /// it by a full TTL) and `record_outcome` after it.
    Full,
    /// No statement before the run: we extended the lease less than half a poll ago, so it has
    /// at least TTL - poll/2 (5/6 of the TTL) left when the run starts, and a run longer than a
    /// poll renews it like any run. The outcome is written only when it is an error.
    Quick,
}

impl Bookkeeping {
    /// Quick only right after a full run (so a job slower than half a poll always records its
    /// schedule) and while the lease was extended less than half a poll ago.
    fn choose(
        recorded_at: Option<Instant>,
        renewed_at: Option<Instant>,
        timing: Timing,
        error_recorded: bool,
    ) -> Bookkeeping {
        let within = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < timing.poll() / 2);
        if within(recorded_at) && within(renewed_at) && !error_recorded {
            Bookkeeping::Quick
        } else {
            Bookkeeping::Full
        }
    }
}

/// The bookkeeping of one run and what the lease row lacks.
#[derive(Debug, Clone, Copy)]
struct Books {
    bookkeeping: Bookkeeping,
    /// The lease row shows an error that a success must clear.
    error_recorded: bool,
    /// Successful runs not written yet.
    ok_unwritten: bool,
}

impl Books {
    /// Whether a successful run may leave its outcome unwritten: a quick run, or a full run of
    /// a job faster than half a poll (its next full run's start writes it, `previous_ok`), as
    /// long as no error on the row needs clearing.
    fn may_skip_ok(&self, job: &Job, timing: Timing) -> bool {
        !self.error_recorded
            && (self.bookkeeping == Bookkeeping::Quick || job.interval < timing.poll() / 2)
    }
}

/// Marks the start of a run (`lease::record_start`). None: the run may start.
async fn record_start(
    job: &Job,
    ctx: &JobContext,
    timing: Timing,
    previous_ok: bool,
) -> Option<RunEnd> {
    let recorded = bounded(
        timing.poll(),
        lease::record_start(
            &ctx.db.write,
            job.name,
            &ctx.instance,
            ctx.epoch,
            job.interval,
            timing.lease_ttl,
            previous_ok,
        ),
    )
    .await;
    match recorded {
        Ok(true) => None,
        Ok(false) => Some(RunEnd::LeaseLost),
        Err(e) => {
            tracing::warn!(job = job.name, "recording the run failed: {e:#}");
            Some(RunEnd::NotStarted)
        }
    }
}

/// One run of a job while we hold its lease.
async fn run_once(job: &Job, ctx: &JobContext, timing: Timing, books: Books) -> RunEnd {
    let pool = &ctx.db.write;
    let name = job.name;
    if books.bookkeeping == Bookkeeping::Full {
        if let Some(end) = record_start(job, ctx, timing, books.ok_unwritten).await {
            return end;
        }
    }
    let started = Instant::now();
    let run = tokio::time::timeout(timing.job_timeout, (job.run)(ctx.clone()));
    tokio::pin!(run);
    let mut renew_every = tokio::time::interval(timing.poll());
    renew_every.tick().await;
    let outcome = loop {
        tokio::select! {
            r = &mut run => break Some(r),
            _ = renew_every.tick() => {
                let renewed = bounded(
                    timing.poll(),
                    lease::renew(pool, name, &ctx.instance, ctx.epoch, timing.lease_ttl),
                )
                .await;
                match renewed {
                    Ok(true) => {}
                    Ok(false) => break None,
                    Err(e) => {
                        tracing::warn!(job = name, "lease renewal failed: {e:#}");
                        break None;
                    }
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let error = match outcome {
        None => return RunEnd::LeaseLost,
        Some(Ok(Ok(()))) => {
            tracing::debug!(job = name, ms = elapsed.as_millis() as u64, "run ok");
            None
        }
        Some(Ok(Err(e))) => {
            tracing::warn!(
                job = name,
                ms = elapsed.as_millis() as u64,
                "run failed: {e:#}"
            );
            Some(format!("{e:#}"))
        }
        Some(Err(_)) => {
            tracing::warn!(job = name, "run cut off after {:?}", timing.job_timeout);
            Some(format!("timed out after {:?}", timing.job_timeout))
        }
    };
    if error.is_none() && books.may_skip_ok(job, timing) {
        return RunEnd::Ran {
            recorded_error: None,
        };
    }
    let recorded = bounded(
        timing.poll(),
        lease::record_outcome(pool, name, ctx.epoch, error.as_deref()),
    )
    .await;
    if let Err(e) = &recorded {
        tracing::warn!(job = name, "recording the outcome failed: {e:#}");
    }
    // An outcome that could not be written counts as an error on the row, so the next run
    // writes its own outcome in full.
    RunEnd::Ran {
        recorded_error: Some(error.is_some() || recorded.is_err()),
    }
}
