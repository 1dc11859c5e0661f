//! `read_url` against a real streaming replica (a throwaway primary and a `pg_basebackup -R`
//! copy of it, each its own cluster): the tabs' reads go to the replica and the header shows
//! its lag; with replay paused the live tail delivers nothing the replica has not replayed and,
//! after resume, everything exactly once; with the replica stopped, reads and the tail fall back
//! to the primary and the header says so; back, it serves again with nothing lost or repeated;
//! writes always go to the primary.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opsdash::config::{Config, Secret};
use opsdash::db::testkit::TestCluster;
use opsdash::db::topology::ReplicaStatus;
use opsdash::db::Db;
use opsdash::tail::{self, TailEvent, TailOptions};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc::Receiver;

/// Takes tail events for `limit` or until `want` distinct messages arrived; counts each.
async fn collect(
    rx: &mut Receiver<TailEvent>,
    counts: &mut HashMap<String, usize>,
    want: usize,
    limit: Duration,
) {
    let end = tokio::time::Instant::now() + limit;
    while counts.len() < want {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(TailEvent::Lines(lines))) | Ok(Some(TailEvent::Reset(lines))) => {
                for l in lines {
                    *counts.entry(l.message).or_default() += 1;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

async fn insert(db: &Db, batch: &str, n: i32) {
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now(), 2, 'api', $1 || ' ' || g FROM generate_series(1, $2) g",
    )
    .bind(batch)
    .bind(n)
    .execute(&db.write)
    .await
    .unwrap();
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn in_recovery(pool: &sqlx::PgPool) -> Option<bool> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(pool)
        .await
        .ok()
}

fn count_of(counts: &HashMap<String, usize>, batch: &str) -> usize {
    counts
        .keys()
        .filter(|m| m.starts_with(&format!("{batch} ")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_serves_reads_tail_stays_gapless_and_falls_back_to_the_primary() {
    let primary = TestCluster::start("primary").unwrap();
    let replica = TestCluster::replica_of(&primary, "replica").unwrap();
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(primary.url());
    cfg.database.read_url = Secret::new(replica.url());
    let db = Db::open(&cfg).await.unwrap();

    // Reads on the replica, writes on the primary.
    assert_eq!(in_recovery(&db.read).await, Some(true));
    assert_eq!(in_recovery(&db.write).await, Some(false));
    wait_until(
        "the header's replica lag",
        Duration::from_secs(10),
        || async {
            matches!(
                opsdash::query::status::header(&db, "test")
                    .await
                    .map(|h| h.replica),
                Ok(Some(ReplicaStatus::Serving { paused: false, .. }))
            )
        },
    )
    .await;

    let (_tail, mut rx) = tail::spawn(&db, TailOptions::new(100_000));
    let mut counts = HashMap::new();
    insert(&db, "a", 200).await;
    collect(&mut rx, &mut counts, 200, Duration::from_secs(20)).await;
    assert_eq!(count_of(&counts, "a"), 200);

    // Replay paused: the primary has batch b, the replica does not.
    let mut on_replica = PgConnection::connect_with(&replica.cluster.connect_options("opsdash"))
        .await
        .unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut on_replica)
        .await
        .unwrap();
    wait_until("replay to pause", Duration::from_secs(10), || async {
        matches!(
            db.topology.replica_status(),
            Some(ReplicaStatus::Serving { paused: true, .. })
        )
    })
    .await;
    for i in 0..5 {
        insert(&db, &format!("b{i}"), 40).await;
    }
    // The primary notifies the tail (its listener is on the primary) and the tail polls: it
    // reads several times in this window, and must deliver nothing of b.
    collect(&mut rx, &mut counts, usize::MAX, Duration::from_secs(3)).await;
    let b: usize = (0..5).map(|i| count_of(&counts, &format!("b{i}"))).sum();
    assert_eq!(b, 0, "the tail delivered rows the replica had not replayed");
    let on_replica_b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE message LIKE 'b%'")
            .fetch_one(&mut on_replica)
            .await
            .unwrap();
    assert_eq!(on_replica_b, 0, "replay was not paused");
    let app = common::tui::open(&db, Config::default(), "replica-test", true, 1).await;
    let text = common::tui::buffer_text(&common::tui::render(&app, 160, 40));
    assert!(text.contains("replay paused"), "{text}");

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_replica)
        .await
        .unwrap();
    collect(&mut rx, &mut counts, 400, Duration::from_secs(20)).await;
    assert_eq!(counts.len(), 400, "lines skipped after resume");
    assert!(counts.values().all(|&n| n == 1), "a line came twice");
    on_replica.close().await.unwrap();

    // Replica gone: reads, the tail and the header fall back to the primary.
    replica.cluster.stop("immediate").unwrap();
    insert(&db, "c", 100).await;
    wait_until(
        "the fallback to the primary",
        Duration::from_secs(15),
        || async { db.topology.replica_down() && in_recovery(&db.read).await == Some(false) },
    )
    .await;
    let h = opsdash::query::status::header(&db, "test").await.unwrap();
    assert_eq!(h.replica, Some(ReplicaStatus::Down));
    let app = common::tui::open(&db, Config::default(), "replica-test", true, 1).await;
    let text = common::tui::buffer_text(&common::tui::render(&app, 160, 40));
    assert!(text.contains("replica down: reading primary"), "{text}");
    collect(&mut rx, &mut counts, 500, Duration::from_secs(20)).await;
    assert_eq!(count_of(&counts, "c"), 100, "the tail did not fall back");
    assert!(counts.values().all(|&n| n == 1), "a line came twice");
    assert_eq!(in_recovery(&db.write).await, Some(false));

    // Replica back: the watch sees it, the tail returns to it once it has caught up with the
    // cursor, and lines written meanwhile come once each.
    insert(&db, "d", 50).await;
    let c = replica.cluster.clone();
    tokio::task::spawn_blocking(move || c.restart_stopped())
        .await
        .unwrap()
        .unwrap();
    insert(&db, "e", 50).await;
    wait_until(
        "the replica to serve again",
        Duration::from_secs(15),
        || async {
            matches!(
                db.topology.replica_status(),
                Some(ReplicaStatus::Serving { .. })
            )
        },
    )
    .await;
    let replica_opts = replica.cluster.connect_options("opsdash");
    wait_until(
        "the tail's reader back on the replica",
        Duration::from_secs(15),
        || {
            let opts = replica_opts.clone();
            async move {
                let Ok(mut c) = PgConnection::connect_with(&opts).await else {
                    return false;
                };
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(tail::READER_APP_NAME)
                .fetch_one(&mut c)
                .await
                .unwrap_or(0);
                n > 0
            }
        },
    )
    .await;
    insert(&db, "f", 50).await;
    collect(&mut rx, &mut counts, 650, Duration::from_secs(20)).await;
    assert_eq!(counts.len(), 650, "lines lost around the replica's return");
    assert!(counts.values().all(|&n| n == 1), "a line came twice");
}
