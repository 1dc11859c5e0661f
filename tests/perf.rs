//! Rollups, histogram SQL functions and performance views against a real PostgreSQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::model::histogram::{self, Histogram};
use opsdash::query::perf::{self, EndpointKey, RegressionStatus};
use opsdash::worker::rollup::run_once;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

#[derive(Debug, Clone)]
struct Req {
    ts: DateTime<Utc>,
    service: &'static str,
    method: &'static str,
    route: &'static str,
    status: i16,
    duration_ms: f64,
    bytes: i64,
}

impl Req {
    fn key(&self) -> EndpointKey {
        EndpointKey {
            service: self.service.into(),
            route: format!("{} {}", self.method, self.route),
            direction: "inbound".into(),
        }
    }
}

const ENDPOINTS: [(&str, &str, &str); 4] = [
    ("api", "GET", "/users"),
    ("api", "POST", "/orders"),
    ("billing", "GET", "/invoices/{id}"),
    ("search", "GET", "/q"),
];

/// `n` requests spread over `[start, start + span)`, log-normal-ish latencies with a slow tail.
fn generate(rng: &mut StdRng, n: usize, start: DateTime<Utc>, span: Duration) -> Vec<Req> {
    (0..n)
        .map(|_| {
            let (service, method, route) = ENDPOINTS[rng.gen_range(0..ENDPOINTS.len())];
            let offset = rng.gen_range(0..span.num_milliseconds());
            let base: f64 = if rng.gen_bool(0.02) {
                rng.gen_range(800.0..5000.0)
            } else {
                (rng.gen_range(1.0f64..6.0)).exp()
            };
            let status = match rng.gen_range(0..100) {
                0..=3 => 500,
                4..=9 => 404,
                _ => 200,
            };
            Req {
                ts: start + Duration::milliseconds(offset),
                service,
                method,
                route,
                status,
                duration_ms: base,
                bytes: rng.gen_range(100..10_000),
            }
        })
        .collect()
}

async fn insert(pool: &PgPool, rows: &[Req]) -> anyhow::Result<()> {
    insert_rows(pool, rows).await?;
    settle(pool).await
}

/// Inserts without waiting for the cluster's xmin to pass them.
async fn insert_rows(conn: impl sqlx::PgExecutor<'_>, rows: &[Req]) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, bytes, trace_id)
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::smallint[],
                              $6::float8[], $7::bigint[], $8::text[])",
    )
    .bind(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.service).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.method).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.route).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.bytes).collect::<Vec<_>>())
    .bind(
        (0..rows.len())
            .map(|i| format!("trace-{i}"))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    opsdash::db::testkit::wait_for_snapshot_xmin(pool).await
}

#[derive(Debug, Default, PartialEq)]
struct Expect {
    requests: i64,
    err_4xx: i64,
    err_5xx: i64,
    bytes: i64,
    hist: Vec<i64>,
}

/// Direct computation over raw rows, grouped by `step` seconds and endpoint.
fn direct(rows: &[Req], step: i64) -> BTreeMap<(i64, String, String), Expect> {
    let mut hists: BTreeMap<(i64, String, String), (Expect, Histogram)> = BTreeMap::new();
    for r in rows {
        let b = r.ts.timestamp().div_euclid(step) * step;
        let k = r.key();
        let e = hists.entry((b, k.service, k.route)).or_default();
        e.0.requests += 1;
        e.0.err_4xx += i64::from((400..500).contains(&r.status));
        e.0.err_5xx += i64::from(r.status >= 500);
        e.0.bytes += r.bytes;
        e.1.record(r.duration_ms);
    }
    hists
        .into_iter()
        .map(|(k, (mut e, h))| {
            e.hist = h.counts().to_vec();
            (k, e)
        })
        .collect()
}

