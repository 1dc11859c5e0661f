//! `GET /metrics` in the Prometheus text format (version 0.0.4): what the receiver took per
//! route and source, how long requests took, how far the writer lags, and from the database the
//! outbox, the worker's jobs and the open alerts.
//!
//! Counters live in memory (reset when the process restarts, as Prometheus expects of a
//! `_total`); the database figures are read at each scrape with cheap queries
//! (`query::serve_metrics`), and a database that does not answer only leaves them out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::State;
use crate::query::serve_metrics as q;

tokio::task_local! {
    /// The route of the request being handled (its path pattern), for the sink's counters.
    static ROUTE: String;
}

/// The route of the request this task handles ("other" outside a request).
pub fn current_route() -> String {
    ROUTE
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "other".into())
}

/// Upper bounds of the request latency buckets, in seconds.
const BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Records of one route and source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Handed to the sink.
    pub received: u64,
    /// Committed (stored, or folded into an identical row).
    pub stored: u64,
    /// Unreadable: refused for good, the rest of their request stored.
    pub rejected: u64,
    /// Not stored because the database was away or busy (the client was told to retry).
    pub refused: u64,
}

#[derive(Debug, Clone, Default)]
struct Latency {
    /// Per bucket, not cumulative (summed when written).
    buckets: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

/// The receiver's in-memory counters.
#[derive(Debug, Default)]
pub struct Metrics {
    rows: Mutex<BTreeMap<(String, String), RowCounts>>,
    latency: Mutex<BTreeMap<String, Latency>>,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Changes the record counts of `route` and `source`.
    pub fn rows(&self, route: &str, source: &str, f: impl FnOnce(&mut RowCounts)) {
        let mut rows = lock(&self.rows);
        f(rows
            .entry((route.to_string(), source.to_string()))
            .or_default());
    }

    /// The record counts of `route` and `source` so far.
    pub fn row_counts(&self, route: &str, source: &str) -> RowCounts {
        lock(&self.rows)
            .get(&(route.to_string(), source.to_string()))
            .copied()
            .unwrap_or_default()
    }

    fn request(&self, route: &str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
        let mut latency = lock(&self.latency);
        let l = latency.entry(route.to_string()).or_default();
        let secs = took.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| secs <= *b) {
            l.buckets[i] += 1;
        }
        l.sum += secs;
        l.count += 1;
    }

