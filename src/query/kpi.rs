//! KPI queries: traffic, latency, daily counters, alert/service status, ingest rate, top failing
//! endpoints, and the operators' own widget SQL (run read-only with a statement timeout).
//!
//! Panels that would read hours or days of raw rows (traffic, the 24 h counters, active users,
//! ingest, p95 latency, top failing endpoints) read the rollups the worker keeps
//! (`rollup_kpi_1m`, `rollup_users_1h`, migrations 0011 and 0012; the Performance tiers
//! `rollup_1m`..`rollup_1d` for the endpoints) up to where its last run got (`rolled_until`),
//! and raw rows only after that: the
//! uncovered tail is the last ~10 seconds when the worker runs, everything when it never ran.
//! Series are bucketed with `date_bin` on bucket boundaries, so consecutive refreshes show the
//! same buckets.
//!
//! One file for the KPI tab's SQL: its panels read the same rollups with the same range
//! arithmetic.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use sqlx::Row;

use crate::db::Db;
use crate::model::{Histogram, TimeRange};
use crate::query::alerts::OpenCounts;

/// The window [start, end) of a range ending at the bucket boundary after `now`, and its bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bucket_secs: i64,
}

impl Window {
    pub fn of(range: TimeRange, now: DateTime<Utc>) -> Window {
        let bucket_secs = range.bucket().num_seconds().max(1);
        let ts = now.timestamp();
        let end_ts = (ts.div_euclid(bucket_secs) + 1) * bucket_secs;
        let end = DateTime::from_timestamp(end_ts, 0).unwrap_or(now);
        Window {
            start: end - range.duration(),
            end,
            bucket_secs,
        }
    }

    /// The same-length window just before this one.
    pub fn previous(&self) -> Window {
        let len = self.end - self.start;
        Window {
            start: self.start - len,
            end: self.start,
            bucket_secs: self.bucket_secs,
        }
    }

    pub fn minutes(&self) -> f64 {
        (self.end - self.start).num_seconds() as f64 / 60.0
    }
}

/// The end of what the rollup job has covered: the minute its last completed run started in
/// (that minute and later come from raw rows). None: it never ran.
pub async fn rolled_until(db: &Db) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT date_bin('1 minute', updated_at, timestamptz '1970-01-01 00:00:00+00')
           FROM opsdash.rollup_state WHERE job = $1",
    )
    .bind(crate::query::rollup::JOB_NAME)
    .fetch_optional(&db.read)
    .await
    .context("rollup coverage")
}

/// Where `[from, to)` switches from rollups to raw rows: `rolled` clamped into the window.
pub fn split_at(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rolled: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    rolled.unwrap_or(from).clamp(from, to.max(from))
}

/// The whole hours of `[from, to)` the users rollup holds (`[lo, hi)`, empty when lo == hi):
/// hours inside the window and before `rolled`. The rest of the window is read raw.
pub fn user_hours(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rolled: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let hour = 3600;
    let lo_s = (from.timestamp() + hour - 1).div_euclid(hour) * hour;
    let end = split_at(from, to, rolled).timestamp();
    let hi_s = end.div_euclid(hour) * hour;
    match (
        DateTime::from_timestamp(lo_s, 0),
        DateTime::from_timestamp(hi_s, 0),
    ) {
        (Some(lo), Some(hi)) if lo < hi => (lo, hi),
        _ => (from, from),
    }
}

/// Inbound requests over the range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub window: Option<Window>,
    /// (bucket start, requests, 5xx errors), one entry per bucket including empty ones.
    pub series: Vec<(DateTime<Utc>, i64, i64)>,
    pub requests: i64,
    pub errors: i64,
    pub prev_requests: i64,
    pub prev_errors: i64,
}

