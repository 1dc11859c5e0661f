//! journald, container (Docker json-file, CRI) and syslog lines end to end through a real
//! PostgreSQL: the committed fixtures (made with journalctl, logger, and the formats' docs) are
//! ingested with `--format auto` and each row's columns and attrs are checked.

use std::path::{Path, PathBuf};

use opsdash::config::IngestConfig;
use opsdash::db::testkit::TestDb;
use opsdash::ingest::follow::FollowSet;
use opsdash::ingest::{self, AtEof, Format, Options, Pipeline, Summary};
use serde_json::Value;
use sqlx::Row;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(rel)
}

fn opts() -> Options {
    Options {
        format: Format::Auto,
        service: "svc".into(),
        source: "test".into(),
        ..Options::default()
    }
}

async fn ingest_bytes(t: &TestDb, cfg: &IngestConfig, input: &[u8]) -> Summary {
    let p = Pipeline::new(t.db.clone(), cfg, opts()).unwrap();
    ingest::run(input, p, AtEof::Stop, std::future::pending()).await
}

/// Ingests files by path, as `opsdash ingest FILE...` does.
async fn ingest_files(t: &TestDb, files: &[PathBuf]) -> Summary {
    let p = Pipeline::new(t.db.clone(), &IngestConfig::default(), opts()).unwrap();
    let args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let set = FollowSet::new(&args, Vec::new(), None, false).unwrap();
    ingest::run_files(set, p, false, std::future::pending(), None).await
}

struct Row1 {
    ts: String,
    level: i16,
    service: String,
    host: Option<String>,
    message: String,
    attrs: Value,
    repeat_count: i32,
}

