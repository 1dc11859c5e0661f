//! Demo backfill speed: the 24 h backfill (generate + COPY + error groups + coverage, two
//! connections) next to a baseline measured in the same run: a raw COPY of the very same
//! pre-generated rows over two connections, into an identical fresh database.
//!
//!     cargo bench --bench demo_backfill                 # 1.1M requests (the demo default)
//!     DEMO_BENCH_REQUESTS=100000 cargo bench --bench demo_backfill   # quick run

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use opsdash::db::testkit::TestDb;
use opsdash::demo::backfill::{self, BackfillPlan};
use opsdash::demo::rows::{self, Batch, RowCounts};
use opsdash::demo::traffic::Generator;
use opsdash::demo::{Counters, Events, Schedule};

#[path = "common/report.rs"]
mod report;

fn main() -> Result<()> {
    let requests: u64 = std::env::var("DEMO_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_100_000);
    let window = Duration::from_secs(24 * 3600);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(requests, window))
}

fn line(what: &str, rows: u64, secs: f64) {
    println!(
        "{what:<58} {rows:>10} rows {secs:>7.2} s {:>10.0} rows/s",
        rows as f64 / secs
    );
}

async fn bench(requests: u64, window: Duration) -> Result<()> {
    println!("demo backfill: 24 h window, {requests} requests asked");
    let now = Utc::now();
    let plan = BackfillPlan::new(now, window, requests, &[]);
    let generator = Arc::new(Generator::new(Schedule::default()));

    // Generation alone (one thread, no database).
    let t0 = Instant::now();
    let batches: Vec<Batch> = plan
        .slices
        .iter()
        .map(|&(a, b)| generator.generate(a, b, plan.rate, a.timestamp_millis() as u64))
        .collect();
    let gen_secs = t0.elapsed().as_secs_f64();
    let mut all = RowCounts::default();
    for b in &batches {
        all.add(&b.counts());
    }
    line(
        "generation only (1 thread, no database)",
        all.total(),
        gen_secs,
    );

    // Baseline: raw COPY of the same rows, two connections, one transaction per slice.
    let base_db = TestDb::new().await?;
    {
        let mut conn = base_db.db.write.acquire().await?;
        opsdash::query::demo::ensure_partitions(&mut conn, plan.window.0, plan.window.1).await?;
    }
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (db, batches, next) = (base_db.db.clone(), batches.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = db.write.acquire().await?;
            while let Some(b) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                b.requests
                    .send(&mut tx, "opsdash.request_log", rows::REQUEST_COLUMNS)
                    .await?;
                b.logs.send(&mut tx, "opsdash.log_event").await?;
                b.queries
                    .send(&mut tx, "opsdash.query_log", rows::QUERY_COLUMNS)
                    .await?;
                b.audits
                    .send(&mut tx, "opsdash.audit_event", rows::AUDIT_COLUMNS)
                    .await?;
                b.health
                    .send(&mut tx, "opsdash.health_check", rows::HEALTH_COLUMNS)
                    .await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let base_secs = t0.elapsed().as_secs_f64();
    line(
        "baseline: raw COPY of the same rows (2 connections)",
        all.total(),
        base_secs,
    );
    drop(batches);

    // The demo's backfill, start to finish, on a fresh database.
    let demo_db = TestDb::new().await?;
    let (events, _rx) = Events::channel(1024);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let report = backfill::run(
        &demo_db.db,
        generator,
        plan,
        Arc::new(Counters::default()),
        events,
        stop_rx,
    )
    .await?;
    let demo_secs = report.elapsed.as_secs_f64();
    line(
        "demo backfill: generate + COPY + error groups (2 conns)",
        report.rows.total(),
        demo_secs,
    );
    println!(
        "request_log rows: {} (inbound + outbound); demo/baseline throughput: {:.2}",
        report.rows.requests,
        report.rows_per_sec() / (all.total() as f64 / base_secs)
    );
    report::figure(
        "demo",
        &format!(
            "demo backfill, 24 h, {} requests asked",
            report::size(requests)
        ),
        report.rows_per_sec(),
        "rows/s",
        Some((
            "raw COPY of the same rows, 2 conns",
            all.total() as f64 / base_secs,
        )),
        &[],
    );
    println!(
        "rows per table: request_log {} log_event {} query_log {} audit_event {} health_check {}",
        report.rows.requests,
        report.rows.logs,
        report.rows.queries,
        report.rows.audits,
        report.rows.health
    );
    Ok(())
}