impl Traffic {
    pub fn per_minute(&self) -> f64 {
        self.window
            .map(|w| self.requests as f64 / w.minutes().max(1.0))
            .unwrap_or(0.0)
    }
    pub fn prev_per_minute(&self) -> f64 {
        self.window
            .map(|w| self.prev_requests as f64 / w.minutes().max(1.0))
            .unwrap_or(0.0)
    }
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests)
    }
    pub fn prev_error_rate(&self) -> f64 {
        ratio(self.prev_errors, self.prev_requests)
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

pub async fn traffic(db: &Db, range: TimeRange, now: DateTime<Utc>) -> Result<Traffic> {
    let w = Window::of(range, now);
    let p = w.previous();
    let rolled = rolled_until(db).await?;
    let split = split_at(w.start, w.end, rolled);
    let series: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "WITH src AS (
           SELECT bucket AS t, requests AS n, errors_5xx AS e
             FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $4
           UNION ALL
           SELECT ts, 1, (status >= 500)::int::int8
             FROM opsdash.request_log
            WHERE ts >= $4 AND ts < $2 AND direction = 'inbound'),
         b AS (
           SELECT date_bin(make_interval(secs => $3), t, $1) AS bucket,
                  sum(n) AS requests, sum(e) AS errors
             FROM src GROUP BY 1)
         SELECT g, coalesce(b.requests, 0)::int8, coalesce(b.errors, 0)::int8
           FROM generate_series($1, $2 - make_interval(secs => $3), make_interval(secs => $3)) g
           LEFT JOIN b ON b.bucket = g
          ORDER BY g",
    )
    .bind(w.start)
    .bind(w.end)
    .bind(w.bucket_secs as f64)
    .bind(split)
    .fetch_all(&db.read)
    .await
    .context("traffic series")?;
    let (prev_requests, prev_errors): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(n), 0)::int8, coalesce(sum(e), 0)::int8 FROM (
           SELECT requests AS n, errors_5xx AS e
             FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $3
           UNION ALL
           SELECT count(*), count(*) FILTER (WHERE status >= 500)
             FROM opsdash.request_log
            WHERE ts >= $3 AND ts < $2 AND direction = 'inbound') s",
    )
    .bind(p.start)
    .bind(p.end)
    .bind(split_at(p.start, p.end, rolled))
    .fetch_one(&db.read)
    .await
    .context("traffic of the previous period")?;
    Ok(Traffic {
        window: Some(w),
        requests: series.iter().map(|s| s.1).sum(),
        errors: series.iter().map(|s| s.2).sum(),
        series,
        prev_requests,
        prev_errors,
    })
}

/// p95 latency of inbound requests over the last hour, the hour before, and per minute over the
/// last hour: nearest-rank percentiles of the latency histograms (within 2% of the exact value,
/// like the Performance tab), from the per-minute histograms of `rollup_kpi_1m` up to the
/// rollup job's last run and raw rows after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub p95_ms: Option<f64>,
    pub prev_p95_ms: Option<f64>,
    pub series: Vec<f64>,
}

pub async fn latency(db: &Db, now: DateTime<Utc>) -> Result<Latency> {
    let w = Window::of(TimeRange::H1, now);
    let p = w.previous();
    let rolled = rolled_until(db).await?;
    // One histogram per minute of the two hours: stored ones before the split, built from raw
    // rows after it (binned on the server, so only (bucket, count) pairs travel).
    let minutes: Vec<(DateTime<Utc>, Vec<i32>)> = sqlx::query_as(
        "SELECT bucket, latency_hist FROM opsdash.rollup_kpi_1m
          WHERE bucket >= $1 AND bucket < $3 AND latency_hist IS NOT NULL
         UNION ALL
         SELECT bucket, opsdash.hist_build(lb, n)
           FROM (SELECT date_bin('1 minute', ts, $1) AS bucket,
                        opsdash.latency_bucket(duration_ms) AS lb, count(*) AS n
                   FROM opsdash.request_log
                  WHERE ts >= $3 AND ts < $2 AND direction = 'inbound'
                  GROUP BY 1, 2) g
          GROUP BY bucket",
    )
    .bind(p.start)
    .bind(w.end)
    .bind(split_at(p.start, w.end, rolled))
    .fetch_all(&db.read)
    .await
    .context("p95 latency")?;
    Ok(latency_of(&w, &minutes))
}

/// The latency figures of window `w` (one-minute buckets) and the hour before it from
/// per-minute histograms.
pub fn latency_of(w: &Window, minutes: &[(DateTime<Utc>, Vec<i32>)]) -> Latency {
    let per_minute = ((w.end - w.start).num_minutes()).max(0) as usize;
    let mut series = vec![Histogram::new(); per_minute];
    let (mut current, mut previous) = (Histogram::new(), Histogram::new());
    for (bucket, counts) in minutes {
        let h = Histogram::from_counts(counts);
        if *bucket >= w.start && *bucket < w.end {
            current.merge(&h);
            if let Some(slot) = series.get_mut((*bucket - w.start).num_minutes() as usize) {
                slot.merge(&h);
            }
        } else if *bucket < w.start {
            previous.merge(&h);
        }
    }
    Latency {
        p95_ms: current.percentile(0.95),
        prev_p95_ms: previous.percentile(0.95),
        series: series
            .iter()
            .map(|h| h.percentile(0.95).unwrap_or(0.0))
            .collect(),
    }
}

