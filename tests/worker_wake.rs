//! Worker wake-ups against a real database: the triggers of migration 0012 notify the listener
//! on the right topic, a job's lookout stays quiet until woken, due, or a new lease epoch, and
//! the delivery job still sends a message put into the outbox while it sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::jobs;
use opsdash::query::outbox::next_due_in;
use opsdash::worker::spawn_jobs;
use opsdash::worker::wake::{Lookout, Topic, Wake};

async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exec(t: &TestDb, sql: &str) {
    sqlx::query(sql).execute(&t.db.write).await.unwrap();
}

async fn insert_message(t: &TestDb, channel: &str, due_in_ms: i64) {
    sqlx::query(
        "INSERT INTO opsdash.notification (channel, kind, idempotency_key, payload, next_attempt_at)
         VALUES ($1, 'firing', gen_random_uuid()::text,
                 '{\"kind\": \"firing\", \"alert_ids\": [], \"alerts\": []}',
                 now() + $2 * interval '1 millisecond')",
    )
    .bind(channel)
    .bind(due_in_ms as f64)
    .execute(&t.db.write)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_wake_the_right_topic_and_lookouts_stay_quiet_otherwise() {
    let t = TestDb::new().await.unwrap();
    // An empty outbox plans nothing (not "due now", which would poll every tick).
    assert_eq!(next_due_in(&t.db.write).await.unwrap(), None);
    // The same for rules: with none enabled the evaluator must not spin through its tick.
    assert_eq!(
        opsdash::query::rules::next_due_in(&t.db.write)
            .await
            .unwrap(),
        None
    );
    let wake = Wake::default();
    // Not listening yet: nothing can be ruled out.
    assert!(wake.take(Topic::Outbox));
    wake.start(&t.db);
    eventually("listening", Duration::from_secs(5), || wake.is_listening()).await;
    // The (re)connect marks everything once, since what came before was not heard.
    assert!(wake.take(Topic::Outbox) && wake.take(Topic::Rules));
    assert!(!wake.take(Topic::Outbox) && !wake.take(Topic::Rules));

    insert_message(&t, "nowhere", 0).await;
    assert_eq!(
        next_due_in(&t.db.write).await.unwrap(),
        Some(Duration::ZERO)
    );
    eventually("outbox wake-up", Duration::from_secs(2), || {
        wake.take(Topic::Outbox)
    })
    .await;
    assert!(!wake.take(Topic::Rules), "an outbox insert woke the rules");

    // A rule added wakes the evaluator; the evaluator moving it later does not; a status
    // change (`alerts rules enable`) does.
    exec(
        &t,
        "INSERT INTO opsdash.alert_rule (name, severity, status, metric, operator, threshold)
         VALUES ('wake-test', 'warning', 'enabled', 'error_rate', 'gt', 1)",
    )
    .await;
    eventually("rules wake-up", Duration::from_secs(2), || {
        wake.take(Topic::Rules)
    })
    .await;
    exec(
        &t,
        "UPDATE opsdash.alert_rule SET next_eval_at = now() + interval '1 hour' WHERE name = 'wake-test'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !wake.take(Topic::Rules),
        "moving a rule later woke the evaluator"
    );
    exec(
        &t,
        "UPDATE opsdash.alert_rule SET status = 'disabled' WHERE name = 'wake-test'",
    )
    .await;
    eventually("status change wake-up", Duration::from_secs(2), || {
        wake.take(Topic::Rules)
    })
    .await;
    assert!(!wake.take(Topic::Outbox));

    // A lookout: looks first, then stays quiet until due, woken, or a new epoch.
    let look = Lookout::new(wake.clone(), Topic::Outbox);
    assert!(look.must_look(&t.db, 1), "never looked");
    look.looked(1, Some(Duration::from_secs(60)), Duration::ZERO);
    assert!(!look.must_look(&t.db, 1), "quiet after a look");
    assert!(look.must_look(&t.db, 2), "a new lease epoch looks");
    look.looked(1, Some(Duration::from_millis(100)), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(look.must_look(&t.db, 1), "due");
    look.looked(1, None, Duration::ZERO);
    assert!(!look.must_look(&t.db, 1));
    insert_message(&t, "nowhere", 0).await;
    eventually("woken lookout", Duration::from_secs(2), || {
        look.must_look(&t.db, 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_job_sends_what_enters_the_outbox_while_it_sleeps() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivered");
    let mut cfg = Config::default();
    cfg.worker.lease_ttl_ms = 600;
    cfg.alert.rules.clear();
    cfg.alert.channels = vec![opsdash::alerts::ChannelConfig {
        name: "cmd".into(),
        kind: "command".into(),
        command: vec![
            "sh".into(),
            "-c".into(),
            format!("cat >> {}", out.display()),
        ],
        ..Default::default()
    }];
    let cfg = Arc::new(cfg);
    let h = spawn_jobs(
        t.db.clone(),
        cfg.clone(),
        jobs::all(&cfg),
        "wake-test".into(),
    );
    // Let the notifier take its lease, look once and go quiet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_at = Instant::now();
    insert_message(&t, "cmd", 0).await;
    eventually("delivery", Duration::from_secs(3), || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    })
    .await;
    // Woken, not found by the 5 s fallback look.
    assert!(
        sent_at.elapsed() < Duration::from_secs(2),
        "delivered after {:?}",
        sent_at.elapsed()
    );
    // A retry planned in the future is sent when it comes due, with no wake-up.
    insert_message(&t, "cmd", 1200).await;
    let status: String = loop {
        let s: String =
            sqlx::query_scalar("SELECT status FROM opsdash.notification ORDER BY id DESC LIMIT 1")
                .fetch_one(&t.db.read)
                .await
                .unwrap();
        if s == "delivered" || sent_at.elapsed() > Duration::from_secs(8) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, "delivered");
    h.shutdown().await;
}
