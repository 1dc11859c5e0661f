//! The Logs tab's volume histogram: lines per time bucket per level over a range and a filter,
//! the bucket size following the range as lnav's histogram view does (seconds for a minute,
//! days for a month), so the bars keep about the same count whatever the zoom.
//!
//! Buckets are `date_bin` bins aligned to a fixed origin (Monday 2000-01-03 00:00 UTC), not to
//! the range's start: the same instant falls in the same bucket as the range slides with
//! `now`, so the bars do not jitter between refreshes. Empty buckets are filled with zeros
//! here, not in SQL. The count is one row per bucket with a `count(*)` per level; with no
//! filter it is an index-only read of the ts index, which carries the level (migration 0060),
//! over the range's partitions. The rows come back unordered (each lands in its bucket by its
//! start): with an ORDER BY the planner, which cannot tell how few buckets there are (it takes
//! `date_bin(ts)` for as many values as ts), sorted every line of the range on disk instead of
//! hashing the ~50 groups (453 ms against ~110 ms for a day of 330k lines on 10M rows).
//!
//! With no filter and buckets of whole minutes, the minutes the rollup job has finished are
//! summed from its per-minute counts per level (`rollup_kpi_1m`, migration 0062) instead:
//! 1,440 rows for a day whatever its volume. `sources` says which minutes those are; the rest
//! of the range (its edges, the newest minutes, days whose rows the rollup no longer matches)
//! is counted from the rows as above, and both are summed per bucket.

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::filter::Filter;
use crate::query::history::{apply_budget, HistoryRange};
use crate::query::logs::no_jit;
use crate::query::retention::{day_range, parse_partition_name};
use crate::query::rollup::{JOB_NAME as ROLLUP_JOB, KPI_KEPT_DAYS};

/// Bucket sizes the histogram picks from, in seconds (lnav's steps and the clock's).
const STEPS: [i64; 19] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    604800,
];

/// The smallest step that cuts `span` into at most `max_buckets` buckets (the largest step
/// when even that gives more).
pub fn bucket_for(span: Duration, max_buckets: usize) -> Duration {
    let secs = span.num_seconds().max(1);
    let max = max_buckets.max(1) as i64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| (secs + s - 1) / s <= max)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    Duration::seconds(step)
}

/// Where buckets are aligned: a Monday at midnight UTC, so day and week buckets start there.
pub fn origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 3, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The start of the bucket holding `t` (what `date_bin` computes in SQL).
pub fn bucket_start(t: DateTime<Utc>, bucket: Duration) -> DateTime<Utc> {
    let o = origin();
    let step = bucket.num_microseconds().unwrap_or(i64::MAX).max(1);
    let off = (t - o).num_microseconds().unwrap_or(0);
    o + Duration::microseconds(off.div_euclid(step) * step)
}

/// Lines of one bucket, per level (index: `Level as usize`, trace .. fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeBucket {
    pub start: DateTime<Utc>,
    pub by_level: [i64; 6],
}

impl VolumeBucket {
    pub fn total(&self) -> i64 {
        self.by_level.iter().sum()
    }
}

/// A bucket's start and its lines per level, trace .. fatal (a row of `volume_query`).
pub type BucketRow = (DateTime<Utc>, i64, i64, i64, i64, i64, i64);

