//! The trace view: every log line, request, database query and audit event that carries one
//! trace id, in time order, with what a waterfall needs (start offset and duration).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TraceKind {
    Request,
    Query,
    Log,
    Audit,
}

impl TraceKind {
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Request => "request",
            TraceKind::Query => "query",
            TraceKind::Log => "log",
            TraceKind::Audit => "audit",
        }
    }

    fn parse(s: &str) -> TraceKind {
        match s {
            "request" => TraceKind::Request,
            "query" => TraceKind::Query,
            "audit" => TraceKind::Audit,
            _ => TraceKind::Log,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceItem {
    pub kind: TraceKind,
    /// Row id in its own table.
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub duration_ms: Option<f64>,
    pub service: String,
    /// Log level for log lines.
    pub level: Option<i16>,
    /// HTTP status for requests (and log lines that carry one).
    pub status: Option<i16>,
    /// Message, `METHOD route`, the normalized query, or `actor action resource`.
    pub summary: String,
}

/// Everything with `trace_id`, oldest first (at most `limit` rows).
pub async fn trace(pool: &PgPool, trace_id: &str, limit: i64) -> sqlx::Result<Vec<TraceItem>> {
    type Row = (
        String,
        i64,
        DateTime<Utc>,
        Option<f64>,
        String,
        Option<i16>,
        Option<i16>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM (
           SELECT 'request' AS kind, id, ts, duration_ms, service, NULL::smallint AS level,
                  status, method || ' ' || route AS summary
             FROM opsdash.request_log WHERE trace_id = $1
           UNION ALL
           SELECT 'query', id, ts, duration_ms, service, NULL, NULL, query
             FROM opsdash.query_log WHERE trace_id = $1
           UNION ALL
           SELECT 'log', id, ts, duration_ms, service, level, status, message
             FROM opsdash.log_event WHERE trace_id = $1
           UNION ALL
           SELECT 'audit', id, ts, NULL, actor, NULL, NULL,
                  concat_ws(' ', actor, action, resource_type, resource_id)
             FROM opsdash.audit_event WHERE trace_id = $1
         ) t
         ORDER BY ts, CASE kind WHEN 'request' THEN 0 WHEN 'query' THEN 1 WHEN 'log' THEN 2 ELSE 3 END, id
         LIMIT $2",
    )
    .bind(trace_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(kind, id, ts, duration_ms, service, level, status, summary)| TraceItem {
                kind: TraceKind::parse(&kind),
                id,
                ts,
                duration_ms,
                service,
                level,
                status,
                summary,
            },
        )
        .collect())
}

/// One bar of the waterfall, in milliseconds from the first item's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub offset_ms: f64,
    pub duration_ms: f64,
}

/// Bars for `items` and the total span they cover (ms). Items without a duration are points,
/// and so are log lines and audit events whatever duration they carry: they happened at one
/// moment (a log line's `duration_ms` is the request's, written beside it), and drawn as bars
/// they looked like spans as long as the request.
pub fn waterfall(items: &[TraceItem]) -> (Vec<Bar>, f64) {
    let Some(start) = items.iter().map(|i| i.ts).min() else {
        return (Vec::new(), 0.0);
    };
    let mut span: f64 = 0.0;
    let bars = items
        .iter()
        .map(|i| {
            let offset_ms = (i.ts - start).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
            let duration_ms = match i.kind {
                TraceKind::Request | TraceKind::Query => i.duration_ms.unwrap_or(0.0).max(0.0),
                TraceKind::Log | TraceKind::Audit => 0.0,
            };
            span = span.max(offset_ms + duration_ms);
            Bar {
                offset_ms,
                duration_ms,
            }
        })
        .collect();
    (bars, span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waterfall_offsets_from_the_first_item() {
        let t0 = Utc::now();
        let item = |ms: i64, d: Option<f64>| TraceItem {
            kind: TraceKind::Request,
            id: 0,
            ts: t0 + chrono::Duration::milliseconds(ms),
            duration_ms: d,
            service: String::new(),
            level: None,
            status: None,
            summary: String::new(),
        };
        let (bars, span) =
            waterfall(&[item(0, Some(120.0)), item(30, Some(20.0)), item(200, None)]);
        assert_eq!(
            bars[1],
            Bar {
                offset_ms: 30.0,
                duration_ms: 20.0
            }
        );
        assert_eq!(bars[2].duration_ms, 0.0);
        assert_eq!(span, 200.0);
        assert_eq!(waterfall(&[]).1, 0.0);
    }

    #[test]
    fn log_lines_are_points_even_with_a_duration() {
        let t0 = Utc::now();
        let item = |kind, ms: i64, d: Option<f64>| TraceItem {
            kind,
            id: 0,
            ts: t0 + chrono::Duration::milliseconds(ms),
            duration_ms: d,
            service: String::new(),
            level: None,
            status: None,
            summary: String::new(),
        };
        // A 1.8 s request and the log line written at its end with the request's duration.
        let (bars, span) = waterfall(&[
            item(TraceKind::Request, 0, Some(1800.0)),
            item(TraceKind::Log, 1790, Some(1800.0)),
            item(TraceKind::Query, 100, Some(250.0)),
        ]);
        assert_eq!(bars[1].duration_ms, 0.0);
        assert_eq!(bars[2].duration_ms, 250.0);
        assert_eq!(span, 1800.0);
    }
}
