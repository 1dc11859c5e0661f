//! Foundation: migrations, partitions, and the embedded cluster driven through the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use opsdash::db::testkit::TestDb;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_and_reapply_as_no_op() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&t.db.write)
        .await?;
    opsdash::db::migrate::run(&t.db.write).await?;
    opsdash::db::migrate::run(&t.db.write).await?;
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&t.db.write)
        .await?;
    assert_eq!(before, after);
    assert!(before >= 1);
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT table_name::text FROM opsdash.partitioned_tables ORDER BY 1")
            .fetch_all(&t.db.write)
            .await?;
    for t in [
        "audit_event",
        "health_check",
        "log_event",
        "query_log",
        "request_log",
        "rollup_1m",
    ] {
        assert!(
            tables.iter().any(|x| x == t),
            "{t} not partitioned: {tables:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_any_timestamp_are_accepted_and_moved_into_new_partitions() -> anyhow::Result<()>
{
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    for ts in [
        "0001-01-01 00:00:00+00",
        "9999-12-31 23:00:00+00",
        "2020-03-04 05:06:07+00",
    ] {
        sqlx::query("INSERT INTO opsdash.log_event (ts, message) VALUES ($1::timestamptz, 'x')")
            .bind(ts)
            .execute(pool)
            .await?;
    }
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM ONLY opsdash.log_event_default")
        .fetch_one(pool)
        .await?;
    assert_eq!(in_default, 3);
    // Making the partition for 2020-03-04 must move that row out of the default partition.
    let part: String =
        sqlx::query_scalar("SELECT opsdash.ensure_partition('log_event', '2020-03-04')")
            .fetch_one(pool)
            .await?;
    assert_eq!(part, "log_event_p20200304");
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM opsdash.log_event_p20200304) AS moved,
                (SELECT count(*) FROM ONLY opsdash.log_event_default) AS left_behind,
                (SELECT count(*) FROM opsdash.log_event) AS total",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!(row.get::<i64, _>("moved"), 1);
    assert_eq!(row.get::<i64, _>("left_behind"), 2);
    assert_eq!(row.get::<i64, _>("total"), 3);
    // Idempotent, and recorded.
    sqlx::query("SELECT opsdash.ensure_partition('log_event', '2020-03-04')")
        .execute(pool)
        .await?;
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.retention_run WHERE action = 'move_default'",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!(runs, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_partition_creation_does_not_collide() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let pool = t.db.write.clone();
        tasks.push(tokio::spawn(async move {
            sqlx::query("SELECT opsdash.ensure_partitions('2021-01-01', '2021-01-10')")
                .execute(&pool)
                .await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'request_log_p202101%'",
    )
    .fetch_one(&t.db.write)
    .await?;
    assert_eq!(n, 10);
    Ok(())
}

/// An embedded cluster in a temp dir, driven through `opsdash db ...`; removed on drop.
struct EmbeddedDir {
    root: PathBuf,
}

impl EmbeddedDir {
    fn new(tag: &str) -> EmbeddedDir {
        let root = std::env::temp_dir().join(format!(
            "opsdash-test-{}-embedded-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // Lets the test kit's sweeper remove it if this process dies.
        std::fs::write(root.join("owner.pid"), std::process::id().to_string()).unwrap();
        EmbeddedDir { root }
    }

    fn opsdash(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_opsdash"))
            .args(args)
            .env("OPSDASH_DATA_DIR", &self.root)
            .env_remove("DATABASE_URL")
            .env_remove("OPSDASH_DATABASE_URL")
            .env("HOME", &self.root)
            .output()
            .unwrap()
    }
}

impl Drop for EmbeddedDir {
    fn drop(&mut self) {
        let _ = self.opsdash(&["db", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-XAtq", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out).trim().to_string()
}

#[test]
fn embedded_cluster_starts_concurrently_stops_and_is_reused() {
    let dir = EmbeddedDir::new("lifecycle");
    // Two processes starting at once end up sharing one healthy cluster.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let root = dir.root.clone();
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_opsdash"))
                    .args(["db", "start"])
                    .env("OPSDASH_DATA_DIR", &root)
                    .env_remove("DATABASE_URL")
                    .env_remove("OPSDASH_DATABASE_URL")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "db start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = stdout(&dir.opsdash(&["db", "status"]));
    assert!(status.contains("running (pid"), "{status}");

    let url = stdout(&dir.opsdash(&["db", "url"])).trim().to_string();
    assert!(url.starts_with("postgresql://"), "{url}");
    assert_eq!(
        psql(&url, "SELECT to_regclass('opsdash.alert_rule') IS NOT NULL"),
        "t"
    );
    psql(
        &url,
        "CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (7)",
    );
    // psql reaches it only through the socket: no TCP listener.
    assert_eq!(psql(&url, "SHOW listen_addresses"), "");
    // The same URL works for opsdash itself.
    let out = dir.opsdash(&["--database-url", &url, "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = dir.opsdash(&["db", "stop"]);
    assert!(out.status.success());
    assert!(stdout(&dir.opsdash(&["db", "status"])).contains("stopped"));

    // Restarted, the same cluster (and its data) is reused.
    let out = dir.opsdash(&["db", "start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(psql(&url, "SELECT x FROM keepme"), "7");
}

#[test]
fn migrate_subcommand_on_an_external_url_reports_unreachable_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args([
            "--database-url",
            "postgres://someone:hunter2@127.0.0.1:1/nothing",
            "migrate",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("opsdash: "), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_database_url_reaches_the_same_database() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    sqlx::raw_sql("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('here')")
        .execute(&t.db.write)
        .await?;
    let url = t.url()?;
    let v = tokio::task::spawn_blocking(move || psql(&url, "SELECT v FROM marker")).await?;
    assert_eq!(v, "here");
    Ok(())
}
