//! Live traffic: every `TICK` the rows of the time elapsed since the last batch are generated
//! at the requested rate and written in one transaction with one NOTIFY, so the live tail wakes
//! once per batch. A failed batch (database gone) is reported and its window retried with the
//! next one; after `MAX_CATCH_UP` of failures the oldest part is given up, leaving a gap that
//! the next run's backfill fills.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};

use super::incidents::Occurrence;
use super::rows::{self, CoverageWrite};
use super::traffic::{Generator, RateProfile};
use super::{Counters, DemoEvent, Events};
use crate::db::Db;
use crate::query::demo::ensure_partitions;

pub const TICK: Duration = Duration::from_millis(200);
const MAX_CATCH_UP: TimeDelta = TimeDelta::minutes(5);
const ERROR_REPORT_EVERY: Duration = Duration::from_secs(5);

pub async fn run(
    db: Db,
    generator: Arc<Generator>,
    rate: f64,
    start_at: DateTime<Utc>,
    counters: Arc<Counters>,
    events: Events,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let rate = RateProfile {
        base: rate,
        diurnal: false,
    };
    let mut last = start_at;
    let mut coverage_id: Option<i64> = None;
    let mut partitions_for = None;
    let mut active: Vec<Occurrence> = Vec::new();
    let mut last_error_report: Option<Instant> = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batches: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => {}
        }
        let stopping = *stop.borrow();
        let now = Utc::now();

        let now_active = generator.schedule().active_at(now);
        for o in &now_active {
            if !active
                .iter()
                .any(|a| a.kind == o.kind && a.start == o.start)
            {
                events.send(DemoEvent::IncidentStarted(*o));
            }
        }
        for a in &active {
            if !now_active
                .iter()
                .any(|o| o.kind == a.kind && o.start == a.start)
            {
                events.send(DemoEvent::IncidentEnded(*a));
            }
        }
        active = now_active;
        counters.set_active(&active);

        if now - last > MAX_CATCH_UP {
            last = now - MAX_CATCH_UP;
            coverage_id = None;
        }
        if now > last {
            batches += 1;
            let seed = (now.timestamp_micros() as u64) ^ batches.rotate_left(32);
            let batch = generator.generate(last, now, rate, seed);
            let res = async {
                let mut conn = db.write.acquire().await?;
                if partitions_for != Some(now.date_naive()) {
                    ensure_partitions(&mut conn, now, now).await?;
                    partitions_for = Some(now.date_naive());
                }
                let coverage = match coverage_id {
                    Some(id) => CoverageWrite::Extend { id },
                    None => CoverageWrite::New { kind: "live" },
                };
                rows::write(&mut conn, &batch, coverage, true).await
            }
            .await;
            match res {
                Ok(id) => {
                    coverage_id = Some(id);
                    last = now;
                    counters.add(&batch.counts());
                    counters.add_live_batch(!batch.logs.is_empty());
                }
                Err(e) => {
                    counters.add_error();
                    if last_error_report.is_none_or(|t| t.elapsed() >= ERROR_REPORT_EVERY) {
                        last_error_report = Some(Instant::now());
                        events.send(DemoEvent::Error(format!("live batch: {e:#} (retrying)")));
                    }
                }
            }
        }
        if stopping {
            return Ok(());
        }
    }
}
