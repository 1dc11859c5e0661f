//! Retention benchmark on a real PostgreSQL (a throwaway cluster, or OPSDASH_TEST_DATABASE_URL).
//!
//!   cargo bench --bench retention                      # 200k rows (quick)
//!   cargo bench --bench retention -- --rows 10000000   # the full figure
//!   RETENTION_BENCH_ROWS=1000000 cargo bench --bench retention
//!   cargo bench --bench retention -- --rows 1000000 --audit-rows 10000000 --only who
//!
//! Flags: `--rows N` sizes every part; `--drop-rows`, `--archive-rows`, `--audit-rows` size one
//! part each; `--only drop,archive,who` runs some parts only.
//!
//! Figures, each beside a baseline measured in the same run:
//! 1. dropping a day of N rows as the retention job does it: the run's wall time (the drop step
//!    is detach + hand-off), then the background drop of the handed-off table (DROP TABLE)
//!    beside deleting a file of the same size; the commit latency of a concurrent ingest loop
//!    (COPY of 100 rows per commit) during each phase against the same loop with nothing
//!    running;
//! 2. archive throughput (COPY out + gzip + SHA-256 + fsync + read-back verification) against a
//!    bare COPY TO STDOUT of the same partition;
//! 3. "who deleted resource X" (`query::audit::who_deleted`, the Audit view's query) on N audit
//!    rows with the partial index against the same query without it.

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

/// The value after `--name`, if given.
fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn rows_flag(name: &str) -> Result<Option<u64>> {
    flag(name)
        .map(|v| {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{name} wants a row count, not {v:?}"))
        })
        .transpose()
}

struct Sizes {
    drop: u64,
    archive: u64,
    audit: u64,
    only: Vec<String>,
}

