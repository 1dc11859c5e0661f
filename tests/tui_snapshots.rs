//! Snapshot tests of the dashboard's five tabs at 80x24 and 160x45: an `App` on a database it
//! never reaches, fed fabricated query results at a fixed clock, rendered on ratatui's
//! TestBackend and compared with the screens committed under tests/snapshots/, so any layout
//! change shows up as a reviewable diff (`cargo insta review`, or INSTA_UPDATE=always).
//! Also the secondary views: the Alerts tab's rules and silences, the Performance drill-down
//! and the help overlay.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::tui::{buffer_text, key, lazy_db, render};
use opsdash::config::Config;
use opsdash::model::rule::{Matcher, RuleSpec};
use opsdash::query::alerts::{AlertRow, OpenCounts};
use opsdash::query::health::{DbHealth, IntegrationRow, JobRow, ServiceRow};
use opsdash::query::kpi::{
    Daily, FailingEndpoint, Ingest, Latency, StatusCounts, Traffic, Users, Window,
};
use opsdash::query::logs::LogStats;
use opsdash::query::perf::{EndpointKey, EndpointStat, SlowRequest};
use opsdash::query::rules::Rule;
use opsdash::query::silences::SilenceRow;
use opsdash::query::status::HeaderStatus;
use opsdash::tui::app::{update, App, AppOptions};
use opsdash::tui::event::Event;
use opsdash::tui::msg::{
    AlertDetail, AlertsData, Data, HealthData, KpiData, LogsData, Owner, PerfData, QueryDone,
    ShellData, Tab,
};
use ratatui::crossterm::event::KeyCode;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 45)];

/// The fixed "now" of every snapshot: the header clock and every relative age derive from it.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    t0() - chrono::Duration::seconds(secs)
}

/// A finished query as the runner delivers it; the tabs match on the data's variant only.
fn done(data: Data) -> Event {
    let owner = match &data {
        Data::Shell(_) => Owner::Shell,
        Data::Kpi(_) => Owner::Tab(Tab::Kpi),
        Data::Logs(_) => Owner::Tab(Tab::Logs),
        Data::Alerts(_) => Owner::Tab(Tab::Alerts),
        Data::Perf(_) => Owner::Tab(Tab::Perf),
        Data::Health(_) => Owner::Tab(Tab::Health),
    };
    Event::Query(QueryDone {
        owner,
        panel: "snapshot",
        generation: 0,
        data,
    })
}

/// Feeds one event; the effects (queries) it asks for are dropped: no database answers here,
/// the fabricated results stand in for them.
fn feed(app: &mut App, ev: Event) {
    let _ = update(app, ev);
}

fn alert(id: i64, rule: &str, severity: &str, state: &str, summary: &str, age: i64) -> AlertRow {
    AlertRow {
        id,
        rule_id: id,
        rule_name: rule.into(),
        severity: severity.parse().unwrap(),
        labels: sqlx::types::Json(BTreeMap::from([("service".into(), "shop".into())])),
        label_key: "service=shop".into(),
        state: state.parse().unwrap(),
        value: Some(0.125),
        threshold: Some(0.05),
        summary: summary.into(),
        pending_since: ago(age + 60),
        fired_at: Some(ago(age)),
        acknowledged_at: None,
        acknowledged_by: None,
        ack_note: None,
        resolved_at: None,
        resolved_by: None,
        resolve_note: None,
        condition_false_since: None,
        last_notified_at: Some(ago(age)),
        testing: false,
        source: None,
        ends_at: None,
    }
}

/// The Performance tab's selected row (the worst p99 first): its latency panel's key.
fn checkout_key() -> EndpointKey {
    EndpointKey {
        service: "shop".into(),
        route: "POST /checkout".into(),
        direction: "in".into(),
    }
}

fn first_alert() -> AlertRow {
    alert(
        1,
        "checkout errors",
        "critical",
        "firing",
        "error rate 12.5% > 5%",
        300,
    )
}

fn endpoint(route: &str, requests: i64, p95: f64, err_5xx: i64) -> EndpointStat {
    EndpointStat {
        key: EndpointKey {
            service: "shop".into(),
            route: route.into(),
            direction: "in".into(),
        },
        requests,
        rps: requests as f64 / 3600.0,
        avg_ms: Some(p95 / 3.0),
        p50_ms: Some(p95 / 4.0),
        p95_ms: Some(p95),
        p99_ms: Some(p95 * 2.0),
        max_ms: Some(p95 * 5.0),
        err_4xx: requests / 50,
        err_5xx,
        error_pct: Some(100.0 * err_5xx as f64 / requests as f64),
        bytes: requests * 2048,
    }
}