/// The histogram of the range: one bucket per step from the bucket holding `range.from` to the
/// one holding the last instant before `range.until`, zeros included, oldest first. Lines
/// outside the range are not counted even when they share an edge bucket.
pub async fn volume(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    bucket: Duration,
) -> sqlx::Result<Vec<VolumeBucket>> {
    let mut tx = pool.begin().await?;
    no_jit(&mut tx).await?;
    apply_budget(&mut tx, filter).await?;
    let src = if rollup_can_count(filter, bucket) {
        sources(range, &coverage(&mut tx).await?)
    } else {
        Sources::raw(range)
    };
    let rows: Vec<BucketRow> = if src.rolled.is_empty() {
        volume_query("", range, filter, bucket)
            .build_query_as()
            .fetch_all(&mut *tx)
            .await?
    } else {
        sourced_query("", &src, bucket)
            .build_query_as()
            .fetch_all(&mut *tx)
            .await?
    };
    tx.commit().await?;
    let mut out = Vec::new();
    if range.until <= range.from {
        return Ok(out);
    }
    let first = bucket_start(range.from, bucket);
    let last = bucket_start(range.until - Duration::microseconds(1), bucket);
    let mut t = first;
    while t <= last {
        out.push(VolumeBucket {
            start: t,
            by_level: [0; 6],
        });
        t += bucket;
    }
    let step = bucket.num_microseconds().unwrap_or(i64::MAX).max(1);
    for (start, trace, debug, info, warn, error, fatal) in rows {
        let i = (start - first).num_microseconds().unwrap_or(-1) / step;
        if let Some(b) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            let counts = [trace, debug, info, warn, error, fatal];
            for (slot, n) in b.by_level.iter_mut().zip(counts) {
                *slot += n;
            }
        }
    }
    Ok(out)
}

/// The statement of `volume` after `prefix` when every line is counted from the rows (`EXPLAIN
/// ...` in tests and the bench).
pub fn volume_query<'a>(
    prefix: &str,
    range: HistoryRange,
    filter: &'a Filter,
    bucket: Duration,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(prefix);
    push_row_counts(&mut qb, bucket, (range.from, range.until), Some(filter));
    qb
}

/// Rows per bucket with a count per level (`Level::from_i16`'s mapping) over `[lo, hi)`: one
/// group per bucket, since hashing the bucket alone is cheaper than (bucket, level) per line.
fn push_row_counts<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    bucket: Duration,
    (lo, hi): (DateTime<Utc>, DateTime<Utc>),
    filter: Option<&'a Filter>,
) {
    qb.push("SELECT date_bin(make_interval(secs => ")
        .push_bind(bucket_secs(bucket))
        .push("), ts, ")
        .push_bind(origin())
        .push(
            ") AS bucket, count(*) FILTER (WHERE level <= 0), count(*) FILTER (WHERE level = 1),
             count(*) FILTER (WHERE level = 2), count(*) FILTER (WHERE level = 3),
             count(*) FILTER (WHERE level = 4), count(*) FILTER (WHERE level >= 5)
             FROM opsdash.log_event WHERE ts >= ",
        )
        .push_bind(lo)
        .push(" AND ts < ")
        .push_bind(hi);
    if let Some(f) = filter.filter(|f| !f.is_empty()) {
        qb.push(" AND ");
        f.push_conditions(qb);
    }
    qb.push(" GROUP BY 1");
}

fn bucket_secs(bucket: Duration) -> f64 {
    bucket.num_milliseconds() as f64 / 1000.0
}

/// Minutes the rollup has finished are read raw for this long after them, so a row committed a
/// little after its event time (a shipper's batching, a slow writer) is not left out of a minute
/// the job had already rolled when it arrived. Rows later than that are counted once the job
/// rebuilds their minute (its next run, every 10 s).
const SETTLING: Duration = Duration::minutes(2);

/// The rollup counts every row per minute and level: it can stand for an unfiltered count in
/// buckets of whole minutes (every step from a minute up is one, and the origin is on a minute).
pub fn rollup_can_count(filter: &Filter, bucket: Duration) -> bool {
    filter.is_empty() && bucket.num_seconds() % 60 == 0 && bucket.num_seconds() > 0
}

/// Which half-open spans of a range are summed from the rollup and which are counted from
/// the rows. Together they are the range, without overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub rolled: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Sources {
    fn raw(range: HistoryRange) -> Sources {
        Sources {
            rolled: Vec::new(),
            raw: vec![(range.from, range.until.max(range.from))],
        }
    }
}

/// What the rollup's minutes can be trusted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// When the rollup job's last completed run started: every row committed before it is
    /// rolled (query/rollup.rs `save_snapshot`). None: it never ran.
    pub rolled_at: Option<DateTime<Utc>>,
    /// The oldest minute the job still keeps (it prunes after `KPI_KEPT_DAYS`).
    pub kept_from: DateTime<Utc>,
    /// UTC days whose log rows are all in an attached partition that was never compacted. The
    /// rollup outlives the rows: a dropped day still has its counts there, and a compacted day
    /// has the counts of the rows compaction removed, so other days are read raw.
    pub days: Vec<NaiveDate>,
}

