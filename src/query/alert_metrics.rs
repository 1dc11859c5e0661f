//! What alert rules measure. Each measure returns one value per label set (per service, per
//! actor...), over the rule's window ending now.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, DurationRound, Utc};
use sqlx::{PgPool, Row};

use crate::model::histogram::BUCKETS;
use crate::model::rule::{duration, percentile, RuleSpec};
use crate::model::Histogram;
use crate::query::perf;

/// One measured value and the labels that identify what it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// How many requests the value was computed from, for measures that are a ratio of
    /// requests (`error_rate`), so a rule can ask for a minimum volume.
    pub volume: Option<i64>,
}

fn one(labels: &[(&str, String)], value: f64) -> Sample {
    Sample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        value,
        volume: None,
    }
}

/// One sample per service from `(service, value)` rows.
fn per_service(rows: Vec<(String, f64)>) -> Vec<Sample> {
    rows.into_iter()
        .map(|(s, v)| one(&[("service", s)], v))
        .collect()
}

fn scope<'a>(spec: &'a RuleSpec, key: &str) -> &'a str {
    spec.scope.get(key).map(String::as_str).unwrap_or("")
}

/// Measures a rule. `sql_timeout` bounds an operator's own query.
pub async fn measure(pool: &PgPool, spec: &RuleSpec, sql_timeout: Duration) -> Result<Vec<Sample>> {
    let window = spec.window_s.max(1) as f64;
    let service = scope(spec, "service");
    let route = scope(spec, "route");
    let by_route = scope(spec, "by") == "route";
    let request_stat = |value_sql: &str| {
        format!(
            "SELECT service, CASE WHEN $4 THEN route ELSE '' END AS route, {value_sql} AS v
                    , count(*) AS n
               FROM opsdash.request_log
              WHERE ts > now() - make_interval(secs => $1) AND ts <= now()
                AND direction = 'inbound'
                AND ($2 = '' OR service = $2) AND ($3 = '' OR route = $3)
              GROUP BY 1, 2 HAVING count(*) > 0"
        )
    };
    let grouped = |rows: Vec<sqlx::postgres::PgRow>| -> Result<Vec<Sample>> {
        rows.into_iter()
            .map(|r| {
                let svc: String = r.try_get(0)?;
                let rt: String = r.try_get(1)?;
                let v: Option<f64> = r.try_get(2)?;
                let n: i64 = r.try_get(3)?;
                let mut labels = vec![("service", svc)];
                if by_route {
                    labels.push(("route", rt));
                }
                Ok(v.map(|v| Sample {
                    volume: Some(n),
                    ..one(&labels, v)
                }))
            })
            .filter_map(|r| r.transpose())
            .collect()
    };
    let out = match spec.metric.as_str() {
        "error_rate" | "request_rate" => {
            let value_sql = match spec.metric.as_str() {
                "error_rate" => {
                    "(100.0 * count(*) FILTER (WHERE status >= 500) / count(*))::float8"
                }
                _ => "(count(*) / $1)::float8",
            };
            let rows = sqlx::query(&request_stat(value_sql))
                .bind(window)
                .bind(service)
                .bind(route)
                .bind(by_route)
                .fetch_all(pool)
                .await?;
            grouped(rows)?
        }
        "latency_p50" | "latency_p95" | "latency_p99" => {
            let q = percentile(&spec.metric["latency_".len()..]).unwrap_or(0.95);
            let now = db_now(pool).await?;
            let from = now - secs(window);
            latency_histograms(pool, from, now, service, route, by_route)
                .await?
                .into_iter()
                .filter_map(|((svc, rt), (h, max))| {
                    let mut labels = vec![("service", svc)];
                    if by_route {
                        labels.push(("route", rt));
                    }
                    Some(one(&labels, h.percentile_clamped(q, max)?))
                })
                .collect()
        }
        "latency_regression" => {
            let baseline = spec
                .scope
                .get("baseline")
                .and_then(|b| duration(b).ok())
                .unwrap_or(Duration::from_secs(23 * 3600))
                .as_secs_f64();
            let q = percentile(
                spec.scope
                    .get("percentile")
                    .map(String::as_str)
                    .unwrap_or("p95"),
            )
            .unwrap_or(0.95);
            let now = db_now(pool).await?;
            let split = now - secs(window);
            let cur = latency_histograms(pool, split, now, service, route, false).await?;
            let base =
                latency_histograms(pool, split - secs(baseline), split, service, route, false)
                    .await?;
            cur.into_iter()
                .filter_map(|((svc, _), (h, max))| {
                    let (bh, bmax) = base.get(&(svc.clone(), String::new()))?;
                    let c = h.percentile_clamped(q, max)?;
                    let b = bh.percentile_clamped(q, *bmax).filter(|b| *b > 0.0)?;
                    Some(one(&[("service", svc)], 100.0 * (c - b) / b))
                })
                .collect()
        }
        "log_count" => {
            // The Logs tab's filter language, compiled to bound parameters by the same code, so
            // a rule counts exactly the lines an operator sees with that filter.
            let f = crate::filter::parse(spec.filter.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("filter of rule {}: {e}", spec.name))?;
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT service, sum(repeat_count)::float8 FROM opsdash.log_event \
                 WHERE ts > now() - make_interval(secs => ",
            );
            qb.push_bind(window);
            qb.push(") AND ts <= now()");
            if !service.is_empty() {
                qb.push(" AND service = ");
                qb.push_bind(service.to_string());
            }
            qb.push(" AND (");
            f.push_conditions(&mut qb);
            qb.push(") GROUP BY service");
            // A `re:` filter gets the same time budget as in the Logs tab: a pathological
            // pattern fails this rule's evaluation with a timeout instead of holding the worker.
            let mut tx = pool.begin().await?;
            crate::query::history::apply_budget(&mut tx, &f).await?;
            let rows: Vec<(String, f64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            per_service(rows)
        }
        "error_groups" => {
            let rows: Vec<(String, f64)> = sqlx::query_as(
                "SELECT service, count(*)::float8 FROM opsdash.error_group
                  WHERE status <> 'ignored' AND ($2 = '' OR service = $2)
                    AND (first_seen > now() - make_interval(secs => $1)
                         OR (regressed AND last_seen > now() - make_interval(secs => $1)))
                  GROUP BY service",
            )
            .bind(window)
            .bind(service)
            .fetch_all(pool)
            .await?;
            per_service(rows)
        }
        "service_status" => {
            let rows: Vec<(String, f64)> = sqlx::query_as(
                "SELECT name, CASE status WHEN 'healthy' THEN 0 WHEN 'degraded' THEN 1 ELSE 2 END::float8
                   FROM opsdash.service
                  WHERE status <> 'unknown' AND ($1 = '' OR name = $1)",
            )
            .bind(service)
            .fetch_all(pool)
            .await?;
            per_service(rows)
        }
        "slow_queries" => {
            let min_ms: f64 = spec
                .scope
                .get("min_duration_ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1000.0);
            let rows: Vec<(String, f64)> = sqlx::query_as(
                "SELECT service, sum(calls)::float8 FROM opsdash.query_log
                  WHERE ts > now() - make_interval(secs => $1) AND ts <= now()
                    AND duration_ms >= $2 AND ($3 = '' OR service = $3)
                  GROUP BY service",
            )
            .bind(window)
            .bind(min_ms)
            .bind(service)
            .fetch_all(pool)
            .await?;
            per_service(rows)
        }
        "audit_events" => {
            let by = scope(spec, "by");
            let action = match scope(spec, "action") {
                "" => "%",
                a => a,
            };
            let rows: Vec<(String, f64)> = sqlx::query_as(
                "SELECT CASE $5 WHEN 'actor' THEN actor WHEN 'ip' THEN coalesce(ip, '') ELSE '' END,
                        count(*)::float8
                   FROM opsdash.audit_event
                  WHERE ts > now() - make_interval(secs => $1) AND ts <= now()
                    AND action LIKE $2 AND ($3 = '' OR outcome = $3)
                    AND ($4 = '' OR resource_type = $4)
                  GROUP BY 1",
            )
            .bind(window)
            .bind(action)
            .bind(scope(spec, "outcome"))
            .bind(scope(spec, "resource_type"))
            .bind(by)
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(k, v)| match by {
                    "" => one(&[], v),
                    b => one(&[(b, k)], v),
                })
                .collect()
        }
        "db_connections" => {
            let v: f64 = sqlx::query_scalar(
                "SELECT (100.0 * (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
                         / current_setting('max_connections')::float8)::float8",
            )
            .fetch_one(pool)
            .await?;
            vec![one(&[], v)]
        }
        "sql" => {
            let q = spec.query.as_deref().unwrap_or("");
            operator_sql(pool, q, sql_timeout)
                .await?
                .map(|v| vec![one(&[], v)])
                .unwrap_or_default()
        }
        other => anyhow::bail!("unknown measure {other:?}"),
    };
    Ok(out)
}

fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s * 1000.0).round() as i64)
}

async fn db_now(pool: &PgPool) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// Latency histogram (and largest value) of inbound requests in `(from, to]` per service and,
/// with `by_route`, per path; `service` and `route` (a path) narrow it when not empty.
///
/// The whole minutes the rollup job has finished come from the rollups (a 23-hour baseline is
/// ~30 rows per endpoint instead of every request); the minutes it has not reached yet, and the
/// partial minutes at both ends, from raw rows bucketed on the server. The rollups are taken as
/// finished up to the minute before the one their last run started in; a row landing later than
/// that is counted once the job has re-rolled its minute. Percentiles from the merged histogram
/// are within 2% of the exact nearest rank.
pub async fn latency_histograms(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    service: &str,
    route: &str,
    by_route: bool,
) -> Result<BTreeMap<(String, String), (Histogram, f64)>> {
    let rolled_until: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT date_bin('1 minute', updated_at, timestamptz '1970-01-01 00:00:00+00') - interval '1 minute'
           FROM opsdash.rollup_state WHERE job = $1",
    )
    .bind(crate::query::rollup::JOB_NAME)
    .fetch_optional(pool)
    .await?;
    let minute = chrono::Duration::minutes(1);
    let first_whole = from
        .duration_trunc(minute)
        .map(|m| if m < from { m + minute } else { m })
        .unwrap_or(from);
    let last_whole = to.duration_trunc(minute).unwrap_or(to);
    // `[r_lo, r_hi)` from the rollups; raw rows for `(from, r_lo)` and `[r_hi, to]`.
    let (r_lo, r_hi) = match rolled_until {
        Some(until) if first_whole < last_whole.min(until) => (first_whole, last_whole.min(until)),
        _ => (to, to),
    };
    let mut out: BTreeMap<(String, String), (Vec<i64>, f64)> = BTreeMap::new();
    let label_route = |route: &str| {
        if by_route {
            route.to_string()
        } else {
            String::new()
        }
    };
    if r_lo < r_hi {
        let (rows, _) = perf::window_rows(pool, r_lo, r_hi, service).await?;
        for r in rows {
            let (_, path) = r.key.method_and_path();
            if r.key.direction != "inbound" || (!route.is_empty() && path != route) {
                continue;
            }
            let e = out
                .entry((r.key.service.clone(), label_route(path)))
                .or_insert_with(|| (vec![0; BUCKETS], f64::NEG_INFINITY));
            for (c, n) in e.0.iter_mut().zip(&r.hist) {
                *c += i64::from(*n);
            }
            e.1 = e.1.max(r.dur_max);
        }
    }
    let raw: Vec<(String, String, i32, i64, f64)> = sqlx::query_as(
        "SELECT service, CASE WHEN $5 THEN route ELSE '' END, opsdash.latency_bucket(duration_ms),
                count(*), max(duration_ms)
           FROM opsdash.request_log
          WHERE direction = 'inbound' AND ($3 = '' OR service = $3) AND ($4 = '' OR route = $4)
            AND ((ts > $1 AND ts < $6) OR (ts >= $7 AND ts <= $2))
          GROUP BY 1, 2, 3",
    )
    .bind(from)
    .bind(to)
    .bind(service)
    .bind(route)
    .bind(by_route)
    .bind(r_lo)
    .bind(r_hi)
    .fetch_all(pool)
    .await?;
    for (svc, rt, b, n, max) in raw {
        let e = out
            .entry((svc, rt))
            .or_insert_with(|| (vec![0; BUCKETS], f64::NEG_INFINITY));
        if let Some(c) = e.0.get_mut(b.clamp(0, BUCKETS as i32 - 1) as usize) {
            *c += n;
        }
        e.1 = e.1.max(max);
    }
    Ok(out
        .into_iter()
        .filter(|(_, (c, _))| c.iter().any(|n| *n > 0))
        .map(|(k, (c, max))| (k, (Histogram::from_counts(&c), max)))
        .collect())
}

/// Runs an operator's query, read-only and under a statement timeout, and takes the first
/// column of the first row as the value.
pub async fn operator_sql(pool: &PgPool, query: &str, timeout: Duration) -> Result<Option<f64>> {
    let query = query.trim().trim_end_matches(';');
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    ))
    .execute(&mut *tx)
    .await?;
    // The operator's SQL is the rule itself (written by whoever can edit the config or run the
    // CLI); it is confined to a read-only transaction with a timeout.
    let v: Option<Option<f64>> = sqlx::query_scalar(&format!(
        "SELECT (q.v)::float8 FROM ({query}) AS q(v) LIMIT 1"
    ))
    .fetch_optional(&mut *tx)
    .await
    .context("running the rule's query")?;
    tx.rollback().await?;
    Ok(v.flatten())
}
