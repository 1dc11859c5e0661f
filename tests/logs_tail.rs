//! Live tail completeness against a real PostgreSQL: concurrent writers whose transactions
//! commit out of id order, aborted transactions, and the listener's backend killed mid-way.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opsdash::db::testkit::TestDb;
use opsdash::db::LOGS_CHANNEL;
use opsdash::tail::{self, TailEvent, TailOptions, LISTENER_APP_NAME};
use rand::Rng;
use tokio::sync::mpsc::Receiver;

const WRITERS: usize = 4;
const ROWS_PER_WRITER: usize = 25_000;
const ROWS_PER_TX: usize = 500;

/// One transaction of `n` rows that notifies, holds the transaction open for a random while
/// (so later ids commit first), then commits or rolls back.
async fn write_batch(
    pool: &sqlx::PgPool,
    writer: usize,
    n: usize,
    commit: bool,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message) \
         SELECT now(), (g % 6)::smallint, $1, 'writer ' || $1 || ' row ' || g FROM generate_series(1, $2) g",
    )
    .bind(format!("w{writer}"))
    .bind(n as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(LOGS_CHANNEL)
        .execute(&mut *tx)
        .await?;
    let hold = rand::thread_rng().gen_range(0..25);
    tokio::time::sleep(Duration::from_millis(hold)).await;
    if commit {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(())
}

/// Collects events until `done` says the set is complete or the deadline passes.
async fn collect_until(
    rx: &mut Receiver<TailEvent>,
    seen: &mut Vec<i64>,
    reconnects: &mut u64,
    deadline: Duration,
    mut done: impl FnMut(&[i64]) -> bool,
) {
    let end = tokio::time::Instant::now() + deadline;
    while !done(seen) {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(TailEvent::Lines(l))) | Ok(Some(TailEvent::Reset(l))) => {
                seen.extend(l.iter().map(|l| l.id))
            }
            Ok(Some(TailEvent::Listening { reconnects: r })) => *reconnects = r,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_delivers_every_committed_row_exactly_once() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    // History before the tail starts arrives in the initial fill.
    write_batch(&pool, 99, 300, true).await?;

    let mut opts = TailOptions::new(1_000_000);
    // A slow safety-net poll, so the test exercises notifications and the reconnect catch-up.
    opts.poll = Duration::from_secs(2);
    let (handle, mut rx) = tail::spawn(&t.db, opts);

    let committed = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        let committed = committed.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            let mut written = 0;
            while written < ROWS_PER_WRITER {
                // Every seventh transaction rolls back: its rows must never be shown.
                let commit = i % 7 != 3;
                write_batch(&pool, w, ROWS_PER_TX, commit).await?;
                if commit {
                    written += ROWS_PER_TX;
                    committed.fetch_add(ROWS_PER_TX, Ordering::Relaxed);
                }
                i += 1;
            }
            anyhow::Ok(())
        }));
    }

    let mut seen = Vec::new();
    let mut reconnects = 0;
    // Half-way, kill the listener's backend: notifications sent while it reconnects are lost.
    let half = WRITERS * ROWS_PER_WRITER / 2;
    while committed.load(Ordering::Relaxed) < half {
        collect_until(
            &mut rx,
            &mut seen,
            &mut reconnects,
            Duration::from_millis(50),
            |_| false,
        )
        .await;
    }
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()) k",
    )
    .bind(LISTENER_APP_NAME)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        killed, 1,
        "the listener backend should have been found and killed"
    );

    for w in writers {
        w.await??;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(&pool)
        .await?;
    assert_eq!(total as usize, WRITERS * ROWS_PER_WRITER + 300);
    collect_until(
        &mut rx,
        &mut seen,
        &mut reconnects,
        Duration::from_secs(60),
        |s| s.len() >= total as usize,
    )
    .await;
    // Anything extra (a duplicate) would arrive right after; give it a moment.
    collect_until(
        &mut rx,
        &mut seen,
        &mut reconnects,
        Duration::from_millis(1500),
        |_| false,
    )
    .await;
    drop(handle);

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM opsdash.log_event ORDER BY id")
        .fetch_all(&pool)
        .await?;
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a row was delivered twice");
    let mut got = seen.clone();
    got.sort_unstable();
    assert_eq!(got.len(), ids.len(), "rows missing from the tail");
    assert!(
        got == ids,
        "the tail delivered rows that are not in the table"
    );
    assert!(reconnects >= 1, "the listener never reconnected");
    Ok(())
}

async fn insert(pool: &sqlx::PgPool, n: i32, level: i16) -> anyhow::Result<Vec<i64>> {
    let ids = sqlx::query_scalar(
        "INSERT INTO opsdash.log_event (ts, level, service, message) \
         SELECT now(), $2, 'api', 'line ' || g FROM generate_series(1, $1) g RETURNING id",
    )
    .bind(n)
    .bind(level)
    .fetch_all(pool)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(LOGS_CHANNEL)
        .execute(pool)
        .await?;
    Ok(ids)
}

