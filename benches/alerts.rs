//! Alert benchmarks on a throwaway PostgreSQL (release build: `cargo bench --bench alerts`).
//!
//! 1. Condition true -> alert firing, with a 1 s evaluation interval and the worker running as
//!    in production (scheduler, lease, ticks): p50/p99 over ALERTS_BENCH_FIRINGS trials
//!    (default 30). Baseline in the same run: one direct `evaluate_rule` call (the floor).
//! 2. Evaluation cost of 100 rules over demo-sized data (ALERTS_BENCH_ROWS requests over 24 h,
//!    default 200000, plus logs, audit events and slow queries). Baseline in the same run: 100
//!    bare `count(*)` scans of the same 5-minute window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdash::alerts::{engine, RuleConfig};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::query::rules;

#[path = "common/report.rs"]
mod report;
use report::Aim;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn firing_latency(trials: usize) -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let mut cfg = Config::default();
    cfg.worker.lease_ttl_ms = 3000;
    cfg.alert.rules = vec![RuleConfig {
        name: "bench-errors".into(),
        measure: "error_rate".into(),
        threshold: 10.0,
        window: "1m".into(),
        interval: "1s".into(),
        // A handful of requests: no minimum volume.
        min_count: Some(1),
        ..RuleConfig::default()
    }];
    let cfg = Arc::new(cfg);
    let worker = opsdash::jobs::spawn(t.db.clone(), cfg.clone()).await;
    let mut lat = Vec::new();
    for i in 0..trials {
        // A random phase against the evaluation clock.
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 1000)).await;
        let service = format!("svc{i}");
        let t0: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "WITH ins AS (INSERT INTO opsdash.request_log (ts, service, route, status)
                          SELECT now(), $1, '/x', 500 FROM generate_series(1, 5))
             SELECT clock_timestamp()",
        )
        .bind(&service)
        .fetch_one(&t.db.write)
        .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let fired = loop {
            let f: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                "SELECT fired_at FROM opsdash.alert WHERE labels ->> 'service' = $1 AND state = 'firing'",
            )
            .bind(&service)
            .fetch_optional(&t.db.write)
            .await?
            .flatten();
            if let Some(f) = f {
                break f;
            }
            anyhow::ensure!(Instant::now() < deadline, "alert for {service} never fired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        lat.push((fired - t0).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    worker.shutdown().await;
    // Baseline: the evaluation itself, called directly (measure + state + outbox), no waiting.
    let rule = rules::rule_by_name(&t.db.write, "bench-errors")
        .await?
        .expect("synced");
    let mut direct = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        engine::evaluate_rule(&t.db, &cfg, &rule, None).await?;
        direct.push(ms(s.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    direct.sort_by(f64::total_cmp);
    println!(
        "condition true -> firing (1 s interval, tick {} ms, {trials} trials): p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        cfg.alert.tick_ms,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  baseline: one direct evaluate_rule call: p50 {:.1} ms  p99 {:.1} ms",
        pct(&direct, 0.5),
        pct(&direct, 0.99)
    );
    let base = "one direct evaluate_rule call";
    report::figure(
        "alerts",
        "condition true -> firing p50 (1 s interval)",
        pct(&lat, 0.5),
        "ms",
        Some((base, pct(&direct, 0.5))),
        &[],
    );
    report::figure(
        "alerts",
        "condition true -> firing p99 (1 s interval)",
        pct(&lat, 0.99),
        "ms",
        Some((base, pct(&direct, 0.99))),
        &[Aim::AtMost(1000.0)],
    );
    Ok(())
}

fn hundred_rules() -> Vec<RuleConfig> {
    let mut rules = Vec::new();
    let measures = [
        ("error_rate", 5.0, ""),
        ("request_rate", 100.0, ""),
        ("latency_p95", 500.0, ""),
        ("latency_p99", 900.0, ""),
        ("log_count", 50.0, "level:error+ timeout"),
        ("slow_queries", 10.0, ""),
        ("audit_events", 10.0, ""),
        ("error_groups", 1.0, ""),
        ("latency_regression", 10.0, ""),
        ("db_connections", 90.0, ""),
    ];
    for i in 0..100 {
        let (m, th, filter) = measures[i % measures.len()];
        let mut r = RuleConfig {
            name: format!("r{i:03}-{m}"),
            measure: m.into(),
            threshold: th,
            filter: filter.into(),
            interval: "1s".into(),
            ..RuleConfig::default()
        };
        let svc = format!("svc{}", i % 10);
        match m {
            "audit_events" => {
                r.scope.insert("action".into(), "%delete%".into());
                r.scope.insert("by".into(), "actor".into());
            }
            "latency_regression" => {
                r.window = "1h".into();
                r.scope.insert("service".into(), svc);
            }
            "db_connections" | "log_count" | "error_groups" => {}
            _ => {
                if i % 20 >= 10 {
                    r.scope.insert("service".into(), svc);
                }
            }
        }
        rules.push(r);
    }
    rules
}

async fn hundred_rules_cost(rows: usize) -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let started = Instant::now();
    for sql in [
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms, user_id, ip)
         SELECT now() - (g * (86400.0 / $1)) * interval '1 second', 'svc' || (g % 10),
                '/r' || (g % 50), CASE WHEN g % 29 = 0 THEN 503 ELSE 200 END,
                20 + (g % 97) * 3, 'u' || (g % 500), '10.0.' || (g % 7) || '.' || (g % 200)
           FROM generate_series(1, $1::int) g",
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now() - (g * (86400.0 / ($1 / 2))) * interval '1 second', (g % 6)::smallint,
                'svc' || (g % 10), CASE WHEN g % 13 = 0 THEN 'upstream timeout' ELSE 'ok' END
           FROM generate_series(1, ($1 / 2)::int) g",
        "INSERT INTO opsdash.audit_event (ts, actor, action, outcome, ip)
         SELECT now() - (g * (86400.0 / ($1 / 40))) * interval '1 second', 'user' || (g % 50),
                CASE WHEN g % 5 = 0 THEN 'record.delete' ELSE 'login' END,
                CASE WHEN g % 9 = 0 THEN 'failure' ELSE 'success' END, '10.1.0.' || (g % 30)
           FROM generate_series(1, ($1 / 40)::int) g",
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms)
         SELECT now() - (g * (86400.0 / ($1 / 20))) * interval '1 second', 'svc' || (g % 10),
                'SELECT ' || (g % 40), 'f' || (g % 40), (g % 1500)::float8
           FROM generate_series(1, ($1 / 20)::int) g",
    ] {
        sqlx::query(sql)
            .bind(rows as i64)
            .execute(&t.db.write)
            .await?;
    }
    sqlx::query("ANALYZE").execute(&t.db.write).await?;
    println!(
        "demo data: {rows} requests, {} log lines, {} audit events, {} queries over 24 h (loaded in {:.1} s)",
        rows / 2,
        rows / 40,
        rows / 20,
        started.elapsed().as_secs_f64()
    );
    // The worker's rollup job keeps the rollups the latency rules read; bring them up to date
    // as it would have.
    let s = Instant::now();
    opsdash::worker::rollup::run_once(&t.db, chrono::Utc::now()).await?;
    println!(
        "rollup job over that data: {:.1} s",
        s.elapsed().as_secs_f64()
    );
    let mut cfg = Config::default();
    cfg.alert.rules = hundred_rules();
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg)).await?;
    let rules = rules::rules(&t.db.write).await?;
    anyhow::ensure!(
        rules.len() == 100,
        "expected 100 rules, got {}",
        rules.len()
    );
    let mut rounds = Vec::new();
    let mut per_measure: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for _ in 0..5 {
        let s = Instant::now();
        for r in &rules {
            let rs = Instant::now();
            engine::evaluate_rule(&t.db, &cfg, r, None).await?;
            per_measure
                .entry(r.spec.metric.clone())
                .or_default()
                .push(ms(rs.elapsed()));
        }
        rounds.push(ms(s.elapsed()));
    }
    let mut base = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        for _ in 0..100 {
            let _: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM opsdash.request_log WHERE ts > now() - interval '5 minutes'",
            )
            .fetch_one(&t.db.read)
            .await?;
        }
        base.push(ms(s.elapsed()));
    }
    rounds.sort_by(f64::total_cmp);
    base.sort_by(f64::total_cmp);
    println!(
        "100 rules, one evaluation round: p50 {:.0} ms  max {:.0} ms (5 rounds)",
        pct(&rounds, 0.5),
        rounds.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  baseline: 100 bare count(*) over the same 5-minute window: p50 {:.0} ms",
        pct(&base, 0.5)
    );
    report::figure(
        "alerts",
        &format!(
            "100 rules, one evaluation round, {} requests",
            report::size(rows as u64)
        ),
        pct(&rounds, 0.5),
        "ms",
        Some(("100 bare count(*), same window", pct(&base, 0.5))),
        &[],
    );
    for (m, mut v) in per_measure {
        v.sort_by(f64::total_cmp);
        println!("  {m:<20} p50 {:>7.2} ms per rule", pct(&v, 0.5));
    }
    // Baseline: the regression measure as it was, percentile_cont over the raw rows of the last
    // hour and the 23 before, for the same ten services.
    let mut raw = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            let s = Instant::now();
            let _: Vec<(String, f64)> = sqlx::query_as(
                "WITH cur AS (
                   SELECT service, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS v
                     FROM opsdash.request_log
                    WHERE ts > now() - interval '1 hour' AND ts <= now()
                      AND direction = 'inbound' AND service = $1
                    GROUP BY service),
                 base AS (
                   SELECT service, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS v
                     FROM opsdash.request_log
                    WHERE ts > now() - interval '24 hours' AND ts <= now() - interval '1 hour'
                      AND direction = 'inbound' AND service = $1
                    GROUP BY service)
                 SELECT cur.service, (100.0 * (cur.v - base.v) / base.v)::float8
                   FROM cur JOIN base USING (service) WHERE base.v > 0",
            )
            .bind(format!("svc{i}"))
            .fetch_all(&t.db.read)
            .await?;
            if round > 0 {
                raw.push(ms(s.elapsed()));
            }
        }
    }
    raw.sort_by(f64::total_cmp);
    println!(
        "  baseline: latency_regression from raw rows (percentile_cont) p50 {:>7.2} ms per rule",
        pct(&raw, 0.5)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        firing_latency(env("ALERTS_BENCH_FIRINGS", 30)).await?;
        hundred_rules_cost(env("ALERTS_BENCH_ROWS", 200_000)).await
    })
}
