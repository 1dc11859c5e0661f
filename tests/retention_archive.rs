//! Archive before drop against a real PostgreSQL: round trip equals the original rows, faults at
//! each step lose nothing and the next run completes, ingest keeps going during drops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use opsdash::archive;
use opsdash::config::{RetentionConfig, Secret};
use opsdash::db::copy::CopyBuf;
use opsdash::query::retention as q;
use opsdash::worker::retention::Step;
use sqlx::PgPool;

mod common;
#[path = "common/retention.rs"]
mod fixture;
use fixture::{day_start, exists, Fixture};

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

/// `config()` with request_log dropped without an archive.
fn config_without_archive() -> RetentionConfig {
    let mut cfg = config();
    cfg.request_log.archive = false;
    cfg
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
    let f = Fixture::new().await;
    let (pool, today, dir) = (f.pool(), f.today, &f.dir);
    expired_requests(pool, today, 4, 50).await;
    let original = expired_rows_text(pool, today).await;
    assert!(!original.is_empty());
    let cfg = config();
    let report = f.run_clean(&cfg).await;
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
    let again = f.run_clean(&cfg).await;
    assert!(
        !again.dropped.iter().any(|p| p.starts_with("request_log")),
        "{again:?}"
    );
    assert_eq!(expired_rows_text(pool, today).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_archive_dir_drops_nothing_and_next_run_completes() {
    let f = Fixture::new().await;
    let (t, pool, now, today) = (&f.t, f.pool(), f.now, f.today);
    expired_requests(pool, today, 3, 20).await;
    let original = expired_rows_text(pool, today).await;
    // A regular file where a directory must be: every write fails, like a full disk.
    let blocker = f.dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let cfg = config();
    let report = f
        .retention_in(&cfg, &blocker.join("archive"))
        .run_job(now)
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
    let dir = f.dir.path().join("archive");
    let report = f.retention_in(&cfg, &dir).run_job(now).await.unwrap();
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
    let f = Fixture::new().await;
    let (pool, today, dir) = (f.pool(), f.today, &f.dir);
    expired_requests(pool, today, 2, 30).await;
    let original = expired_rows_text(pool, today).await;
    let cfg = config();
    // The file is damaged between writing and verification.
    let report = f
        .retention(&cfg)
        .after_step(Box::new(|step, p, dir| {
            if step == Step::ArchiveWritten {
                corrupt(archive::data_path(dir, p.table, &p.name));
            }
            Ok(())
        }))
        .run_job(f.now)
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

    f.run_clean(&cfg).await;
    assert_eq!(restore_all(pool, dir.path()).await, 60);
    assert_eq!(expired_rows_text(pool, today).await, original);
}

/// Tables of request_log handed to the background drop and not dropped yet.
async fn pending_requests(pool: &PgPool) -> Vec<String> {
    let mut names = q::pending_drops(pool).await.unwrap();
    names.retain(|n| n.starts_with("request_log"));
    names
}

fn of_requests(names: &[String]) -> usize {
    names
        .iter()
        .filter(|p| p.starts_with("request_log"))
        .count()
}

/// Rows each partition's successful drop steps recorded in `retention_run` (a partition is
/// counted by the step that removed it from its parent, once).
async fn dropped_rows(pool: &PgPool, partition: &str) -> Vec<Option<i64>> {
    sqlx::query_scalar(
        "SELECT rows FROM opsdash.retention_run \
          WHERE action = 'drop' AND status = 'ok' AND partition = $1 ORDER BY id",
    )
    .bind(partition)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_detach_verify_or_hand_off_is_finished_without_repeating() {
    let f = Fixture::new().await;
    let (pool, today, dir) = (f.pool(), f.today, f.dir.path());
    expired_requests(pool, today, 3, 25).await;
    let original = expired_rows_text(pool, today).await;
    let cfg = config();
    let newest = q::partition_name("request_log", f.d(8));
    let middle = q::partition_name("request_log", f.d(9));
    let oldest = q::partition_name("request_log", f.d(10));
    // "Kill" the newest day right after its detach, the middle one right after verification,
    // and the whole process after the oldest was handed off: the run ends before the
    // background drop.
    let (a, b) = (newest.clone(), middle.clone());
    let report = f
        .retention(&cfg)
        .after_step(Box::new(move |step, p, _| {
            if (step == Step::Detached && p.name == a)
                || (step == Step::ArchiveVerified && p.name == b)
            {
                anyhow::bail!("simulated crash after {step:?}");
            }
            Ok(())
        }))
        .run(f.now)
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
    assert!(report.dropped.contains(&oldest), "{report:?}");
    // Detached, not dropped, rows intact; the verified archive of the middle day is on disk.
    let parts = q::partitions(pool).await.unwrap();
    let state = |name: &str| parts.iter().find(|p| p.name == name).map(|p| p.state);
    assert_eq!(state(&newest), Some(q::PartitionState::Detached));
    assert_eq!(state(&middle), Some(q::PartitionState::Detached));
    assert_eq!(q::count_rows(pool, &newest).await.unwrap(), 25);
    // The oldest is handed off: under its pending-drop name, its own name free, its rows
    // counted once and out of the parent (as are the two detached days').
    let pending = pending_requests(pool).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        pending[0].starts_with(&format!("{oldest}_drop")),
        "{pending:?}"
    );
    assert_eq!(q::count_rows(pool, &pending[0]).await.unwrap(), 25);
    assert!(!exists(pool, &oldest).await);
    assert!(expired_rows_text(pool, today).await.is_empty());
    assert_eq!(dropped_rows(pool, &oldest).await, vec![Some(25)]);
    let mpath = |name: &str| archive::manifest_path(dir, "request_log", name);
    let first_middle = archive::read_manifest(&mpath(&middle)).unwrap();
    let first_oldest = archive::read_manifest(&mpath(&oldest)).unwrap();
    // A leftover partial file from the crash is simply replaced.
    std::fs::create_dir_all(dir.join("request_log")).unwrap();
    std::fs::write(
        dir.join(format!("request_log/{newest}.copy.gz.partial")),
        b"half a file",
    )
    .unwrap();

    let report = f.run_clean(&cfg).await;
    assert!(report.dropped.contains(&newest) && report.dropped.contains(&middle));
    assert!(
        !report.dropped.contains(&oldest),
        "dropped twice: {report:?}"
    );
    assert_eq!(of_requests(&report.freed), 3, "{report:?}");
    assert!(report.freed.contains(&pending[0]), "{report:?}");
    assert!(q::pending_drops(pool).await.unwrap().is_empty());
    for name in [&newest, &middle, &oldest] {
        assert!(!exists(pool, name).await, "{name}");
        assert_eq!(dropped_rows(pool, name).await, vec![Some(25)], "{name}");
    }
    // The verified archives were reused, not written again, and no second archive appeared.
    assert_eq!(
        archive::read_manifest(&mpath(&middle)).unwrap(),
        first_middle
    );
    assert_eq!(
        archive::read_manifest(&mpath(&oldest)).unwrap(),
        first_oldest
    );
    assert_eq!(archive::list(dir).unwrap().len(), 3);
    assert_eq!(restore_all(pool, dir).await, 75);
    assert_eq!(expired_rows_text(pool, today).await, original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_background_drop_next_run_frees_it_and_counts_once() {
    let f = Fixture::new().await;
    let (pool, today) = (f.pool(), f.today);
    expired_requests(pool, today, 1, 40).await;
    let cfg = config_without_archive();
    let part = q::partition_name("request_log", f.d(8));
    // The process dies after the drop step: the day left the parent, its table waits.
    let report = f.run_without_drop_phase(&cfg).await;
    assert!(report.dropped.contains(&part), "{report:?}");
    let first = pending_requests(pool).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(expired_rows_text(pool, today).await.is_empty());
    // Late rows for that day arrive meanwhile: its name is free, so the next run gives them a
    // new partition (another incarnation, another pending-drop name) and drops that too.
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, route) SELECT $1 + n * interval '1 minute', '/late' \
           FROM generate_series(1, 5) n",
    )
    .bind(day_start(f.d(8)))
    .execute(pool)
    .await
    .unwrap();

    let report = f.run_clean(&cfg).await;
    assert!(report.moved_from_default.contains(&part), "{report:?}");
    assert!(report.dropped.contains(&part), "{report:?}");
    assert_eq!(of_requests(&report.freed), 2, "{report:?}");
    assert!(report.freed.contains(&first[0]), "{report:?}");
    assert!(q::pending_drops(pool).await.unwrap().is_empty());
    assert!(!exists(pool, &part).await);
    assert!(!exists(pool, &first[0]).await);
    assert!(expired_rows_text(pool, today).await.is_empty());
    // One drop step per incarnation carries its rows (without an archive, the statistics'
    // estimate); the background drops record none, so nothing is counted twice.
    let freed_rows: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT rows FROM opsdash.retention_run \
          WHERE action = 'drop' AND status = 'ok' AND partition LIKE $1 || '_drop%'",
    )
    .bind(&part)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(freed_rows, vec![None, None]);
    assert_eq!(dropped_rows(pool, &part).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_drop_takes_no_lock_on_the_parent() {
    let f = Fixture::new().await;
    let (pool, today) = (f.pool(), f.today);
    expired_requests(pool, today, 2, 30).await;
    let cfg = config_without_archive();
    f.run_without_drop_phase(&cfg).await;
    let pending = q::pending_drops(pool).await.unwrap();
    assert_eq!(of_requests(&pending), 2, "{pending:?}");
    // Another session holds the strongest lock on the parent: the drop phase must not wait
    // for it (it would, were a pending table still a partition or tied to the parent).
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *holder).await.unwrap();
    sqlx::query("LOCK TABLE opsdash.request_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let freed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        f.retention(&cfg).drop_handed_off(),
    )
    .await
    .expect("the background drop waited for the parent's lock")
    .unwrap();
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    assert!(freed.errors.is_empty(), "{:?}", freed.errors);
    assert_eq!(freed.freed, pending);
    assert!(q::pending_drops(pool).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keeps_going_while_partitions_are_dropped() {
    let f = Fixture::new().await;
    let pool = f.pool().clone();
    expired_requests(&pool, f.today, 20, 200).await;
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
    let cfg = config_without_archive();
    // Both phases run while ingest writes: the drop steps and the background drop.
    let report = f.run_clean(&cfg).await;
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.unwrap().unwrap();
    assert_eq!(of_requests(&report.dropped), 20);
    assert_eq!(of_requests(&report.freed), 20);
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
    common::tui::buffer_text(term.backend().buffer())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_for_a_dropped_day_get_a_second_archive() {
    let f = Fixture::new().await;
    let (pool, today, dir) = (f.pool(), f.today, &f.dir);
    expired_requests(pool, today, 1, 10).await;
    let cfg = config();
    f.run_clean(&cfg).await;
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
    let second = f.run_clean(&cfg).await;
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
