//! The trace view: every log line, request, database query and audit event that carries one
//! trace id, in time order, with what a waterfall needs (start offset and duration).
//!
//! When the trace's spans were received (OTLP, `opsdash.span`), the view is the span tree
//! instead: each span under its parent (depth), children by start, and each log line under the
//! span it was written in. The request and query rows of such a trace are not listed: they are
//! those spans again. A span whose parent never arrived is shown as a root.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::spans::{self, SpanItem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TraceKind {
    Request,
    Query,
    Log,
    Audit,
    /// A span received over OTLP.
    Span,
}

impl TraceKind {
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Request => "request",
            TraceKind::Query => "query",
            TraceKind::Log => "log",
            TraceKind::Audit => "audit",
            TraceKind::Span => "span",
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
    /// Message, `METHOD route`, the normalized query, `actor action resource`, or a span's
    /// name.
    pub summary: String,
    /// Nesting under the trace's root spans (0 without spans).
    pub depth: u16,
    /// A span whose status is ERROR.
    pub failed: bool,
}

/// The trace: its span tree with log lines and audit events when spans were received, else
/// everything with `trace_id`, oldest first (at most `limit` rows).
pub async fn trace(pool: &PgPool, trace_id: &str, limit: i64) -> sqlx::Result<Vec<TraceItem>> {
    let spans = spans::for_trace(pool, trace_id, limit).await?;
    if !spans.is_empty() {
        let points = points(pool, trace_id, limit).await?;
        let mut items = span_tree(spans, points);
        items.truncate(usize::try_from(limit).unwrap_or(0));
        return Ok(items);
    }
    rows(pool, trace_id, limit).await
}

/// Everything with `trace_id` from the row tables, oldest first.
async fn rows(pool: &PgPool, trace_id: &str, limit: i64) -> sqlx::Result<Vec<TraceItem>> {
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
                depth: 0,
                failed: false,
            },
        )
        .collect())
}

/// A log line or audit event of a trace with spans, and the span it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub item: TraceItem,
    pub span_id: Option<String>,
}

/// The log lines (with their span) and audit events of a trace, oldest first.
async fn points(pool: &PgPool, trace_id: &str, limit: i64) -> sqlx::Result<Vec<Point>> {
    type Row = (
        String,
        i64,
        DateTime<Utc>,
        String,
        Option<i16>,
        Option<i16>,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM (
           SELECT 'log' AS kind, id, ts, service, level, status, message AS summary, span_id
             FROM opsdash.log_event WHERE trace_id = $1
           UNION ALL
           SELECT 'audit', id, ts, actor, NULL, NULL,
                  concat_ws(' ', actor, action, resource_type, resource_id), NULL
             FROM opsdash.audit_event WHERE trace_id = $1
         ) t
         ORDER BY ts, id
         LIMIT $2",
    )
    .bind(trace_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(kind, id, ts, service, level, status, summary, span_id)| Point {
                item: TraceItem {
                    kind: TraceKind::parse(&kind),
                    id,
                    ts,
                    duration_ms: None,
                    service,
                    level,
                    status,
                    summary,
                    depth: 0,
                    failed: false,
                },
                span_id,
            },
        )
        .collect())
}

/// Deeper nesting is drawn at this depth (a malformed trace must not indent off the screen).
pub const MAX_DEPTH: u16 = 16;

