//! Retention benchmark on a real PostgreSQL (a throwaway cluster, or OPSDASH_TEST_DATABASE_URL).
//!
//!   cargo bench --bench retention                      # 200k rows (quick)
//!   cargo bench --bench retention -- --rows 10000000   # the full figure
//!   RETENTION_BENCH_ROWS=1000000 cargo bench --bench retention
//!
//! Figures, each beside a baseline measured in the same run:
//! 1. dropping a day of N rows (detach + drop, as the retention job does it): wall time, and the
//!    commit latency of a concurrent ingest loop (COPY of 100 rows per commit) during the drop
//!    against the same loop with no drop running;
//! 2. archive throughput (COPY out + gzip + SHA-256 + fsync + read-back verification) against a
//!    bare COPY TO STDOUT of the same partition;
//! 3. "who deleted resource X" on N audit rows with the partial index against without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{Duration as Days, Utc};
use futures::StreamExt;
use opsdash::archive;
use opsdash::config::RetentionConfig;
use opsdash::db::copy::CopyBuf;
use opsdash::db::testkit::TestDb;
use opsdash::query::retention as q;
use opsdash::worker::retention::{Retention, Step};
use sqlx::PgPool;

#[path = "common/report.rs"]
mod report;
use report::Aim;

fn rows_arg() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rows") {
        if let Some(n) = args.get(i + 1).and_then(|s| s.parse().ok()) {
            return n;
        }
    }
    std::env::var("RETENTION_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000)
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
    fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }
    fn line(&self, what: &str) -> String {
        format!(
            "{} {what}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.0.len(),
            ms(self.pct(0.5)),
            ms(self.pct(0.99)),
            ms(self.max())
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// COPY 100 rows per commit into today's partition until `stop`; latency of each commit.
async fn ingest_loop(pool: PgPool, stop: Arc<AtomicBool>) -> Result<Latencies> {
    let mut lat = Vec::new();
    let mut conn = pool.acquire().await?;
    while !stop.load(Ordering::Relaxed) {
        let mut buf = CopyBuf::default();
        for i in 0..100 {
            buf.ts(Utc::now());
            buf.text("bench-ingest");
            buf.text(&format!("/live/{i}"));
            buf.plain(200);
            buf.end_row();
        }
        let t = Instant::now();
        buf.send(
            &mut conn,
            "opsdash.request_log",
            &["ts", "service", "route", "status"],
        )
        .await?;
        lat.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Latencies(lat))
}

async fn fill_day(pool: &PgPool, day: chrono::NaiveDate, rows: u64) -> Result<()> {
    q::ensure_partition(pool, "request_log", day).await?;
    let start = q::day_range(day).0;
    // In chunks so one statement's memory and WAL stay bounded.
    let chunk = 1_000_000u64;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        sqlx::query(
            "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, bytes, user_id, ip) \
             SELECT $1 + (i % 86400) * interval '1 second', 'svc-' || i % 20, 'GET', '/api/v1/item/' || i % 500, \
                    CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, (i % 1000) * 0.7, i % 10000, \
                    'user-' || i % 5000, '10.0.' || i % 250 || '.' || i % 200 \
               FROM generate_series($2::bigint, $3::bigint) i",
        )
        .bind(start)
        .bind(done as i64)
        .bind((done + n - 1) as i64)
        .execute(pool)
        .await?;
        done += n;
    }
    sqlx::query("ANALYZE opsdash.request_log")
        .execute(pool)
        .await?;
    Ok(())
}

async fn bench_drop(t: &TestDb, rows: u64) -> Result<()> {
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    let day = today - Days::days(10);
    let t0 = Instant::now();
    fill_day(pool, day, rows).await?;
    // A day due for dropping has long been written out; a freshly filled one still sits in
    // the OS cache with its blocks unallocated, and removing it would look cheaper than it is.
    sqlx::query("CHECKPOINT").execute(pool).await?;
    println!(
        "setup: {rows} rows in {} ({:.1} s, then CHECKPOINT)",
        q::partition_name("request_log", day),
        t0.elapsed().as_secs_f64()
    );

    // Baseline: the ingest loop alone, for 3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(ingest_loop(pool.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let baseline = task.await??;

    // The same loop while retention drops the day (nothing else is due in this database).
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(ingest_loop(pool.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let part_name = q::partition_name("request_log", day);
    let bytes: i64 =
        sqlx::query_scalar("SELECT pg_total_relation_size(to_regclass('opsdash.' || $1))")
            .bind(&part_name)
            .fetch_one(pool)
            .await?;
    let cfg = RetentionConfig::default();
    let dir = tempfile::tempdir()?;
    // When each step of the drop ended (the job's fault-injection hook, here a stopwatch).
    let marks: Arc<std::sync::Mutex<Vec<(Step, Instant)>>> = Default::default();
    let hook_marks = marks.clone();
    let t0 = Instant::now();
    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .after_step(Box::new(move |step, _, _| {
            if let Ok(mut m) = hook_marks.lock() {
                m.push((step, Instant::now()));
            }
            Ok(())
        }))
        .run(now)
        .await?;
    let wall = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let during = task.await??;
    anyhow::ensure!(
        report
            .dropped
            .contains(&q::partition_name("request_log", day)),
        "the day was not dropped: {report:?}"
    );
    println!("\n## drop a day of {rows} rows (detach + drop)");
    println!(
        "retention run wall time: {:.1} ms (errors: {})",
        ms(wall),
        report.errors.len()
    );
    let step: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM finished_at - started_at)::float8 * 1000 \
           FROM opsdash.retention_run WHERE action = 'drop' AND partition = $1 AND status = 'ok'",
    )
    .bind(q::partition_name("request_log", day))
    .fetch_one(pool)
    .await?;
    println!("drop step of that partition (detach + drop): {step:.1} ms");
    let at = |s: Step| {
        marks
            .lock()
            .ok()
            .and_then(|m| m.iter().find(|(x, _)| *x == s).map(|(_, t)| *t))
    };
    if let (Some(d), Some(x)) = (at(Step::Detached), at(Step::Dropped)) {
        println!(
            "  of which DROP TABLE of the detached partition ({:.0} MB with indexes): {:.1} ms",
            bytes as f64 / 1e6,
            ms(x - d)
        );
    }
    // The floor for any drop: giving that many bytes back to this file system.
    let floor = unlink_time(dir.path(), bytes as u64)?;
    println!(
        "  baseline: deleting one {:.0} MB file on the same file system: {:.1} ms",
        bytes as f64 / 1e6,
        ms(floor)
    );
    println!("ingest baseline (no drop):  {}", baseline.line("commits"));
    println!("ingest during the drop run: {}", during.line("commits"));
    let area = "retention";
    let day_of = format!("a day of {} rows", report::size(rows));
    report::figure(
        area,
        &format!("drop {day_of} (retention run wall time)"),
        ms(wall),
        "ms",
        None,
        &[Aim::AtMost(100.0)],
    );
    report::figure(
        area,
        &format!("longest ingest commit while dropping {day_of}"),
        ms(during.max()),
        "ms",
        Some(("same ingest loop, no drop", ms(baseline.max()))),
        &[Aim::AtMost(50.0)],
    );
    Ok(())
}

/// Writes a file of `bytes` bytes (synced), then times its removal.
fn unlink_time(dir: &std::path::Path, bytes: u64) -> Result<Duration> {
    use std::io::Write;
    let path = dir.join("unlink-baseline");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![1u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    let t = Instant::now();
    std::fs::remove_file(&path)?;
    Ok(t.elapsed())
}

async fn bench_archive(t: &TestDb, rows: u64) -> Result<()> {
    let pool = &t.db.write;
    let today = Utc::now().date_naive();
    let day = today - Days::days(20);
    fill_day(pool, day, rows).await?;
    let part = q::partition_name("request_log", day);
    let cols = q::columns(pool, "request_log").await?;

    // Baseline: a bare COPY TO STDOUT of the same rows, bytes discarded.
    let t0 = Instant::now();
    let mut bytes = 0usize;
    {
        let mut conn = pool.acquire().await?;
        let mut s = conn
            .copy_out_raw(&q::copy_out_statement(&part, &cols)?)
            .await?;
        while let Some(c) = s.next().await {
            bytes += c?.len();
        }
    }
    let bare = t0.elapsed();

    let dir = tempfile::tempdir()?;
    let t0 = Instant::now();
    let relid = q::relid(pool, &part).await?;
    let m = archive::write(pool, dir.path(), "request_log", &part, &part, day, relid).await?;
    let written = t0.elapsed();
    let t1 = Instant::now();
    archive::verify(
        &archive::manifest_path(dir.path(), "request_log", &part),
        &m,
    )?;
    let verified = t1.elapsed();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("\n## archive a day of {rows} rows");
    println!(
        "bare COPY TO STDOUT (baseline): {:.1} s, {:.0} rows/s, {} MB",
        bare.as_secs_f64(),
        rate(bare),
        bytes / 1_000_000
    );
    println!(
        "archive write (COPY + gzip + sha256 + fsync): {:.1} s, {:.0} rows/s, {} MB gz ({:.1}x)",
        written.as_secs_f64(),
        rate(written),
        m.bytes / 1_000_000,
        bytes as f64 / m.bytes.max(1) as f64
    );
    println!(
        "read-back verification: {:.1} s; write + verify: {:.0} rows/s",
        verified.as_secs_f64(),
        rate(written + verified)
    );
    report::figure(
        "retention",
        &format!("archive {} rows (write + verify)", report::size(rows)),
        rate(written + verified),
        "rows/s",
        Some(("bare COPY TO STDOUT", rate(bare))),
        &[],
    );
    Ok(())
}

async fn bench_who_deleted(t: &TestDb, rows: u64) -> Result<()> {
    let pool = &t.db.write;
    let today = Utc::now().date_naive();
    let days = 30i64;
    q::ensure_partitions(pool, today - Days::days(days), today).await?;
    let t0 = Instant::now();
    let chunk = 1_000_000u64;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        sqlx::query(
            "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome) \
             SELECT now() - (i % ($3 * 86400)) * interval '1 second', 'user-' || i % 1000, \
                    CASE WHEN i % 10 = 0 THEN 'delete' WHEN i % 3 = 0 THEN 'update' ELSE 'read' END, \
                    'doc', 'doc-' || (i * 7919) % ($4::bigint / 5 + 1), 'success' \
               FROM generate_series($1::bigint, $2::bigint) i",
        )
        .bind(done as i64)
        .bind((done + n - 1) as i64)
        .bind(days as i32)
        .bind(rows as i64)
        .execute(pool)
        .await?;
        done += n;
    }
    sqlx::query("ANALYZE opsdash.audit_event")
        .execute(pool)
        .await?;
    println!(
        "\nsetup: {rows} audit rows over {days} days ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    let sql =
        "SELECT actor, ts FROM opsdash.audit_event WHERE resource_id = $1 AND action = 'delete' \
               ORDER BY ts DESC LIMIT 1";
    let ids: Vec<String> = (0..50)
        .map(|k| format!("doc-{}", (k * 104_729) % (rows / 5 + 1)))
        .collect();
    let measure = |pool: PgPool, ids: Vec<String>| async move {
        let mut lat = Vec::new();
        for id in &ids {
            let t = Instant::now();
            let _: Option<(String, chrono::DateTime<Utc>)> =
                sqlx::query_as(sql).bind(id).fetch_optional(&pool).await?;
            lat.push(t.elapsed());
        }
        anyhow::Ok(Latencies(lat))
    };
    let with_index = measure(pool.clone(), ids.clone()).await?;
    sqlx::query("DROP INDEX opsdash.audit_event_deleted_resource")
        .execute(pool)
        .await?;
    let few: Vec<String> = ids.iter().take(5).cloned().collect();
    let without = measure(pool.clone(), few).await?;
    println!("\n## who deleted resource X ({rows} audit rows)");
    println!(
        "with audit_event_deleted_resource:      {}",
        with_index.line("queries")
    );
    println!(
        "without it (baseline, same query):      {}",
        without.line("queries")
    );
    report::figure(
        "retention",
        &format!(
            "who deleted resource X, {} audit rows, p50",
            report::size(rows)
        ),
        ms(with_index.pct(0.5)),
        "ms",
        Some(("same query without the index", ms(without.pct(0.5)))),
        &[Aim::AtMost(100.0)],
    );
    Ok(())
}

fn main() -> Result<()> {
    let rows = rows_arg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("# retention benchmark, {rows} rows");
        let t = TestDb::new().await?;
        bench_drop(&t, rows).await?;
        let t = TestDb::new().await?;
        bench_archive(&t, rows).await?;
        let t = TestDb::new().await?;
        bench_who_deleted(&t, rows).await?;
        anyhow::Ok(())
    })
}