impl Sizes {
    fn from_args() -> Result<Sizes> {
        let rows = match rows_flag("--rows")? {
            Some(n) => n,
            None => std::env::var("RETENTION_BENCH_ROWS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200_000),
        };
        let only: Vec<String> = flag("--only")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if let Some(bad) = only
            .iter()
            .find(|p| !["drop", "archive", "who"].contains(&p.as_str()))
        {
            anyhow::bail!("--only takes drop, archive and who, not {bad:?}");
        }
        Ok(Sizes {
            drop: rows_flag("--drop-rows")?.unwrap_or(rows),
            archive: rows_flag("--archive-rows")?.unwrap_or(rows),
            audit: rows_flag("--audit-rows")?.unwrap_or(rows),
            only,
        })
    }

    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// One commit of the ingest loop: when it started and how long it took.
#[derive(Clone, Copy)]
struct Commit {
    start: Instant,
    took: Duration,
}

struct Latencies(Vec<Commit>);

impl Latencies {
    /// The commits that overlapped `from..to` (a commit stalled by a phase started before it
    /// ended and ended after it started).
    fn during(&self, from: Instant, to: Instant) -> Latencies {
        Latencies(
            self.0
                .iter()
                .filter(|c| c.start <= to && c.start + c.took >= from)
                .copied()
                .collect(),
        )
    }
    fn pct(&self, p: f64) -> Duration {
        let mut v: Vec<Duration> = self.0.iter().map(|c| c.took).collect();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
    fn max(&self) -> Duration {
        self.0.iter().map(|c| c.took).max().unwrap_or_default()
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
        let start = Instant::now();
        buf.send(
            &mut conn,
            "opsdash.request_log",
            &["ts", "service", "route", "status"],
        )
        .await?;
        lat.push(Commit {
            start,
            took: start.elapsed(),
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Latencies(lat))
}

async fn fill_day(pool: &PgPool, day: chrono::NaiveDate, rows: u64) -> Result<()> {
    let t0 = Instant::now();
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
    println!(
        "setup: {rows} rows generated into {} in {:.1} s",
        q::partition_name("request_log", day),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn bench_drop(t: &TestDb, rows: u64) -> Result<()> {
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    let day = today - Days::days(10);
    fill_day(pool, day, rows).await?;
    // A day due for dropping has long been written out; a freshly filled one still sits in
    // the OS cache with its blocks unallocated, and removing it would look cheaper than it is.
    let t0 = Instant::now();
    sqlx::query("CHECKPOINT").execute(pool).await?;
    println!("setup: CHECKPOINT {:.1} s", t0.elapsed().as_secs_f64());

    // Baseline: the ingest loop alone, for 3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(ingest_loop(pool.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let baseline = task.await??;

    // The same loop while retention drops the day (nothing else is due in this database):
    // first the run (the drop step: detach + hand-off), then the background drop phase.
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
    let retention = Retention::new(&t.db, &cfg, dir.path().to_path_buf()).after_step(Box::new(
        move |step, _, _| {
            if let Ok(mut m) = hook_marks.lock() {
                m.push((step, Instant::now()));
            }
            Ok(())
        },
    ));
    let run_start = Instant::now();
    let report = retention.run(now).await?;
    let run_end = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bg_start = Instant::now();
    let freed = retention.drop_handed_off().await?;
    let bg_end = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let ingest = task.await??;
    anyhow::ensure!(
        report.dropped.contains(&part_name),
        "the day was not dropped: {report:?}"
    );
    anyhow::ensure!(
        freed.errors.is_empty() && freed.freed.iter().any(|f| f.starts_with(&part_name)),
        "the day's table was not freed: {freed:?}"
    );
    let during_run = ingest.during(run_start, run_end);
    let during_bg = ingest.during(bg_start, bg_end);
    let wall = run_end - run_start;
    let background = bg_end - bg_start;
    println!("\n## drop a day of {rows} rows (detach + hand-off, then the background drop)");
    println!(
        "retention run wall time: {:.1} ms (errors: {})",
        ms(wall),
        report.errors.len()
    );
    let step: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM finished_at - started_at)::float8 * 1000 \
           FROM opsdash.retention_run WHERE action = 'drop' AND partition = $1 AND status = 'ok'",
    )
    .bind(&part_name)
    .fetch_one(pool)
    .await?;
    println!("  drop step of that partition (estimate + detach + hand-off): {step:.1} ms");
    let at = |s: Step| {
        marks
            .lock()
            .ok()
            .and_then(|m| m.iter().find(|(x, _)| *x == s).map(|(_, t)| *t))
    };
    if let (Some(d), Some(h)) = (at(Step::Detached), at(Step::HandedOff)) {
        println!(
            "  of which the hand-off (rename + run record): {:.1} ms",
            ms(h - d)
        );
    }
    println!(
        "background drop phase: {:.1} ms (DROP TABLE of the {:.0} MB handed-off table + its run record)",
        ms(background),
        bytes as f64 / 1e6
    );
    // The floor for any drop: giving that many bytes back to this file system.
    let floor = unlink_time(dir.path(), bytes as u64)?;
    println!(
        "  baseline: deleting one {:.0} MB file on the same file system: {:.1} ms",
        bytes as f64 / 1e6,
        ms(floor)
    );
    println!(
        "ingest baseline (nothing running): {}",
        baseline.line("commits")
    );
    println!(
        "ingest during the run:             {}",
        during_run.line("commits")
    );
    println!(
        "ingest during the background drop: {}",
        during_bg.line("commits")
    );
    let area = "retention";
    let day_of = format!("a day of {} rows", report::size(rows));
    report::figure(
        area,
        &format!("drop {day_of} (the job's drop step: detach + hand-off)"),
        step,
        "ms",
        None,
        &[Aim::AtMost(100.0)],
    );
    report::figure(
        area,
        &format!("retention run wall time with {day_of} due (every phase but the background drop)"),
        ms(wall),
        "ms",
        None,
        &[],
    );
    report::figure(
        area,
        &format!("longest ingest commit while dropping {day_of}"),
        ms(during_run.max()),
        "ms",
        Some(("same ingest loop, no drop", ms(baseline.max()))),
        &[Aim::AtMost(50.0)],
    );
    report::figure(
        area,
        &format!("background drop of {day_of} (DROP TABLE, no lock on the parent)"),
        ms(background),
        "ms",
        Some(("deleting a file of the same size", ms(floor))),
        &[],
    );
    report::figure(
        area,
        &format!("longest ingest commit during the background drop of {day_of}"),
        ms(during_bg.max()),
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
    let ids: Vec<String> = (0..50)
        .map(|k| format!("doc-{}", (k * 104_729) % (rows / 5 + 1)))
        .collect();
    let measure = |pool: PgPool, ids: Vec<String>| async move {
        let mut lat = Vec::new();
        for id in &ids {
            let start = Instant::now();
            opsdash::query::audit::who_deleted(&pool, id, 1).await?;
            lat.push(Commit {
                start,
                took: start.elapsed(),
            });
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
    let sizes = Sizes::from_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!(
            "# retention benchmark: drop {} rows, archive {} rows, {} audit rows",
            sizes.drop, sizes.archive, sizes.audit
        );
        // Each part in its own database on the same throwaway cluster.
        if sizes.runs("drop") {
            let t = TestDb::new().await?;
            bench_drop(&t, sizes.drop).await?;
        }
        if sizes.runs("archive") {
            let t = TestDb::new().await?;
            bench_archive(&t, sizes.archive).await?;
        }
        if sizes.runs("who") {
            let t = TestDb::new().await?;
            bench_who_deleted(&t, sizes.audit).await?;
        }
        anyhow::Ok(())
    })
}
