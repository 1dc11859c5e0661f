//! The rollup job: keeps `rollup_1m` (and the 5-minute, hourly and daily tiers built from it)
//! equal to what a direct computation over the raw rows would give, and the KPI tab's
//! per-minute counters and hourly users (`rollup_kpi_1m`, `rollup_users_1h`) beside them.
//!
//! Which minutes to rebuild: the job records the snapshot each completed run started from in
//! `opsdash.rollup_state`; the next run rebuilds every minute holding a row that snapshot could
//! not see (written by a transaction at or after its xmax, or by one it listed as in progress).
//! Every row committed before a run started is therefore rolled by that run, even while a
//! long-open transaction elsewhere holds the cluster's xmin back (readers take the minutes before
//! the last run as finished, so a row held out of them would be missing, not late), and a row
//! that lands hours late (a replayed file, a backfill) re-rolls exactly the minutes it touches,
//! at the cost of index scans on `tx`. A timestamp watermark plus a trailing window would instead
//! miss any row later than the window. The live minute and the one before it are also rebuilt on
//! every run, so rows committed while a run works are on screen by the next one.
//!
//! Rebuilding deletes and re-inserts whole buckets, so reruns are idempotent and a crash between
//! steps is repaired by the next run (the watermark only moves after every step committed).

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::query::rollup::{self, Tier};
use crate::worker::Job;

pub use crate::query::rollup::JOB_NAME;
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Minutes rebuilt on every run whatever the watermark says: the live one and the one before.
const TRAILING_MINUTES: i64 = 2;
/// Longest span rebuilt in one transaction, so a backfill of days commits in pieces.
const MAX_SPAN_MINUTES: i64 = 60;

pub fn job() -> Job {
    Job::new(JOB_NAME, INTERVAL, |ctx| async move {
        run_once(&ctx.db, Utc::now()).await.map(|_| ())
    })
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Minutes rebuilt in `rollup_1m`.
    pub minutes: i64,
    /// Raw request rows read while rebuilding them.
    pub request_rows: i64,
    /// The snapshot recorded for the next run (`xmin:xmax:xip,...`).
    pub snapshot: String,
}

/// One pass of the job. `now` decides the trailing minutes (the caller's clock; the watermark
/// does not depend on it).
pub async fn run_once(db: &Db, now: DateTime<Utc>) -> Result<RollupReport> {
    let mut conn = db.write.acquire().await.context("rollup: connecting")?;
    // Take the snapshot before looking for rows, so that a row it cannot see is looked for again
    // by the next run even if this run happens to roll it.
    let (snapshot, started) = rollup::current_snapshot(&mut conn).await?;
    let since = rollup::last_snapshot(&mut conn, JOB_NAME).await?;
    let mut minutes: Vec<i64> = rollup::touched_minutes(&mut conn, &since)
        .await
        .context("rollup: finding touched minutes")?
        .into_iter()
        .map(|(m, _)| m.timestamp())
        .collect();
    let current = floor(now.timestamp(), 60);
    minutes.extend((0..TRAILING_MINUTES).map(|k| current - k * 60));

    let spans = minute_spans(minutes, MAX_SPAN_MINUTES);
    let mut report = RollupReport {
        snapshot: snapshot.clone(),
        ..RollupReport::default()
    };
    for &(lo, hi) in &spans {
        let mut tx = db.write.begin().await?;
        rollup::lock(&mut tx).await?;
        report.request_rows += rollup::roll_minutes(&mut tx, ts(lo)?, ts(hi)?)
            .await
            .context("rollup: rebuilding minutes")?;
        rollup::roll_kpi_minutes(&mut tx, ts(lo)?, ts(hi)?)
            .await
            .context("rollup: rebuilding KPI minutes")?;
        tx.commit().await?;
        report.minutes += (hi - lo) / 60;
    }
    for tier in Tier::ALL {
        for (lo, hi) in align_spans(&spans, tier.seconds()) {
            let mut tx = db.write.begin().await?;
            rollup::lock(&mut tx).await?;
            rollup::roll_tier(&mut tx, tier, ts(lo)?, ts(hi)?)
                .await
                .with_context(|| format!("rollup: rebuilding {tier:?} tier"))?;
            tx.commit().await?;
        }
    }
    rollup::prune_kpi(&mut conn)
        .await
        .context("rollup: pruning KPI rollups")?;
    rollup::save_snapshot(&mut conn, JOB_NAME, &snapshot, started, report.request_rows).await?;
    Ok(report)
}

fn ts(secs: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0).with_context(|| format!("timestamp {secs} out of range"))
}

fn floor(secs: i64, step: i64) -> i64 {
    secs.div_euclid(step) * step
}

/// Minute starts (epoch seconds, any order, duplicates allowed) as sorted `[lo, hi)` spans of
/// consecutive minutes, none longer than `max_minutes`.
pub fn minute_spans(mut minutes: Vec<i64>, max_minutes: i64) -> Vec<(i64, i64)> {
    minutes.sort_unstable();
    minutes.dedup();
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for m in minutes {
        match spans.last_mut() {
            Some((lo, hi)) if *hi == m && (m - *lo) < max_minutes * 60 => *hi = m + 60,
            _ => spans.push((m, m + 60)),
        }
    }
    spans
}

/// Spans widened to whole `step`-second buckets, overlapping ones merged.
pub fn align_spans(spans: &[(i64, i64)], step: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(lo, hi) in spans {
        let (lo, hi) = (floor(lo, step), floor(hi + step - 1, step));
        match out.last_mut() {
            Some((_, h)) if *h >= lo => *h = (*h).max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_minutes_form_one_span() {
        assert_eq!(
            minute_spans(vec![180, 60, 120, 120, 600], 60),
            vec![(60, 240), (600, 660)]
        );
        assert_eq!(minute_spans(vec![], 60), vec![]);
    }

    #[test]
    fn spans_are_capped() {
        let minutes: Vec<i64> = (0..5).map(|m| m * 60).collect();
        assert_eq!(
            minute_spans(minutes, 2),
            vec![(0, 120), (120, 240), (240, 300)]
        );
    }

    #[test]
    fn aligning_widens_and_merges() {
        assert_eq!(
            align_spans(&[(60, 120), (240, 360), (3600, 3660)], 300),
            vec![(0, 600), (3600, 3900)]
        );
        assert_eq!(align_spans(&[(-60, 0)], 300), vec![(-300, 0)]);
    }
}