fn service(name: &str, status: &str, ms: f64) -> ServiceRow {
    ServiceRow {
        name: name.into(),
        kind: "http".into(),
        target: format!("http://{name}.internal/health"),
        status: status.into(),
        last_check: Some(ago(20)),
        last_response_ms: Some(ms),
        last_detail: (status != "healthy").then(|| "HTTP 503".into()),
        uptime_24h: Some(0.995),
        uptime_7d: Some(0.999),
        uptime_30d: Some(0.9995),
        recent_ms: vec![ms; 12],
        recent_status: vec![status.into(); 12],
    }
}

fn job(name: &str, holder: &str) -> JobRow {
    JobRow {
        job: name.into(),
        holder: Some(holder.into()),
        live: true,
        epoch: 3,
        last_run: Some(ago(30)),
        next_run: Some(ago(-30)),
        last_ok: Some(ago(30)),
        last_error: None,
    }
}

/// Every tab's panels, answered with the same fabricated figures.
fn fabricated() -> Vec<Data> {
    let window = Some(Window {
        start: ago(3600),
        end: t0(),
        bucket_secs: 60,
    });
    let counts = OpenCounts {
        critical: 1,
        error: 0,
        warning: 1,
        info: 0,
        firing: 2,
        ..OpenCounts::default()
    };
    vec![
        ShellData::Header(Ok(HeaderStatus {
            alerts: counts.clone(),
            jobs_led: 1,
            jobs_total: 2,
            replica: None,
        }))
        .into(),
        KpiData::Traffic(Ok(Traffic {
            window,
            series: (0..60)
                .map(|i| (ago(3600 - i * 60), 40 + (i % 7) * 3, i % 5))
                .collect(),
            requests: 2400,
            errors: 300,
            prev_requests: 2000,
            prev_errors: 100,
        }))
        .into(),
        KpiData::Latency(Ok(Latency {
            p95_ms: Some(180.0),
            prev_p95_ms: Some(150.0),
            series: (0..60).map(|i| 100.0 + (i % 9) as f64 * 10.0).collect(),
        }))
        .into(),
        KpiData::Daily(Ok(Daily {
            errors_24h: 30,
            prev_errors_24h: 12,
            errors_hourly: (0..24).map(|i| i % 4).collect(),
            slow_requests_24h: 24,
            prev_slow_requests_24h: 30,
            slow_queries_24h: 7,
            prev_slow_queries_24h: 7,
        }))
        .into(),
        KpiData::Users(Ok(Users {
            users_1h: 37,
            prev_users_1h: 30,
            users_24h: 410,
            prev_users_24h: 395,
        }))
        .into(),
        KpiData::Status(Ok(StatusCounts {
            alerts: counts,
            healthy: 2,
            degraded: 0,
            down: 1,
            unknown: 0,
        }))
        .into(),
        KpiData::Ingest(Ok(Ingest {
            window,
            series: (0..60).map(|i| 90 + i % 11).collect(),
            total: 5700,
            prev_total: 5400,
            rejected: 3,
        }))
        .into(),
        KpiData::Top(Ok(vec![
            FailingEndpoint {
                service: "shop".into(),
                method: "POST".into(),
                route: "/checkout".into(),
                requests: 300,
                errors: 300,
                avg_ms: 40.0,
            },
            FailingEndpoint {
                service: "shop".into(),
                method: "GET".into(),
                route: "/cart".into(),
                requests: 2100,
                errors: 12,
                avg_ms: 55.5,
            },
        ]))
        .into(),
        LogsData::Stats(Ok(LogStats {
            in_range: 30,
            last_24h: 120,
            by_level: [0, 5, 60, 25, 30, 0],
        }))
        .into(),
        AlertsData::Alerts(Ok(vec![
            first_alert(),
            alert(2, "slow cart", "warning", "firing", "p95 1.5 s > 1 s", 900),
        ]))
        .into(),
        // The detail pane of the selected (first) alert: its measures over the last 10 minutes.
        AlertsData::Detail(Ok(AlertDetail {
            alert: first_alert(),
            rule: None,
            history: Vec::new(),
            attempts: Vec::new(),
            samples: (0..10)
                .map(|i| (ago(600 - i * 60), 0.02 * i as f64))
                .collect(),
        }))
        .into(),
        PerfData::Stats(Ok(vec![
            endpoint("POST /checkout", 300, 900.0, 300),
            endpoint("GET /cart", 2100, 120.0, 12),
            endpoint("GET /search", 800, 450.0, 0),
        ]))
        .into(),
        // Nothing to draw in these two panels, but answered: "none" rather than "loading…".
        PerfData::Series(Ok((checkout_key(), Vec::new()))).into(),
        PerfData::Heat(Ok(Vec::new())).into(),
        HealthData::Services(Ok(vec![
            service("api", "healthy", 12.0),
            service("db", "down", 0.0),
            service("cache", "healthy", 3.0),
        ]))
        .into(),
        HealthData::Integrations(Ok(vec![IntegrationRow {
            name: "payments".into(),
            calls_24h: 1200,
            success_24h: 0.985,
            avg_ms_24h: 210.0,
            errors_1h: 2,
            last_call: Some(ago(45)),
        }]))
        .into(),
        HealthData::Database(Ok(DbHealth {
            version: "PostgreSQL 16.4".into(),
            uptime_s: 86_400.0 * 3.0,
            max_connections: 100,
            connections: vec![("active".into(), 3), ("idle".into(), 7)],
            cache_hit: Some(0.992),
            db_size: 512 * 1024 * 1024,
            largest_tables: vec![("opsdash.request_log".into(), 300 * 1024 * 1024)],
            ..DbHealth::default()
        }))
        .into(),
        HealthData::Workers(Ok(vec![
            job("alerts", "snapshot-test:1:abcd"),
            job("retention", "someone-else"),
        ]))
        .into(),
        HealthData::Retention(Ok(Vec::new())).into(),
    ]
}

