//! Health queries: checked services with their uptime, integrations (outbound calls), the
//! database itself (as pg_activity shows it, or as much of it as a role without pg_monitor
//! may see), worker jobs; and the writes of the health-check
//! job (one `health_check` row per check, the `service` row updated).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::config::ServiceCheck;
use crate::db::Db;

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub status: String,
    pub last_check: Option<DateTime<Utc>>,
    pub last_response_ms: Option<f64>,
    pub last_detail: Option<String>,
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// Response times of the most recent checks, oldest first (0 for failed checks).
    pub recent_ms: Vec<f64>,
    /// Statuses of the same checks.
    pub recent_status: Vec<String>,
}

/// Services, worst first. Uptime (view `opsdash.service_uptime`) counts healthy and degraded
/// checks as up.
pub async fn services(db: &Db) -> Result<Vec<ServiceRow>> {
    let rows = sqlx::query(
        "SELECT s.name, s.kind, s.target, s.status, s.last_check, s.last_response_ms, s.last_detail,
                u.up_24h, u.up_7d, u.up_30d,
                coalesce(r.ms, '{}'), coalesce(r.st, '{}')
           FROM opsdash.service s
           LEFT JOIN opsdash.service_uptime u ON u.service = s.name
           LEFT JOIN LATERAL (
             SELECT array_agg(coalesce(x.response_ms, 0) ORDER BY x.ts) AS ms,
                    array_agg(x.status ORDER BY x.ts) AS st
               FROM (SELECT h.ts, h.response_ms, h.status FROM opsdash.health_check h
                      WHERE h.service = s.name ORDER BY h.ts DESC LIMIT 60) x) r ON true
          ORDER BY CASE s.status WHEN 'down' THEN 0 WHEN 'degraded' THEN 1
                                 WHEN 'unknown' THEN 2 ELSE 3 END, s.name",
    )
    .fetch_all(&db.read)
    .await
    .context("services")?;
    rows.into_iter()
        .map(|r| {
            Ok(ServiceRow {
                name: r.try_get(0)?,
                kind: r.try_get(1)?,
                target: r.try_get(2)?,
                status: r.try_get(3)?,
                last_check: r.try_get(4)?,
                last_response_ms: r.try_get(5)?,
                last_detail: r.try_get(6)?,
                uptime_24h: r.try_get(7)?,
                uptime_7d: r.try_get(8)?,
                uptime_30d: r.try_get(9)?,
                recent_ms: r.try_get(10)?,
                recent_status: r.try_get(11)?,
            })
        })
        .collect()
}

/// An integration: outbound calls from our services to one external system.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationRow {
    pub name: String,
    pub calls_24h: i64,
    pub success_24h: f64,
    pub avg_ms_24h: f64,
    pub errors_1h: i64,
    pub last_call: Option<DateTime<Utc>>,
}

/// From the view `opsdash.integration_stats_24h`.
pub async fn integrations(db: &Db) -> Result<Vec<IntegrationRow>> {
    type Raw = (String, i64, f64, f64, i64, Option<DateTime<Utc>>);
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT integration, calls_24h, success_24h, avg_ms_24h, errors_1h, last_call
           FROM opsdash.integration_stats_24h
          ORDER BY errors_1h DESC, success_24h, integration
          LIMIT 100",
    )
    .fetch_all(&db.read)
    .await
    .context("integrations")?;
    Ok(rows
        .into_iter()
        .map(
            |(name, calls_24h, success_24h, avg_ms_24h, errors_1h, last_call)| IntegrationRow {
                name,
                calls_24h,
                success_24h,
                avg_ms_24h,
                errors_1h,
                last_call,
            },
        )
        .collect())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub pid: i32,
    pub user: String,
    pub state: String,
    pub wait: String,
    pub seconds: f64,
    pub query: String,
    /// Sessions this one waits for (blocked sessions only).
    pub blocked_by: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbHealth {
    pub version: String,
    pub uptime_s: f64,
    pub max_connections: i64,
    /// (state, count) for client backends.
    pub connections: Vec<(String, i64)>,
    pub cache_hit: Option<f64>,
    pub db_size: i64,
    pub in_recovery: bool,
    /// Lag when this server is a replica.
    pub replay_lag_s: Option<f64>,
    /// (replica name, state, replay lag seconds) when this server has replicas.
    pub replicas: Vec<(String, String, Option<f64>)>,
    pub longest: Vec<Activity>,
    pub blocked: Vec<Activity>,
    /// (table, total bytes including partitions and indexes)
    pub largest_tables: Vec<(String, i64)>,
    /// What the connection path cannot do (`db::topology`), e.g. no LISTEN through a pooler.
    pub pooler_note: Option<String>,
    /// What this role cannot see, when it lacks pg_monitor (other roles' sessions, replicas).
    pub limited: Option<String>,
}

