//! Row encoding and the write path: a `Batch` holds one time window of demo rows already encoded
//! for COPY (so the generator never builds per-row structs), plus the error groups and service
//! states those rows imply. `write` stores a batch in one transaction, so the error groups, the
//! coverage record and the NOTIFY can never disagree with the rows.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::db::copy::CopyBuf;
use crate::ingest::log_batch::LogBuf;
use crate::model::log_row::LogRowRef;
use crate::model::Level;
use crate::query::demo as q;
use crate::query::ingest::{self as ingest_q, ErrorGroupDelta};

/// Request rows carry the same columns as ingested ones.
pub use crate::ingest::writer::REQUEST_COLUMNS;
/// Log rows carry the writer's columns, search tokens included (`model::log_row`): the demo
/// encodes them with the writer's own encoder, so no demo row reaches the server's token
/// trigger.
pub use crate::model::log_row::LOG_COPY_COLUMNS;
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
    pub logs: LogBuf,
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
            logs: LogBuf::with_capacity(expected_requests * 60),
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
        self.logs.push_row(&LogRowRef {
            ts: r.ts,
            level: r.level,
            service: r.service,
            host: Some(r.host),
            message: r.message,
            trace_id: r.trace_id,
            span_id: r.span_id,
            request_id: r.request_id,
            user_id: r.user_id,
            route: r.route,
            method: r.method,
            status: r.status.and_then(|s| i16::try_from(s).ok()),
            duration_ms: r.duration_ms.map(round3),
            ip: r.ip,
            user_agent: r.user_agent,
            error_type: r.error_type,
            attrs: r.attrs,
            fingerprint: r.fingerprint,
            repeat_count: 1,
            last_seen: None,
        });
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
    batch.logs.send(&mut tx, "opsdash.log_event").await?;
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
    let services: Vec<q::ServiceCheck> = batch
        .services
        .iter()
        .map(|(name, s)| q::ServiceCheck {
            name,
            ts: s.ts,
            status: &s.status,
            response_ms: s.response_ms,
            detail: s.detail.as_deref(),
        })
        .collect();
    q::upsert_services(&mut tx, &services, super::traffic::HEALTH_INTERVAL_S as i32).await?;
    let groups: Vec<ErrorGroupDelta> = batch
        .errors
        .iter()
        .map(|(fp, e)| ErrorGroupDelta {
            fingerprint: fp.clone(),
            service: e.service.clone(),
            error_type: Some(e.error_type.clone()),
            sample_message: e.sample_message.clone(),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            count: e.count,
        })
        .collect();
    ingest_q::upsert_error_groups(&mut tx, &groups).await?;
    let users: Vec<(String, String)> = batch
        .errors
        .iter()
        .flat_map(|(fp, e)| e.users.iter().map(move |u| (fp.clone(), u.clone())))
        .collect();
    ingest_q::add_error_group_users(&mut tx, &users).await?;
    let requests = batch.inbound_requests as i64;
    let id = match coverage {
        CoverageWrite::New { kind } => {
            q::add_coverage(&mut tx, kind, batch.from, batch.to, requests).await?
        }
        CoverageWrite::Extend { id } => {
            q::extend_coverage(&mut tx, id, batch.to, requests).await?;
            id
        }
    };
    if notify && !batch.logs.is_empty() {
        // One NOTIFY per batch (it takes a cluster-wide lock at commit), sent with the rows.
        ingest_q::notify_logs(&mut tx, &batch.logs.rows().to_string()).await?;
    }
    tx.commit().await.context("committing a demo batch")?;
    Ok(id)
}
