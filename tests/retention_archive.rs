//! Archive before drop against a real PostgreSQL: round trip equals the original rows, faults at
//! each step lose nothing and the next run completes, ingest keeps going during drops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use opsdash::archive;
use opsdash::config::{RetentionConfig, Secret};
use opsdash::db::copy::CopyBuf;
use opsdash::db::testkit::TestDb;
use opsdash::query::retention as q;
use opsdash::worker::retention::{Retention, Step};
use sqlx::PgPool;

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    q::day_range(d).0
}

/// `days` expired request_log days (d(8) and older) with `per_day` rows each, including values
/// that COPY must escape and NULLs.
async fn expired_requests(pool: &PgPool, today: NaiveDate, days: i64, per_day: i64) {
    let first = today - Duration::days(7 + days);
    q::ensure_partitions(pool, first, today).await.unwrap();
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms, user_id, ip, user_agent) \
         SELECT d + n * interval '1 second', 'api', '/p/' || n || E'\\t\\\\x\\ny', 200 + n % 300, n * 0.5, \
                CASE WHEN n % 3 = 0 THEN NULL ELSE 'user-' || n END, '10.0.0.' || n % 250, 'ü ✓' \
           FROM generate_series($1::timestamptz, $2::timestamptz, interval '1 day') d, \
                generate_series(1, $3) n",
    )
    .bind(day_start(first))
    .bind(day_start(today - Duration::days(8)))
    .bind(per_day as i32)
    .execute(pool)
    .await
    .unwrap();
}

async fn expired_rows_text(pool: &PgPool, today: NaiveDate) -> Vec<u8> {
    let mut conn = pool.acquire().await.unwrap();
    let cutoff = day_start(today - Duration::days(7));
    q::copy_rows_text(
        &mut conn,
        &format!(
            "COPY (SELECT * FROM opsdash.request_log WHERE ts < '{}' ORDER BY id) TO STDOUT",
            cutoff.to_rfc3339()
        ),
    )
    .await
    .unwrap()
}

fn config() -> RetentionConfig {
    let mut cfg = RetentionConfig {
        anonymize_secret: Secret::new("k"),
        ..RetentionConfig::default()
    };
    cfg.request_log.archive = true;
    cfg
}

fn table_exists_sql() -> &'static str {
    "SELECT to_regclass('opsdash.' || $1) IS NOT NULL"
}

