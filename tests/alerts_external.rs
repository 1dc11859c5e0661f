//! External alerts (Alertmanager API v2) against a real PostgreSQL: re-sends refresh one open
//! alert per label set with exact counts, the sender's resolve and a passed endsAt both resolve
//! it, silences turn it suppressed and back, a hand resolve holds against re-sends of the same
//! episode, and the outbox gets one message per change under the rule's hourly cap.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use opsdash::alerts::external::{self, Received};
use opsdash::alerts::{ChannelConfig, Matcher};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::{AlertState, Severity};
use opsdash::query::alerts as q;
use opsdash::query::external_alerts as xq;
use opsdash::query::silences;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn firing(l: &BTreeMap<String, String>, ends_in_s: i64) -> Received {
    let now = Utc::now();
    Received {
        labels: l.clone(),
        annotations: labels(&[("summary", "disk almost full")]),
        // Prometheus keeps startsAt for the whole episode (the rule's ActiveAt).
        starts_at: Some(now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()),
        ends_at: Some(now + Duration::seconds(ends_in_s)),
        generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
    }
}

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.alert.channels = vec![ChannelConfig {
        name: "ops-hook".into(),
        url: opsdash::config::Secret::new("http://127.0.0.1:9/hook"),
        ..ChannelConfig::default()
    }];
    cfg
}