/// The dashboard at the fixed clock, online, with every tab's results delivered.
/// Nothing in the header needs masking: the clock is the tick's `t0`, the instance id and the
/// database URL are this file's constants, and the ping is the fabricated 3 ms.
fn app() -> App {
    let mut app = App::new(
        lazy_db(),
        Arc::new(Config::default()),
        AppOptions {
            // The text is what is snapshotted; colour would not show in it anyway.
            no_color: true,
            instance: "snapshot-test:1:abcd".into(),
            config_dir: None,
        },
    );
    feed(&mut app, Event::Tick(t0()));
    feed(&mut app, Event::Ping(Ok(Duration::from_millis(3))));
    for d in fabricated() {
        feed(&mut app, done(d));
    }
    app
}

/// Each tab's screen at both sizes, against its committed snapshot.
fn check_tab(tab: Tab) {
    let mut app = app();
    let _ = key(&mut app, KeyCode::Char((b'0' + tab.number()) as char));
    // Switching asks for fresh data (dropped); deliver the fabricated results again so the tab
    // shows them whatever it cleared on arrival.
    for d in fabricated() {
        feed(&mut app, done(d));
    }
    feed(&mut app, Event::Tick(t0()));
    assert_eq!(app.active_id(), Some(tab));
    for (w, h) in SIZES {
        let text = buffer_text(&render(&app, w, h));
        let name = format!("{}_{w}x{h}", tab.title().to_ascii_lowercase());
        insta::assert_snapshot!(name, text);
    }
}

// Current-thread runtime: the lazy pools and any task a tab spawns need one, and none of those
// tasks runs while the test never yields, so nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn kpi_tab_snapshots() {
    check_tab(Tab::Kpi);
}

// Current-thread runtime: the lazy pools and any task a tab spawns need one, and none of those
// tasks runs while the test never yields, so nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn logs_tab_snapshots() {
    check_tab(Tab::Logs);
}

// Current-thread runtime: the lazy pools and any task a tab spawns need one, and none of those
// tasks runs while the test never yields, so nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn alerts_tab_snapshots() {
    check_tab(Tab::Alerts);
}

// Current-thread runtime: the lazy pools and any task a tab spawns need one, and none of those
// tasks runs while the test never yields, so nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn perf_tab_snapshots() {
    check_tab(Tab::Perf);
}