async fn exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar(table_exists_sql())
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn restore_all(pool: &PgPool, dir: &Path) -> u64 {
    let mut total = 0;
    for (path, m) in archive::list(dir).unwrap() {
        let m = m.unwrap();
        if m.table == "request_log" {
            total += archive::restore(pool, &path, 7).await.unwrap().1;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_round_trip_equals_the_original_rows() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(pool, today, 4, 50).await;
    let original = expired_rows_text(pool, today).await;
    assert!(!original.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .run(now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let archived: Vec<_> = report
        .archived
        .iter()
        .filter(|p| p.starts_with("request_log"))
        .collect();
    assert_eq!(archived.len(), 4, "{report:?}");
    assert!(expired_rows_text(pool, today).await.is_empty());

    // Manifests: rows, checksum, and the run record carries the same checksum.
    let listed = archive::list(dir.path()).unwrap();
    assert_eq!(listed.len(), 4);
    for (path, m) in &listed {
        let m = m.as_ref().unwrap();
        assert_eq!(m.rows, 50);
        assert_eq!(archive::verify(path, m).unwrap(), 50);
        let sha: String = sqlx::query_scalar(
            "SELECT sha256 FROM opsdash.retention_run WHERE partition = $1 AND action = 'archive' AND status = 'ok'",
        )
        .bind(&m.partition)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(sha, m.sha256);
    }

    // Restore brings back exactly the rows that left, queryable through the parent table.
    assert_eq!(restore_all(pool, dir.path()).await, 200);
    assert_eq!(expired_rows_text(pool, today).await, original);

    // Restoring twice is refused and changes nothing.
    let (path, _) = &listed[0];
    let err = archive::restore(pool, path, 7)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already restored"), "{err}");
    assert_eq!(expired_rows_text(pool, today).await, original);

    // The restored partitions are held: the next run keeps them.
    let again = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .run(now)
        .await
        .unwrap();
    assert!(
        !again.dropped.iter().any(|p| p.starts_with("request_log")),
        "{again:?}"
    );
    assert_eq!(expired_rows_text(pool, today).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_archive_dir_drops_nothing_and_next_run_completes() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(pool, today, 3, 20).await;
    let original = expired_rows_text(pool, today).await;
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where a directory must be: every write fails, like a full disk.
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let cfg = config();
    let report = Retention::new(&t.db, &cfg, blocker.join("archive"))
        .run(now)
        .await
        .unwrap();
    let failed: Vec<_> = report
        .errors
        .iter()
        .filter(|e| e.starts_with("request_log"))
        .collect();
    assert_eq!(failed.len(), 3, "{:?}", report.errors);
    assert!(!report.dropped.iter().any(|p| p.starts_with("request_log")));
    // Nothing lost: each partition still exists (detached) with all its rows.
    let mut rows = 0;
    for n in 8..11 {
        let part = q::partition_name("request_log", today - Duration::days(n));
        assert!(exists(pool, &part).await, "{part}");
        rows += q::count_rows(pool, &part).await.unwrap();
    }
    assert_eq!(rows, 60);
    let status = q::retention_status(&t.db, &cfg).await.unwrap();
    let req = status.iter().find(|s| s.table == "request_log").unwrap();
    assert!(req.last_error.is_some(), "{req:?}");
    // The Health tab's retention section puts the failing table first, with its error.
    let screen = render_section(status, now);
    println!("{screen}");
    assert!(screen.contains("Retention (1 failing)"), "{screen}");
    let first_row = screen.lines().nth(2).unwrap();
    assert!(first_row.contains("request_log"), "{screen}");
    assert!(first_row.contains("7d"), "{screen}");
    assert!(screen.contains("audit_event"), "{screen}");

    // The disk is back: the next run archives, verifies and drops; the error clears.
    let dir = tmp.path().join("archive");
    let report = Retention::new(&t.db, &cfg, dir.clone())
        .run(now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report
            .dropped
            .iter()
            .filter(|p| p.starts_with("request_log"))
            .count(),
        3
    );
    let status = q::retention_status(&t.db, &cfg).await.unwrap();
    let req = status.iter().find(|s| s.table == "request_log").unwrap();
    assert_eq!(req.last_error, None);
    assert!(req.archive_bytes > 0);
    assert_eq!(restore_all(pool, &dir).await, 60);
    assert_eq!(expired_rows_text(pool, today).await, original);
}

fn corrupt(path: PathBuf) {
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_drops_nothing_and_next_run_rewrites() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(pool, today, 2, 30).await;
    let original = expired_rows_text(pool, today).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    // The file is damaged between writing and verification.
    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .after_step(Box::new(|step, p, dir| {
            if step == Step::ArchiveWritten {
                corrupt(archive::data_path(dir, p.table, &p.name));
            }
            Ok(())
        }))
        .run(now)
        .await
        .unwrap();
    let errs: Vec<_> = report
        .errors
        .iter()
        .filter(|e| e.starts_with("request_log"))
        .collect();
    assert_eq!(errs.len(), 2, "{:?}", report.errors);
    assert!(
        errs.iter()
            .all(|e| e.contains("checksum mismatch") || e.contains("corrupt")),
        "{errs:?}"
    );
    for n in 8..10 {
        let part = q::partition_name("request_log", today - Duration::days(n));
        assert_eq!(q::count_rows(pool, &part).await.unwrap(), 30);
    }
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.retention_run \
          WHERE table_name = 'request_log' AND action = 'archive' AND status = 'failed'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(recorded, 2);

    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .run(now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(restore_all(pool, dir.path()).await, 60);
    assert_eq!(expired_rows_text(pool, today).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_detach_or_after_verify_is_finished_without_repeating() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(pool, today, 2, 25).await;
    let original = expired_rows_text(pool, today).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let newest = q::partition_name("request_log", today - Duration::days(8));
    let oldest = q::partition_name("request_log", today - Duration::days(9));
    // "Kill" the newest day right after its detach and the oldest right after verification.
    let (a, b) = (newest.clone(), oldest.clone());
    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .after_step(Box::new(move |step, p, _| {
            if (step == Step::Detached && p.name == a)
                || (step == Step::ArchiveVerified && p.name == b)
            {
                anyhow::bail!("simulated crash after {step:?}");
            }
            Ok(())
        }))
        .run(now)
        .await
        .unwrap();
    assert_eq!(
        report
            .errors
            .iter()
            .filter(|e| e.contains("simulated crash"))
            .count(),
        2
    );
    // Detached, not dropped, rows intact; the verified archive of the other is on disk.
    let parts = q::partitions(pool).await.unwrap();
    let state = |name: &str| parts.iter().find(|p| p.name == name).map(|p| p.state);
    assert_eq!(state(&newest), Some(q::PartitionState::Detached));
    assert_eq!(state(&oldest), Some(q::PartitionState::Detached));
    assert_eq!(q::count_rows(pool, &newest).await.unwrap(), 25);
    let mpath = archive::manifest_path(dir.path(), "request_log", &oldest);
    let first = archive::read_manifest(&mpath).unwrap();
    // A leftover partial file from the crash is simply replaced.
    std::fs::create_dir_all(dir.path().join("request_log")).unwrap();
    std::fs::write(
        dir.path()
            .join(format!("request_log/{newest}.copy.gz.partial")),
        b"half a file",
    )
    .unwrap();

    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .run(now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.dropped.contains(&newest) && report.dropped.contains(&oldest));
    assert!(!exists(pool, &newest).await && !exists(pool, &oldest).await);
    // The verified archive was reused, not written again.
    assert_eq!(archive::read_manifest(&mpath).unwrap(), first);
    assert_eq!(restore_all(pool, dir.path()).await, 50);
    assert_eq!(expired_rows_text(pool, today).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keeps_going_while_partitions_are_dropped() {
    let t = TestDb::new().await.unwrap();
    let pool = t.db.write.clone();
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(&pool, today, 20, 200).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) || batches < 5 {
                let mut buf = CopyBuf::default();
                for i in 0..50 {
                    buf.ts(Utc::now());
                    buf.text("ingest");
                    buf.text(&format!("/live/{i}"));
                    buf.end_row();
                }
                let mut conn = pool.acquire().await?;
                sent += buf
                    .send(
                        &mut conn,
                        "opsdash.request_log",
                        &["ts", "service", "route"],
                    )
                    .await?;
                batches += 1;
            }
            anyhow::Ok(sent)
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.request_log.archive = false;
    let report = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
        .run(now)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.unwrap().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report
            .dropped
            .iter()
            .filter(|p| p.starts_with("request_log"))
            .count(),
        20
    );
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.request_log WHERE service = 'ingest'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(live as u64, sent);
    assert!(sent >= 250);
}

fn render_section(status: Vec<q::RetentionStatus>, now: DateTime<Utc>) -> String {
    use opsdash::tui::retention_section::RetentionSection;
    use opsdash::tui::tabs::DrawCtx;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let mut section = RetentionSection::default();
    section.rows.data = Some(status);
    let theme = opsdash::tui::theme::Theme::builtin("dark").unwrap();
    let ctx = DrawCtx {
        theme: &theme,
        now,
        range: opsdash::model::TimeRange::parse("1h").unwrap(),
        local_clock: false,
        instance: "t",
    };
    let mut term = Terminal::new(TestBackend::new(80, 12)).unwrap();
    term.draw(|f| section.draw(f, f.area(), &ctx)).unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_for_a_dropped_day_get_a_second_archive() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    expired_requests(pool, today, 1, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let run = || async {
        let r = Retention::new(&t.db, &cfg, dir.path().to_path_buf())
            .run(now)
            .await
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r
    };
    run().await;
    // Late rows for the dropped day land in the default partition; the next run moves them into
    // a new partition of that day, archives it beside the first archive and drops it.
    let day = today - Duration::days(8);
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, route) SELECT $1 + n * interval '1 minute', '/late' \
           FROM generate_series(1, 5) n",
    )
    .bind(day_start(day))
    .execute(pool)
    .await
    .unwrap();
    let second = run().await;
    let part = q::partition_name("request_log", day);
    assert!(second.dropped.contains(&part), "{second:?}");
    let first =
        archive::read_manifest(&archive::manifest_path(dir.path(), "request_log", &part)).unwrap();
    let late = archive::read_manifest(&archive::manifest_path(
        dir.path(),
        "request_log",
        &archive::stem(&part, 1),
    ))
    .unwrap();
    assert_eq!((first.rows, late.rows), (10, 5));
    assert_ne!(first.relid, late.relid);
    // Both come back, each once.
    assert_eq!(restore_all(pool, dir.path()).await, 15);
    let err = archive::restore(
        pool,
        &archive::data_path(dir.path(), "request_log", &part),
        7,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("already restored"), "{err}");
    assert_eq!(q::count_rows(pool, &part).await.unwrap(), 15);
}
