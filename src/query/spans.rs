//! SQL of `opsdash.span`: spans received over OTLP, written once each (a retried export skips
//! what is stored), and read back per trace for the trace view's waterfall.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

/// One row of `opsdash.span`, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    /// Start of the span.
    pub ts: DateTime<Utc>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    pub service: String,
    pub duration_ms: f64,
    /// `unset`, `ok` or `error`.
    pub status: &'static str,
    pub status_message: Option<String>,
    pub attrs: Option<serde_json::Value>,
}

/// Partitions are made for days this near today; others stay in the DEFAULT partition (as
/// the ingest writer does: a span from year 1 must not create a partition for year 1).
const PARTITION_DAYS_BACK: i64 = 400;
const PARTITION_DAYS_AHEAD: i64 = 7;

async fn ensure_partitions(pool: &PgPool, spans: &[SpanRow]) {
    let today = Utc::now().date_naive();
    // Every request asks (one round trip, a catalog lookup when the day exists): a cache here
    // would go stale when the database behind the pool is replaced.
    let mut wanted: Vec<NaiveDate> = spans
        .iter()
        .map(|s| s.ts.date_naive())
        .filter(|d| {
            let off = (*d - today).num_days();
            (-PARTITION_DAYS_BACK..=PARTITION_DAYS_AHEAD).contains(&off)
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return;
    }
    // Not fatal: without the partition the rows land in the DEFAULT one, and the retention
    // job moves them out when it makes the day's partition.
    if let Err(e) = sqlx::query(
        "SELECT count(opsdash.ensure_partition('span', d)) FROM unnest($1::date[]) AS d",
    )
    .bind(&wanted)
    .execute(pool)
    .await
    {
        tracing::warn!("creating span partitions: {e}; spans go to the default partition");
    }
}

/// Stores the spans in one durable transaction; spans already stored (same trace, span and
/// start) are skipped. Returns how many were new.
pub async fn insert(pool: &PgPool, spans: &[SpanRow]) -> Result<u64> {
    if spans.is_empty() {
        return Ok(0);
    }
    ensure_partitions(pool, spans).await;
    let mut ts = Vec::with_capacity(spans.len());
    let mut trace = Vec::with_capacity(spans.len());
    let mut span = Vec::with_capacity(spans.len());
    let mut parent = Vec::with_capacity(spans.len());
    let mut name = Vec::with_capacity(spans.len());
    let mut kind = Vec::with_capacity(spans.len());
    let mut service = Vec::with_capacity(spans.len());
    let mut duration = Vec::with_capacity(spans.len());
    let mut status = Vec::with_capacity(spans.len());
    let mut message = Vec::with_capacity(spans.len());
    let mut attrs = Vec::with_capacity(spans.len());
    for s in spans {
        ts.push(s.ts);
        trace.push(s.trace_id.as_str());
        span.push(s.span_id.as_str());
        parent.push(s.parent_span_id.as_deref());
        name.push(s.name.as_str());
        kind.push(s.kind);
        service.push(s.service.as_str());
        duration.push(s.duration_ms);
        status.push(s.status);
        message.push(s.status_message.as_deref());
        attrs.push(s.attrs.as_ref().map(|a| a.to_string()));
    }
    let mut tx = pool
        .begin()
        .await
        .context("starting the spans' transaction")?;
    // 2xx only after a commit that survives a crash (the embedded cluster runs with
    // synchronous_commit off).
    super::ingest::durable_commit(&mut tx).await?;
    let done = sqlx::query(
        "INSERT INTO opsdash.span (ts, trace_id, span_id, parent_span_id, name, kind, service,
                                   duration_ms, status, status_message, attrs)
         SELECT ts, trace_id, span_id, parent_span_id, name, kind, service, duration_ms, status,
                status_message, attrs::jsonb
           FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                       $6::text[], $7::text[], $8::float8[], $9::text[], $10::text[], $11::text[])
             AS s(ts, trace_id, span_id, parent_span_id, name, kind, service, duration_ms,
                  status, status_message, attrs)
         ON CONFLICT DO NOTHING",
    )
    .bind(&ts)
    .bind(&trace)
    .bind(&span)
    .bind(&parent)
    .bind(&name)
    .bind(&kind)
    .bind(&service)
    .bind(&duration)
    .bind(&status)
    .bind(&message)
    .bind(&attrs)
    .execute(&mut *tx)
    .await
    .context("storing spans")?;
    tx.commit().await.context("committing spans")?;
    Ok(done.rows_affected())
}

/// A stored span, as the trace view reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanItem {
    pub ts: DateTime<Utc>,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub duration_ms: f64,
    pub status: String,
    /// `http.response.status_code` (older `http.status_code`) when the span has one.
    pub http_status: Option<i16>,
}

/// The spans of one trace, by start (at most `limit`).
pub async fn for_trace(pool: &PgPool, trace_id: &str, limit: i64) -> sqlx::Result<Vec<SpanItem>> {
    type Row = (
        DateTime<Utc>,
        String,
        Option<String>,
        String,
        String,
        String,
        f64,
        String,
        Option<i16>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT ts, span_id, parent_span_id, name, kind, service, duration_ms, status,
                CASE WHEN coalesce(attrs->>'http.response.status_code', attrs->>'http.status_code')
                          ~ '^[0-9]{1,3}$'
                     THEN coalesce(attrs->>'http.response.status_code',
                                   attrs->>'http.status_code')::smallint END
           FROM opsdash.span WHERE trace_id = $1
          ORDER BY ts, span_id
          LIMIT $2",
    )
    .bind(trace_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(ts, span_id, parent_span_id, name, kind, service, duration_ms, status, http)| {
                SpanItem {
                    ts,
                    span_id,
                    parent_span_id,
                    name,
                    kind,
                    service,
                    duration_ms,
                    status,
                    http_status: http,
                }
            },
        )
        .collect())
}