/// The spans as a tree in display order: each span followed by its children and its log lines,
/// by start time; spans whose parent is missing (or that sit in a parent cycle) are roots, and
/// points of no received span are top-level.
pub fn span_tree(spans: Vec<SpanItem>, points: Vec<Point>) -> Vec<TraceItem> {
    enum Node {
        Span(usize),
        Point(usize),
    }
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<Node>> = HashMap::new();
    let mut top: Vec<Node> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.as_deref().and_then(|p| ids.get(p)) {
            Some(&p) if p != i => children.entry(p).or_default().push(Node::Span(i)),
            _ => top.push(Node::Span(i)),
        }
    }
    for (i, p) in points.iter().enumerate() {
        match p.span_id.as_deref().and_then(|id| ids.get(id)) {
            Some(&s) => children.entry(s).or_default().push(Node::Point(i)),
            None => top.push(Node::Point(i)),
        }
    }
    let ts = |n: &Node| match n {
        Node::Span(i) => spans[*i].ts,
        Node::Point(i) => points[*i].item.ts,
    };
    // Spans first at equal times: a log line written as its span starts sits under it.
    let rank = |n: &Node| matches!(n, Node::Point(_));
    let order = |v: &mut Vec<Node>| v.sort_by(|a, b| ts(a).cmp(&ts(b)).then(rank(a).cmp(&rank(b))));
    order(&mut top);
    for v in children.values_mut() {
        order(v);
    }
    let mut out = Vec::with_capacity(spans.len() + points.len());
    let mut seen: HashSet<usize> = HashSet::new();
    let mut stack: Vec<(Node, u16)> = top.into_iter().rev().map(|n| (n, 0)).collect();
    loop {
        while let Some((node, depth)) = stack.pop() {
            match node {
                Node::Point(i) => {
                    let mut item = points[i].item.clone();
                    item.depth = depth;
                    out.push(item);
                }
                Node::Span(i) => {
                    if !seen.insert(i) {
                        continue;
                    }
                    let s = &spans[i];
                    out.push(TraceItem {
                        kind: TraceKind::Span,
                        id: 0,
                        ts: s.ts,
                        duration_ms: Some(s.duration_ms),
                        service: s.service.clone(),
                        level: None,
                        status: s.http_status,
                        summary: s.name.clone(),
                        depth,
                        failed: s.status == "error",
                    });
                    if let Some(kids) = children.remove(&i) {
                        let d = (depth + 1).min(MAX_DEPTH);
                        stack.extend(kids.into_iter().rev().map(|n| (n, d)));
                    }
                }
            }
        }
        // Spans only reachable through a parent cycle: shown as roots rather than lost.
        match (0..spans.len()).find(|i| !seen.contains(i)) {
            Some(i) => stack.push((Node::Span(i), 0)),
            None => break,
        }
    }
    out
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
                TraceKind::Request | TraceKind::Query | TraceKind::Span => {
                    i.duration_ms.unwrap_or(0.0).max(0.0)
                }
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
            depth: 0,
            failed: false,
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
            depth: 0,
            failed: false,
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

    fn span(id: &str, parent: Option<&str>, ms: i64, t0: DateTime<Utc>) -> SpanItem {
        SpanItem {
            ts: t0 + chrono::Duration::milliseconds(ms),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            name: id.into(),
            kind: "internal".into(),
            service: "api".into(),
            duration_ms: 10.0,
            status: if id == "db" { "error" } else { "unset" }.into(),
            http_status: None,
        }
    }

    #[test]
    fn spans_nest_under_their_parents_with_their_log_lines() {
        let t0 = Utc::now();
        let log = |span_id: Option<&str>, ms: i64, msg: &str| Point {
            item: TraceItem {
                kind: TraceKind::Log,
                id: 1,
                ts: t0 + chrono::Duration::milliseconds(ms),
                duration_ms: None,
                service: "api".into(),
                level: Some(2),
                status: None,
                summary: msg.into(),
                depth: 0,
                failed: false,
            },
            span_id: span_id.map(str::to_string),
        };
        let spans = vec![
            span("root", None, 0, t0),
            span("db", Some("root"), 30, t0),
            span("call", Some("root"), 5, t0),
            span("deep", Some("call"), 6, t0),
            // Parent never received: a root of its own, after the first by start.
            span("orphan", Some("gone"), 50, t0),
            // A parent cycle: still shown.
            span("a", Some("b"), 70, t0),
            span("b", Some("a"), 71, t0),
        ];
        let points = vec![
            log(Some("call"), 7, "in call"),
            log(Some("root"), 40, "root done"),
            log(None, 60, "no span"),
        ];
        let items = span_tree(spans, points);
        let shape: Vec<(&str, u16)> = items
            .iter()
            .map(|i| (i.summary.as_str(), i.depth))
            .collect();
        assert_eq!(
            shape,
            [
                ("root", 0),
                ("call", 1),
                ("deep", 2),
                ("in call", 2),
                ("db", 1),
                ("root done", 1),
                ("orphan", 0),
                ("no span", 0),
                ("a", 0),
                ("b", 1),
            ]
        );
        assert!(items[4].failed && !items[0].failed);
        assert_eq!(items[0].kind, TraceKind::Span);
        let (bars, span) = waterfall(&items);
        assert_eq!(bars[1].offset_ms, 5.0);
        assert_eq!(bars[1].duration_ms, 10.0);
        assert_eq!(span, 81.0);
    }
}
