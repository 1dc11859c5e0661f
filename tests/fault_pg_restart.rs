//! Fault: PostgreSQL crashes (`pg_ctl stop -m immediate`) and comes back under a running
//! dashboard (real binary in tmux), a running `opsdash worker` and a running
//! `opsdash ingest --follow` fed continuously. Checks the outage banner, the recovery, that every
//! line fed is stored exactly once, that the live tail has no gap (the tail engine in this
//! process and the Logs tab on screen) and that the alert that fires throughout stays one alert
//! with one notification at a real HTTP receiver.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::procs::{opsdash, wait_until, write_config, Children, Feeder};
use common::receiver::Receiver;
use common::tmux::{start_cluster, Tmux, PROMPT};
use opsdash::db::Db;
use opsdash::tail::{self, TailEvent, TailOptions};

const PREFIX: &str = "fault feed line";
const BANNER: &str = "DATABASE UNREACHABLE";

fn config(hook: &str) -> String {
    format!(
        r#"
[alert]
tick_ms = 200
group_wait = "200ms"
retry_initial = "200ms"

[[alert.channel]]
name = "hook"
url = "{hook}"
timeout = "2s"

[[alert.rule]]
name = "feed-errors"
measure = "log_count"
filter = "service:feed level:error+"
threshold = 0.0
window = "10m"
interval = "1s"
channels = ["hook"]
"#
    )
}