/// The rollup job's last start, the oldest minute it keeps and the log days it can stand for.
pub async fn coverage(conn: &mut PgConnection) -> sqlx::Result<Coverage> {
    let (rolled_at, kept_from, parts): (Option<DateTime<Utc>>, DateTime<Utc>, Vec<String>) =
        sqlx::query_as(
            "SELECT (SELECT updated_at FROM opsdash.rollup_state WHERE job = $1),
                    now() - make_interval(days => $2),
                    ARRAY(SELECT c.relname::text
                            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                           WHERE i.inhparent = 'opsdash.log_event'::regclass
                             AND NOT i.inhdetachpending
                             AND NOT EXISTS (SELECT 1 FROM opsdash.partition_mark m
                                              WHERE m.partition = c.relname
                                                AND m.mark = 'compacted'))",
        )
        .bind(ROLLUP_JOB)
        // A day short of what the job keeps, so its pruning is never racing this read.
        .bind(KPI_KEPT_DAYS - 1)
        .fetch_one(conn)
        .await?;
    let mut days: Vec<NaiveDate> = parts
        .iter()
        .filter_map(|p| parse_partition_name(p))
        .filter(|(table, _)| *table == "log_event")
        .map(|(_, day)| day)
        .collect();
    days.sort_unstable();
    days.dedup();
    Ok(Coverage {
        rolled_at,
        kept_from,
        days,
    })
}

/// Splits `range` into the whole minutes the rollup can answer for and the rest.
pub fn sources(range: HistoryRange, cov: &Coverage) -> Sources {
    let minute = Duration::minutes(1);
    let ceil = |t: DateTime<Utc>| {
        let f = t.duration_trunc(minute).unwrap_or(t);
        if f < t {
            f + minute
        } else {
            f
        }
    };
    let floor = |t: DateTime<Utc>| t.duration_trunc(minute).unwrap_or(t);
    let Some(rolled_at) = cov.rolled_at else {
        return Sources::raw(range);
    };
    let lo = ceil(range.from.max(cov.kept_from));
    let hi = floor(range.until).min(floor(rolled_at) - SETTLING);
    let mut rolled: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for &day in &cov.days {
        let (a, b) = day_range(day);
        let (a, b) = (a.max(lo), b.min(hi));
        if a >= b {
            continue;
        }
        match rolled.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => rolled.push((a, b)),
        }
    }
    let mut raw = Vec::new();
    let mut at = range.from;
    for &(a, b) in &rolled {
        if at < a {
            raw.push((at, a));
        }
        at = b;
    }
    if at < range.until {
        raw.push((at, range.until));
    }
    Sources { rolled, raw }
}