async fn stored(
    pool: &PgPool,
    table: &str,
) -> anyhow::Result<BTreeMap<(i64, String, String), Expect>> {
    type Row = (DateTime<Utc>, String, String, i64, i64, i64, i64, Vec<i32>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT bucket, service, route, requests, err_4xx, err_5xx, bytes, hist FROM {table}"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(b, s, r, n, e4, e5, by, h)| {
            (
                (b.timestamp(), s, r),
                Expect {
                    requests: n,
                    err_4xx: e4,
                    err_5xx: e5,
                    bytes: by,
                    hist: h.into_iter().map(i64::from).collect(),
                },
            )
        })
        .collect())
}

async fn check_all_tiers(pool: &PgPool, rows: &[Req]) -> anyhow::Result<()> {
    for (table, step) in [
        ("opsdash.rollup_1m", 60),
        ("opsdash.rollup_5m", 300),
        ("opsdash.rollup_30m", 1800),
        ("opsdash.rollup_1h", 3600),
        ("opsdash.rollup_1d", 86_400),
    ] {
        let want = direct(rows, step);
        let got = stored(pool, table).await?;
        assert_eq!(got.len(), want.len(), "{table}: number of buckets");
        for (k, w) in &want {
            assert_eq!(got.get(k), Some(w), "{table} {k:?}");
        }
    }
    Ok(())
}

