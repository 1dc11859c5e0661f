//! Row encoding and the write path: a `Batch` holds one time window of demo rows already encoded
//! for COPY (so the generator never builds per-row structs), plus the error groups and service
//! states those rows imply. `write` stores a batch in one transaction, so the error groups, the
//! coverage record and the NOTIFY can never disagree with the rows.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::db::copy::CopyBuf;
use crate::model::Level;

pub const REQUEST_COLUMNS: &[&str] = &[
    "ts",
    "service",
    "method",
    "route",
    "status",
    "duration_ms",
    "bytes",
    "user_id",
    "trace_id",
    "request_id",
    "ip",
    "user_agent",
    "error_code",
    "direction",
    "integration",
];
pub const LOG_COLUMNS: &[&str] = &[
    "ts",
    "level",
    "service",
    "host",
    "message",
    "trace_id",
    "span_id",
    "request_id",
    "user_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "ip",
    "user_agent",
    "error_type",
    "attrs",
    "fingerprint",
];
pub const QUERY_COLUMNS: &[&str] = &[
    "ts",
    "service",
    "database",
    "query",
    "fingerprint",
    "duration_ms",
    "rows",
    "trace_id",
];
pub const AUDIT_COLUMNS: &[&str] = &[
    "ts",
    "actor",
    "actor_role",
    "action",
    "resource_type",
    "resource_id",
    "before",
    "after",
    "changes",
    "outcome",
    "ip",
    "session_id",
    "request_id",
    "trace_id",
    "host",
    "source",
];
pub const HEALTH_COLUMNS: &[&str] = &["ts", "service", "status", "response_ms", "detail"];

pub struct RequestRow<'a> {
    pub ts: DateTime<Utc>,
    pub service: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub bytes: Option<i64>,
    pub user_id: Option<&'a str>,
    pub trace_id: &'a str,
    pub request_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub error_code: Option<&'a str>,
    /// `None`: inbound; `Some(integration)`: an outbound call to it.
    pub integration: Option<&'a str>,
}

pub struct LogRow<'a> {
    pub ts: DateTime<Utc>,
    pub level: Level,
    pub service: &'a str,
    pub host: &'a str,
    pub message: &'a str,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub route: Option<&'a str>,
    pub method: Option<&'a str>,
    pub status: Option<u16>,
    pub duration_ms: Option<f64>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub error_type: Option<&'a str>,
    pub attrs: Option<&'a serde_json::Value>,
    /// Set on errors; the row is then counted in its `error_group`.
    pub fingerprint: Option<&'a str>,
}

pub struct QueryRow<'a> {
    pub ts: DateTime<Utc>,
    pub service: &'a str,
    pub database: &'a str,
    pub query: &'a str,
    pub fingerprint: &'a str,
    pub duration_ms: f64,
    pub rows: i64,
    pub trace_id: &'a str,
}

pub struct AuditRow<'a> {
    pub ts: DateTime<Utc>,
    pub actor: &'a str,
    pub actor_role: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub before: Option<&'a serde_json::Value>,
    pub after: Option<&'a serde_json::Value>,
    pub changes: Option<&'a serde_json::Value>,
    pub outcome: &'a str,
    pub ip: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub host: Option<&'a str>,
}

pub struct HealthRow<'a> {
    pub ts: DateTime<Utc>,
    pub service: &'a str,
    /// healthy, degraded or down
    pub status: &'a str,
    pub response_ms: Option<f64>,
    pub detail: Option<&'a str>,
}

/// What the rows of a batch add to one error group.
#[derive(Debug, Clone)]
pub struct ErrorAgg {
    pub service: String,
    pub error_type: String,
    pub sample_message: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    pub users: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct ServiceState {
    pub ts: DateTime<Utc>,
    pub status: String,
    pub response_ms: Option<f64>,
    pub detail: Option<String>,
}

/// Row counts of a batch, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub requests: u64,
    pub logs: u64,
    pub queries: u64,
    pub audits: u64,
    pub health: u64,
}

impl RowCounts {
    pub fn total(&self) -> u64 {
        self.requests + self.logs + self.queries + self.audits + self.health
    }