async fn messages(t: &TestDb) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT kind, jsonb_array_length(payload -> 'alerts')::int8 FROM opsdash.notification
          ORDER BY id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_refresh_one_alert_and_the_sender_resolves_it() {
    let t = TestDb::new().await.unwrap();
    let cfg = config();
    let disk = labels(&[
        ("alertname", "DiskFull"),
        ("instance", "db1"),
        ("severity", "page"),
    ]);
    let other = labels(&[("alertname", "DiskFull"), ("instance", "db2")]);
    for _ in 0..5 {
        external::receive(
            &t.db,
            &cfg,
            "prometheus",
            &[firing(&disk, 60), firing(&other, 60)],
        )
        .await
        .unwrap();
    }
    let open = xq::open(&t.db.read, 100).await.unwrap();
    assert_eq!(open.len(), 2, "one open alert per label set: {open:?}");
    let db1 = open.iter().find(|a| a.labels.0 == disk).unwrap();
    assert_eq!(db1.received_count, 5);
    assert_eq!(db1.state, AlertState::Firing);
    assert_eq!(
        db1.severity,
        Severity::Critical,
        "severity=page maps to critical"
    );
    assert_eq!(db1.rule_name, "DiskFull");
    assert_eq!(db1.source, "prometheus");
    assert_eq!(db1.summary, "disk almost full");
    assert_eq!(db1.fingerprint, external::fingerprint(&disk));
    let counts = q::open_counts(&t.db.read).await.unwrap();
    assert_eq!((counts.critical, counts.warning), (1, 1));
    // Opening notified once per alert (grouped by alertname into one message); re-sends
    // within the repeat interval did not.
    assert_eq!(messages(&t).await, vec![("firing".into(), 2)]);

    // Prometheus resolves: endsAt in the past.
    let mut done = firing(&disk, 0);
    done.ends_at = Some(Utc::now() - Duration::seconds(1));
    let out = external::receive(&t.db, &cfg, "prometheus", &[done.clone()])
        .await
        .unwrap();
    assert_eq!(out.resolved, 1);
    let rows = xq::by_fingerprint(&t.db.read, &db1.fingerprint)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, AlertState::Resolved);
    // Prometheus goes on sending the resolved alert for a while: nothing more happens.
    let out = external::receive(&t.db, &cfg, "prometheus", &[done])
        .await
        .unwrap();
    assert_eq!((out.resolved, out.ignored), (0, 1));
    let kinds: Vec<String> = messages(&t).await.into_iter().map(|m| m.0).collect();
    assert_eq!(kinds, ["firing", "resolved"]);
    let history: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT from_state, to_state, actor FROM opsdash.alert_history WHERE alert_id = $1
          ORDER BY id",
    )
    .bind(db1.id)
    .fetch_all(&t.db.read)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![
            (None, "firing".into(), "prometheus".into()),
            (
                Some("firing".into()),
                "resolved".into(),
                "prometheus".into()
            )
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_not_resent_before_its_ends_at_resolves_at_the_sweep() {
    let t = TestDb::new().await.unwrap();
    let cfg = config();
    let l = labels(&[("alertname", "Gone")]);
    external::receive(&t.db, &cfg, "prometheus", &[firing(&l, 2)])
        .await
        .unwrap();
    assert_eq!(external::sweep(&t.db, &cfg, None).await.unwrap(), (0, 0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (resolved, _) = external::sweep(&t.db, &cfg, None).await.unwrap();
        if resolved == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never resolved");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let rows = xq::by_fingerprint(&t.db.read, &external::fingerprint(&l))
        .await
        .unwrap();
    assert_eq!(rows[0].state, AlertState::Resolved);
    assert!(rows[0].resolved_at.unwrap() <= rows[0].ends_at.unwrap());
    // A later firing send of the same label set opens a new alert.
    external::receive(
        &t.db,
        &cfg,
        "prometheus",
        &[{
            let mut f = firing(&l, 60);
            f.starts_at = Some(Utc::now());
            f
        }],
    )
    .await
    .unwrap();
    assert_eq!(xq::open(&t.db.read, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_suppress_and_a_hand_resolve_holds_against_resends() {
    let t = TestDb::new().await.unwrap();
    let cfg = config();
    let l = labels(&[("alertname", "Hot"), ("zone", "b")]);
    external::receive(&t.db, &cfg, "prometheus", &[firing(&l, 60)])
        .await
        .unwrap();
    let mut tx = t.db.write.begin().await.unwrap();
    let sid = silences::create_silence(
        &mut tx,
        &[Matcher::parse("zone=b").unwrap()],
        None,
        std::time::Duration::from_secs(3600),
        "tester",
        "maintenance",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The sweep applies it without waiting for a re-send.
    assert_eq!(external::sweep(&t.db, &cfg, None).await.unwrap(), (0, 1));
    assert_eq!(
        xq::open(&t.db.read, 10).await.unwrap()[0].state,
        AlertState::Suppressed
    );
    // A re-send while silenced stays suppressed.
    external::receive(&t.db, &cfg, "prometheus", &[firing(&l, 60)])
        .await
        .unwrap();
    assert_eq!(
        xq::open(&t.db.read, 10).await.unwrap()[0].state,
        AlertState::Suppressed
    );
    let mut tx = t.db.write.begin().await.unwrap();
    silences::expire_silence(&mut tx, sid, "tester")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    external::receive(&t.db, &cfg, "prometheus", &[firing(&l, 60)])
        .await
        .unwrap();
    let a = &xq::open(&t.db.read, 10).await.unwrap()[0];
    assert_eq!(a.state, AlertState::Firing);
    // Firing, then firing again once the silence ended.
    let kinds: Vec<String> = messages(&t).await.into_iter().map(|m| m.0).collect();
    assert_eq!(kinds, ["firing", "firing"]);

    // The operator resolves it; Prometheus keeps re-sending the same episode.
    let mut tx = t.db.write.begin().await.unwrap();
    q::resolve(&mut tx, a.id, "alice", Some("fixed by hand"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let out = external::receive(&t.db, &cfg, "prometheus", &[firing(&l, 60)])
        .await
        .unwrap();
    assert_eq!((out.opened, out.ignored), (0, 1));
    assert!(xq::open(&t.db.read, 10).await.unwrap().is_empty());
    // A new episode (a new startsAt) opens a new alert.
    let mut next = firing(&l, 60);
    next.starts_at = Some(Utc::now());
    let out = external::receive(&t.db, &cfg, "prometheus", &[next])
        .await
        .unwrap();
    assert_eq!(out.opened, 1);
}