/// Fixed-window counters: the last 24 h against the 24 h before.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Daily {
    pub errors_24h: i64,
    pub prev_errors_24h: i64,
    /// Error log lines per hour over the last 24 h.
    pub errors_hourly: Vec<i64>,
    pub slow_requests_24h: i64,
    pub prev_slow_requests_24h: i64,
    pub slow_queries_24h: i64,
    pub prev_slow_queries_24h: i64,
}

/// Distinct users (request_log.user_id) in the last hour and 24 h, and the periods before.
/// Its own panel: over raw rows it is the slowest counter, so the others do not wait for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    pub users_1h: i64,
    pub prev_users_1h: i64,
    pub users_24h: i64,
    pub prev_users_24h: i64,
}

/// Whole hours from `rollup_users_1h`, the ragged edges and the uncovered tail from raw rows;
/// UNION (a hash aggregate) removes users seen in both.
pub async fn users(db: &Db, now: DateTime<Utc>) -> Result<Users> {
    let rolled = rolled_until(db).await?;
    let d = Window::of(TimeRange::H24, now);
    let h = Window::of(TimeRange::H1, now);
    let windows = [
        (h.start, h.end),
        (h.start - chrono::Duration::hours(1), h.start),
        (d.start, d.end),
        (d.previous().start, d.start),
    ];
    // One statement per window, the four at once on their own connections: each reads its
    // window's whole hours from the rollup and at most a couple of hours of raw rows.
    let counts = futures::future::try_join_all(windows.into_iter().map(|(from, to)| {
        let (lo, hi) = user_hours(from, to, rolled);
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM (
               SELECT user_id FROM opsdash.rollup_users_1h WHERE bucket >= $3 AND bucket < $4
               UNION
               SELECT user_id FROM opsdash.request_log
                WHERE user_id IS NOT NULL AND ts >= $1 AND ts < $3
               UNION
               SELECT user_id FROM opsdash.request_log
                WHERE user_id IS NOT NULL AND ts >= $4 AND ts < $2) u",
        )
        .bind(from)
        .bind(to)
        .bind(lo)
        .bind(hi)
        .fetch_one(&db.read)
    }))
    .await
    .context("active users")?;
    Ok(Users {
        users_1h: counts[0],
        prev_users_1h: counts[1],
        users_24h: counts[2],
        prev_users_24h: counts[3],
    })
}

pub async fn daily(db: &Db, now: DateTime<Utc>) -> Result<Daily> {
    let d = Window::of(TimeRange::H24, now);
    let p = d.previous();
    let rolled = rolled_until(db).await?;
    // Each counter over [from, to) split at `split`: the rollup's minutes before, raw rows after.
    let counters = "WITH r AS (
           SELECT coalesce(sum(error_logs), 0)::int8 AS el, coalesce(sum(slow_requests), 0)::int8 AS sr,
                  coalesce(sum(slow_queries), 0)::int8 AS sq
             FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $3)
         SELECT r.el + (SELECT count(*) FROM opsdash.log_event WHERE level >= 4 AND ts >= $3 AND ts < $2),
                r.sr + (SELECT count(*) FROM opsdash.request_log WHERE duration_ms > 1000 AND ts >= $3 AND ts < $2),
                r.sq + (SELECT coalesce(sum(calls), 0)::int8 FROM opsdash.query_log WHERE duration_ms > 500 AND ts >= $3 AND ts < $2)
           FROM r";
    let mut out = [[0i64; 3]; 2];
    for (k, w) in [d, p].into_iter().enumerate() {
        let (a, b, c): (i64, i64, i64) = sqlx::query_as(counters)
            .bind(w.start)
            .bind(w.end)
            .bind(split_at(w.start, w.end, rolled))
            .fetch_one(&db.read)
            .await
            .context("daily counters")?;
        out[k] = [a, b, c];
    }
    let hourly: Vec<(i64,)> = sqlx::query_as(
        "WITH src AS (
           SELECT bucket AS t, error_logs AS n
             FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $3
           UNION ALL
           SELECT ts, 1 FROM opsdash.log_event WHERE level >= 4 AND ts >= $3 AND ts < $2),
         b AS (SELECT date_bin('1 hour', t, $1) AS bucket, sum(n) AS n FROM src GROUP BY 1)
         SELECT coalesce(b.n, 0)::int8
           FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') g
           LEFT JOIN b ON b.bucket = g ORDER BY g",
    )
    .bind(d.start)
    .bind(d.end)
    .bind(split_at(d.start, d.end, rolled))
    .fetch_all(&db.read)
    .await
    .context("errors per hour")?;
    Ok(Daily {
        errors_24h: out[0][0],
        prev_errors_24h: out[1][0],
        slow_requests_24h: out[0][1],
        prev_slow_requests_24h: out[1][1],
        slow_queries_24h: out[0][2],
        prev_slow_queries_24h: out[1][2],
        errors_hourly: hourly.into_iter().map(|(n,)| n).collect(),
    })
}