// Current-thread runtime: the lazy pools and any task a tab spawns need one, and none of those
// tasks runs while the test never yields, so nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn health_tab_snapshots() {
    check_tab(Tab::Health);
}

// ------------------------------------------------------------------------------------------
// Secondary views: the Alerts tab's rules and silences, the Performance drill-down, the help
// overlay (the Logs tab's views are covered by their own snapshots).
// ------------------------------------------------------------------------------------------

fn rule(id: i64, name: &str, status: &str, metric: &str, threshold: f64) -> Rule {
    Rule {
        id,
        spec: RuleSpec {
            name: name.into(),
            description: String::new(),
            severity: opsdash::model::Severity::Warning,
            status: status.into(),
            metric: metric.into(),
            scope: BTreeMap::from([("service".into(), "shop".into())]),
            filter: None,
            query: None,
            operator: "gt".into(),
            threshold,
            window_s: 300,
            for_s: 60,
            eval_interval_s: 60,
            labels: BTreeMap::new(),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval_s: 3600,
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after_s: 300,
            runbook_url: None,
            min_count: 0,
        },
        source: "config".into(),
        last_eval_at: Some(ago(30)),
        last_value: Some(threshold / 2.0),
        last_error: None,
    }
}

fn secondary() -> Vec<Data> {
    let mut broken = rule(3, "queue depth", "enabled", "custom_sql", 100.0);
    broken.last_value = None;
    broken.last_error = Some("relation \"jobs\" does not exist".into());
    vec![
        AlertsData::Rules(Ok(vec![
            rule(1, "checkout errors", "enabled", "error_rate", 0.05),
            rule(2, "slow cart", "testing", "p95_latency", 1000.0),
            broken,
        ]))
        .into(),
        AlertsData::Silences(Ok(vec![SilenceRow {
            id: 4,
            matchers: sqlx::types::Json(vec![Matcher {
                name: "service".into(),
                op: "=".into(),
                value: "shop".into(),
            }]),
            starts_at: ago(600),
            ends_at: ago(-3000),
            created_by: "alice".into(),
            comment: "deploy window".into(),
            expired_at: None,
            expired_by: None,
            state: "active".into(),
        }]))
        .into(),
        PerfData::Drill(Ok((
            checkout_key(),
            (0..4)
                .map(|i| SlowRequest {
                    ts: ago(120 + i * 300),
                    service: "shop".into(),
                    route: "POST /checkout".into(),
                    direction: "in".into(),
                    status: if i == 0 { 503 } else { 200 },
                    duration_ms: 2400.0 - 300.0 * i as f64,
                    trace_id: Some(format!("4bf92f3577b34da6a3ce929d0e0e47{i:02}")),
                    request_id: None,
                    user_id: Some(format!("user{i}")),
                })
                .collect(),
        )))
        .into(),
    ]
}

/// A tab's screen after `keys`, with every result (the secondary ones too) delivered, at both
/// sizes, against the snapshot `name`.
fn check_view(tab: Tab, keys: &[KeyCode], name: &str) {
    let mut app = app();
    let _ = key(&mut app, KeyCode::Char((b'0' + tab.number()) as char));
    for d in fabricated().into_iter().chain(secondary()) {
        feed(&mut app, done(d));
    }
    for k in keys {
        let _ = key(&mut app, *k);
    }
    // What the keys asked for (dropped) arrives again, as the runner would deliver it.
    for d in secondary() {
        feed(&mut app, done(d));
    }
    feed(&mut app, Event::Tick(t0()));
    assert_eq!(app.active_id(), Some(tab));
    for (w, h) in SIZES {
        let text = buffer_text(&render(&app, w, h));
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

// Current-thread runtime, as above: nothing but the fabricated results reaches a tab.
#[tokio::test]
async fn alerts_rules_view_snapshots() {
    check_view(Tab::Alerts, &[KeyCode::Right], "alerts_rules");
}

#[tokio::test]
async fn alerts_silences_view_snapshots() {
    check_view(
        Tab::Alerts,
        &[KeyCode::Right, KeyCode::Right],
        "alerts_silences",
    );
}

#[tokio::test]
async fn perf_drill_down_snapshots() {
    check_view(Tab::Perf, &[KeyCode::Enter], "performance_drill");
}

#[tokio::test]
async fn help_overlay_snapshots() {
    check_view(Tab::Kpi, &[KeyCode::Char('?')], "help_overlay");
}
