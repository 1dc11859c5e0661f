//! Performance-tab benchmark: rollups + histogram percentiles against the original design
//! (`percentile_cont` over the last hour of raw rows), on the same data in one run.
//!
//!   OPSDASH_BENCH_ROWS=1000000,10000000 cargo bench --bench perf
//!   cargo bench --bench perf -- --rows 100000 --runs 5
//!
//! Every query runs with parallel workers off, so the figures are for one core.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DurationRound, Utc};
use opsdash::db::testkit::TestCluster;
use opsdash::db::{embedded, Db, DbTarget};
use opsdash::query::perf::{self, EndpointStat};
use opsdash::worker::rollup::run_once;

#[path = "common/report.rs"]
mod report;
use report::Aim;

struct Opts {
    rows: Vec<u64>,
    runs: usize,
}

fn opts() -> Result<Opts> {
    let mut rows = std::env::var("OPSDASH_BENCH_ROWS").unwrap_or_else(|_| "1000000".into());
    let mut runs = std::env::var("OPSDASH_BENCH_RUNS").unwrap_or_else(|_| "7".into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().context("--rows needs a value")?,
            "--runs" => runs = args.next().context("--runs needs a value")?,
            // cargo bench passes --bench; anything else is a mistake worth saying.
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other} (use --rows N[,N..] --runs N)"),
        }
    }
    let rows = rows
        .split(',')
        .map(|s| s.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .context("rows must be a comma-separated list of integers")?;
    Ok(Opts {
        rows,
        runs: runs.parse().context("runs must be an integer")?,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn timed<T, F, Fut>(runs: usize, mut f: F) -> Result<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut last = f().await?; // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        last = f().await?;
        times.push(t.elapsed());
    }
    Ok((median(times), last))
}

/// 6 services x 5 routes, log-normal latencies (median ~20 ms) with a 0.5% slow tail, 2% 5xx and
/// 5% 404, spread evenly over the last 24 hours.
async fn generate(db: &Db, n: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, bytes)
         SELECT now() - make_interval(secs => 86400.0 * g / $1),
                (ARRAY['api','billing','search','auth','media','admin'])[1 + g % 6],
                (ARRAY['GET','GET','POST','GET','PUT'])[1 + (g / 6) % 5],
                (ARRAY['/users','/users/{id}','/orders','/items','/settings'])[1 + (g / 6) % 5],
                CASE WHEN r1 < 0.02 THEN 500 WHEN r1 < 0.07 THEN 404 ELSE 200 END,
                CASE WHEN r1 > 0.995 THEN 1000 + 4000 * r2
                     ELSE exp(3 + 0.8 * sqrt(-2 * ln(1 - r2)) * cos(2 * pi() * r3)) END,
                (500 + 5000 * r3)::bigint
           FROM (SELECT g, random() AS r1, random() AS r2, random() AS r3
                   FROM generate_series(1, $1) g) s",
    )
    .bind(n as i64)
    .execute(&db.write)
    .await?;
    sqlx::query("ANALYZE opsdash.request_log")
        .execute(&db.write)
        .await?;
    Ok(())
}

/// Exact percentiles over exactly the rows the rollups cover: `percentile_cont` (the original
/// design) and `percentile_disc` (nearest rank, the definition the histogram approximates).
async fn exact_window(
    db: &Db,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
    func: &str,
) -> Result<Vec<EndpointStat>> {
    type Row = (String, String, String, f64, f64, f64);
    // `func` is one of two literals below, never user input.
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT service, method || ' ' || route, direction,
                {func}(0.50) WITHIN GROUP (ORDER BY duration_ms),
                {func}(0.95) WITHIN GROUP (ORDER BY duration_ms),
                {func}(0.99) WITHIN GROUP (ORDER BY duration_ms)
           FROM opsdash.request_log WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&db.read)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(service, route, direction, p50, p95, p99)| EndpointStat {
            key: perf::EndpointKey {
                service,
                route,
                direction,
            },
            requests: 0,
            rps: 0.0,
            avg_ms: None,
            p50_ms: Some(p50),
            p95_ms: Some(p95),
            p99_ms: Some(p99),
            max_ms: None,
            err_4xx: 0,
            err_5xx: 0,
            error_pct: None,
            bytes: 0,
        })
        .collect())
}