impl DbHealth {
    pub fn connections_total(&self) -> i64 {
        self.connections.iter().map(|(_, n)| n).sum()
    }
}

pub async fn database(db: &Db) -> Result<DbHealth> {
    let r = sqlx::query(
        "SELECT split_part(version(), ' on ', 1),
                extract(epoch FROM now() - pg_postmaster_start_time())::float8,
                current_setting('max_connections')::int8,
                (SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit) + sum(blks_read), 0)
                   FROM pg_stat_database),
                pg_database_size(current_database()),
                pg_is_in_recovery(),
                CASE WHEN pg_is_in_recovery()
                     THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
                pg_has_role('pg_read_all_stats', 'USAGE')",
    )
    .fetch_one(&db.read)
    .await
    .context("database overview")?;
    let connections: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(state, 'unknown'), count(*)
           FROM pg_stat_activity WHERE backend_type = 'client backend'
          GROUP BY 1 ORDER BY 2 DESC",
    )
    .fetch_all(&db.read)
    .await
    .context("connections")?;
    let replicas: Vec<(String, String, Option<f64>)> = sqlx::query_as(
        "SELECT coalesce(nullif(application_name, ''), client_addr::text, 'replica'),
                coalesce(state, ''), extract(epoch FROM replay_lag)::float8
           FROM pg_stat_replication ORDER BY 1",
    )
    .fetch_all(&db.read)
    .await
    .context("replication")?;
    let activity = |rows: Vec<sqlx::postgres::PgRow>| -> Result<Vec<Activity>> {
        rows.into_iter()
            .map(|r| {
                Ok(Activity {
                    pid: r.try_get(0)?,
                    user: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    state: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    wait: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    seconds: r.try_get::<Option<f64>, _>(4)?.unwrap_or(0.0),
                    query: r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    blocked_by: r.try_get(6)?,
                })
            })
            .collect()
    };
    let longest = activity(
        sqlx::query(
            "SELECT pid, usename::text, state,
                    concat_ws(':', wait_event_type, wait_event),
                    extract(epoch FROM now() - coalesce(query_start, backend_start))::float8,
                    left(query, 300), pg_blocking_pids(pid)
               FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND state IS DISTINCT FROM 'idle'
                AND pid <> pg_backend_pid()
              ORDER BY query_start NULLS LAST
              LIMIT 10",
        )
        .fetch_all(&db.read)
        .await
        .context("longest queries")?,
    )?;
    let blocked = activity(
        sqlx::query(
            "SELECT pid, usename::text, state,
                    concat_ws(':', wait_event_type, wait_event),
                    extract(epoch FROM now() - coalesce(query_start, backend_start))::float8,
                    left(query, 300), pg_blocking_pids(pid)
               FROM pg_stat_activity
              WHERE cardinality(pg_blocking_pids(pid)) > 0
              ORDER BY query_start NULLS LAST
              LIMIT 20",
        )
        .fetch_all(&db.read)
        .await
        .context("blocked sessions")?,
    )?;
    let largest_tables: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.relname::text,
                (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::int8
                   FROM pg_partition_tree(c.oid) t)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'opsdash' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          ORDER BY 2 DESC, 1
          LIMIT 10",
    )
    .fetch_all(&db.read)
    .await
    .context("largest tables")?;
    Ok(DbHealth {
        version: r.try_get(0)?,
        uptime_s: r.try_get::<Option<f64>, _>(1)?.unwrap_or(0.0),
        max_connections: r.try_get(2)?,
        cache_hit: r.try_get(3)?,
        db_size: r.try_get(4)?,
        in_recovery: r.try_get(5)?,
        replay_lag_s: r.try_get(6)?,
        limited: (!r.try_get::<bool, _>(7)?)
            .then(|| "others' sessions hidden: grant pg_monitor to see them".to_string()),
        connections,
        replicas,
        longest,
        blocked,
        largest_tables,
        pooler_note: db.topology.note(),
    })
}

