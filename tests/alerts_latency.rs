//! Latency rules (latency_p50/p95/p99, latency_regression) read the rollups for the minutes the
//! rollup job has finished and raw rows for the rest: the values equal the exact percentiles of
//! the raw rows within the histogram's 2%, count rows the job has not rolled yet, and still count
//! rolled rows once the raw rows are gone.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use opsdash::alerts::{engine, RuleConfig};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::histogram::{exact_percentile, MAX_RELATIVE_ERROR};
use opsdash::query::alert_metrics::{measure, Sample};

/// One request: seconds before now, service, route, direction, duration.
type Req = (i64, &'static str, &'static str, &'static str, f64);

fn requests() -> Vec<Req> {
    let mut v = Vec::new();
    for i in 0..600i64 {
        let spread = (i % 100) as f64;
        // Last hour (from 70 s to 51 min ago, clear of the window's edges): api /pay doubled.
        v.push((70 + i * 5, "api", "/pay", "inbound", 20.0 + 2.0 * spread));
        v.push((75 + i * 5, "api", "/other", "inbound", 3.0 + spread / 10.0));
        v.push((72 + i * 5, "web", "/", "inbound", 40.0 + spread));
        // Outbound calls never count.
        v.push((71 + i * 5, "api", "/pay", "outbound", 9_000.0));
        // Baseline: 2 to 12 hours ago.
        v.push((7_200 + i * 60, "api", "/pay", "inbound", 10.0 + spread));
        v.push((
            7_230 + i * 60,
            "api",
            "/other",
            "inbound",
            3.0 + spread / 10.0,
        ));
        v.push((7_210 + i * 60, "web", "/", "inbound", 40.0 + spread));
    }
    v
}

async fn insert(t: &TestDb, rows: &[Req]) {
    let secs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let service: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let route: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let direction: Vec<&str> = rows.iter().map(|r| r.3).collect();
    let ms: Vec<f64> = rows.iter().map(|r| r.4).collect();
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, direction, status, duration_ms)
         SELECT now() - s * interval '1 second', svc, 'GET', rt, dir, 200, d
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[])
                AS u(s, svc, rt, dir, d)",
    )
    .bind(secs)
    .bind(service)
    .bind(route)
    .bind(direction)
    .bind(ms)
    .execute(&t.db.write)
    .await
    .unwrap();
}

fn rule(name: &str, measure: &str, window: &str, scope: &[(&str, &str)]) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        measure: measure.into(),
        threshold: 1.0,
        window: window.into(),
        scope: scope
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..RuleConfig::default()
    }
}

async fn values(t: &TestDb, r: RuleConfig) -> BTreeMap<String, f64> {
    let mut cfg = Config::default();
    cfg.alert.rules = vec![r];
    let spec = engine::config_specs(&cfg).remove(0);
    let samples: Vec<Sample> = measure(&t.db.read, &spec, Duration::from_secs(5))
        .await
        .unwrap();
    samples
        .into_iter()
        .map(|s| {
            let key: Vec<String> = s.labels.values().cloned().collect();
            (key.join(" "), s.value)
        })
        .collect()
}

/// Exact nearest-rank percentile of the inbound rows selected by `keep`, aged `lo < age <= hi`.
fn exact(rows: &[Req], q: f64, lo: i64, hi: i64, keep: impl Fn(&Req) -> bool) -> f64 {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.3 == "inbound" && r.0 >= lo && r.0 < hi && keep(r))
        .map(|r| r.4)
        .collect();
    exact_percentile(&v, q).unwrap()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * MAX_RELATIVE_ERROR + 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_rules_merge_rollups_and_raw_rows() {
    let t = TestDb::new().await.unwrap();
    let mut rows = requests();
    insert(&t, &rows).await;
    opsdash::worker::rollup::run_once(&t.db, Utc::now())
        .await
        .unwrap();
    // Rows the rollup job has not seen: a slow burst on api /pay seconds ago.
    let late: Vec<Req> = (0..10)
        .map(|i| (2 + i, "api", "/pay", "inbound", 5_000.0))
        .collect();
    insert(&t, &late).await;
    rows.extend(late);

    let hour = 3600;
    let p95 = values(&t, rule("p95", "latency_p95", "1h", &[])).await;
    let want_api = exact(&rows, 0.95, 0, hour, |r| r.1 == "api");
    let want_web = exact(&rows, 0.95, 0, hour, |r| r.1 == "web");
    assert!(close(p95["api"], want_api), "{p95:?} want {want_api}");
    assert!(close(p95["web"], want_web), "{p95:?} want {want_web}");

    // The burst is in the p99 of api /pay: the unrolled rows count.
    let p99 = values(
        &t,
        rule(
            "p99",
            "latency_p99",
            "1h",
            &[("service", "api"), ("by", "route")],
        ),
    )
    .await;
    let want_pay = exact(&rows, 0.99, 0, hour, |r| r.1 == "api" && r.2 == "/pay");
    let want_other = exact(&rows, 0.99, 0, hour, |r| r.1 == "api" && r.2 == "/other");
    assert_eq!(want_pay, 5_000.0);
    assert!(close(p99["/pay api"], want_pay), "{p99:?}");
    assert!(close(p99["/other api"], want_other), "{p99:?}");
    assert_eq!(p99.len(), 2, "{p99:?}");

    // Last hour's p95 of api against the 23 hours before it.
    let regression = values(
        &t,
        rule("reg", "latency_regression", "1h", &[("service", "api")]),
    )
    .await;
    let cur = exact(&rows, 0.95, 0, hour, |r| r.1 == "api");
    let base = exact(&rows, 0.95, hour, 24 * hour, |r| r.1 == "api");
    let want = 100.0 * (cur - base) / base;
    let got = regression["api"];
    // Each p95 is within 1.96%, so the change is within about 4% of (100 + change).
    assert!(
        (got - want).abs() <= (100.0 + want) * 2.0 * MAX_RELATIVE_ERROR + 0.5,
        "regression {got} want {want}"
    );
    assert!(want > 50.0, "the data doubles api /pay: {want}");

    // Rolled rows no longer need their raw rows: delete every raw row older than 10 minutes and
    // the values stay the same.
    sqlx::query("DELETE FROM opsdash.request_log WHERE ts < now() - interval '10 minutes'")
        .execute(&t.db.write)
        .await
        .unwrap();
    assert_eq!(values(&t, rule("p95", "latency_p95", "1h", &[])).await, p95);
    let again = values(
        &t,
        rule("reg", "latency_regression", "1h", &[("service", "api")]),
    )
    .await;
    assert_eq!(again, regression);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_rules_read_raw_rows_before_any_rollup() {
    let t = TestDb::new().await.unwrap();
    let rows = requests();
    insert(&t, &rows).await;
    let p50 = values(&t, rule("p50", "latency_p50", "1h", &[("route", "/pay")])).await;
    let want = exact(&rows, 0.50, 0, 3600, |r| r.1 == "api" && r.2 == "/pay");
    assert!(close(p50["api"], want), "{p50:?} want {want}");
    assert_eq!(p50.len(), 1, "web has no /pay: {p50:?}");
}