    /// The in-memory part of the text format.
    fn render(&self, out: &mut String) {
        let rows = lock(&self.rows).clone();
        type Pick = fn(&RowCounts) -> u64;
        let kinds: [(&str, &str, Pick); 4] = [
            ("received", "Records handed to the writer", |c| c.received),
            ("stored", "Records committed", |c| c.stored),
            (
                "rejected",
                "Records refused as unreadable (the rest of their request stored)",
                |c| c.rejected,
            ),
            (
                "refused",
                "Records not stored because the database was away or busy (client told to retry)",
                |c| c.refused,
            ),
        ];
        for (kind, help, pick) in kinds {
            let name = format!("opsdash_serve_records_{kind}_total");
            header(out, &name, help, "counter");
            for ((route, source), c) in &rows {
                let _ = writeln!(
                    out,
                    "{name}{{route=\"{}\",source=\"{}\"}} {}",
                    label(route),
                    label(source),
                    pick(c)
                );
            }
        }
        header(
            out,
            "opsdash_serve_requests_total",
            "HTTP requests answered, by route and status code",
            "counter",
        );
        for ((route, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "opsdash_serve_requests_total{{route=\"{}\",code=\"{code}\"}} {n}",
                label(route)
            );
        }
        let name = "opsdash_serve_request_duration_seconds";
        header(
            out,
            name,
            "Time from request to answer, by route",
            "histogram",
        );
        for (route, l) in lock(&self.latency).iter() {
            let route = label(route);
            let mut cumulative = 0;
            for (bound, n) in BOUNDS.iter().zip(l.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                l.count
            );
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", l.sum);
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", l.count);
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Middleware: times every request and counts it by route and status; the route is known to
/// the sink (through [`current_route`]) while the handler runs.
pub async fn layer(AxState(state): AxState<State>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let resp = ROUTE.scope(route.clone(), next.run(req)).await;
    state
        .sink
        .metrics()
        .request(&route, resp.status().as_u16(), start.elapsed());
    resp
}

pub fn routes() -> Router<State> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(AxState(state): AxState<State>) -> impl IntoResponse {
    let mut out = String::with_capacity(8192);
    let sink = &state.sink;
    sink.metrics().render(&mut out);
    let (waiting, oldest) = sink.lag();
    gauge(
        &mut out,
        "opsdash_serve_queue_requests",
        "Requests waiting for their commit (queued or being written)",
        waiting,
    );
    gauge(
        &mut out,
        "opsdash_serve_queue_capacity",
        "Requests the queue takes before answering 429",
        sink.queue_capacity(),
    );
    gauge(
        &mut out,
        "opsdash_serve_writer_lag_seconds",
        "How long the oldest request waiting for its commit has waited",
        oldest.as_secs_f64(),
    );
    gauge(
        &mut out,
        "opsdash_serve_database_up",
        "1 while the database takes writes, 0 while requests are refused with 503",
        u8::from(sink.down().is_none()),
    );
    database(&state, &mut out).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The figures read from the database; left out (with a gauge saying so) when it does not
/// answer within a second.
async fn database(state: &State, out: &mut String) {
    let pool = &state.db.write;
    let read = async {
        let outbox = q::outbox(pool).await?;
        let jobs = q::jobs(pool).await?;
        let alerts = q::alerts(pool).await?;
        anyhow::Ok((outbox, jobs, alerts))
    };
    let Ok(Ok((outbox, jobs, alerts))) = tokio::time::timeout(Duration::from_secs(1), read).await
    else {
        gauge(
            out,
            "opsdash_metrics_database_read",
            "1 when the database figures below could be read at this scrape",
            0,
        );
        return;
    };
    gauge(
        out,
        "opsdash_metrics_database_read",
        "1 when the database figures below could be read at this scrape",
        1,
    );
    header(
        out,
        "opsdash_outbox_messages",
        "Notification outbox messages not delivered, by status (dead: dead letters)",
        "gauge",
    );
    for status in ["pending", "sending", "dead"] {
        let n = outbox
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "opsdash_outbox_messages{{status=\"{status}\"}} {n}");
    }
    let dead = outbox
        .iter()
        .find(|(s, _)| s == "dead")
        .map_or(0, |(_, n)| *n);
    gauge(
        out,
        "opsdash_outbox_dead_letters",
        "Notifications given up on after their last attempt",
        dead,
    );
    let stamp = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
    };
    let runs = "opsdash_job_last_run_timestamp_seconds";
    header(
        out,
        runs,
        "When each worker job last ran (0: never)",
        "gauge",
    );
    for j in &jobs {
        let _ = writeln!(
            out,
            "{runs}{{job=\"{}\"}} {}",
            label(&j.job),
            stamp(&j.last_run_at)
        );
    }
    let oks = "opsdash_job_last_success_timestamp_seconds";
    header(
        out,
        oks,
        "When each worker job last succeeded (0: never)",
        "gauge",
    );
    for j in &jobs {
        let _ = writeln!(
            out,
            "{oks}{{job=\"{}\"}} {}",
            label(&j.job),
            stamp(&j.last_ok_at)
        );
    }
    let failing = "opsdash_job_failing";
    header(out, failing, "1 when the job's last run failed", "gauge");
    for j in &jobs {
        let _ = writeln!(
            out,
            "{failing}{{job=\"{}\"}} {}",
            label(&j.job),
            u8::from(j.failing)
        );
    }
    gauge(
        out,
        "opsdash_jobs_failing",
        "Worker jobs whose last run failed",
        jobs.iter().filter(|j| j.failing).count(),
    );
    let name = "opsdash_alerts";
    header(
        out,
        name,
        "Alerts not resolved, by state and severity",
        "gauge",
    );
    for state in ["pending", "firing", "acknowledged", "suppressed"] {
        let n: i64 = alerts
            .iter()
            .filter(|(s, _, _)| s == state)
            .map(|(_, _, n)| n)
            .sum();
        let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
    }
    let name = "opsdash_alerts_by_severity";
    header(
        out,
        name,
        "Alerts not resolved, by state and severity",
        "gauge",
    );
    for (state, severity, n) in &alerts {
        let _ = writeln!(
            out,
            "{name}{{state=\"{}\",severity=\"{}\"}} {n}",
            label(state),
            label(severity)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.request("/ingest", 200, Duration::from_millis(3));
        m.request("/ingest", 200, Duration::from_millis(70));
        m.request("/ingest", 503, Duration::from_secs(60));
        m.rows("/ingest", "we\"b", |c| c.received += 5);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "opsdash_serve_request_duration_seconds_bucket{route=\"/ingest\",le=\"0.005\"} 1\n"
        ));
        assert!(out.contains(
            "opsdash_serve_request_duration_seconds_bucket{route=\"/ingest\",le=\"0.1\"} 2\n"
        ));
        assert!(out.contains(
            "opsdash_serve_request_duration_seconds_bucket{route=\"/ingest\",le=\"30\"} 2\n"
        ));
        assert!(out.contains(
            "opsdash_serve_request_duration_seconds_bucket{route=\"/ingest\",le=\"+Inf\"} 3\n"
        ));
        assert!(out.contains("opsdash_serve_requests_total{route=\"/ingest\",code=\"503\"} 1\n"));
        assert!(out.contains(
            "opsdash_serve_records_received_total{route=\"/ingest\",source=\"we\\\"b\"} 5\n"
        ));
    }
}