/// The unfiltered count of `src` (after `prefix`): the rollup's minutes and the raw spans in
/// one statement, rows per bucket from each part (`volume` adds up a bucket's rows).
pub fn sourced_query<'a>(
    prefix: &str,
    src: &Sources,
    bucket: Duration,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(prefix);
    let mut parts = 0;
    for &(lo, hi) in &src.rolled {
        if parts > 0 {
            qb.push(" UNION ALL ");
        }
        parts += 1;
        qb.push("SELECT date_bin(make_interval(secs => ")
            .push_bind(bucket_secs(bucket))
            .push("), bucket, ")
            .push_bind(origin())
            .push(
                "), sum(trace_rows)::int8, sum(debug_rows)::int8, sum(info_rows)::int8,
                 sum(warn_rows)::int8, sum(error_rows)::int8, sum(fatal_rows)::int8
                 FROM opsdash.rollup_kpi_1m WHERE bucket >= ",
            )
            .push_bind(lo)
            .push(" AND bucket < ")
            .push_bind(hi)
            .push(" GROUP BY 1");
    }
    for &span in &src.raw {
        if parts > 0 {
            qb.push(" UNION ALL ");
        }
        parts += 1;
        push_row_counts(&mut qb, bucket, span, None);
    }
    qb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_follows_the_range() {
        let b = |span: Duration| bucket_for(span, 60).num_seconds();
        assert_eq!(b(Duration::minutes(1)), 1);
        assert_eq!(b(Duration::minutes(5)), 5);
        assert_eq!(b(Duration::hours(1)), 60);
        assert_eq!(b(Duration::hours(24)), 1800);
        assert_eq!(b(Duration::days(7)), 10800);
        assert_eq!(b(Duration::days(30)), 43200);
        assert_eq!(b(Duration::days(365)), 604800);
        // Never more buckets than asked for, up to the largest step.
        for mins in [1, 7, 59, 61, 250, 1439, 10_000, 100_000] {
            let span = Duration::minutes(mins);
            assert!(span.num_seconds() / bucket_for(span, 60).num_seconds() <= 60);
        }
    }

    #[test]
    fn buckets_are_aligned_to_the_origin() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 14, 7, 31).unwrap();
        assert_eq!(
            bucket_start(t, Duration::minutes(5)),
            Utc.with_ymd_and_hms(2026, 12, 1, 14, 5, 0).unwrap()
        );
        // 2026-11-30 is a Monday.
        assert_eq!(
            bucket_start(t, Duration::days(7)),
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
        );
        let before = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            bucket_start(before, Duration::hours(1)),
            Utc.with_ymd_and_hms(1999, 12, 31, 23, 0, 0).unwrap()
        );
    }

    fn at(d: u32, h: u32, m: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, sec).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn the_rollup_answers_for_finished_minutes_of_trusted_days_only() {
        let range = HistoryRange {
            from: at(1, 10, 0, 30),
            until: at(4, 9, 30, 15),
        };
        let cov = Coverage {
            rolled_at: Some(at(4, 9, 20, 5)),
            kept_from: at(1, 0, 0, 0),
            // Day 2 was compacted: its rows no longer match the rollup.
            days: vec![day(1), day(3), day(4), day(5)],
        };
        let src = sources(range, &cov);
        assert_eq!(
            src.rolled,
            vec![
                (at(1, 10, 1, 0), at(2, 0, 0, 0)),
                (at(3, 0, 0, 0), at(4, 9, 18, 0)),
            ]
        );
        assert_eq!(
            src.raw,
            vec![
                (range.from, at(1, 10, 1, 0)),
                (at(2, 0, 0, 0), at(3, 0, 0, 0)),
                (at(4, 9, 18, 0), range.until),
            ]
        );
        // The spans tile the range.
        let mut all: Vec<_> = src.rolled.iter().chain(&src.raw).copied().collect();
        all.sort();
        assert_eq!(all.first().unwrap().0, range.from);
        assert_eq!(all.last().unwrap().1, range.until);
        assert!(all.windows(2).all(|w| w[0].1 == w[1].0));
    }

    #[test]
    fn without_a_run_or_past_what_is_kept_the_rows_are_counted() {
        let range = HistoryRange {
            from: at(1, 0, 0, 0),
            until: at(2, 0, 0, 0),
        };
        let mut cov = Coverage {
            rolled_at: None,
            kept_from: at(1, 0, 0, 0),
            days: vec![day(1)],
        };
        assert_eq!(sources(range, &cov), Sources::raw(range));
        cov.rolled_at = Some(at(3, 0, 0, 0));
        cov.kept_from = at(1, 6, 0, 1);
        let src = sources(range, &cov);
        assert_eq!(src.rolled, vec![(at(1, 6, 1, 0), at(2, 0, 0, 0))]);
        assert_eq!(src.raw, vec![(at(1, 0, 0, 0), at(1, 6, 1, 0))]);
        // Seconds buckets or a filter: the rollup cannot count them.
        assert!(!rollup_can_count(&Filter::default(), Duration::seconds(30)));
        assert!(rollup_can_count(&Filter::default(), Duration::minutes(30)));
    }
}
