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

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::filter::Filter;
use crate::query::history::{apply_budget, HistoryRange};
use crate::query::logs::no_jit;

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
type BucketRow = (DateTime<Utc>, i64, i64, i64, i64, i64, i64);

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
    let rows: Vec<BucketRow> = volume_query("", range, filter, bucket)
        .build_query_as()
        .fetch_all(&mut *tx)
        .await?;
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

/// The statement of `volume` after `prefix` (`EXPLAIN ...` in tests and the bench).
pub fn volume_query<'a>(
    prefix: &str,
    range: HistoryRange,
    filter: &'a Filter,
    bucket: Duration,
) -> QueryBuilder<'a, Postgres> {
    let secs = bucket.num_milliseconds() as f64 / 1000.0;
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("{prefix}SELECT date_bin(make_interval(secs => "));
    qb.push_bind(secs)
        .push("), ts, ")
        .push_bind(origin())
        // One group per bucket, a count per level (`Level::from_i16`'s mapping): hashing the
        // bucket alone is cheaper than hashing (bucket, level) for every line.
        .push(
            ") AS bucket, count(*) FILTER (WHERE level <= 0), count(*) FILTER (WHERE level = 1),
             count(*) FILTER (WHERE level = 2), count(*) FILTER (WHERE level = 3),
             count(*) FILTER (WHERE level = 4), count(*) FILTER (WHERE level >= 5)
             FROM opsdash.log_event WHERE ts >= ",
        )
        .push_bind(range.from)
        .push(" AND ts < ")
        .push_bind(range.until);
    if !filter.is_empty() {
        qb.push(" AND ");
        filter.push_conditions(&mut qb);
    }
    qb.push(" GROUP BY 1");
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
}