/// The numbers of the feed lines visible on the screen, top to bottom.
fn numbers_on_screen(screen: &str) -> Vec<u64> {
    screen
        .lines()
        .filter_map(|l| {
            let at = l.find(PREFIX)? + PREFIX.len();
            l[at..].split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[test]
fn postgres_crash_and_restart_under_dashboard_worker_and_ingest() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = start_cluster("fault-restart");
    let url = cluster.url();
    let dir = tempfile::tempdir().expect("temp dir");
    let rx = rt.block_on(Receiver::start(vec![]));
    let cfg = write_config(dir.path(), &config(&rx.url));

    // The tail engine of the Logs tab, in this process, records every line it delivers.
    let db = rt
        .block_on(Db::from_options(
            cluster
                .cluster
                .connect_options(opsdash::db::embedded::DATABASE),
            None,
            opsdash::db::DbTarget::External {
                redacted_url: "fault cluster".into(),
            },
            4,
            Duration::from_secs(2),
            Duration::from_secs(5),
        ))
        .expect("db");
    let tailed: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let tail_errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (_tail, mut events) = {
        let _guard = rt.enter();
        tail::spawn(&db, TailOptions::new(100_000))
    };
    {
        let tailed = tailed.clone();
        let tail_errors = tail_errors.clone();
        rt.spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    TailEvent::Lines(l) | TailEvent::Reset(l) => tailed
                        .lock()
                        .unwrap()
                        .extend(l.into_iter().map(|l| l.message)),
                    TailEvent::Error(_) => {
                        tail_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }

    let mut kids = Children::new(dir.path());
    let mut worker = opsdash(&url, &cfg);
    worker.arg("worker");
    kids.spawn("worker", worker);
    let feed_path = dir.path().join("feed.log");
    let mut feeder = Feeder::start(&feed_path, PREFIX, "error", Duration::from_millis(100));
    let mut ingest = opsdash(&url, &cfg);
    ingest
        .args(["ingest", "--follow", "--format", "json"])
        .arg(&feed_path);
    kids.spawn("ingest", ingest);

    let t = Tmux::start("fault-restart", 120, 60);
    t.start_dashboard(&url, &format!("--config '{}'", cfg.display()));
    t.wait_for(|s| s.contains("1 KPI") && s.contains("● "), "dashboard");
    t.send(&["2"]);

    let stored = |db: &Db| -> (i64, i64) {
        rt.block_on(async {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT count(*), count(DISTINCT message) FROM opsdash.log_event
                  WHERE service = 'feed'",
            )
            .fetch_one(&db.write)
            .await
        })
        .unwrap_or((-1, -1))
    };
    // Steady state first: lines stored, the rule fired and its message delivered.
    wait_until(
        "the first delivery",
        Duration::from_secs(60),
        || rx.delivered().len() == 1,
        || kids.logs(),
    );
    wait_until(
        "lines on the Logs tab",
        Duration::from_secs(30),
        || !numbers_on_screen(&t.capture()).is_empty(),
        || t.capture(),
    );

    // Crash.
    let before_crash = feeder.fed();
    cluster.cluster.stop("immediate").expect("pg_ctl stop");
    let stopped = Instant::now();
    wait_until(
        "the outage banner",
        Duration::from_secs(20),
        || t.capture().contains(BANNER),
        || t.capture(),
    );
    let banner = stopped.elapsed();
    // Stay down a few seconds: ingest must hold its batches and retry.
    std::thread::sleep(Duration::from_secs(3));
    let fed_during_outage = feeder.fed() - before_crash;
    cluster.cluster.restart_stopped().expect("restart");
    let restarted = Instant::now();
    let recovery = wait_until(
        "the dashboard's recovery",
        Duration::from_secs(30),
        || {
            let s = t.capture();
            !s.contains(BANNER) && s.contains("● ")
        },
        || t.capture(),
    );

    // Ingest's retries bring in what was fed before and during the outage.
    let fed_at_restart = fed_during_outage + before_crash;
    wait_until(
        "the lines fed during the outage stored",
        Duration::from_secs(60),
        || stored(&db).1 >= fed_at_restart as i64,
        || {
            format!(
                "stored {:?} of {fed_at_restart}\n{}",
                stored(&db),
                kids.logs()
            )
        },
    );
    let ingest_caught_up = restarted.elapsed();

    // Keep feeding a little after the restart, then stop and let everything drain.
    std::thread::sleep(Duration::from_secs(2));
    let fed = feeder.stop();
    wait_until(
        "every fed line stored",
        Duration::from_secs(60),
        || stored(&db).1 >= fed as i64,
        || {
            let have: Vec<String> = rt
                .block_on(
                    sqlx::query_scalar(
                        "SELECT message FROM opsdash.log_event WHERE service = 'feed'",
                    )
                    .fetch_all(&db.write),
                )
                .unwrap_or_default();
            let missing: Vec<u64> = (1..=fed)
                .filter(|n| !have.contains(&format!("{PREFIX} {n}")))
                .collect();
            format!(
                "stored {:?} of {fed}, missing {missing:?}, fed at crash {before_crash}, at restart {fed_at_restart}\n{}",
                stored(&db),
                kids.logs()
            )
        },
    );
    let (rows, distinct) = stored(&db);
    // Which numbers are missing or doubled (for the failure message and the figure).
    let messages: Vec<String> = rt
        .block_on(
            sqlx::query_scalar("SELECT message FROM opsdash.log_event WHERE service = 'feed'")
                .fetch_all(&db.write),
        )
        .expect("rows");
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for m in messages {
        *counts.entry(m).or_default() += 1;
    }
    let lost = (1..=fed)
        .filter(|n| !counts.contains_key(&format!("{PREFIX} {n}")))
        .count();
    let duplicated_rows = rows - distinct;

    // The tail engine delivered each line once, across the crash.
    wait_until(
        "the tail to deliver the last line",
        Duration::from_secs(30),
        || tailed.lock().unwrap().contains(&format!("{PREFIX} {fed}")),
        || format!("tail has {} lines", tailed.lock().unwrap().len()),
    );
    let tail_lines = tailed.lock().unwrap().clone();
    let mut tail_counts: BTreeMap<&str, u32> = BTreeMap::new();
    for m in &tail_lines {
        *tail_counts.entry(m.as_str()).or_default() += 1;
    }
    let tail_gaps = (1..=fed)
        .filter(|n| !tail_counts.contains_key(format!("{PREFIX} {n}").as_str()))
        .count();
    let tail_doubles = tail_counts.values().filter(|c| **c > 1).count();

    // The Logs tab on screen: the newest line, and the lines above it consecutive.
    let screen = t.wait_for(
        |s| numbers_on_screen(s).contains(&fed),
        "the last fed line on the Logs tab",
    );
    let shown = numbers_on_screen(&screen);
    let screen_gap = shown.windows(2).any(|w| w[1] != w[0] + 1);

    // Several more evaluation rounds after the recovery: still one alert, one message.
    std::thread::sleep(Duration::from_secs(3));
    let alerts: Vec<(i64, String)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT a.id, a.state FROM opsdash.alert a JOIN opsdash.alert_rule r ON r.id = a.rule_id
                  WHERE r.name = 'feed-errors'",
            )
            .fetch_all(&db.write),
        )
        .expect("alerts");
    let deliveries = rx.delivered().len();
    let exited = kids.exited();

    eprintln!(
        "FAULT pg-restart: banner {:.1} s, recovered {:.1} s after restart, ingest caught up \
         {:.1} s after restart, lines fed {fed} ({fed_during_outage} during the outage), rows \
         lost {lost}, duplicate rows {duplicated_rows}, tail gaps {tail_gaps}, tail duplicates \
         {tail_doubles}, screen {} consecutive lines, alerts {}, notifications {deliveries}",
        banner.as_secs_f64(),
        recovery.as_secs_f64(),
        ingest_caught_up.as_secs_f64(),
        shown.len(),
        alerts.len(),
    );
    assert!(
        exited.is_empty(),
        "processes died: {exited:?}\n{}",
        kids.logs()
    );
    assert!(banner <= Duration::from_secs(2), "banner after {banner:?}");
    assert!(recovery <= Duration::from_secs(5), "recovery {recovery:?}");
    assert_eq!(lost, 0, "lines lost\n{}", kids.logs());
    assert_eq!(duplicated_rows, 0, "lines stored twice");
    assert_eq!(rows, fed as i64);
    assert_eq!((tail_gaps, tail_doubles), (0, 0), "tail gaps/duplicates");
    assert!(!screen_gap, "gap on the Logs tab: {shown:?}\n{screen}");
    assert!(shown.len() >= 10, "Logs tab shows the tail: {screen}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].1, "firing");
    assert_eq!(deliveries, 1, "{:?}", rx.received());

    t.send(&["q"]);
    t.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "prompt after quit",
    );
    drop(kids);
}