/// One worker job as its lease row shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub job: String,
    pub holder: Option<String>,
    pub live: bool,
    pub epoch: i64,
    pub last_run: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

pub async fn workers(db: &Db) -> Result<Vec<JobRow>> {
    let rows = sqlx::query(
        "SELECT job, holder, coalesce(expires_at > now(), false), epoch,
                last_run_at, next_run_at, last_ok_at, last_error
           FROM opsdash.worker_lease ORDER BY job",
    )
    .fetch_all(&db.read)
    .await
    .context("worker jobs")?;
    rows.into_iter()
        .map(|r| {
            Ok(JobRow {
                job: r.try_get(0)?,
                holder: r.try_get(1)?,
                live: r.try_get(2)?,
                epoch: r.try_get(3)?,
                last_run: r.try_get(4)?,
                next_run: r.try_get(5)?,
                last_ok: r.try_get(6)?,
                last_error: r.try_get(7)?,
            })
        })
        .collect()
}

/// Writes the configured services into `opsdash.service` (status and history kept).
pub async fn upsert_services(db: &Db, checks: &[ServiceCheck]) -> Result<()> {
    for c in checks {
        sqlx::query(
            "INSERT INTO opsdash.service (name, kind, target, expected_status, interval_s, timeout_ms, retries)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, target = EXCLUDED.target,
                 expected_status = EXCLUDED.expected_status, interval_s = EXCLUDED.interval_s,
                 timeout_ms = EXCLUDED.timeout_ms, retries = EXCLUDED.retries, updated_at = now()
             WHERE (opsdash.service.kind, opsdash.service.target, opsdash.service.expected_status,
                    opsdash.service.interval_s, opsdash.service.timeout_ms, opsdash.service.retries)
                   IS DISTINCT FROM
                   (EXCLUDED.kind, EXCLUDED.target, EXCLUDED.expected_status,
                    EXCLUDED.interval_s, EXCLUDED.timeout_ms, EXCLUDED.retries)",
        )
        .bind(&c.name)
        .bind(&c.kind)
        .bind(crate::config::redact_url(&c.target))
        .bind(c.expected_status as i32)
        .bind(c.interval_s.min(i32::MAX as u64) as i32)
        .bind(c.timeout_ms.min(i32::MAX as u64) as i32)
        .bind(c.retries.min(i32::MAX as u32) as i32)
        .execute(&db.write)
        .await
        .with_context(|| format!("registering service {}", c.name))?;
    }
    Ok(())
}

/// Names of services whose next check is due (never checked, or last check older than their
/// interval).
pub async fn due_services(db: &Db, names: &[String]) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM opsdash.service
          WHERE name = ANY($1)
            AND (last_check IS NULL OR last_check + make_interval(secs => interval_s) <= now())",
    )
    .bind(names)
    .fetch_all(&db.write)
    .await
    .context("services due")?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// Stores one check result and updates the service row, in one transaction.
pub async fn record_check(
    db: &Db,
    service: &str,
    status: &str,
    response_ms: Option<f64>,
    detail: &str,
) -> Result<()> {
    let mut tx = db.write.begin().await?;
    sqlx::query(
        "INSERT INTO opsdash.health_check (service, status, response_ms, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(service)
    .bind(status)
    .bind(response_ms)
    .bind(detail)
    .execute(&mut *tx)
    .await
    .context("storing a health check")?;
    sqlx::query(
        "UPDATE opsdash.service SET status = $2, last_check = now(), last_response_ms = $3,
                last_detail = $4, updated_at = now()
          WHERE name = $1",
    )
    .bind(service)
    .bind(status)
    .bind(response_ms)
    .bind(detail)
    .execute(&mut *tx)
    .await
    .context("updating a service")?;
    tx.commit().await?;
    Ok(())
}