    pub fn add(&mut self, o: &RowCounts) {
        self.requests += o.requests;
        self.logs += o.logs;
        self.queries += o.queries;
        self.audits += o.audits;
        self.health += o.health;
    }
}

/// One window `[from, to)` of generated rows.
pub struct Batch {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub requests: CopyBuf,
    pub logs: CopyBuf,
    pub queries: CopyBuf,
    pub audits: CopyBuf,
    pub health: CopyBuf,
    /// Inbound requests only (what the rate counts).
    pub inbound_requests: u64,
    pub errors: BTreeMap<String, ErrorAgg>,
    pub services: BTreeMap<String, ServiceState>,
}

impl Batch {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, expected_requests: usize) -> Batch {
        Batch {
            from,
            to,
            requests: CopyBuf::with_capacity(expected_requests * 200),
            logs: CopyBuf::with_capacity(expected_requests * 60),
            queries: CopyBuf::with_capacity(expected_requests * 60),
            audits: CopyBuf::with_capacity(expected_requests * 20),
            health: CopyBuf::default(),
            inbound_requests: 0,
            errors: BTreeMap::new(),
            services: BTreeMap::new(),
        }
    }

    pub fn counts(&self) -> RowCounts {
        RowCounts {
            requests: self.requests.rows() as u64,
            logs: self.logs.rows() as u64,
            queries: self.queries.rows() as u64,
            audits: self.audits.rows() as u64,
            health: self.health.rows() as u64,
        }
    }

    pub fn push_request(&mut self, r: &RequestRow) {
        let b = &mut self.requests;
        b.ts(r.ts);
        b.text(r.service);
        b.text(r.method);
        b.text(r.route);
        b.plain(r.status);
        b.plain(round3(r.duration_ms));
        b.opt_plain(r.bytes);
        b.opt_text(r.user_id);
        b.text(r.trace_id);
        b.opt_text(r.request_id);
        b.opt_text(r.ip);
        b.opt_text(r.user_agent);
        b.opt_text(r.error_code);
        b.text(if r.integration.is_some() {
            "outbound"
        } else {
            "inbound"
        });
        b.opt_text(r.integration);
        b.end_row();
        if r.integration.is_none() {
            self.inbound_requests += 1;
        }
    }

    pub fn push_log(&mut self, r: &LogRow) {
        let b = &mut self.logs;
        b.ts(r.ts);
        b.plain(r.level.as_i16());
        b.text(r.service);
        b.text(r.host);
        b.text(r.message);
        b.opt_text(r.trace_id);
        b.opt_text(r.span_id);
        b.opt_text(r.request_id);
        b.opt_text(r.user_id);
        b.opt_text(r.route);
        b.opt_text(r.method);
        b.opt_plain(r.status);
        b.opt_plain(r.duration_ms.map(round3));
        b.opt_text(r.ip);
        b.opt_text(r.user_agent);
        b.opt_text(r.error_type);
        match r.attrs {
            Some(v) => b.json(v),
            None => b.null(),
        }
        b.opt_text(r.fingerprint);
        b.end_row();
        if let Some(fp) = r.fingerprint {
            let agg = self
                .errors
                .entry(fp.to_string())
                .or_insert_with(|| ErrorAgg {
                    service: r.service.to_string(),
                    error_type: r.error_type.unwrap_or("").to_string(),
                    sample_message: r.message.to_string(),
                    first_seen: r.ts,
                    last_seen: r.ts,
                    count: 0,
                    users: BTreeSet::new(),
                });
            agg.count += 1;
            agg.first_seen = agg.first_seen.min(r.ts);
            agg.last_seen = agg.last_seen.max(r.ts);
            if let Some(u) = r.user_id {
                agg.users.insert(u.to_string());
            }
        }
    }

    pub fn push_query(&mut self, r: &QueryRow) {
        let b = &mut self.queries;
        b.ts(r.ts);
        b.text(r.service);
        b.text(r.database);
        b.text(r.query);
        b.text(r.fingerprint);
        b.plain(round3(r.duration_ms));
        b.plain(r.rows);
        b.text(r.trace_id);
        b.end_row();
    }

    pub fn push_audit(&mut self, r: &AuditRow) {
        let b = &mut self.audits;
        b.ts(r.ts);
        b.text(r.actor);
        b.opt_text(r.actor_role);
        b.text(r.action);
        b.opt_text(r.resource_type);
        b.opt_text(r.resource_id);
        for v in [r.before, r.after, r.changes] {
            match v {
                Some(v) => b.json(v),
                None => b.null(),
            }
        }
        b.text(r.outcome);
        b.opt_text(r.ip);
        b.opt_text(r.session_id);
        b.opt_text(r.request_id);
        b.opt_text(r.trace_id);
        b.opt_text(r.host);
        b.text("app");
        b.end_row();
    }

    pub fn push_health(&mut self, r: &HealthRow) {
        let b = &mut self.health;
        b.ts(r.ts);
        b.text(r.service);
        b.text(r.status);
        b.opt_plain(r.response_ms.map(round3));
        b.opt_text(r.detail);
        b.end_row();
        let newer = self.services.get(r.service).is_none_or(|s| s.ts <= r.ts);
        if newer {
            self.services.insert(
                r.service.to_string(),
                ServiceState {
                    ts: r.ts,
                    status: r.status.to_string(),
                    response_ms: r.response_ms.map(round3),
                    detail: r.detail.map(str::to_string),
                },
            );
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// How a batch is recorded in `opsdash.demo_coverage` (what the demo has already written, so a
/// second run does not write the same window twice).
#[derive(Debug, Clone, Copy)]
pub enum CoverageWrite {
    /// A new coverage row (a backfill slice, or the first batch of a live session).
    New { kind: &'static str },
    /// Extend the live session's row to the batch's end.
    Extend { id: i64 },
}

/// Stores `batch` in one transaction: COPY into the partitioned parents, the error groups, the
/// services' latest state, the coverage record, and (with `notify`) one NOTIFY on
/// `db::LOGS_CHANNEL` when log rows were written. Returns the coverage row's id.
pub async fn write(
    conn: &mut PgConnection,
    batch: &Batch,
    coverage: CoverageWrite,
    notify: bool,
) -> Result<i64> {
    let mut tx = conn.begin().await.context("starting a demo batch")?;
    batch
        .requests
        .send(&mut tx, "opsdash.request_log", REQUEST_COLUMNS)
        .await?;
    batch
        .logs
        .send(&mut tx, "opsdash.log_event", LOG_COLUMNS)
        .await?;
    batch
        .queries
        .send(&mut tx, "opsdash.query_log", QUERY_COLUMNS)
        .await?;
    batch
        .audits
        .send(&mut tx, "opsdash.audit_event", AUDIT_COLUMNS)
        .await?;
    batch
        .health
        .send(&mut tx, "opsdash.health_check", HEALTH_COLUMNS)
        .await?;
    // Rows of shared tables last and in key order: two backfill connections touching the same
    // error groups then wait on each other briefly instead of deadlocking.
    upsert_services(&mut tx, &batch.services).await?;
    upsert_error_groups(&mut tx, &batch.errors).await?;
    let id = match coverage {
        CoverageWrite::New { kind } => sqlx::query_scalar(
            "INSERT INTO opsdash.demo_coverage (kind, covered_from, covered_to, requests) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind)
        .bind(batch.from)
        .bind(batch.to)
        .bind(batch.inbound_requests as i64)
        .fetch_one(&mut *tx)
        .await
        .context("recording demo coverage")?,
        CoverageWrite::Extend { id } => {
            sqlx::query(
                "UPDATE opsdash.demo_coverage SET covered_to = greatest(covered_to, $2), \
                 requests = requests + $3, updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(batch.to)
            .bind(batch.inbound_requests as i64)
            .execute(&mut *tx)
            .await
            .context("recording demo coverage")?;
            id
        }
    };
    if notify && !batch.logs.is_empty() {
        // One NOTIFY per batch (it takes a cluster-wide lock at commit), sent with the rows.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::db::LOGS_CHANNEL)
            .bind(batch.logs.rows().to_string())
            .execute(&mut *tx)
            .await
            .context("notifying the live tail")?;
    }
    tx.commit().await.context("committing a demo batch")?;
    Ok(id)
}

async fn upsert_services(
    conn: &mut PgConnection,
    services: &BTreeMap<String, ServiceState>,
) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    let ts: Vec<DateTime<Utc>> = services.values().map(|s| s.ts).collect();
    let status: Vec<&str> = services.values().map(|s| s.status.as_str()).collect();
    let ms: Vec<Option<f64>> = services.values().map(|s| s.response_ms).collect();
    let detail: Vec<Option<&str>> = services.values().map(|s| s.detail.as_deref()).collect();
    sqlx::query(
        "INSERT INTO opsdash.service AS s \
             (name, kind, target, interval_s, status, last_check, last_response_ms, last_detail) \
         SELECT n, 'passive', 'opsdash demo', $6, st, t, ms, d \
           FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::float8[], $5::text[]) \
                AS u(n, t, st, ms, d) \
         ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, \
             last_check = EXCLUDED.last_check, last_response_ms = EXCLUDED.last_response_ms, \
             last_detail = EXCLUDED.last_detail, updated_at = now() \
         WHERE s.last_check IS NULL OR s.last_check <= EXCLUDED.last_check",
    )
    .bind(&names)
    .bind(&ts)
    .bind(&status)
    .bind(&ms)
    .bind(&detail)
    .bind(super::traffic::HEALTH_INTERVAL_S as i32)
    .execute(&mut *conn)
    .await
    .context("updating demo services")?;
    Ok(())
}

async fn upsert_error_groups(
    conn: &mut PgConnection,
    errors: &BTreeMap<String, ErrorAgg>,
) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let fps: Vec<&str> = errors.keys().map(String::as_str).collect();
    let service: Vec<&str> = errors.values().map(|e| e.service.as_str()).collect();
    let etype: Vec<&str> = errors.values().map(|e| e.error_type.as_str()).collect();
    let sample: Vec<&str> = errors.values().map(|e| e.sample_message.as_str()).collect();
    let first: Vec<DateTime<Utc>> = errors.values().map(|e| e.first_seen).collect();
    let last: Vec<DateTime<Utc>> = errors.values().map(|e| e.last_seen).collect();
    let count: Vec<i64> = errors.values().map(|e| e.count).collect();
    // A resolved group that sees new errors after it was resolved has regressed (as in Sentry).
    sqlx::query(
        "INSERT INTO opsdash.error_group AS g \
             (fingerprint, service, error_type, sample_message, first_seen, last_seen, count) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                              $5::timestamptz[], $6::timestamptz[], $7::int8[]) \
         ON CONFLICT (fingerprint) DO UPDATE SET \
             first_seen = least(g.first_seen, EXCLUDED.first_seen), \
             last_seen = greatest(g.last_seen, EXCLUDED.last_seen), \
             count = g.count + EXCLUDED.count, \
             regressed = g.regressed OR (g.status = 'resolved' AND EXCLUDED.last_seen > g.resolved_at), \
             status = CASE WHEN g.status = 'resolved' AND EXCLUDED.last_seen > g.resolved_at \
                           THEN 'new' ELSE g.status END, \
             updated_at = now()",
    )
    .bind(&fps)
    .bind(&service)
    .bind(&etype)
    .bind(&sample)
    .bind(&first)
    .bind(&last)
    .bind(&count)
    .execute(&mut *conn)
    .await
    .context("updating error groups")?;

    let mut user_fp = Vec::new();
    let mut user_id = Vec::new();
    for (fp, e) in errors {
        for u in &e.users {
            user_fp.push(fp.as_str());
            user_id.push(u.as_str());
        }
    }
    if !user_fp.is_empty() {
        sqlx::query(
            "INSERT INTO opsdash.error_group_user (fingerprint, user_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&user_fp)
        .bind(&user_id)
        .execute(&mut *conn)
        .await
        .context("recording affected users")?;
    }
    sqlx::query(
        "UPDATE opsdash.error_group g SET affected_users = \
             (SELECT count(*) FROM opsdash.error_group_user u WHERE u.fingerprint = g.fingerprint) \
         WHERE g.fingerprint = ANY($1)",
    )
    .bind(&fps)
    .execute(&mut *conn)
    .await
    .context("counting affected users")?;
    Ok(())
}
