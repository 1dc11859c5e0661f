//! `opsdash serve`'s syslog receivers, the real binary on a real PostgreSQL, fed by real
//! senders: util-linux `logger` over UDP and TCP (RFC 5424 and 3164, newline and octet-counted
//! framing), rsyslog (Debian's, run as a process of the test with its own config) forwarding
//! two files with `omfwd`, and a TLS client (rustls) for RFC 5425. Each message must arrive as
//! the syslog-file parser reads it: service, level, host, structured data, and the text inside.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::procs::Children;
use common::serve::Server;
use opsdash::db::testkit::TestDb;
use opsdash::model::Level;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The address `opsdash serve` says it took for syslog over `transport`.
fn announced(server: &Server, transport: &str) -> SocketAddr {
    let needle = format!("syslog over {transport} on ");
    let log = server.log();
    let rest = log
        .split(&needle)
        .nth(1)
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"));
    rest.lines().next().unwrap_or("").trim().parse().unwrap()
}

async fn count(pool: &sqlx::PgPool, like: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE message LIKE $1")
        .bind(like)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits (with a deadline, the machine may be loaded) until `n` rows match `like`.
async fn wait_rows(pool: &sqlx::PgPool, like: &str, n: i64, server: &Server) {
    let start = std::time::Instant::now();
    loop {
        let c = count(pool, like).await;
        if c >= n {
            assert_eq!(c, n, "rows like {like:?}: stored more than once?");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{c} of {n} rows like {like:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Row = (String, i16, Option<String>, String, Option<Value>);

async fn row(pool: &sqlx::PgPool, like: &str) -> Row {
    sqlx::query_as(
        "SELECT service, level, host, message, attrs FROM opsdash.log_event WHERE message LIKE $1",
    )
    .bind(like)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn logger(args: &[&str]) {
    let out = Command::new("logger").args(args).output().expect("logger");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_udp_and_tcp_in_every_framing() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        "[server]\nsyslog_udp = \"127.0.0.1:0\"\nsyslog_tcp = \"127.0.0.1:0\"\n",
        &[],
    );
    let udp = announced(&server, "udp");
    let tcp = announced(&server, "tcp");
    let (udp_port, tcp_port) = (udp.port().to_string(), tcp.port().to_string());
    let pool = &t.db.write;
    let host = hostname();

    // RFC 5424 over TCP, newline-framed, with structured data.
    logger(&[
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        &tcp_port,
        "-T",
        "-t",
        "billing",
        "-p",
        "local0.err",
        "--sd-id",
        "order@32473",
        "--sd-param",
        "id=\"A-17\"",
        "invoice run failed over tcp",
    ]);
    // The same, octet-counted (RFC 6587 3.4.1).
    logger(&[
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        &tcp_port,
        "-T",
        "--octet-count",
        "-t",
        "billing",
        "-p",
        "local0.warning",
        "octet counted over tcp",
    ]);
    // RFC 3164 over TCP, and a JSON message whose own fields win.
    logger(&[
        "--rfc3164",
        "-n",
        "127.0.0.1",
        "-P",
        &tcp_port,
        "-T",
        "-t",
        "cron",
        "-p",
        "cron.info",
        "bsd style over tcp",
    ]);
    logger(&[
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        &tcp_port,
        "-T",
        "-t",
        "api",
        "-p",
        "user.info",
        r#"{"level":"error","msg":"json inside syslog","order":9}"#,
    ]);
    // UDP, both formats.
    logger(&[
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        &udp_port,
        "-d",
        "-t",
        "edge",
        "-p",
        "daemon.notice",
        "datagram rfc5424",
    ]);
    logger(&[
        "--rfc3164",
        "-n",
        "127.0.0.1",
        "-P",
        &udp_port,
        "-d",
        "-t",
        "edge",
        "-p",
        "daemon.crit",
        "datagram rfc3164",
    ]);

    for like in [
        "invoice run failed over tcp",
        "octet counted over tcp",
        "bsd style over tcp",
        "json inside syslog",
        "datagram rfc5424",
        "datagram rfc3164",
    ] {
        wait_rows(pool, like, 1, &server).await;
    }

    let (service, level, h, _, attrs) = row(pool, "invoice run failed over tcp").await;
    assert_eq!(
        (service.as_str(), level),
        ("billing", Level::Error.as_i16())
    );
    assert_eq!(h.as_deref(), Some(host.as_str()));
    let attrs = attrs.unwrap();
    assert_eq!(attrs["order@32473.id"], "A-17");
    assert_eq!(attrs["facility"], "local0");
    assert_eq!(attrs["transport"], "tcp");

    let (service, level, ..) = row(pool, "octet counted over tcp").await;
    assert_eq!((service.as_str(), level), ("billing", Level::Warn.as_i16()));

    let (service, level, h, _, attrs) = row(pool, "bsd style over tcp").await;
    assert_eq!((service.as_str(), level), ("cron", Level::Info.as_i16()));
    assert_eq!(h.as_deref(), Some(host.as_str()));
    assert_eq!(attrs.unwrap()["facility"], "cron");

    let (service, level, _, _, attrs) = row(pool, "json inside syslog").await;
    assert_eq!((service.as_str(), level), ("api", Level::Error.as_i16()));
    assert_eq!(attrs.unwrap()["order"], 9);

    let (service, level, _, _, attrs) = row(pool, "datagram rfc5424").await;
    assert_eq!((service.as_str(), level), ("edge", Level::Info.as_i16()));
    let attrs = attrs.unwrap();
    assert_eq!(attrs["severity"], "notice");
    assert_eq!(attrs["transport"], "udp");
    let (_, level, ..) = row(pool, "datagram rfc3164").await;
    assert_eq!(level, Level::Fatal.as_i16());
}

/// rsyslog as a process of the test: two files read by imfile, one forwarded in the
/// traditional format with newline framing, the other as RFC 5424 octet-counted.
fn rsyslog_config(dir: &std::path::Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"global(workDirectory="{d}")
module(load="imfile" PollingInterval="1")
input(type="imfile" file="{d}/billing.log" tag="billing:" severity="error" facility="local0" ruleset="classic")
input(type="imfile" file="{d}/api.log" tag="api" severity="info" facility="local1" ruleset="modern")
ruleset(name="classic") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" action.resumeRetryCount="-1")
}}
ruleset(name="modern") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1")
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_files_over_tcp() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        "[server]\nsyslog_tcp = \"127.0.0.1:0\"\n",
        &[],
    );
    let tcp = announced(&server, "tcp");
    let rs_dir = dir.path().join("rsyslog");
    std::fs::create_dir_all(&rs_dir).unwrap();
    let conf = rs_dir.join("rsyslog.conf");
    std::fs::write(&conf, rsyslog_config(&rs_dir, tcp.port())).unwrap();
    let billing: String = (0..200)
        .map(|i| format!("charge {i} declined by the bank\n"))
        .collect();
    std::fs::write(rs_dir.join("billing.log"), billing).unwrap();
    let api: String = (0..200)
        .map(|i| format!("{{\"level\":\"warn\",\"msg\":\"slow upstream {i}\",\"ms\":{i}}}\n"))
        .collect();
    std::fs::write(rs_dir.join("api.log"), api).unwrap();

    let mut rsyslog = Children::new(&rs_dir);
    let mut cmd = Command::new("rsyslogd");
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(rs_dir.join("rsyslogd.pid"));
    rsyslog.spawn("rsyslogd", cmd);

    let pool = &t.db.write;
    let started = std::time::Instant::now();
    loop {
        let (a, b) = (
            count(pool, "charge % declined by the bank").await,
            count(pool, "slow upstream %").await,
        );
        if a == 200 && b == 200 {
            break;
        }
        assert!(a <= 200 && b <= 200, "duplicates: {a} {b}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{a} and {b} of 200 rows\n{}\n{}",
            server.log(),
            rsyslog.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (service, level, h, _, attrs) = row(pool, "charge 7 declined by the bank").await;
    assert_eq!(
        (service.as_str(), level),
        ("billing", Level::Error.as_i16())
    );
    assert_eq!(h.as_deref(), Some(hostname().as_str()));
    assert_eq!(attrs.unwrap()["facility"], "local0");
    let (service, level, _, _, attrs) = row(pool, "slow upstream 7").await;
    assert_eq!((service.as_str(), level), ("api", Level::Warn.as_i16()));
    assert_eq!(attrs.unwrap()["ms"], 7, "the JSON text's own fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_stream_of_many_messages_is_stored_once_each() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        &format!(
            "[server]\nsyslog_tls = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
        &[],
    );
    let addr = announced(&server, "tls");

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    // RFC 5425 frames every message with its octet count; a sender writes them back to back.
    const N: usize = 5000;
    let mut stream = Vec::new();
    for i in 0..N {
        let msg = format!(
            "<134>1 2026-12-07T10:00:00.{:06}Z gw-3 haproxy 42 - - tls message {i} of the batch",
            i % 1_000_000
        );
        stream.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
    }
    tls.write_all(&stream).await.unwrap();
    tls.shutdown().await.unwrap();
    // Read to the server's end (it closes once it has read ours): a socket closed with unread
    // bytes in it (TLS 1.3 session tickets) is reset, and a reset throws away what the server
    // had not read yet.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), tls.read_to_end(&mut rest)).await;
    drop(tls);

    let pool = &t.db.write;
    wait_rows(pool, "tls message % of the batch", N as i64, &server).await;
    let (service, level, h, _, attrs) = row(pool, "tls message 4999 of the batch").await;
    assert_eq!((service.as_str(), level), ("haproxy", Level::Info.as_i16()));
    assert_eq!(h.as_deref(), Some("gw-3"));
    let attrs = attrs.unwrap();
    assert_eq!(attrs["transport"], "tls");
    assert_eq!(attrs["facility"], "local0");
}