async fn all_rows(t: &TestDb) -> Vec<Row1> {
    sqlx::query(
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS ts, level,
                service, host, message, coalesce(attrs, '{}'::jsonb) AS attrs, repeat_count
           FROM opsdash.log_event ORDER BY ts, id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap()
    .into_iter()
    .map(|r| Row1 {
        ts: r.get("ts"),
        level: r.get("level"),
        service: r.get("service"),
        host: r.get("host"),
        message: r.get("message"),
        attrs: r.get("attrs"),
        repeat_count: r.get("repeat_count"),
    })
    .collect()
}

fn find<'a>(rows: &'a [Row1], needle: &str) -> &'a Row1 {
    rows.iter()
        .find(|r| r.message.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journalctl_json_lands_in_the_right_columns() {
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("journald/json.jsonl")).unwrap();
    let s = ingest_bytes(&t, &IngestConfig::default(), &input).await;
    assert_eq!((s.lines, s.rejected, s.folded), (18, 0, 0), "{}", s.line());
    assert!(s.line().contains("formats: journald 18"), "{}", s.line());
    let rows = all_rows(&t).await;
    // Every entry is a log row; the access-log MESSAGE is a request row too.
    assert_eq!(rows.len(), 18);
    let ssh = find(&rows, "Accepted publickey");
    assert_eq!(ssh.ts, "2024-12-04T03:04:05.123456");
    assert_eq!((ssh.level, ssh.service.as_str()), (2, "sshd"));
    assert_eq!(ssh.host.as_deref(), Some("web-1"));
    assert_eq!(ssh.attrs["_PID"], "812");
    assert!(ssh.attrs.get("__CURSOR").is_none() && ssh.attrs.get("_BOOT_ID").is_none());
    // A JSON MESSAGE is read as JSON: its level and message win, the journal fills the rest.
    let api = find(&rows, "payment failed");
    assert_eq!(api.message, "payment failed");
    assert_eq!((api.level, api.service.as_str()), (4, "api"));
    assert_eq!(api.attrs["order_id"], 17);
    assert_eq!(api.attrs["_SYSTEMD_UNIT"], "api.service");
    let trace: Option<String> = sqlx::query_scalar(
        "SELECT trace_id FROM opsdash.log_event WHERE message = 'payment failed'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    // logfmt and access-log messages too.
    assert_eq!(find(&rows, "slow query").level, 3);
    let requests: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.request_log WHERE status = 502 AND service = 'nginx'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(requests, 1);
    assert_eq!(
        find(&rows, "Out of memory").level,
        5,
        "PRIORITY 2 (crit) is fatal"
    );
    let bad = find(&rows, "upload of");
    assert_eq!(bad.message, "upload of caf\u{fffd}.txt failed: bad name");
    assert_eq!(bad.attrs["opsdash.invalid_utf8"], true);
    // Seven empty messages: five differ in their fields, two only in time; none is folded.
    let empty: Vec<&Row1> = rows.iter().filter(|r| r.message.is_empty()).collect();
    assert_eq!(empty.len(), 7);
    assert!(empty
        .iter()
        .all(|r| r.repeat_count == 1 && r.service == "worker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_journal_entries_fold_but_distinct_ones_never_do() {
    let t = TestDb::new().await.unwrap();
    // The same entry written twice (cursor and time differ) is one event seen twice; an
    // entry differing in a kept field (CODE_LINE) is another event.
    let e = |cursor: u32, line: u32| {
        format!(
            r#"{{"__CURSOR":"s=1;i={cursor}","__REALTIME_TIMESTAMP":"{}","_BOOT_ID":"b","_HOSTNAME":"h","PRIORITY":"3","SYSLOG_IDENTIFIER":"api","_PID":"7","CODE_LINE":"{line}","MESSAGE":"disk full"}}"#,
            1733281445000000u64 + u64::from(cursor)
        )
    };
    let input = [e(1, 10), e(2, 10), e(3, 11)].join("\n");
    let s = ingest_bytes(&t, &IngestConfig::default(), input.as_bytes()).await;
    assert_eq!((s.events, s.folded), (2, 1), "{}", s.line());
    let counts: Vec<i32> = all_rows(&t).await.iter().map(|r| r.repeat_count).collect();
    assert_eq!(counts, vec![2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs_from_kubernetes_paths() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pods = dir
        .path()
        .join("var/log/pods/shop_api-7d9f8b6c5-x2x9k_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/api");
    std::fs::create_dir_all(&pods).unwrap();
    std::fs::copy(fixture("container/cri.log"), pods.join("0.log")).unwrap();
    let id = "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0";
    let docker = dir.path().join("var/log/containers");
    std::fs::create_dir_all(&docker).unwrap();
    let docker_file = docker.join(format!("web-5c4b3a2910-abcde_shop_nginx-{id}.log"));
    std::fs::copy(fixture("container/docker-json.log"), &docker_file).unwrap();
    let s = ingest_files(&t, &[pods.join("0.log"), docker_file]).await;
    // CRI: 8 lines, of which 2 are pieces of longer lines; Docker: 6 lines, 1 piece.
    assert_eq!((s.lines, s.joined, s.rejected), (14, 3, 0), "{}", s.line());
    assert_eq!(s.uncommitted(), 0, "{}", s.line());
    assert!(
        s.line().contains("cri 6") && s.line().contains("docker 5"),
        "{}",
        s.line()
    );
    let rows = all_rows(&t).await;
    let joined: Vec<&Row1> = rows
        .iter()
        .filter(|r| r.message.starts_with("order 17 failed"))
        .collect();
    assert_eq!(joined.len(), 2, "one per file");
    for r in &joined {
        assert_eq!(r.message, "order 17 failed: upstream timeout");
        assert_eq!(r.level, 4);
        assert_eq!(r.attrs["order_id"], 17);
        assert_eq!(r.attrs["stream"], "stdout");
        assert_eq!(r.attrs["k8s.namespace"], "shop");
    }
    let cri = joined.iter().find(|r| r.service == "api").unwrap();
    assert_eq!(cri.ts, "2024-12-04T03:04:06.000000");
    assert_eq!(cri.attrs["k8s.pod"], "api-7d9f8b6c5-x2x9k");
    assert_eq!(cri.attrs["k8s.container"], "api");
    let nginx = joined.iter().find(|r| r.service == "nginx").unwrap();
    assert_eq!(nginx.attrs["k8s.pod"], "web-5c4b3a2910-abcde");
    assert_eq!(nginx.attrs["container.id"], id);
    // stderr keeps the level its text gives: info unless the text says otherwise.
    let klog = find(&rows, "starting controller");
    assert_eq!(
        (klog.level, klog.attrs["stream"].as_str()),
        (2, Some("stderr"))
    );
    let warn = find(&rows, "cache miss ratio");
    assert_eq!(
        (warn.level, warn.attrs["stream"].as_str()),
        (3, Some("stderr"))
    );
    assert_eq!(find(&rows, "retrying").level, 3);
    let probes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.request_log WHERE route = '/health' AND service = 'nginx'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(probes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_left_at_the_end_is_stored() {
    let t = TestDb::new().await.unwrap();
    let input = "2024-12-04T03:04:06Z stdout P first half\n2024-12-04T03:04:07Z stdout F whole\n2024-12-04T03:04:08Z stderr P cut off";
    let s = ingest_bytes(&t, &IngestConfig::default(), input.as_bytes()).await;
    assert_eq!((s.lines, s.events, s.joined), (3, 2, 1), "{}", s.line());
    let msgs: Vec<String> = all_rows(&t).await.into_iter().map(|r| r.message).collect();
    assert_eq!(msgs, vec!["first halfwhole", "cut off"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_files_and_logger_output() {
    let t = TestDb::new().await.unwrap();
    let cfg = IngestConfig {
        timezone: "Europe/Berlin".into(),
        ..IngestConfig::default()
    };
    let input = std::fs::read(fixture("syslog/messages.log")).unwrap();
    let s = ingest_bytes(&t, &cfg, &input).await;
    assert_eq!((s.lines, s.rejected), (10, 0), "{}", s.line());
    assert!(s.line().contains("syslog 10"), "{}", s.line());
    let rows = all_rows(&t).await;
    let ssh = find(&rows, "Failed password");
    assert_eq!(
        (ssh.service.as_str(), ssh.host.as_deref()),
        ("sshd", Some("web-1"))
    );
    assert_eq!(ssh.attrs["pid"], 812);
    // Dec 4 03:04:05 in Berlin (CET, UTC+1), of the latest year that is not ahead of now.
    assert!(ssh.ts.ends_with("-12-04T02:04:05.000000"), "{}", ssh.ts);
    assert_eq!(
        find(&rows, "MARK").service,
        "svc",
        "no tag: the default service"
    );
    assert_eq!(find(&rows, "run-parts").service, "CRON");
    assert_eq!(find(&rows, "connect from").service, "postfix/smtpd");
    let api = find(&rows, "payment failed");
    assert_eq!((api.level, api.service.as_str()), (4, "api"));
    let nginx_ts = rows
        .iter()
        .find(|r| r.service == "worker")
        .map(|r| r.ts.clone());
    assert_eq!(nginx_ts.as_deref(), Some("2024-12-04T02:21:49.000001"));
    let requests: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.request_log WHERE service = 'nginx'")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(requests, 1);

    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("syslog/logger.txt")).unwrap();
    let s = ingest_bytes(&t, &IngestConfig::default(), &input).await;
    assert_eq!((s.lines, s.rejected), (6, 0), "{}", s.line());
    let rows = all_rows(&t).await;
    let ev = find(&rows, "An application event");
    assert_eq!((ev.service.as_str(), ev.level), ("billing", 2));
    assert_eq!(ev.attrs["facility"], "local4");
    assert_eq!(ev.attrs["msgid"], "ID47");
    assert_eq!(ev.attrs["pid"], 4242);
    assert_eq!(ev.attrs["exampleSDID@32473.eventSource"], "Application");
    assert_eq!(find(&rows, "payment failed").level, 4);
    assert_eq!(find(&rows, "queue is deep").level, 3);
    let oom = find(&rows, "Out of memory");
    assert_eq!((oom.level, oom.service.as_str()), (5, "kernel"));
    assert_eq!(find(&rows, "Failed password").attrs["facility"], "auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_format_given_rejects_other_lines() {
    let t = TestDb::new().await.unwrap();
    let p = Pipeline::new(
        t.db.clone(),
        &IngestConfig::default(),
        Options {
            format: Format::Syslog,
            ..opts()
        },
    )
    .unwrap();
    let input = "Dec  4 03:04:05 h app: fine\nnot syslog at all\n";
    let s = ingest::run(input.as_bytes(), p, AtEof::Stop, std::future::pending()).await;
    assert_eq!((s.events, s.rejected), (1, 1), "{}", s.line());
    assert!(s.first_rejects[0].reason.contains("not a syslog line"));
}