/// Open alerts by severity (`query::alerts::open_counts`, the definition every view shares),
/// and services by status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusCounts {
    pub alerts: OpenCounts,
    pub healthy: i64,
    pub degraded: i64,
    pub down: i64,
    pub unknown: i64,
}

impl StatusCounts {
    pub fn alerts(&self) -> i64 {
        self.alerts.total()
    }
}

pub async fn status(db: &Db) -> Result<StatusCounts> {
    let alerts = crate::query::alerts::open_counts(&db.read)
        .await
        .context("open alerts")?;
    let r = sqlx::query(
        "SELECT
           count(*) FILTER (WHERE status = 'healthy'),
           count(*) FILTER (WHERE status = 'degraded'),
           count(*) FILTER (WHERE status = 'down'),
           count(*) FILTER (WHERE status = 'unknown')
         FROM opsdash.service",
    )
    .fetch_one(&db.read)
    .await
    .context("service status")?;
    Ok(StatusCounts {
        alerts,
        healthy: r.try_get(0)?,
        degraded: r.try_get(1)?,
        down: r.try_get(2)?,
        unknown: r.try_get(3)?,
    })
}

/// Log lines stored per bucket over the range, and lines rejected by ingest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ingest {
    pub window: Option<Window>,
    pub series: Vec<i64>,
    pub total: i64,
    pub prev_total: i64,
    pub rejected: i64,
}

impl Ingest {
    pub fn per_minute(&self) -> f64 {
        self.window
            .map(|w| self.total as f64 / w.minutes().max(1.0))
            .unwrap_or(0.0)
    }
    pub fn prev_per_minute(&self) -> f64 {
        self.window
            .map(|w| self.prev_total as f64 / w.minutes().max(1.0))
            .unwrap_or(0.0)
    }
}

pub async fn ingest(db: &Db, range: TimeRange, now: DateTime<Utc>) -> Result<Ingest> {
    let w = Window::of(range, now);
    let p = w.previous();
    let rolled = rolled_until(db).await?;
    let series: Vec<(i64,)> = sqlx::query_as(
        "WITH src AS (
           SELECT bucket AS t, log_lines AS n
             FROM opsdash.rollup_kpi_1m WHERE bucket >= $1 AND bucket < $4
           UNION ALL
           SELECT ts, repeat_count FROM opsdash.log_event WHERE ts >= $4 AND ts < $2),
         b AS (SELECT date_bin(make_interval(secs => $3), t, $1) AS bucket, sum(n) AS n
                 FROM src GROUP BY 1)
         SELECT coalesce(b.n, 0)::int8
           FROM generate_series($1, $2 - make_interval(secs => $3), make_interval(secs => $3)) g
           LEFT JOIN b ON b.bucket = g ORDER BY g",
    )
    .bind(w.start)
    .bind(w.end)
    .bind(w.bucket_secs as f64)
    .bind(split_at(w.start, w.end, rolled))
    .fetch_all(&db.read)
    .await
    .context("ingest series")?;
    let (prev_total, rejected): (i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT coalesce(sum(log_lines), 0)::int8 FROM opsdash.rollup_kpi_1m
             WHERE bucket >= $1 AND bucket < $4)
           + (SELECT coalesce(sum(repeat_count), 0)::int8 FROM opsdash.log_event
               WHERE ts >= $4 AND ts < $2),
           (SELECT coalesce(sum(rejected), 0)::int8 FROM opsdash.ingest_stat
             WHERE ts >= $2 AND ts < $3)",
    )
    .bind(p.start)
    .bind(p.end)
    .bind(w.end)
    .bind(split_at(p.start, p.end, rolled))
    .fetch_one(&db.read)
    .await
    .context("ingest totals")?;
    let series: Vec<i64> = series.into_iter().map(|(n,)| n).collect();
    Ok(Ingest {
        window: Some(w),
        total: series.iter().sum(),
        series,
        prev_total,
        rejected,
    })
}

