//! What alert rules measure. Each measure returns one value per label set (per service, per
//! actor...), over the rule's window ending now.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{PgPool, Row};

use crate::alerts::{percentile, RuleSpec};

/// One measured value and the labels that identify what it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn one(labels: &[(&str, String)], value: f64) -> Sample {
    Sample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        value,
    }
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
                let mut labels = vec![("service", svc)];
                if by_route {
                    labels.push(("route", rt));
                }
                Ok(v.map(|v| one(&labels, v)))
            })
            .filter_map(|r| r.transpose())
            .collect()
    };
    let out = match spec.metric.as_str() {
        "error_rate" | "request_rate" | "latency_p50" | "latency_p95" | "latency_p99" => {
            let value_sql = match spec.metric.as_str() {
                "error_rate" => {
                    "(100.0 * count(*) FILTER (WHERE status >= 500) / count(*))::float8".to_string()
                }
                "request_rate" => "(count(*) / $1)::float8".to_string(),
                m => {
                    let p = percentile(&m["latency_".len()..]).unwrap_or(0.95);
                    format!("percentile_cont({p}) WITHIN GROUP (ORDER BY duration_ms)")
                }
            };
            let rows = sqlx::query(&request_stat(&value_sql))
                .bind(window)
                .bind(service)
                .bind(route)
                .bind(by_route)
                .fetch_all(pool)
                .await?;
            grouped(rows)?
        }
        "latency_regression" => {
            let baseline = spec
                .scope
                .get("baseline")
                .and_then(|b| crate::alerts::config::duration(b).ok())
                .unwrap_or(Duration::from_secs(23 * 3600))
                .as_secs_f64();
            let p = percentile(
                spec.scope
                    .get("percentile")
                    .map(String::as_str)
                    .unwrap_or("p95"),
            )
            .unwrap_or(0.95);
            let rows = sqlx::query(&format!(
                "WITH cur AS (
                   SELECT service, percentile_cont({p}) WITHIN GROUP (ORDER BY duration_ms) AS v
                     FROM opsdash.request_log
                    WHERE ts > now() - make_interval(secs => $1) AND ts <= now()
                      AND direction = 'inbound' AND ($2 = '' OR service = $2) AND ($3 = '' OR route = $3)
                    GROUP BY service),
                 base AS (
                   SELECT service, percentile_cont({p}) WITHIN GROUP (ORDER BY duration_ms) AS v
                     FROM opsdash.request_log
                    WHERE ts > now() - make_interval(secs => $1 + $4)
                      AND ts <= now() - make_interval(secs => $1)
                      AND direction = 'inbound' AND ($2 = '' OR service = $2) AND ($3 = '' OR route = $3)
                    GROUP BY service)
                 SELECT cur.service, ''::text, (100.0 * (cur.v - base.v) / base.v)::float8
                   FROM cur JOIN base USING (service) WHERE base.v > 0"
            ))
            .bind(window)
            .bind(service)
            .bind(route)
            .bind(baseline)
            .fetch_all(pool)
            .await?;
            grouped(rows)?
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
            let rows: Vec<(String, f64)> = qb.build_query_as().fetch_all(pool).await?;
            rows.into_iter()
                .map(|(s, v)| one(&[("service", s)], v))
                .collect()
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
            rows.into_iter()
                .map(|(s, v)| one(&[("service", s)], v))
                .collect()
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
            rows.into_iter()
                .map(|(s, v)| one(&[("service", s)], v))
                .collect()
        }
        "slow_queries" => {
            let min_ms: f64 = spec
                .scope
                .get("min_duration_ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1000.0);
            let rows: Vec<(String, f64)> = sqlx::query_as(
                "SELECT service, count(*)::float8 FROM opsdash.query_log
                  WHERE ts > now() - make_interval(secs => $1) AND ts <= now()
                    AND duration_ms >= $2 AND ($3 = '' OR service = $3)
                  GROUP BY service",
            )
            .bind(window)
            .bind(min_ms)
            .bind(service)
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(s, v)| one(&[("service", s)], v))
                .collect()
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
