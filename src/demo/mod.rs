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
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            rate: 50.0,
            backfill_window: Duration::from_secs(24 * 3600),
            backfill_requests: 1_100_000,
            incident_cycle: Duration::from_secs(30 * 60),
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
    pub fn send(&self, e: DemoEvent) {
        let _ = self.0.send(e);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Backfill,
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
    active: Mutex<Vec<Occurrence>>,
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
    let generator = Arc::new(traffic::Generator::new(Schedule::new(opts.incident_cycle)));
    let now = Utc::now();
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
    if *stop.borrow() {
        return Ok(());
    }
    counters.set_phase(Phase::Live);
    events.send(DemoEvent::LiveStarted { rate: opts.rate });
    live::run(db, generator, opts.rate, now, counters, events, stop).await
}
