//! The pg_stat_statements sampler with `[[database.monitor]]` on a real server: a second
//! database of the throwaway cluster has its statements stored under the monitor's name,
//! beside opsdash's own and counted once although both share the server's view; a monitored
//! database without the extension and one that cannot be reached are reported once, not at
//! every sample, while the others are sampled; a recovered one is reported once and sampled.

use std::time::Duration;

use opsdash::config::{MonitorConfig, Secret};
use opsdash::db::embedded::DATABASE;
use opsdash::db::testkit::TestCluster;
use opsdash::db::{Db, DbTarget};
use opsdash::worker::statements::{Notice, Sampler};
use sqlx::{Connection, PgConnection};

async fn opsdash_db(tc: &TestCluster) -> Db {
    Db::from_options(
        tc.cluster.connect_options(DATABASE),
        None,
        DbTarget::External {
            redacted_url: "pg_stat_statements monitor test".into(),
        },
        2,
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql).execute(&mut *conn).await.unwrap();
}

fn monitor(name: &str, url: String) -> MonitorConfig {
    MonitorConfig {
        name: name.into(),
        url: Secret::new(url),
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// (calls, rows) stored under `database` for statements whose text contains `tag` (a column
/// alias: pg_stat_statements replaces constants with `$n`, and the tag is bound here, never
/// spelled in this query's own text).
async fn stored(db: &Db, database: &str, tag: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(calls), 0)::int8, count(*) FROM opsdash.query_log
          WHERE database = $1 AND strpos(query, $2) > 0",
    )
    .bind(database)
    .bind(tag)
    .fetch_one(&db.write)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitored_databases_are_sampled_under_their_names_and_failures_reported_once() {
    let tc = TestCluster::start("pgmon").unwrap();
    let db = opsdash_db(&tc).await;
    sqlx::query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .execute(&db.write)
        .await
        .unwrap();
    db.write.close().await;
    db.read.close().await;
    tc.cluster.stop("fast").unwrap();
    tc.cluster.restart_stopped().unwrap();
    let db = opsdash_db(&tc).await;
    for sql in [
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE DATABASE billing",
        "CREATE DATABASE plain",
    ] {
        sqlx::query(sql).execute(&db.write).await.unwrap();
    }
    let mut billing = PgConnection::connect(&tc.cluster.url_for("billing"))
        .await
        .unwrap();
    exec(&mut billing, "CREATE EXTENSION pg_stat_statements").await;

    let port = closed_port();
    let monitors = vec![
        monitor("billing-main", tc.cluster.url_for("billing")),
        monitor("plain", tc.cluster.url_for("plain")),
        monitor("gone", format!("postgres://nobody@127.0.0.1:{port}/x")),
    ];
    let mut sampler = Sampler::new(&monitors);
    assert_eq!(
        sampler.sample(&db).await.unwrap(),
        0,
        "the first sample is the baseline"
    );
    let notices = sampler.take_notices();
    let named: Vec<&str> = notices.iter().map(|n| n.monitor.as_str()).collect();
    assert_eq!(named, ["plain", "gone"], "{notices:?}");
    let plain = notices[0].to_string();
    assert!(
        plain.contains("CREATE EXTENSION pg_stat_statements"),
        "{plain}"
    );
    let gone = notices[1].to_string();
    assert!(
        gone.contains("monitored database gone not sampled"),
        "{gone}"
    );

    // Work in the monitored database and in opsdash's own, between two samples.
    for _ in 0..3 {
        exec(&mut billing, "SELECT pg_sleep(0.05), 1 AS billingtag").await;
    }
    for _ in 0..4 {
        sqlx::query("SELECT 1 AS owntag")
            .execute(&db.write)
            .await
            .unwrap();
    }
    assert!(sampler.sample(&db).await.unwrap() >= 2);
    // Stored under the monitor's name; the own sample (same server, same view) does not count
    // the billing database's statements a second time, under its datname or under opsdash's.
    assert_eq!(stored(&db, "billing-main", "billingtag").await, (3, 1));
    assert_eq!(stored(&db, "billing", "billingtag").await, (0, 0));
    assert_eq!(stored(&db, DATABASE, "billingtag").await, (0, 0));
    assert_eq!(stored(&db, DATABASE, "owntag").await, (4, 1));
    let (avg_ms,): (f64,) = sqlx::query_as(
        "SELECT duration_ms FROM opsdash.query_log
          WHERE database = 'billing-main' AND strpos(query, 'billingtag') > 0",
    )
    .fetch_one(&db.write)
    .await
    .unwrap();
    assert!((50.0..1000.0).contains(&avg_ms), "{avg_ms}");

    // Still failing: nothing new to report, and the two are listed as not sampled.
    assert!(sampler.take_notices().is_empty());
    let problems: Vec<String> = sampler.problems().into_iter().map(|(n, _)| n).collect();
    assert_eq!(problems, ["plain", "gone"]);

    // The extension arrives in `plain`: reported once as sampled again, then sampled.
    let mut plain_conn = PgConnection::connect(&tc.cluster.url_for("plain"))
        .await
        .unwrap();
    exec(&mut plain_conn, "CREATE EXTENSION pg_stat_statements").await;
    sampler.sample(&db).await.unwrap();
    assert_eq!(
        sampler.take_notices(),
        [Notice {
            monitor: "plain".into(),
            problem: None
        }]
    );
    for _ in 0..2 {
        exec(&mut plain_conn, "SELECT 1 AS plaintag").await;
    }
    sampler.sample(&db).await.unwrap();
    assert_eq!(stored(&db, "plain", "plaintag").await, (2, 1));
    assert!(sampler.take_notices().is_empty());
    let problems: Vec<String> = sampler.problems().into_iter().map(|(n, _)| n).collect();
    assert_eq!(problems, ["gone"]);
}
