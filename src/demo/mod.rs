//! Demo traffic: a fictional shop's requests, logs, queries, audit trail and health checks,
//! with scripted incidents on a loop. `start` backfills the recent history (skipping what an
//! earlier run already wrote), then writes live traffic until stopped.
//!
//! ```ignore
//! let handle = demo::start(db, DemoOptions::default());
//! // ... show handle.stats(), read handle.events ...
//! let stats = handle.stop().await?;
//! ```

pub mod backfill;
pub mod catalog;
pub mod fingerprint;
pub mod incidents;
pub mod live;
pub mod rows;
pub mod traffic;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::db::Db;
pub use backfill::BackfillReport;
pub use incidents::{IncidentKind, Occurrence, Schedule};
pub use rows::RowCounts;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Live requests per second.
    pub rate: f64,
    /// History to backfill before live traffic starts (zero: none).
    pub backfill_window: Duration,
    /// Inbound requests the backfill window should hold in total.
    pub backfill_requests: u64,
    /// Length of the incident loop (see `incidents`).
    pub incident_cycle: Duration,
    /// Start the loop so that its first incident begins this long after live traffic starts
    /// (None: the loop stays aligned on wall-clock time).
    pub first_incident: Option<Duration>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rate: 50.0,
            backfill_window: Duration::from_secs(24 * 3600),
            backfill_requests: 1_100_000,
            incident_cycle: Duration::from_secs(30 * 60),
            first_incident: None,
        }
    }
}

/// What the demo reports as it runs (progress lines, the TUI's status bar).
#[derive(Debug, Clone)]
pub enum DemoEvent {
    BackfillPlanned {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        slices: usize,
        expected_requests: u64,
    },
    BackfillDone(BackfillReport),
    BackfillFailed(String),
    LiveStarted {
        rate: f64,
    },
    IncidentStarted(Occurrence),
    IncidentEnded(Occurrence),
    Error(String),
}

/// Sender side of the event stream; sending never blocks and never fails the demo (a receiver
/// that lags loses old events).
#[derive(Clone)]
pub struct Events(broadcast::Sender<DemoEvent>);

impl Events {
    pub fn channel(capacity: usize) -> (Events, broadcast::Receiver<DemoEvent>) {
        let (tx, rx) = broadcast::channel(capacity);
        (Events(tx), rx)
    }

    pub fn send(&self, e: DemoEvent) {
        let _ = self.0.send(e);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    /// History is being written (live traffic already runs beside it).
    Backfill,
    /// The history is written; only live traffic now.
    Live,
    Stopped,
}

/// Live counters shared by the demo's tasks.
#[derive(Default)]
pub struct Counters {
    requests: AtomicU64,
    logs: AtomicU64,
    queries: AtomicU64,
    audits: AtomicU64,
    health: AtomicU64,
    live_batches: AtomicU64,
    notifies: AtomicU64,
    errors: AtomicU64,
    phase: AtomicU8,
    backfill: Mutex<Option<BackfillReport>>,
    backfilling: Mutex<Option<BackfillProgress>>,
    active: Mutex<Vec<Occurrence>>,
}

/// How far the running backfill is (live traffic writes beside it, so the row counters alone
/// cannot tell).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackfillProgress {
    pub slices: usize,
    pub slices_done: usize,
    pub rows: u64,
    pub started: std::time::Instant,
}

impl BackfillProgress {
    pub fn percent(&self) -> f64 {
        100.0 * self.slices_done as f64 / self.slices.max(1) as f64
    }

    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }
}

impl Counters {
    pub fn add(&self, c: &RowCounts) {
        self.requests.fetch_add(c.requests, Ordering::Relaxed);
        self.logs.fetch_add(c.logs, Ordering::Relaxed);
        self.queries.fetch_add(c.queries, Ordering::Relaxed);
        self.audits.fetch_add(c.audits, Ordering::Relaxed);
        self.health.fetch_add(c.health, Ordering::Relaxed);
    }