async fn next_event(rx: &mut Receiver<TailEvent>, want: impl Fn(&TailEvent) -> bool) -> TailEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("tail event within 10 s")
            .expect("tail running");
        if want(&ev) {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_counts_waiting_lines_and_resume_keeps_the_newest() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    let mut opts = TailOptions::new(100);
    opts.poll = Duration::from_millis(200);
    let (handle, mut rx) = tail::spawn(&t.db, opts);
    next_event(&mut rx, |e| matches!(e, TailEvent::Reset(_))).await;

    handle.pause();
    next_event(&mut rx, |e| *e == TailEvent::Waiting(0)).await;
    let ids = insert(&pool, 50, 2).await?;
    next_event(&mut rx, |e| *e == TailEvent::Waiting(50)).await;
    handle.resume();
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), ids);

    // A pause longer than the buffer: only the newest 100 are read, the rest reported.
    handle.pause();
    next_event(&mut rx, |e| *e == TailEvent::Waiting(0)).await;
    let ids = insert(&pool, 500, 2).await?;
    next_event(&mut rx, |e| *e == TailEvent::Waiting(500)).await;
    handle.resume();
    let ev = next_event(&mut rx, |e| matches!(e, TailEvent::Skipped(_))).await;
    assert_eq!(ev, TailEvent::Skipped(400));
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        l.iter().map(|l| l.id).collect::<Vec<_>>(),
        ids[400..].to_vec()
    );

    // Following resumes: the next rows arrive normally.
    let ids = insert(&pool, 3, 2).await?;
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_resets_the_tail_and_applies_to_new_lines() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    insert(&pool, 5, 2).await?;
    let errors = insert(&pool, 2, 4).await?;
    let (handle, mut rx) = tail::spawn(&t.db, TailOptions::new(100));
    let TailEvent::Reset(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Reset(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.len(), 7);

    // Lines written just before the filter changes may be read under the old filter; the
    // engine answers the command with its number first, and what follows is the new filter's
    // (the Logs tab drops what came before that answer).
    insert(&pool, 3, 2).await?;
    let n = handle.set_filter(Some(opsdash::filter::parse("level:error+")?));
    let applied = next_event(&mut rx, |e| matches!(e, TailEvent::Applied(_))).await;
    assert_eq!(applied, TailEvent::Applied(n));
    let TailEvent::Reset(l) = next_event(&mut rx, |e| {
        assert!(
            !matches!(e, TailEvent::Lines(_)),
            "lines between the command's answer and its reset: {e:?}"
        );
        matches!(e, TailEvent::Reset(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), errors);
    insert(&pool, 4, 2).await?;
    let new_errors = insert(&pool, 1, 5).await?;
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), new_errors);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_read_skips_old_partitions_and_seeks_the_cursor_index() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    // A month of daily partitions, 2,000 rows each.
    sqlx::query("SELECT opsdash.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 30, (now() AT TIME ZONE 'UTC')::date)")
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, service, message)
         SELECT now() - (g % 31) * interval '1 day', 'api', 'x' FROM generate_series(1, 62000) g",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(&pool)
        .await?;
    let snap = opsdash::query::logs::snapshot(&pool).await?;
    let floor = chrono::Utc::now() - chrono::Duration::hours(24);
    let cursor = opsdash::query::logs::TailCursor {
        tx: snap.xmax - 1,
        id: 0,
    };
    let mut qb = opsdash::query::logs::tail_query(
        "EXPLAIN ",
        cursor,
        &snap,
        floor,
        None,
        opsdash::query::logs::TailOrder::Oldest,
        2000,
    );
    let plan: Vec<String> = qb.build_query_scalar().fetch_all(&pool).await?;
    let plan = plan.join("\n");
    // Partitions before the floor's day are pruned (those ahead of today are empty).
    for days_ago in 2..=30 {
        let day = (chrono::Utc::now() - chrono::Duration::days(days_ago)).format("%Y%m%d");
        assert!(
            !plan.contains(&format!("log_event_p{day}")),
            "{day} not pruned:\n{plan}"
        );
    }
    // Ordered by the xid8 column itself (not the bigint output alias), so the index order
    // is usable when many rows wait.
    assert!(!plan.contains("::bigint), log_event.id"), "{plan}");
    assert!(
        plan.contains("tx_id_idx"),
        "the cursor index is not used:\n{plan}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_open_transaction_neither_freezes_nor_loses_lines() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = t.db.write.clone();
    let mut opts = TailOptions::new(1000);
    opts.poll = Duration::from_millis(200);
    let (_handle, mut rx) = tail::spawn(&t.db, opts);
    next_event(&mut rx, |e| matches!(e, TailEvent::Reset(_))).await;

    // A session that wrote a line and sits idle in its transaction (the classic stuck app).
    let mut idle = pool.begin().await?;
    let late: i64 = sqlx::query_scalar(
        "INSERT INTO opsdash.log_event (ts, service, message) VALUES (now(), 'slow', 'late') RETURNING id",
    )
    .fetch_one(&mut *idle)
    .await?;
    // Later transactions keep flowing to the screen meanwhile.
    let ids = insert(&pool, 5, 2).await?;
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
    // When it finally commits, its line (with a lower id, behind the cursor) arrives once.
    idle.commit().await?;
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), vec![late]);
    let more = insert(&pool, 2, 2).await?;
    let TailEvent::Lines(l) = next_event(&mut rx, |e| matches!(e, TailEvent::Lines(_))).await
    else {
        unreachable!()
    };
    assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), more);
    Ok(())
}