fn start_of_window(now: DateTime<Utc>) -> DateTime<Utc> {
    // Three hours back, off the hour so the window has ragged 1m and 5m edges.
    now.duration_trunc(Duration::minutes(1)).unwrap_or(now) - Duration::minutes(3 * 60 + 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_bucketing_agrees_with_rust() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut values: Vec<f64> = vec![
        -1.0,
        0.0,
        0.5,
        0.999_999,
        1.0,
        1.04,
        59_999.999,
        60_000.0,
        1e12,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    // Every bucket boundary and its floating-point neighbours: where two implementations differ.
    for b in 1..histogram::OVERFLOW {
        let (lo, _) = histogram::bucket_bounds(b);
        values.extend([
            lo,
            f64::from_bits(lo.to_bits() - 1),
            f64::from_bits(lo.to_bits() + 1),
        ]);
    }
    values.extend((0..5000).map(|_| rng.gen_range(0.0f64..12.0).exp()));
    let got: Vec<i32> = sqlx::query_scalar(
        "SELECT opsdash.latency_bucket(x) FROM unnest($1::float8[]) WITH ORDINALITY u(x, i) ORDER BY i",
    )
    .bind(&values)
    .fetch_all(&t.db.read)
    .await?;
    for (v, g) in values.iter().zip(&got) {
        assert_eq!(*g as usize, histogram::bucket_of(*v), "bucket of {v:e}");
    }

    let reps: Vec<f64> = sqlx::query_scalar(
        "SELECT opsdash.latency_bucket_value(b) FROM generate_series(0, $1) b ORDER BY b",
    )
    .bind(histogram::OVERFLOW as i32)
    .fetch_all(&t.db.read)
    .await?;
    for (b, v) in reps.iter().enumerate() {
        let want = histogram::bucket_value(b);
        assert!(
            (v - want).abs() <= want * 1e-12,
            "value of bucket {b}: {v} vs {want}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_merge_and_percentile_agree_with_rust() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..20 {
        let parts: Vec<Vec<f64>> = (0..rng.gen_range(1..8))
            .map(|_| {
                (0..rng.gen_range(0..300))
                    .map(|_| rng.gen_range(-0.5f64..11.5).exp())
                    .collect()
            })
            .collect();
        let hists: Vec<Histogram> = parts
            .iter()
            .map(|p| Histogram::from_samples(p.iter().copied()))
            .collect();
        let arrays: Vec<String> = hists
            .iter()
            .map(|h| {
                let c: Vec<String> = h.counts().iter().map(|c| c.to_string()).collect();
                format!("{{{}}}", c.join(","))
            })
            .collect();
        let mut want = Histogram::new();
        for h in &hists {
            want.merge(h);
        }
        let merged: Option<Vec<i64>> =
            sqlx::query_scalar("SELECT opsdash.hist_merge(h::integer[]) FROM unnest($1::text[]) h")
                .bind(&arrays)
                .fetch_one(&t.db.read)
                .await?;
        let merged = Histogram::from_counts(&merged.unwrap_or_default());
        assert_eq!(merged.counts(), want.counts(), "round {round}");

        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let p: Option<f64> =
                sqlx::query_scalar("SELECT opsdash.hist_percentile($1::bigint[], $2)")
                    .bind(want.counts())
                    .bind(q)
                    .fetch_one(&t.db.read)
                    .await?;
            assert_eq!(p, want.percentile(q), "round {round} q {q}");
        }
        // hist_build makes the same array the Rust side would.
        let dense: Vec<i32> = sqlx::query_scalar(
            "SELECT opsdash.hist_build(opsdash.latency_bucket(x), 1) FROM unnest($1::float8[]) x",
        )
        .bind(parts.concat())
        .fetch_one(&t.db.read)
        .await?;
        assert_eq!(Histogram::from_counts(&dense).counts(), want.counts());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_direct_computation_and_rerun_is_idempotent() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let now = Utc::now();
    let start = start_of_window(now);
    let mut rng = StdRng::seed_from_u64(42);
    let rows = generate(&mut rng, 20_000, start, Duration::minutes(3 * 60 + 7));
    insert(pool, &rows).await?;

    let report = run_once(&t.db, now).await?;
    assert_eq!(report.request_rows, rows.len() as i64);
    check_all_tiers(pool, &rows).await?;

    // A second run with nothing new changes nothing.
    let before = stored(pool, "opsdash.rollup_1m").await?;
    let again = run_once(&t.db, now).await?;
    assert!(again.minutes <= 2, "only the trailing minutes: {again:?}");
    assert_eq!(stored(pool, "opsdash.rollup_1m").await?, before);
    check_all_tiers(pool, &rows).await?;

    // Endpoint stats over a window with ragged edges: counts exact, percentiles within 2%.
    let (from, to) = (
        start + Duration::minutes(13),
        start + Duration::minutes(2 * 60 + 44),
    );
    let in_window: Vec<&Req> = rows.iter().filter(|r| r.ts >= from && r.ts < to).collect();
    let stats = perf::endpoint_stats(&t.db.read, from, to).await?;
    assert_eq!(stats.len(), ENDPOINTS.len());
    // The SQL function psql users call gives the same figures as the Rust merge.
    let sql = perf::endpoint_stats_sql(&t.db.read, from, to).await?;
    assert_eq!(sql.len(), stats.len());
    for (a, b) in stats.iter().zip(&sql) {
        assert_eq!(
            (&a.key, a.requests, a.err_4xx, a.err_5xx, a.bytes),
            (&b.key, b.requests, b.err_4xx, b.err_5xx, b.bytes)
        );
        assert_eq!(
            (a.p50_ms, a.p95_ms, a.p99_ms, a.max_ms),
            (b.p50_ms, b.p95_ms, b.p99_ms, b.max_ms)
        );
        let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
            (x, y) => x == y,
        };
        assert!(close(a.avg_ms, b.avg_ms) && close(a.error_pct, b.error_pct));
        assert!(
            (a.rps - b.rps).abs() <= 1e-6 * a.rps.max(1.0),
            "{} vs {}",
            a.rps,
            b.rps
        );
    }
    for s in &stats {
        let samples: Vec<f64> = in_window
            .iter()
            .filter(|r| r.key() == s.key)
            .map(|r| r.duration_ms)
            .collect();
        assert_eq!(s.requests, samples.len() as i64, "{:?}", s.key);
        let errors = in_window
            .iter()
            .filter(|r| r.key() == s.key && r.status >= 400)
            .count() as i64;
        assert_eq!(s.err_4xx + s.err_5xx, errors);
        for (q, got) in [(0.5, s.p50_ms), (0.95, s.p95_ms), (0.99, s.p99_ms)] {
            let exact = histogram::exact_percentile(&samples, q).unwrap_or(f64::NAN);
            let got = got.unwrap_or(f64::NAN);
            assert!(
                (got - exact).abs() / exact <= 0.02,
                "{:?} p{q}: {got} vs exact {exact}",
                s.key
            );
        }
        let max = samples.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(s.max_ms, Some(max));
    }

    // The latency series of one endpoint agrees with the stats of each of its buckets.
    let key = stats[0].key.clone();
    let series = perf::latency_series(&t.db.read, &key, start, now, Duration::minutes(30)).await?;
    let total: i64 = series.iter().map(|p| p.requests).sum();
    assert_eq!(total, rows.iter().filter(|r| r.key() == key).count() as i64);
    for p in &series {
        let samples: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.key() == key && r.ts >= p.bucket && r.ts < p.bucket + Duration::minutes(30)
            })
            .map(|r| r.duration_ms)
            .collect();
        let exact = histogram::exact_percentile(&samples, 0.95).unwrap_or(f64::NAN);
        let got = p.p95_ms.unwrap_or(f64::NAN);
        assert!((got - exact).abs() / exact <= 0.02, "{p:?} vs {exact}");
    }
    Ok(())
}

