//! Backfill: the history the demo starts with. The window (by default the last 24 h) minus what
//! earlier runs already covered is cut into slices; two connections generate and COPY slices in
//! parallel, each slice in one transaction together with its coverage record, so an interrupted
//! or repeated run never writes a window twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

use super::rows::{self, CoverageWrite, RowCounts};
use super::traffic::{Generator, RateProfile};
use super::{Counters, DemoEvent, Events};
use crate::db::Db;
use crate::query::demo::{covered, ensure_partitions};

/// Length of one backfill transaction's window.
const SLICE: TimeDelta = TimeDelta::minutes(15);
/// Uncovered stretches shorter than this are not worth a transaction.
const MIN_GAP: TimeDelta = TimeDelta::seconds(1);
const WORKERS: usize = 2;
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackfillReport {
    /// Windows written (0 when everything was already covered).
    pub slices: usize,
    pub rows: RowCounts,
    pub elapsed: Duration,
}

impl BackfillReport {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The parts of `[from, to)` not in `covered`.
pub fn gaps(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    covered: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut sorted = covered.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    let mut cursor = from;
    for (a, b) in sorted {
        if a > cursor {
            out.push((cursor, a.min(to)));
        }
        cursor = cursor.max(b);
        if cursor >= to {
            break;
        }
    }
    if cursor < to {
        out.push((cursor, to));
    }
    out.retain(|(a, b)| *b - *a >= MIN_GAP);
    out
}

/// Cuts windows into slices of at most `SLICE`.
pub fn slices(windows: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    for &(a, b) in windows {
        let mut t = a;
        while t < b {
            let next = (t + SLICE).min(b);
            out.push((t, next));
            t = next;
        }
    }
    out
}

pub struct BackfillPlan {
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub slices: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub rate: RateProfile,
}

impl BackfillPlan {
    /// What is left to write so that `[now - window, now)` holds about `requests` requests.
    pub async fn make(
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        window: Duration,
        requests: u64,
    ) -> Result<BackfillPlan> {
        let from = now - TimeDelta::from_std(window).unwrap_or(TimeDelta::days(1));
        let done = covered(conn, from, now).await?;
        Ok(BackfillPlan::new(now, window, requests, &done))
    }

    /// The plan given what is already `covered`.
    pub fn new(
        now: DateTime<Utc>,
        window: Duration,
        requests: u64,
        covered: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> BackfillPlan {
        let from = now - TimeDelta::from_std(window).unwrap_or(TimeDelta::days(1));
        let unit = RateProfile {
            base: 1.0,
            diurnal: true,
        };
        let rate = RateProfile {
            base: requests as f64 / unit.expected(from, now).max(1.0),
            diurnal: true,
        };
        BackfillPlan {
            window: (from, now),
            slices: slices(&gaps(from, now, covered)),
            rate,
        }
    }

    pub fn expected_requests(&self) -> f64 {
        self.slices
            .iter()
            .map(|(a, b)| self.rate.expected(*a, *b))
            .sum()
    }
}

/// Writes the plan's slices with `WORKERS` connections; stops early (between slices) when
/// `stop` is raised. A slice that fails `ATTEMPTS` times ends the backfill with its error; the
/// slices already written stay (and are recorded as covered).
pub async fn run(
    db: &Db,
    generator: Arc<Generator>,
    plan: BackfillPlan,
    counters: Arc<Counters>,
    events: Events,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<BackfillReport> {
    let started = Instant::now();
    if plan.slices.is_empty() {
        return Ok(BackfillReport {
            slices: 0,
            rows: RowCounts::default(),
            elapsed: started.elapsed(),
        });
    }
    {
        let mut conn = db
            .write
            .acquire()
            .await
            .context("connecting for the backfill")?;
        let first = plan.slices.first().map(|s| s.0).unwrap_or(plan.window.0);
        let last = plan.slices.last().map(|s| s.1).unwrap_or(plan.window.1);
        ensure_partitions(&mut conn, first, last).await?;
    }
    counters.start_backfill(plan.slices.len());
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (db, generator, plan, next, counters, events, stop) = (
            db.clone(),
            generator.clone(),
            plan.clone(),
            next.clone(),
            counters.clone(),
            events.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut rows = RowCounts::default();
            let mut slices = 0;
            loop {
                if *stop.borrow() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                // Newest slices first: the dashboard opens on the last hour, which is then
                // filled within seconds instead of at the end of the backfill.
                let Some(&(from, to)) = plan
                    .slices
                    .len()
                    .checked_sub(i + 1)
                    .and_then(|j| plan.slices.get(j))
                else {
                    break;
                };
                let g = generator.clone();
                let rate = plan.rate;
                let seed = from.timestamp_millis() as u64;
                let batch = tokio::task::spawn_blocking(move || g.generate(from, to, rate, seed))
                    .await
                    .context("generating a backfill slice")?;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let res = async {
                        let mut conn = db.write.acquire().await?;
                        rows::write(
                            &mut conn,
                            &batch,
                            CoverageWrite::New { kind: "backfill" },
                            false,
                        )
                        .await
                    }
                    .await;
                    match res {
                        Ok(_) => break,
                        Err(e) if attempt < ATTEMPTS => {
                            events.send(DemoEvent::Error(format!(
                                "backfill slice {from}: {e:#} (retrying)"
                            )));
                            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt)))
                                .await;
                        }
                        Err(e) => return Err(e.context(format!("backfill slice starting {from}"))),
                    }
                }
                let c = batch.counts();
                counters.add(&c);
                counters.backfill_slice_done(c.total());
                rows.add(&c);
                slices += 1;
            }
            anyhow::Ok((rows, slices))
        }));
    }
    let mut report = BackfillReport {
        slices: 0,
        rows: RowCounts::default(),
        elapsed: Duration::ZERO,
    };
    let mut first_error = None;
    for w in workers {
        match w.await.context("backfill worker")? {
            Ok((rows, slices)) => {
                report.rows.add(&rows);
                report.slices += slices;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    report.elapsed = started.elapsed();
    counters.end_backfill();
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn gaps_skip_covered_windows() {
        assert_eq!(gaps(t(0), t(100), &[]), vec![(t(0), t(100))]);
        assert_eq!(gaps(t(0), t(100), &[(t(-50), t(200))]), vec![]);
        assert_eq!(
            gaps(
                t(0),
                t(100),
                &[(t(10), t(20)), (t(15), t(30)), (t(90), t(95))]
            ),
            vec![(t(0), t(10)), (t(30), t(90)), (t(95), t(100))]
        );
        assert_eq!(gaps(t(0), t(100), &[(t(0), t(99))]), vec![(t(99), t(100))]);
        // Slivers under a second are ignored.
        assert_eq!(
            gaps(
                t(0),
                t(100),
                &[(t(0), t(100) - TimeDelta::milliseconds(500))]
            ),
            vec![]
        );
    }

    #[test]
    fn slices_cover_the_windows_exactly() {
        let s = slices(&[(t(0), t(3600)), (t(4000), t(4010))]);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], (t(0), t(900)));
        assert_eq!(s[3], (t(2700), t(3600)));
        assert_eq!(s[4], (t(4000), t(4010)));
    }
}