    fn add_live_batch(&self, notified: bool) {
        self.live_batches.fetch_add(1, Ordering::Relaxed);
        if notified {
            self.notifies.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn start_backfill(&self, slices: usize) {
        if let Ok(mut b) = self.backfilling.lock() {
            *b = Some(BackfillProgress {
                slices,
                slices_done: 0,
                rows: 0,
                started: std::time::Instant::now(),
            });
        }
    }

    fn backfill_slice_done(&self, rows: u64) {
        if let Ok(mut b) = self.backfilling.lock() {
            if let Some(p) = b.as_mut() {
                p.slices_done += 1;
                p.rows += rows;
            }
        }
    }

    fn end_backfill(&self) {
        if let Ok(mut b) = self.backfilling.lock() {
            *b = None;
        }
    }

    fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    fn set_active(&self, active: &[Occurrence]) {
        if let Ok(mut a) = self.active.lock() {
            a.clear();
            a.extend_from_slice(active);
        }
    }

    pub fn snapshot(&self) -> DemoStats {
        let phase = match self.phase.load(Ordering::Relaxed) {
            x if x == Phase::Backfill as u8 => Phase::Backfill,
            x if x == Phase::Live as u8 => Phase::Live,
            x if x == Phase::Stopped as u8 => Phase::Stopped,
            _ => Phase::Starting,
        };
        DemoStats {
            phase,
            rows: RowCounts {
                requests: self.requests.load(Ordering::Relaxed),
                logs: self.logs.load(Ordering::Relaxed),
                queries: self.queries.load(Ordering::Relaxed),
                audits: self.audits.load(Ordering::Relaxed),
                health: self.health.load(Ordering::Relaxed),
            },
            live_batches: self.live_batches.load(Ordering::Relaxed),
            notifies: self.notifies.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            backfill: self.backfill.lock().ok().and_then(|b| *b),
            backfilling: self.backfilling.lock().ok().and_then(|b| *b),
            active: self.active.lock().map(|a| a.clone()).unwrap_or_default(),
        }
    }
}

/// A snapshot of the demo's progress: rows written by this run, per table.
#[derive(Debug, Clone)]
pub struct DemoStats {
    pub phase: Phase,
    pub rows: RowCounts,
    pub live_batches: u64,
    /// NOTIFYs sent on `db::LOGS_CHANNEL` (one per live batch holding log rows).
    pub notifies: u64,
    /// Batches that failed (and were retried).
    pub errors: u64,
    pub backfill: Option<BackfillReport>,
    /// The backfill's progress while it runs.
    pub backfilling: Option<BackfillProgress>,
    pub active: Vec<Occurrence>,
}

/// A running demo. Dropping it without `stop` aborts the tasks at their next await.
pub struct DemoHandle {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<()>>>,
    sender: broadcast::Sender<DemoEvent>,
    /// Events since the start (subscribe() gives more receivers).
    pub events: broadcast::Receiver<DemoEvent>,
}

impl DemoHandle {
    pub fn stats(&self) -> DemoStats {
        self.counters.snapshot()
    }

    /// The counters behind `stats`, for a reader that outlives a borrow of the handle (the
    /// dashboard's progress banner).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DemoEvent> {
        self.sender.subscribe()
    }

    /// True once the demo ended by itself (it only does so on a fatal error; `stop` reports it).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the demo after its current batch (a backfill stops between slices) and returns
    /// what it wrote.
    pub async fn stop(mut self) -> Result<DemoStats> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.await.context("demo task")??;
        }
        self.counters.set_phase(Phase::Stopped);
        Ok(self.counters.snapshot())
    }
}

impl Drop for DemoHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Starts the demo on `db`: backfill, then live traffic, in background tasks (call from a tokio
/// runtime).
pub fn start(db: Db, opts: DemoOptions) -> DemoHandle {
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sender, events) = broadcast::channel(1024);
    let task = tokio::spawn(run(
        db,
        opts,
        counters.clone(),
        Events(sender.clone()),
        stop_rx,
    ));
    DemoHandle {
        counters,
        stop: stop_tx,
        task: Some(task),
        sender,
        events,
    }
}

async fn run(
    db: Db,
    opts: DemoOptions,
    counters: Arc<Counters>,
    events: Events,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let now = Utc::now();
    let mut schedule = Schedule::new(opts.incident_cycle);
    if let Some(after) = opts.first_incident {
        // The backfill may take a minute: count from when live traffic will begin, roughly.
        // The failed-login burst first: its rule (brute-force-ip) has no `for` and counts
        // events, and the burst passes the rule's threshold within seconds of its start
        // whatever the traffic rate.
        let at = now + chrono::TimeDelta::from_std(after).unwrap_or_default();
        schedule = schedule.first_at(IncidentKind::FailedLoginBurst, at);
    }
    let generator = Arc::new(traffic::Generator::new(schedule));
    // Live traffic starts at once, beside the backfill (which writes only before `now`): the
    // dashboard shows current traffic and the first incident within seconds, instead of after
    // the minute a full backfill takes.
    let live = tokio::spawn(live::run(
        db.clone(),
        generator.clone(),
        opts.rate,
        now,
        counters.clone(),
        events.clone(),
        stop.clone(),
    ));
    if !opts.backfill_window.is_zero() && opts.backfill_requests > 0 {
        counters.set_phase(Phase::Backfill);
        let plan = async {
            let mut conn = db.write.acquire().await?;
            backfill::BackfillPlan::make(
                &mut conn,
                now,
                opts.backfill_window,
                opts.backfill_requests,
            )
            .await
        }
        .await;
        match plan {
            Ok(plan) => {
                events.send(DemoEvent::BackfillPlanned {
                    from: plan.window.0,
                    to: plan.window.1,
                    slices: plan.slices.len(),
                    expected_requests: plan.expected_requests().round() as u64,
                });
                match backfill::run(
                    &db,
                    generator.clone(),
                    plan,
                    counters.clone(),
                    events.clone(),
                    stop.clone(),
                )
                .await
                {
                    Ok(report) => {
                        if let Ok(mut b) = counters.backfill.lock() {
                            *b = Some(report);
                        }
                        events.send(DemoEvent::BackfillDone(report));
                    }
                    Err(e) => events.send(DemoEvent::BackfillFailed(format!("{e:#}"))),
                }
            }
            Err(e) => events.send(DemoEvent::BackfillFailed(format!("{e:#}"))),
        }
    }
    if !*stop.borrow() {
        counters.set_phase(Phase::Live);
        events.send(DemoEvent::LiveStarted { rate: opts.rate });
    }
    live.await?
}