/// An endpoint with server errors over the range.
#[derive(Debug, Clone, PartialEq)]
pub struct FailingEndpoint {
    pub service: String,
    pub method: String,
    pub route: String,
    pub requests: i64,
    pub errors: i64,
    pub avg_ms: f64,
}

pub async fn top_failing(
    db: &Db,
    range: TimeRange,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<FailingEndpoint>> {
    let w = Window::of(range, now);
    let rolled = rolled_until(db).await?;
    let split = split_at(w.start, w.end, rolled);
    let rows = if split == w.start {
        top_failing_raw(db, w, limit).await
    } else {
        top_failing_rolled(db, w, split, limit).await
    }
    .context("top failing endpoints")?;
    Ok(rows
        .into_iter()
        .map(
            |(service, method, route, requests, errors, avg_ms)| FailingEndpoint {
                service,
                method,
                route,
                requests,
                errors,
                avg_ms,
            },
        )
        .collect())
}

type FailingRow = (String, String, String, i64, i64, f64);

/// Over raw rows only (the rollup job never covered the window): endpoints with errors are
/// found through the partial index on error statuses, and only those are counted in full.
async fn top_failing_raw(db: &Db, w: Window, limit: i64) -> sqlx::Result<Vec<FailingRow>> {
    sqlx::query_as(
        "WITH failing AS (
           SELECT service, method, route, count(*) AS errors
             FROM opsdash.request_log
            WHERE status >= 500 AND ts >= $1 AND ts < $2 AND direction = 'inbound'
            GROUP BY 1, 2, 3
            ORDER BY errors DESC, service, route, method
            LIMIT $3)
         SELECT f.service, f.method, f.route,
                (SELECT count(*) FROM opsdash.request_log r
                  WHERE r.service = f.service AND r.route = f.route AND r.method = f.method
                    AND r.ts >= $1 AND r.ts < $2 AND r.direction = 'inbound'),
                f.errors,
                coalesce((SELECT avg(duration_ms) FROM opsdash.request_log r
                  WHERE r.service = f.service AND r.route = f.route AND r.method = f.method
                    AND r.ts >= $1 AND r.ts < $2 AND r.direction = 'inbound'), 0)
           FROM failing f
          ORDER BY f.errors DESC, f.service, f.route, f.method",
    )
    .bind(w.start)
    .bind(w.end)
    .bind(limit)
    .fetch_all(&db.read)
    .await
}

/// From the Performance rollups for `[w.start, split)` (each tier's whole blocks, as the
/// Performance tab reads them: `perf::window_tiers`) and raw rows for `[split, w.end)`.
async fn top_failing_rolled(
    db: &Db,
    w: Window,
    split: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<FailingRow>> {
    let tiers = crate::query::perf::window_tiers(w.start, split);
    // Table names come from perf's constant tier list, never from input; the text is the same
    // on every call, so each connection prepares it once.
    let mut src = String::new();
    for (k, (table, _)) in tiers.iter().enumerate() {
        let a = 4 * k + 1;
        src.push_str(&format!(
            "SELECT service, route, requests, err_5xx, dur_sum FROM {table}
              WHERE direction = 'inbound'
                AND ((bucket >= ${a} AND bucket < ${}) OR (bucket >= ${} AND bucket < ${}))
             UNION ALL\n",
            a + 1,
            a + 2,
            a + 3
        ));
    }
    let n = 4 * tiers.len();
    let sql = format!(
        "WITH src AS (
           {src}
           SELECT service, method || ' ' || route, count(*), count(*) FILTER (WHERE status >= 500),
                  sum(duration_ms)
             FROM opsdash.request_log
            WHERE ts >= ${} AND ts < ${} AND direction = 'inbound'
            GROUP BY 1, 2)
         SELECT service, split_part(route, ' ', 1), substr(route, strpos(route, ' ') + 1),
                sum(requests)::int8, sum(err_5xx)::int8,
                coalesce(sum(dur_sum) / nullif(sum(requests), 0), 0)::float8
           FROM src
          GROUP BY service, route
         HAVING sum(err_5xx) > 0
          ORDER BY 5 DESC, 1, 3, 2
          LIMIT ${}",
        n + 1,
        n + 2,
        n + 3
    );
    let mut q = sqlx::query_as::<_, FailingRow>(&sql);
    for (_, ranges) in &tiers {
        for (lo, hi) in ranges {
            q = q.bind(*lo).bind(*hi);
        }
    }
    q.bind(split)
        .bind(w.end)
        .bind(limit)
        .fetch_all(&db.read)
        .await
}

