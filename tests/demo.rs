//! Demo traffic against a real PostgreSQL: rows in every table, trace ids that link them,
//! incident signatures, idempotent backfill, live batches with NOTIFY, and the real binary.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::demo::{self, DemoHandle, DemoOptions, DemoStats, IncidentKind, Phase, Schedule};
use sqlx::PgPool;

const CYCLE: Duration = Duration::from_secs(300);

fn small(window_min: u64, requests: u64, rate: f64) -> DemoOptions {
    DemoOptions {
        rate,
        backfill_window: Duration::from_secs(window_min * 60),
        backfill_requests: requests,
        incident_cycle: CYCLE,
        first_incident: None,
    }
}

async fn wait_until(
    handle: &DemoHandle,
    what: &str,
    cond: impl Fn(&DemoStats) -> bool,
) -> Result<DemoStats> {
    let t0 = Instant::now();
    loop {
        let s = handle.stats();
        if cond(&s) {
            return Ok(s);
        }
        if handle.is_finished() || t0.elapsed() > Duration::from_secs(120) {
            bail!("demo never reached: {what} ({s:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(pool: &PgPool, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

async fn table_count(pool: &PgPool, table: &str) -> Result<i64> {
    count(pool, &format!("SELECT count(*) FROM opsdash.{table}")).await
}

/// Checks each child row (log, query, audit) with a trace id belongs to an inbound request with
/// that trace id and falls inside its duration; returns how many child rows were checked.
async fn assert_nested(pool: &PgPool, table: &str) -> Result<i64> {
    let orphans = count(
        pool,
        &format!(
            "SELECT count(*) FROM opsdash.{table} c WHERE c.trace_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM opsdash.request_log r
                WHERE r.trace_id = c.trace_id AND r.direction = 'inbound'
                  AND c.ts >= r.ts
                  AND c.ts <= r.ts + (r.duration_ms + 0.002) * interval '1 millisecond')"
        ),
    )
    .await?;
    assert_eq!(orphans, 0, "{table} rows outside their request");
    let linked = count(
        pool,
        &format!("SELECT count(*) FROM opsdash.{table} WHERE trace_id IS NOT NULL"),
    )
    .await?;
    assert!(linked > 0, "no {table} rows carry a trace id");
    Ok(linked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_live_fill_every_table_with_linked_rows_and_incidents() -> Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    let handle = demo::start(t.db.clone(), small(20, 8_000, 40.0));
    let after_backfill = wait_until(&handle, "live phase", |s| s.phase == Phase::Live).await?;
    let backfill = after_backfill.backfill.expect("backfill report");
    assert!(backfill.slices >= 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = handle.stop().await?;
    assert!(stats.live_batches > 0);
    assert!(
        stats.rows.requests > backfill.rows.requests,
        "live added requests"
    );

    // What the demo says it wrote is what the tables hold, and every table got rows.
    for (table, n) in [
        ("request_log", stats.rows.requests),
        ("log_event", stats.rows.logs),
        ("query_log", stats.rows.queries),
        ("audit_event", stats.rows.audits),
        ("health_check", stats.rows.health),
    ] {
        assert!(n > 0, "{table} empty");
        assert_eq!(table_count(&pool, table).await?, n as i64, "{table}");
        // Daily partitions existed: nothing fell into the default partition.
        assert_eq!(table_count(&pool, &format!("{table}_default")).await?, 0);
    }
    let inbound = count(
        &pool,
        "SELECT count(*) FROM opsdash.request_log WHERE direction = 'inbound'",
    )
    .await?;
    assert!(
        (6_000..12_000).contains(&inbound),
        "about 8000 backfilled requests plus live: {inbound}"
    );
    let shape = count(
        &pool,
        "SELECT count(*) FROM (SELECT DISTINCT service, route FROM opsdash.request_log
          WHERE direction = 'inbound') s",
    )
    .await?;
    assert!(shape >= 30, "routes seen: {shape}");

    // Trace ids tie logs, queries, audit events and outbound calls to their request.
    assert_nested(&pool, "log_event").await?;
    assert_nested(&pool, "query_log").await?;
    assert_nested(&pool, "audit_event").await?;
    let outbound_orphans = count(
        &pool,
        "SELECT count(*) FROM opsdash.request_log o WHERE o.direction = 'outbound' AND NOT EXISTS (
           SELECT 1 FROM opsdash.request_log r WHERE r.trace_id = o.trace_id
              AND r.direction = 'inbound' AND o.ts >= r.ts)",
    )
    .await?;
    assert_eq!(outbound_orphans, 0);
    let integrations = count(
        &pool,
        "SELECT count(DISTINCT integration) FROM opsdash.request_log
          WHERE direction = 'outbound' AND integration IN ('stripe', 'sendgrid', 's3', 'twilio')",
    )
    .await?;
    assert!(integrations >= 2, "integrations: {integrations}");

    // Errors carry a type, a stack and a fingerprint; error_group agrees with the log rows.
    let bad_errors = count(
        &pool,
        "SELECT count(*) FROM opsdash.log_event WHERE level >= 4
           AND (fingerprint IS NULL OR error_type IS NULL OR attrs->>'exception' IS NULL)",
    )
    .await?;
    assert_eq!(bad_errors, 0);
    let mismatched_groups = count(
        &pool,
        "SELECT count(*) FROM (SELECT fingerprint, count(*) AS n, count(DISTINCT user_id) AS users
                                FROM opsdash.log_event WHERE fingerprint IS NOT NULL GROUP BY 1) l
           FULL JOIN opsdash.error_group g USING (fingerprint)
          WHERE l.n IS DISTINCT FROM g.count OR l.users IS DISTINCT FROM g.affected_users",
    )
    .await?;
    assert_eq!(mismatched_groups, 0, "error_group disagrees with log_event");
    let groups = table_count(&pool, "error_group").await?;
    let fingerprints_per_type = count(
        &pool,
        "SELECT max(n) FROM (SELECT service, error_type, count(DISTINCT fingerprint) AS n
                               FROM opsdash.error_group GROUP BY 1, 2) s",
    )
    .await?;
    assert!(groups >= 3, "error groups: {groups}");
    assert_eq!(
        fingerprints_per_type, 1,
        "messages differing only in ids group together"
    );

    // Queries are normalized, fingerprinted, and some are slow.
    let slow = count(
        &pool,
        "SELECT count(*) FROM opsdash.query_log WHERE duration_ms >= 1000",
    )
    .await?;
    assert!(slow > 0);
    let fp_per_query = count(
        &pool,
        "SELECT max(n) FROM (SELECT query, count(DISTINCT fingerprint) AS n
                               FROM opsdash.query_log GROUP BY 1) s",
    )
    .await?;
    assert_eq!(fp_per_query, 1);

    // Demo services are registered as passive and have checks.
    let services = count(
        &pool,
        "SELECT count(*) FROM opsdash.service WHERE kind = 'passive' AND last_check IS NOT NULL",
    )
    .await?;
    assert!(services >= 5);

    // Incident signatures. The 20-minute window spans four 5-minute loops.
    let mass_delete = count(
        &pool,
        "SELECT coalesce(max(n), 0) FROM (
           SELECT count(*) OVER (PARTITION BY actor ORDER BY ts
                                 RANGE BETWEEN interval '5 minutes' PRECEDING AND CURRENT ROW) AS n
             FROM opsdash.audit_event WHERE action = 'delete' AND actor = 'u10007') s",
    )
    .await?;
    assert!(
        mass_delete > 10,
        "deletes by u10007 in 5 min: {mass_delete}"
    );
    let brute_force = count(
        &pool,
        "SELECT coalesce(max(n), 0) FROM (
           SELECT count(*) OVER (PARTITION BY ip ORDER BY ts
                                 RANGE BETWEEN interval '5 minutes' PRECEDING AND CURRENT ROW) AS n
             FROM opsdash.audit_event WHERE action = 'login_failed') s",
    )
    .await?;
    assert!(brute_force > 50, "failed logins from one IP: {brute_force}");
    let down_checks = count(
        &pool,
        "SELECT count(*) FROM opsdash.health_check
          WHERE service = 'recommendations' AND status = 'down'",
    )
    .await?;
    assert!(down_checks > 0);

    let schedule = Schedule::new(CYCLE);
    let now = Utc::now();
    let occurrences = schedule.occurrences(now - chrono::TimeDelta::minutes(20), now);
    let during = |kind: IncidentKind| {
        let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = occurrences
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| (o.start, o.end))
            .collect();
        (
            windows.iter().map(|w| w.0).collect::<Vec<_>>(),
            windows.iter().map(|w| w.1).collect::<Vec<_>>(),
        )
    };
    // Requests that ended inside an occurrence of `kind`, by whether `cond` holds.
    let split = |kind: IncidentKind, filter: &'static str, value: &'static str| {
        let (starts, ends) = during(kind);
        let pool = pool.clone();
        async move {
            let row: (Option<f64>, Option<f64>) = sqlx::query_as(&format!(
                "WITH r AS (SELECT *, ts + duration_ms * interval '1 millisecond' AS ended,
                                  EXISTS (SELECT 1 FROM unnest($1::timestamptz[], $2::timestamptz[]) w(a, b)
                                           WHERE ts + duration_ms * interval '1 millisecond' >= a
                                             AND ts + duration_ms * interval '1 millisecond' < b) AS inside
                             FROM opsdash.request_log WHERE direction = 'inbound' AND {filter})
                 SELECT (SELECT {value} FROM r WHERE inside), (SELECT {value} FROM r WHERE NOT inside)"
            ))
            .bind(&starts)
            .bind(&ends)
            .fetch_one(&pool)
            .await?;
            anyhow::Ok((row.0.unwrap_or(0.0), row.1.unwrap_or(0.0)))
        }
    };
    // The checkout error spike is checked on a seeded hour in demo::traffic's unit tests: this
    // run holds about 8 checkout requests inside its spikes, too few for a rate.
    let (slow_p50, normal_p50) = split(
        IncidentKind::LatencyRegression,
        "route = '/api/search'",
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)",
    )
    .await?;
    assert!(
        slow_p50 > 4.0 * normal_p50,
        "search p50 {slow_p50} vs {normal_p50}"
    );
    let (down_ok, _) = split(
        IncidentKind::ServiceDown,
        "service = 'recommendations'",
        "avg((status < 500)::int)::float8",
    )
    .await?;
    assert_eq!(down_ok, 0.0, "a down service answers nothing");
    let (burst, _) = split(
        IncidentKind::SlowQueryBurst,
        "route = '/api/orders'",
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)",
    )
    .await?;
    assert!(
        burst >= 1_500.0,
        "orders during the slow-query burst: {burst}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_does_not_backfill_the_same_window_again() -> Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    let first = demo::start(t.db.clone(), small(10, 3_000, 0.0));
    wait_until(&first, "first backfill", |s| s.phase == Phase::Live).await?;
    let first = first.stop().await?;
    let first_requests = first.rows.requests as i64;
    assert_eq!(table_count(&pool, "request_log").await?, first_requests);
    let first_inbound = count(
        &pool,
        "SELECT count(*) FROM opsdash.request_log WHERE direction = 'inbound'",
    )
    .await?;
    let covered_to: DateTime<Utc> =
        sqlx::query_scalar("SELECT max(covered_to) FROM opsdash.demo_coverage")
            .fetch_one(&pool)
            .await?;

    let second = demo::start(t.db.clone(), small(10, 3_000, 0.0));
    let s = wait_until(&second, "second backfill", |s| s.phase == Phase::Live).await?;
    second.stop().await?;
    let report = s.backfill.expect("backfill report");
    // Only the seconds between the two runs were left to write.
    assert!(report.slices <= 1, "{report:?}");
    assert!(
        (report.rows.requests as i64) < first_requests / 10,
        "second backfill wrote {} requests",
        report.rows.requests
    );
    let overlapping = count(
        &pool,
        "SELECT count(*) FROM opsdash.demo_coverage a JOIN opsdash.demo_coverage b
           ON a.id < b.id AND a.covered_from < b.covered_to AND b.covered_from < a.covered_to",
    )
    .await?;
    assert_eq!(overlapping, 0, "coverage windows overlap");
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.request_log
          WHERE ts + duration_ms * interval '1 millisecond' < $1 AND direction = 'inbound'",
    )
    .bind(covered_to)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        before, first_inbound,
        "requests of the first run's window were written again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_batches_add_rows_and_notify_the_tail() -> Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    let mut listener = sqlx::postgres::PgListener::connect_with(&t.db.write).await?;
    listener.listen(opsdash::db::LOGS_CHANNEL).await?;
    let opts = DemoOptions {
        backfill_window: Duration::ZERO,
        ..small(0, 0, 200.0)
    };
    let handle = demo::start(t.db.clone(), opts);
    let note = tokio::time::timeout(Duration::from_secs(20), listener.recv()).await??;
    let logs_in_batch: u64 = note.payload().parse()?;
    assert!(logs_in_batch > 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = handle.stop().await?;
    assert!(stats.backfill.is_none());
    assert!(stats.live_batches >= 5, "{stats:?}");
    assert!(stats.notifies >= 1 && stats.notifies <= stats.live_batches);
    assert_eq!(
        table_count(&pool, "log_event").await?,
        stats.rows.logs as i64
    );
    let recent = count(
        &pool,
        "SELECT count(*) FROM opsdash.request_log WHERE ts > now() - interval '1 minute'",
    )
    .await?;
    assert_eq!(recent, stats.rows.requests as i64);
    assert!(recent > 200, "about 200 requests/s for 2 s: {recent}");
    // One live session is one coverage row, extended batch after batch.
    let live_rows = count(
        &pool,
        "SELECT count(*) FROM opsdash.demo_coverage WHERE kind = 'live'",
    )
    .await?;
    assert_eq!(live_rows, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_headless_and_reports_what_it_wrote() -> Result<()> {
    let t = TestDb::new().await?;
    let url = t.url()?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args([
            "--database-url",
            &url,
            "demo",
            "--headless",
            "--duration",
            "3s",
            "--backfill",
            "10m",
            "--backfill-requests",
            "2000",
            "--incident-cycle",
            "5m",
            "--rate",
            "30",
        ])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("backfill done"), "{stdout}");
    assert!(stdout.contains("duration elapsed"), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("demo: rows written:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let reported = |table: &str| -> i64 {
        let after = summary.split(&format!("{table} ")).nth(1).unwrap_or("");
        after
            .split_whitespace()
            .next()
            .unwrap_or("")
            .replace(',', "")
            .parse()
            .unwrap_or(-1)
    };
    let pool = t.db.write.clone();
    for table in [
        "request_log",
        "log_event",
        "query_log",
        "audit_event",
        "health_check",
    ] {
        let n = table_count(&pool, table).await?;
        assert!(n > 0, "{table} empty");
        assert_eq!(reported(table), n, "{table} in: {summary}");
    }
    assert!(table_count(&pool, "request_log").await? > 1_500);
    Ok(())
}

/// A newcomer's first minute: with the loop started at once (as `opsdash demo` does), the
/// first incident begins within seconds, while the backfill still runs, and a shipped alert
/// rule fires on it well within 90 s of the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_incident_starts_at_once_and_a_shipped_rule_fires_within_90_s() -> Result<()> {
    use opsdash::alerts::engine;
    use opsdash::query::rules;
    let t = TestDb::new().await?;
    let started = Instant::now();
    // The shipped loop length, so the burst is as dense as a newcomer's demo makes it.
    let opts = DemoOptions {
        first_incident: Some(Duration::from_secs(1)),
        incident_cycle: DemoOptions::default().incident_cycle,
        ..small(60, 40_000, 40.0)
    };
    let handle = demo::start(t.db.clone(), opts);
    // Live traffic and the incident run beside the backfill, not after it.
    let s = wait_until(&handle, "first incident", |s| !s.active.is_empty()).await?;
    assert_eq!(s.active[0].kind, IncidentKind::FailedLoginBurst);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let cfg = opsdash::config::Config::default();
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg)).await?;
    let rule = rules::rule_by_name(&t.db.write, "brute-force-ip")
        .await?
        .expect("the shipped brute-force-ip rule");
    let firing = loop {
        engine::evaluate_rule(&t.db, &cfg, &rule, None).await?;
        let n = count(
            &t.db.write,
            "SELECT count(*) FROM opsdash.alert a JOIN opsdash.alert_rule r ON r.id = a.rule_id
              WHERE r.name = 'brute-force-ip' AND a.state = 'firing'",
        )
        .await?;
        if n > 0 {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(90) {
            bail!("brute-force-ip did not fire within 90 s of the demo's start");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("brute-force-ip fired {firing:?} after the start");
    handle.stop().await?;
    Ok(())
}
