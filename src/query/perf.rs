//! Queries of the Performance tab (and of `opsdash perf`-style readers): endpoint statistics from
//! the rollups, the exact recomputation from raw rows, error heatmap, latency series, slow
//! requests and slow queries. The SQL functions they call live in migrations/0003_perf.sql so
//! psql and Grafana users get the same answers.
//!
//! Endpoints are keyed by service, route and direction; `route` is "METHOD /path" as the rollup
//! job stores it.
//!
//! One file for the Performance tab's SQL: its queries share the endpoint key and the rollup
//! tiers.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

use crate::model::Histogram;

/// One endpoint: what the rollups group by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub struct EndpointKey {
    pub service: String,
    pub route: String,
    pub direction: String,
}

impl EndpointKey {
    /// "METHOD /path" split back into method and path (no method: the whole string is the path).
    pub fn method_and_path(&self) -> (&str, &str) {
        self.route.split_once(' ').unwrap_or(("", &self.route))
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EndpointStat {
    #[sqlx(flatten)]
    pub key: EndpointKey,
    pub requests: i64,
    pub rps: f64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub err_4xx: i64,
    pub err_5xx: i64,
    pub error_pct: Option<f64>,
    pub bytes: i64,
}

const STAT_COLUMNS: &str = "service, route, direction, requests, rps, avg_ms, p50_ms, p95_ms, \
                            p99_ms, max_ms, err_4xx, err_5xx, error_pct, bytes";

/// Every endpoint's statistics over `[from, to)` from the rollups (percentiles within 2%).
///
/// Reads the window's rollup rows (`window_tiers`: days, hours, half hours, 5-minute blocks and
/// edge minutes, ~20 rows per endpoint for an hour) in one prepared statement and one round trip,
/// and merges their histograms here: summing a few hundred short arrays is microseconds in Rust
/// but tens of milliseconds as plpgsql loops. `opsdash.endpoint_stats(from, to)` computes the same
/// figures in SQL for psql users (tests/perf.rs checks they agree).
pub async fn endpoint_stats(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<EndpointStat>> {
    let (rows, now) = window_rows(pool, from, to, "").await?;
    let Some(now) = now else {
        return Ok(Vec::new());
    };
    let mut acc: std::collections::BTreeMap<EndpointKey, (EndpointStat, f64, Histogram)> =
        std::collections::BTreeMap::new();
    for r in rows {
        let (key, n, e4, e5, bytes, dur_sum, dur_max, hist) = (
            r.key, r.requests, r.err_4xx, r.err_5xx, r.bytes, r.dur_sum, r.dur_max, r.hist,
        );
        let entry = acc.entry(key.clone()).or_insert_with(|| {
            (
                EndpointStat {
                    key,
                    requests: 0,
                    rps: 0.0,
                    avg_ms: None,
                    p50_ms: None,
                    p95_ms: None,
                    p99_ms: None,
                    max_ms: None,
                    err_4xx: 0,
                    err_5xx: 0,
                    error_pct: None,
                    bytes: 0,
                },
                0.0,
                Histogram::new(),
            )
        });
        let (s, sum, h) = entry;
        s.requests += n;
        s.err_4xx += e4;
        s.err_5xx += e5;
        s.bytes += bytes;
        *sum += dur_sum;
        s.max_ms = Some(s.max_ms.map_or(dur_max, |m| m.max(dur_max)));
        h.merge(&Histogram::from_counts(&hist));
    }
    // Same rate denominator as the SQL function: the part of the covered span (whole minutes
    // from `from`'s minute) that has elapsed, at least 1 s.
    let secs = ((to.min(now) - minute_floor(from)).num_milliseconds() as f64 / 1000.0).max(1.0);
    Ok(acc
        .into_values()
        .map(|(mut s, sum, h)| {
            let max = s.max_ms.unwrap_or(f64::INFINITY);
            s.rps = s.requests as f64 / secs;
            if s.requests > 0 {
                s.avg_ms = Some(sum / s.requests as f64);
                s.error_pct = Some(100.0 * (s.err_4xx + s.err_5xx) as f64 / s.requests as f64);
            }
            s.p50_ms = h.percentile_clamped(0.50, max);
            s.p95_ms = h.percentile_clamped(0.95, max);
            s.p99_ms = h.percentile_clamped(0.99, max);
            s
        })
        .collect())
}

/// One rollup row of a window.
#[derive(Debug, Clone)]
pub struct WindowRow {
    pub key: EndpointKey,
    pub requests: i64,
    pub err_4xx: i64,
    pub err_5xx: i64,
    pub bytes: i64,
    pub dur_sum: f64,
    pub dur_max: f64,
    pub hist: Vec<i32>,
}

/// The rollup rows covering `[from, to)` (see `window_tiers`), of one service or all (`""`),
/// with the server's `now()` (None when there are no rows).
pub async fn window_rows(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    service: &str,
) -> sqlx::Result<(Vec<WindowRow>, Option<DateTime<Utc>>)> {
    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        f64,
        f64,
        Vec<i32>,
        DateTime<Utc>,
    );
    let mut query = sqlx::query_as::<_, Row>(WINDOW_SQL);
    for (_, ranges) in window_tiers(from, to) {
        for (lo, hi) in ranges {
            query = query.bind(lo).bind(hi);
        }
    }
    let rows = query.bind(service).fetch_all(pool).await?;
    let now = rows.first().map(|r| r.10);
    let rows = rows
        .into_iter()
        .map(
            |(
                service,
                route,
                direction,
                requests,
                err_4xx,
                err_5xx,
                bytes,
                dur_sum,
                dur_max,
                hist,
                _,
            )| {
                WindowRow {
                    key: EndpointKey {
                        service,
                        route,
                        direction,
                    },
                    requests,
                    err_4xx,
                    err_5xx,
                    bytes,
                    dur_sum,
                    dur_max,
                    hist,
                }
            },
        )
        .collect();
    Ok((rows, now))
}

/// The same figures computed by the SQL function `opsdash.endpoint_stats` (what psql and
/// Grafana users see).
pub async fn endpoint_stats_sql(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<EndpointStat>> {
    sqlx::query_as(&format!(
        "SELECT {STAT_COLUMNS} FROM opsdash.endpoint_stats($1, $2) ORDER BY service, route, direction"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// The original design's figures for the last hour: `percentile_cont` over raw rows.
pub async fn endpoint_stats_exact_last_hour(pool: &PgPool) -> sqlx::Result<Vec<EndpointStat>> {
    sqlx::query_as(&format!(
        "SELECT {STAT_COLUMNS} FROM opsdash.endpoint_stats_exact ORDER BY service, route, direction"
    ))
    .fetch_all(pool)
    .await
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    bin(t, Duration::minutes(1))
}

/// The rollup tiers, finest first, with their bucket length in seconds.
const TIERS: [(&str, i64); 5] = [
    ("opsdash.rollup_1m", 60),
    ("opsdash.rollup_5m", 300),
    ("opsdash.rollup_30m", 1800),
    ("opsdash.rollup_1h", 3600),
    ("opsdash.rollup_1d", 86_400),
];

/// One statement for every window: per tier two bucket ranges `[$2k+1, $2k+2)` (the finer
/// tiers' ragged edges on both sides of the coarser tiers' whole blocks), `$21` one service or
/// ''. Static text, so the pool's connections prepare it once.
const WINDOW_SQL: &str = "\
    SELECT service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist, now()
      FROM opsdash.rollup_1m WHERE ((bucket >= $1 AND bucket < $2) OR (bucket >= $3 AND bucket < $4)) AND ($21 = '' OR service = $21)
    UNION ALL
    SELECT service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist, now()
      FROM opsdash.rollup_5m WHERE ((bucket >= $5 AND bucket < $6) OR (bucket >= $7 AND bucket < $8)) AND ($21 = '' OR service = $21)
    UNION ALL
    SELECT service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist, now()
      FROM opsdash.rollup_30m WHERE ((bucket >= $9 AND bucket < $10) OR (bucket >= $11 AND bucket < $12)) AND ($21 = '' OR service = $21)
    UNION ALL
    SELECT service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist, now()
      FROM opsdash.rollup_1h WHERE ((bucket >= $13 AND bucket < $14) OR (bucket >= $15 AND bucket < $16)) AND ($21 = '' OR service = $21)
    UNION ALL
    SELECT service, route, direction, requests, err_4xx, err_5xx, bytes, dur_sum, dur_max, hist, now()
      FROM opsdash.rollup_1d WHERE ((bucket >= $17 AND bucket < $18) OR (bucket >= $19 AND bucket < $20)) AND ($21 = '' OR service = $21)";

/// A `[lo, hi)` range of rollup buckets.
pub type BucketRange = (DateTime<Utc>, DateTime<Utc>);

/// How `[from, to)` (widened to whole minutes; the minute holding `to` counts, so "now" includes
/// the live minute) splits over the tiers: each coarser tier takes the whole blocks inside the
/// finer tier's span, the finer tier keeps the edges. Per tier (finest first) two `[lo, hi)`
/// ranges, empty ones as `(t, t)`; together they cover every minute of the window exactly once.
pub fn window_tiers(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(&'static str, [BucketRange; 2])> {
    let floor = |t: i64, s: i64| t.div_euclid(s) * s;
    let ceil = |t: i64, s: i64| -floor(-t, s);
    let (mut lo, hi) = (floor(from.timestamp(), 60), ceil(to.timestamp(), 60));
    let mut hi = if to.timestamp_subsec_nanos() > 0 && hi == to.timestamp() {
        hi + 60
    } else {
        hi
    };
    if hi < lo {
        hi = lo;
    }
    let ts = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(from);
    let mut out = Vec::with_capacity(TIERS.len());
    for (i, &(table, _)) in TIERS.iter().enumerate() {
        // The next coarser tier's whole blocks inside [lo, hi), or none (collapsed onto hi).
        let (c_lo, c_hi) = match TIERS.get(i + 1) {
            Some(&(_, step)) => {
                let (a, b) = (ceil(lo, step), floor(hi, step));
                if a < b {
                    (a, b)
                } else {
                    (hi, hi)
                }
            }
            None => (hi, hi),
        };
        out.push((table, [(ts(lo), ts(c_lo)), (ts(c_hi), ts(hi))]));
        lo = c_lo;
        hi = c_hi;
    }
    out
}

/// One endpoint recomputed exactly from raw rows over `[from, to)` with `from` widened to its
/// minute like the rollups (the tab's `x`).
pub async fn endpoint_exact(
    pool: &PgPool,
    key: &EndpointKey,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Option<EndpointStat>> {
    let (method, path) = key.method_and_path();
    sqlx::query_as(
        "SELECT $1::text AS service, $2::text || ' ' || $3::text AS route, $4::text AS direction,
                count(*) AS requests,
                count(*) / greatest(extract(epoch FROM least($6, now()) - $5), 1)::float8 AS rps,
                avg(duration_ms) AS avg_ms,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms,
                max(duration_ms) AS max_ms,
                count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS err_4xx,
                count(*) FILTER (WHERE status >= 500) AS err_5xx,
                100.0::float8 * count(*) FILTER (WHERE status >= 400) / nullif(count(*), 0) AS error_pct,
                coalesce(sum(bytes), 0)::bigint AS bytes
           FROM opsdash.request_log
          WHERE service = $1 AND method = $2 AND route = $3 AND direction = $4
            AND ts >= $5 AND ts < $6
         HAVING count(*) > 0",
    )
    .bind(&key.service)
    .bind(method)
    .bind(path)
    .bind(&key.direction)
    .bind(minute_floor(from))
    .bind(to)
    .fetch_optional(pool)
    .await
}

/// Regression status of an endpoint: last hour's p95 against the 23 hours before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegressionStatus {
    Ok,
    Warning,
    Alert,
}

impl RegressionStatus {
    pub fn label(self) -> &'static str {
        match self {
            RegressionStatus::Ok => "OK",
            RegressionStatus::Warning => "WARNING",
            RegressionStatus::Alert => "ALERT",
        }
    }

    fn parse(s: &str) -> RegressionStatus {
        match s {
            "ALERT" => RegressionStatus::Alert,
            "WARNING" => RegressionStatus::Warning,
            _ => RegressionStatus::Ok,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub key: EndpointKey,
    pub p95_ms: Option<f64>,
    pub baseline_p95_ms: Option<f64>,
    pub change_pct: Option<f64>,
    pub status: RegressionStatus,
}

pub async fn regressions(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Vec<Regression>> {
    type Row = (
        String,
        String,
        String,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT service, route, direction, p95_ms, baseline_p95_ms, change_pct, status
           FROM opsdash.latency_regression($1) ORDER BY service, route, direction",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(service, route, direction, p95, base, change, status)| Regression {
                key: EndpointKey {
                    service,
                    route,
                    direction,
                },
                p95_ms: p95,
                baseline_p95_ms: base,
                change_pct: change,
                status: RegressionStatus::parse(&status),
            },
        )
        .collect())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HeatCell {
    pub bucket: DateTime<Utc>,
    #[sqlx(flatten)]
    pub key: EndpointKey,
    pub requests: i64,
    pub errors: i64,
}

/// Errors per `step` x endpoint over `[from, to)`, ordered by endpoint then time. Reads the
/// coarsest tier dividing `step` (the same choice as the SQL function `opsdash.error_heatmap`);
/// when the tier's buckets are the cells (a 24 h map in 30-minute columns) its rows are returned
/// as they are, without regrouping on the server.
pub async fn error_heatmap(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> sqlx::Result<Vec<HeatCell>> {
    let tier = tier_for_step(step);
    // Table names come from `tier_for_step`'s constants, never from input.
    let sql = if tier_seconds(tier) == step.num_seconds() {
        format!(
            "SELECT bucket, service, route, direction, requests, err_4xx + err_5xx AS errors
               FROM {tier} WHERE bucket >= $1 AND bucket < $2"
        )
    } else {
        format!(
            "SELECT date_bin(make_interval(secs => $3), bucket, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                    service, route, direction, sum(requests)::bigint AS requests,
                    sum(err_4xx + err_5xx)::bigint AS errors
               FROM {tier} WHERE bucket >= $1 AND bucket < $2
              GROUP BY 1, 2, 3, 4"
        )
    };
    let mut query = sqlx::query_as::<_, HeatCell>(&sql)
        .bind(bin(from, step))
        .bind(to);
    if tier_seconds(tier) != step.num_seconds() {
        query = query.bind(step.num_seconds() as f64);
    }
    let mut cells = query.fetch_all(pool).await?;
    cells.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.bucket.cmp(&b.bucket)));
    Ok(cells)
}

fn tier_seconds(table: &str) -> i64 {
    TIERS
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(60, |(_, s)| *s)
}

/// The rollup table whose buckets divide `step` (the coarsest one), so a series reads as few
/// rows as possible.
pub fn tier_for_step(step: Duration) -> &'static str {
    let s = step.num_seconds();
    TIERS
        .iter()
        .rev()
        .find(|(_, t)| s >= *t && s % t == 0)
        .map_or("opsdash.rollup_1m", |(table, _)| table)
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPoint {
    pub bucket: DateTime<Utc>,
    pub requests: i64,
    pub errors: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

fn bin(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let s = step.num_seconds().max(1);
    DateTime::from_timestamp(t.timestamp().div_euclid(s) * s, 0).unwrap_or(t)
}

/// p50/p95/p99 per `step` of one endpoint over `[from, to)`; histograms merged here, from the
/// coarsest tier dividing the step (at most a few hundred rows).
pub async fn latency_series(
    pool: &PgPool,
    key: &EndpointKey,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> sqlx::Result<Vec<LatencyPoint>> {
    type Row = (DateTime<Utc>, i64, i64, f64, Vec<i32>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT bucket, requests, err_4xx + err_5xx, dur_max, hist FROM {}
          WHERE service = $1 AND route = $2 AND direction = $3 AND bucket >= $4 AND bucket < $5
          ORDER BY bucket",
        tier_for_step(step)
    ))
    .bind(&key.service)
    .bind(&key.route)
    .bind(&key.direction)
    .bind(bin(from, step))
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<(LatencyPoint, Histogram, f64)> = Vec::new();
    for (bucket, requests, errors, max, hist) in rows {
        let b = bin(bucket, step);
        let h = Histogram::from_counts(&hist);
        match out.last_mut() {
            Some((p, acc, m)) if p.bucket == b => {
                p.requests += requests;
                p.errors += errors;
                acc.merge(&h);
                *m = m.max(max);
            }
            _ => out.push((
                LatencyPoint {
                    bucket: b,
                    requests,
                    errors,
                    p50_ms: None,
                    p95_ms: None,
                    p99_ms: None,
                },
                h,
                max,
            )),
        }
    }
    Ok(out
        .into_iter()
        .map(|(mut p, h, max)| {
            p.p50_ms = h.percentile_clamped(0.50, max);
            p.p95_ms = h.percentile_clamped(0.95, max);
            p.p99_ms = h.percentile_clamped(0.99, max);
            p
        })
        .collect())
}

/// Requests per `step` for every endpoint (the table's sparklines), oldest first.
pub async fn request_series(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> sqlx::Result<Vec<(EndpointKey, DateTime<Utc>, i64)>> {
    type Row = (String, String, String, DateTime<Utc>, i64);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT service, route, direction,
                date_bin(make_interval(secs => $3), bucket, timestamptz '1970-01-01 00:00:00+00') AS b,
                sum(requests)::bigint
           FROM {} WHERE bucket >= $1 AND bucket < $2
          GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        tier_for_step(step)
    ))
    .bind(bin(from, step))
    .bind(to)
    .bind(step.num_seconds() as f64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(service, route, direction, b, n)| {
            (
                EndpointKey {
                    service,
                    route,
                    direction,
                },
                b,
                n,
            )
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SlowRequest {
    pub ts: DateTime<Utc>,
    pub service: String,
    pub route: String,
    pub direction: String,
    pub status: i16,
    pub duration_ms: f64,
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
}

/// Requests at or over `threshold_ms` in `[from, to)`, slowest first; only `endpoint`'s when given.
pub async fn slow_requests(
    pool: &PgPool,
    threshold_ms: f64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
    endpoint: Option<&EndpointKey>,
) -> sqlx::Result<Vec<SlowRequest>> {
    let (service, method, path, direction) = match endpoint {
        Some(k) => {
            let (m, p) = k.method_and_path();
            (
                Some(k.service.as_str()),
                Some(m),
                Some(p),
                Some(k.direction.as_str()),
            )
        }
        None => (None, None, None, None),
    };
    sqlx::query_as(
        "SELECT ts, service, method || ' ' || route AS route, direction, status, duration_ms,
                trace_id, request_id, user_id
           FROM opsdash.request_log
          WHERE duration_ms >= $1 AND ts >= $2 AND ts < $3
            AND ($5::text IS NULL OR (service = $5 AND method = $6 AND route = $7 AND direction = $8))
          ORDER BY duration_ms DESC
          LIMIT $4",
    )
    .bind(threshold_ms)
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(service)
    .bind(method)
    .bind(path)
    .bind(direction)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SlowQuery {
    pub service: String,
    pub fingerprint: String,
    pub sample: Option<String>,
    pub calls: i64,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub rows_per_s: Option<f64>,
}

/// Queries at or over `threshold_ms` in `[from, to)`, grouped by fingerprint, costliest first.
pub async fn slow_queries(
    pool: &PgPool,
    threshold_ms: f64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<SlowQuery>> {
    sqlx::query_as(
        "SELECT service, fingerprint, sample, calls, avg_ms, max_ms, total_ms, rows_per_s
           FROM opsdash.slow_queries($1, $2, $3)
          ORDER BY total_ms DESC NULLS LAST LIMIT $4",
    )
    .bind(threshold_ms)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_splits_into_method_and_path() {
        let k = EndpointKey {
            service: "api".into(),
            route: "GET /users/{id}".into(),
            direction: "inbound".into(),
        };
        assert_eq!(k.method_and_path(), ("GET", "/users/{id}"));
    }

    fn ts(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    /// Minutes (epoch seconds) each tier range covers, checking the range is whole buckets.
    fn covered(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i64> {
        let mut minutes = Vec::new();
        for (table, ranges) in window_tiers(from, to) {
            let step = tier_seconds(table);
            for (lo, hi) in ranges {
                let (lo, hi) = (lo.timestamp(), hi.timestamp());
                assert!(lo <= hi, "{table}: {lo} > {hi}");
                if lo < hi {
                    assert_eq!(lo % step, 0, "{table} starts inside a bucket");
                    assert_eq!(hi % step, 0, "{table} ends inside a bucket");
                }
                minutes.extend((lo..hi).step_by(60));
            }
        }
        minutes.sort_unstable();
        minutes
    }

    #[test]
    fn window_tiers_cover_each_minute_once() {
        let day = 86_400;
        let base = 20_000 * day;
        assert!(covered(ts(base + 10), ts(base + 10)).len() <= 1);
        assert!(covered(ts(base + 600), ts(base)).is_empty());
        proptest::proptest!(|(a in 0i64..(40 * 86_400), len in 0i64..(3 * 86_400))| {
            let (from, to) = (ts(base + a), ts(base + a + len));
            let want: Vec<i64> = {
                let lo = (base + a).div_euclid(60) * 60;
                let hi = -(-(base + a + len)).div_euclid(60) * 60;
                (lo..hi).step_by(60).collect()
            };
            proptest::prop_assert_eq!(covered(from, to), want);
        });
    }

    #[test]
    fn an_hour_reads_coarse_tiers() {
        // 10:07 to 11:07: minutes 10:07-10:10 and 11:05-11:07, 5-minute blocks 10:10-10:30 and
        // 11:00-11:05, the half hour 10:30-11:00.
        let from = ts(20_000 * 86_400 + 10 * 3600 + 7 * 60);
        let tiers = window_tiers(from, from + Duration::hours(1));
        let secs = |i: usize| -> i64 {
            tiers[i]
                .1
                .iter()
                .map(|(lo, hi)| (*hi - *lo).num_seconds())
                .sum()
        };
        assert_eq!(secs(0), 5 * 60);
        assert_eq!(secs(1), 25 * 60);
        assert_eq!(secs(2), 30 * 60);
        assert_eq!(secs(3) + secs(4), 0);
    }

    #[test]
    fn tiers_divide_the_step() {
        assert_eq!(tier_for_step(Duration::minutes(1)), "opsdash.rollup_1m");
        assert_eq!(tier_for_step(Duration::minutes(30)), "opsdash.rollup_30m");
        assert_eq!(tier_for_step(Duration::minutes(10)), "opsdash.rollup_5m");
        assert_eq!(tier_for_step(Duration::hours(3)), "opsdash.rollup_1h");
        assert_eq!(tier_for_step(Duration::hours(12)), "opsdash.rollup_1h");
        assert_eq!(tier_for_step(Duration::days(1)), "opsdash.rollup_1d");
        assert_eq!(tier_for_step(Duration::seconds(90)), "opsdash.rollup_1m");
    }
}