fn worst_error(ours: &[EndpointStat], exact: &[EndpointStat]) -> (f64, usize) {
    let mut worst = 0.0f64;
    let mut compared = 0;
    for e in exact {
        let Some(o) = ours.iter().find(|o| o.key == e.key) else {
            continue;
        };
        for (a, b) in [
            (o.p50_ms, e.p50_ms),
            (o.p95_ms, e.p95_ms),
            (o.p99_ms, e.p99_ms),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                worst = worst.max((a - b).abs() / b);
                compared += 1;
            }
        }
    }
    (worst, compared)
}

async fn bench(n: u64, runs: usize) -> Result<()> {
    let cluster = TestCluster::start("bench")?;
    let opts = cluster
        .cluster
        .connect_options(embedded::DATABASE)
        .options([("max_parallel_workers_per_gather", "0")]);
    let db = Db::from_options(
        opts,
        None,
        DbTarget::External {
            redacted_url: "bench cluster".into(),
        },
        4,
        Duration::from_secs(10),
        Duration::from_secs(600),
    )
    .await?;

    println!("== {n} request rows over 24 h ==");
    let t = Instant::now();
    generate(&db, n).await?;
    println!(
        "generate (INSERT ... generate_series): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    opsdash::db::testkit::wait_for_snapshot_xmin(&db.write).await?;

    let t = Instant::now();
    let report = run_once(&db, Utc::now()).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "rollup backfill: {} rows, {} minutes in {:.1} s = {:.0} rows/s (needed: 5,000 rows/s)",
        report.request_rows,
        report.minutes,
        secs,
        report.request_rows as f64 / secs
    );
    report::figure(
        "Performance",
        &format!("rollup backfill, {} rows", report::size(n)),
        report.request_rows as f64 / secs,
        "rows/s",
        None,
        &[Aim::AtLeast(5_000.0)],
    );

    // Steady state at 5,000 requests/s: 10 s of fresh rows, then one job run (the job runs every
    // 10 s and re-rolls the live and the previous minute, so this is its real per-run cost).
    let live = 50_000i64;
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, bytes)
         SELECT now() - make_interval(secs => 10.0 * g / $1), 'api', 'GET', '/users', 200,
                exp(3 + random()), 1000
           FROM generate_series(1, $1) g",
    )
    .bind(live)
    .execute(&db.write)
    .await?;
    opsdash::db::testkit::wait_for_snapshot_xmin(&db.write).await?;
    let t = Instant::now();
    let report = run_once(&db, Utc::now()).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "rollup steady state: run over 10 s of traffic at 5,000 req/s ({} rows re-rolled in the live minutes) took {:.0} ms = {:.0}% of one core",
        report.request_rows,
        secs * 1000.0,
        secs / 10.0 * 100.0
    );
    report::figure(
        "Performance",
        "rollup job at 5,000 req/s",
        secs / 10.0 * 100.0,
        "% of a core",
        None,
        &[Aim::AtMost(100.0)],
    );

    // Whole minutes, so the rollups and the raw-row baseline cover exactly the same rows.
    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .context("truncating now")?;
    let hour = chrono::Duration::hours(1);
    let (ours_t, ours) = timed(runs, || async {
        Ok(perf::endpoint_stats(&db.read, now - hour, now).await?)
    })
    .await?;
    let (sql_t, _) = timed(runs, || async {
        Ok(perf::endpoint_stats_sql(&db.read, now - hour, now).await?)
    })
    .await?;
    let cont = exact_window(&db, now - hour, now, "percentile_cont").await?;
    let disc = exact_window(&db, now - hour, now, "percentile_disc").await?;
    let (exact_t, exact) = timed(runs, || async {
        Ok(perf::endpoint_stats_exact_last_hour(&db.read).await?)
    })
    .await?;
    let (worst, compared) = worst_error(&ours, &cont);
    let (worst_disc, _) = worst_error(&ours, &disc);
    println!(
        "endpoint stats, last hour ({} endpoints, {} raw rows):",
        ours.len(),
        ours.iter().map(|e| e.requests).sum::<i64>()
    );
    println!(
        "  rollups, histograms merged in Rust (the tab):  {:8.2} ms",
        ms(ours_t)
    );
    println!(
        "  rollups, SQL function opsdash.endpoint_stats:  {:8.2} ms",
        ms(sql_t)
    );
    println!(
        "  percentile_cont over raw rows (baseline view):  {:8.2} ms",
        ms(exact_t)
    );
    println!(
        "  speed-up: {:.1}x (Rust merge), {:.1}x (SQL function)",
        ms(exact_t) / ms(ours_t),
        ms(exact_t) / ms(sql_t)
    );
    println!(
        "  largest relative percentile error vs percentile_cont: {:.3}% ({compared} percentiles compared)",
        worst * 100.0
    );
    println!(
        "  largest relative percentile error vs exact nearest-rank (percentile_disc): {:.3}% (bound 2%)",
        worst_disc * 100.0
    );
    let exact_name = "percentile_cont view over raw rows";
    report::figure(
        "Performance",
        &format!(
            "endpoint stats, last hour, {} rows (the tab)",
            report::size(n)
        ),
        ms(ours_t),
        "ms",
        Some((exact_name, ms(exact_t))),
        &[Aim::AtMost(10.0)],
    );
    report::figure(
        "Performance",
        &format!(
            "endpoint stats, last hour, {} rows (SQL function)",
            report::size(n)
        ),
        ms(sql_t),
        "ms",
        Some((exact_name, ms(exact_t))),
        &[Aim::AtMost(10.0)],
    );
    report::figure(
        "Performance",
        "largest percentile error vs nearest rank",
        worst_disc * 100.0,
        "%",
        None,
        &[Aim::AtMost(2.0)],
    );

    let day = chrono::Duration::hours(24);
    let (day_t, day_rows) = timed(runs, || async {
        Ok(perf::endpoint_stats(&db.read, now - day, now).await?)
    })
    .await?;
    println!(
        "endpoint stats, last 24 h from rollups: {:.2} ms ({} endpoints, {} requests; exact view: {} endpoints)",
        ms(day_t),
        day_rows.len(),
        day_rows.iter().map(|e| e.requests).sum::<i64>(),
        exact.len()
    );

    let (heat_t, cells) = timed(runs, || async {
        Ok(perf::error_heatmap(&db.read, now - day, now, chrono::Duration::minutes(30)).await?)
    })
    .await?;
    println!(
        "error heatmap, 24 h in 30-minute columns: {:.2} ms ({} cells)",
        ms(heat_t),
        cells.len()
    );
    report::figure(
        "Performance",
        &format!(
            "error heatmap 24 h, 30-min columns, {} rows",
            report::size(n)
        ),
        ms(heat_t),
        "ms",
        None,
        &[Aim::AtMost(20.0)],
    );
    let (heat_m_t, cells_m) = timed(runs, || async {
        Ok(perf::error_heatmap(&db.read, now - day, now, chrono::Duration::minutes(1)).await?)
    })
    .await?;
    println!(
        "error heatmap, 24 h minute x endpoint: {:.2} ms ({} cells)",
        ms(heat_m_t),
        cells_m.len()
    );
    drop(db);
    drop(cluster);
    Ok(())
}

fn main() -> Result<()> {
    let opts = opts()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for n in &opts.rows {
        rt.block_on(bench(*n, opts.runs))?;
    }
    Ok(())
}