/// Rows of an operator's widget query: column names in order and every value as text
/// (NULL as None), whatever the column types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl CustomRows {
    /// The first column of the first row as a number (counter, gauge).
    pub fn number(&self) -> Option<f64> {
        self.rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_deref())
            .and_then(|s| s.trim().parse::<f64>().ok())
    }

    /// The last column of every row as a number (sparkline, chart, bar values).
    pub fn series(&self) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| {
                r.last()
                    .and_then(|v| v.as_deref())
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            })
            .collect()
    }

    /// The first column of every row as a label (bar names, chart x labels).
    pub fn labels(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| r.first().cloned().flatten().unwrap_or_default())
            .collect()
    }
}

/// One JSON object, keys in their order (row_to_json keeps the column order).
struct OrderedRow(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedRow, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, serde_json::Value>()? {
                    v.push((k, val));
                }
                Ok(OrderedRow(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Runs an operator's widget SQL read-only, cut off after `timeout` on the server, at most
/// `max_rows` rows. The SQL is the operator's own (from their config file), never user input
/// typed in the dashboard; the read-only transaction keeps it from writing anything.
pub async fn custom(db: &Db, sql: &str, timeout: Duration, max_rows: i64) -> Result<CustomRows> {
    let body = sql.trim().trim_end_matches(';').trim();
    if body.is_empty() {
        anyhow::bail!("empty query");
    }
    let mut tx = db.read.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}ms", timeout.as_millis().max(1)))
        .execute(&mut *tx)
        .await?;
    let wrapped = format!("SELECT row_to_json(q)::text FROM ({body}\n) q LIMIT {max_rows}");
    let rows: Vec<(String,)> = sqlx::query_as(&wrapped).fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    let mut out = CustomRows::default();
    for (i, (text,)) in rows.iter().enumerate() {
        let row: OrderedRow = serde_json::from_str(text).context("decoding a result row")?;
        if i == 0 {
            out.columns = row.0.iter().map(|(k, _)| k.clone()).collect();
        }
        out.rows.push(
            row.0
                .into_iter()
                .map(|(_, v)| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                })
                .collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ends_on_a_bucket_boundary() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T10:17:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = Window::of(TimeRange::H1, now);
        assert_eq!(w.end.to_rfc3339(), "2026-01-01T10:18:00+00:00");
        assert_eq!((w.end - w.start).num_minutes(), 60);
        assert_eq!(w.previous().end, w.start);
    }
}

/// An open alert (view `opsdash.open_alert`, testing-mode ones left out), for alert-list
/// widgets.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    pub severity: String,
    pub state: String,
    pub rule_name: String,
    pub summary: String,
    pub since: Option<DateTime<Utc>>,
}

pub async fn active_alerts(db: &Db, limit: i64) -> Result<Vec<ActiveAlert>> {
    type AlertRow = (String, String, String, String, Option<DateTime<Utc>>);
    let rows: Vec<AlertRow> = sqlx::query_as(
        "SELECT severity, state, rule_name, summary, coalesce(fired_at, pending_since)
           FROM opsdash.alert
          WHERE id IN (SELECT id FROM opsdash.open_alert WHERE NOT testing)
          ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1
                                 WHEN 'warning' THEN 2 ELSE 3 END,
                   fired_at DESC NULLS LAST
          LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.read)
    .await
    .context("active alerts")?;
    Ok(rows
        .into_iter()
        .map(|(severity, state, rule_name, summary, since)| ActiveAlert {
            severity,
            state,
            rule_name,
            summary,
            since,
        })
        .collect())
}