/// A database holding `n` seeded requests over the three hours before now, rolled once.
struct Rolled {
    t: TestDb,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    rng: StdRng,
    rows: Vec<Req>,
}

async fn rolled(seed: u64, n: usize) -> anyhow::Result<Rolled> {
    let t = TestDb::new().await?;
    let now = Utc::now();
    let start = start_of_window(now);
    let mut rng = StdRng::seed_from_u64(seed);
    let rows = generate(&mut rng, n, start, Duration::hours(3));
    insert(&t.db.write, &rows).await?;
    run_once(&t.db, now).await?;
    Ok(Rolled {
        t,
        now,
        start,
        rng,
        rows,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_reroll_the_minutes_they_touch() -> anyhow::Result<()> {
    let Rolled {
        t,
        now,
        start,
        mut rng,
        mut rows,
    } = rolled(5, 3000).await?;
    let pool = &t.db.write;
    check_all_tiers(pool, &rows).await?;

    // Rows arriving now for minutes rolled long ago (2 h 30 m old, far outside any trailing
    // window), plus a new endpoint that did not exist before.
    let late_at = start + Duration::minutes(37);
    let mut late = generate(&mut rng, 500, late_at, Duration::minutes(3));
    late.iter_mut().take(50).for_each(|r| {
        r.service = "late";
        r.route = "/new";
    });
    insert(pool, &late).await?;
    rows.extend(late);
    let report = run_once(&t.db, now).await?;
    assert!(report.minutes >= 3 && report.minutes <= 6, "{report:?}");
    check_all_tiers(pool, &rows).await?;
    Ok(())
}

/// A transaction left open anywhere in the cluster holds the snapshot's xmin back. Rows committed
/// meanwhile are still rolled by the next run (readers take the minutes before the last run as
/// finished, so rows held out would be missing), and the open transaction's own rows are rolled
/// by the first run after it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_while_a_transaction_stays_open_are_rolled_by_the_next_run(
) -> anyhow::Result<()> {
    let Rolled {
        t,
        now,
        start,
        mut rng,
        mut rows,
    } = rolled(9, 1000).await?;
    let pool = &t.db.write;

    let mut open = pool.begin().await?;
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await?;
    let late = generate(
        &mut rng,
        300,
        start + Duration::minutes(37),
        Duration::minutes(3),
    );
    insert_rows(pool, &late).await?;
    rows.extend(late);
    run_once(&t.db, now).await?;
    check_all_tiers(pool, &rows).await?;

    let held = generate(
        &mut rng,
        100,
        start + Duration::minutes(70),
        Duration::minutes(2),
    );
    insert_rows(&mut *open, &held).await?;
    open.commit().await?;
    rows.extend(held);
    run_once(&t.db, now).await?;
    check_all_tiers(pool, &rows).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_return_sane_rows() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let now = Utc::now();
    let mut rng = StdRng::seed_from_u64(9);
    // A day of history, then a last hour in which /orders got 50% slower.
    // History ends 2 minutes before the last hour: the rollups count whole minutes, the raw
    // view counts from now() - 1 hour exactly, and both must see the same rows.
    let mut rows = generate(
        &mut rng,
        8000,
        now - Duration::hours(24),
        Duration::hours(23) - Duration::minutes(2),
    );
    let mut last = generate(
        &mut rng,
        4000,
        now - Duration::minutes(59),
        Duration::minutes(58),
    );
    for r in last.iter_mut().filter(|r| r.route == "/orders") {
        r.duration_ms *= 1.5;
    }
    rows.extend(last);
    insert(pool, &rows).await?;
    sqlx::query(
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms, rows)
         SELECT now() - make_interval(secs => g), 'api', 'SELECT * FROM t WHERE id = $1', 'fp1',
                400 + g % 400, 10
           FROM generate_series(1, 600) g",
    )
    .execute(pool)
    .await?;
    settle(pool).await?;
    run_once(&t.db, now).await?;

    let read = &t.db.read;
    let stats = perf::endpoint_stats(read, now - Duration::hours(1), now).await?;
    let exact = perf::endpoint_stats_exact_last_hour(read).await?;
    assert_eq!(stats.len(), exact.len());
    for (s, e) in stats.iter().zip(&exact) {
        assert_eq!(s.key, e.key);
        assert_eq!(s.requests, e.requests);
        assert_eq!((s.err_4xx, s.err_5xx), (e.err_4xx, e.err_5xx));
        assert!(s.p50_ms.is_some() && s.rps > 0.0);
    }
    let view_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.endpoint_stats")
        .fetch_one(read)
        .await?;
    assert_eq!(view_rows, stats.len() as i64);

    let regs = perf::regressions(read, now).await?;
    let orders = regs
        .iter()
        .find(|r| r.key.route == "POST /orders")
        .map(|r| r.status);
    assert_eq!(orders, Some(RegressionStatus::Alert), "{regs:?}");
    let users = regs
        .iter()
        .find(|r| r.key.route == "GET /users")
        .map(|r| r.status);
    assert_eq!(users, Some(RegressionStatus::Ok), "{regs:?}");

    let heat =
        perf::error_heatmap(read, now - Duration::hours(24), now, Duration::minutes(30)).await?;
    let heat_errors: i64 = heat.iter().map(|c| c.errors).sum();
    let heat_from = (now - Duration::hours(24)).duration_trunc(Duration::minutes(30))?;
    let want_errors = rows
        .iter()
        .filter(|r| r.status >= 400 && r.ts >= heat_from)
        .count() as i64;
    assert_eq!(heat_errors, want_errors);

    let slow = perf::slow_requests(read, 1000.0, now - Duration::hours(1), now, 20, None).await?;
    assert!(!slow.is_empty());
    assert!(slow
        .windows(2)
        .all(|w| w[0].duration_ms >= w[1].duration_ms));
    assert!(slow.iter().all(|r| r.duration_ms >= 1000.0));

    let sq = perf::slow_queries(read, 500.0, now - Duration::hours(1), now, 10).await?;
    assert_eq!(sq.len(), 1);
    let want_calls = (1..=600).filter(|g| 400 + g % 400 >= 500).count() as i64;
    assert_eq!(sq[0].calls, want_calls);

    for view in [
        "error_heatmap",
        "error_trend",
        "error_rate_by_status",
        "latency_trend",
        "latency_regression",
        "slow_requests",
        "slow_queries",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM opsdash.{view}"))
            .fetch_one(read)
            .await?;
        assert!(n > 0, "view {view} is empty");
    }
    let by_status: Vec<(i16, i64)> =
        sqlx::query_as("SELECT status, requests FROM opsdash.error_rate_by_status ORDER BY status")
            .fetch_all(read)
            .await?;
    assert_eq!(
        by_status.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![404, 500]
    );
    Ok(())
}
