//! `opsdash serve` as a service, the real binary on a real PostgreSQL: systemd's notify protocol
//! (READY once listening, WATCHDOG pings, STOPPING on SIGTERM) read from a datagram socket the
//! test binds as NOTIFY_SOCKET; SIGTERM while a request is under way drains it (the request gets
//! its 200, its rows are stored, exit 0); SIGHUP puts new tokens and a new certificate in force
//! without closing the listener; HTTPS; per-token rate limits; the token's name on each row;
//! the non-loopback refusal; and no secret in the log file.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{opsdash, wait_until, write_config, Children};
use opsdash::db::testkit::TestDb;
use sha2::{Digest, Sha256};

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token_section(name: &str, token: &str, extra: &str) -> String {
    format!(
        "[[server.token]]\nname = \"{name}\"\nsha256 = \"{}\"\n{extra}\n",
        sha(token)
    )
}

/// Starts `opsdash serve` on a free loopback port with `env`, waits for its address.
fn start(
    kids: &mut Children,
    url: &str,
    cfg: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (u32, String) {
    let mut cmd = opsdash(url, cfg);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let pid = kids.spawn("serve", cmd);
    let mut base = String::new();
    wait_until(
        "the listening line",
        Duration::from_secs(60),
        || {
            let log = kids.log("serve");
            match log.split("listening on ").nth(1) {
                Some(rest) => {
                    base = rest.lines().next().unwrap_or("").trim().to_string();
                    true
                }
                None => false,
            }
        },
        || kids.log("serve"),
    );
    (pid, base)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a child process this test spawned and has not reaped yet.
    unsafe { libc::kill(pid as i32, sig) };
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_ready_watchdog_and_a_drain_that_commits_the_request_under_way() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut kids = Children::new(dir.path());
    let (pid, base) = start(
        &mut kids,
        &t.url().unwrap(),
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
        &[],
    );
    let mut got = String::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(got.contains("READY=1") && got.contains("WATCHDOG=1")) && Instant::now() < deadline {
        let n = sock.recv(&mut buf).expect("a notify message");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("READY=1"), "{got}\n{}", kids.log("serve"));
    assert!(got.contains("WATCHDOG=1"), "{got}");

    // A request under way: its headers sent with `Expect: 100-continue`, so the server's
    // "100 Continue" shows the handler is reading the body; half of it sent, then SIGTERM,
    // then the rest.
    let addr = base.trim_start_matches("http://").to_string();
    let mut body = String::new();
    for n in 0..2000 {
        body.push_str(&format!(
            "{{\"level\":\"info\",\"service\":\"drain\",\"msg\":\"drained record {n}\"}}\n"
        ));
    }
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "POST /ingest HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).expect("100 Continue");
        assert_eq!(n, 1, "connection closed before 100 Continue");
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    conn.write_all(first).unwrap();
    conn.flush().unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    signal(pid, libc::SIGTERM);
    // STOPPING=1 tells systemd the drain has begun.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !got.contains("STOPPING=1") && Instant::now() < deadline {
        let n = sock.recv(&mut buf).expect("a notify message");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("STOPPING=1"), "{got}");
    conn.write_all(rest).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"rejected\"") {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the answer: {e}\n{}", kids.log("serve")),
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        kids.log("serve")
    );
    assert!(answer.contains("\"accepted\":2000"), "{answer}");
    let st = wait_exit(&mut kids);
    assert_eq!(
        st,
        Some(0),
        "exit status after SIGTERM\n{}",
        kids.log("serve")
    );
    assert_eq!(
        count(
            &t.db.write,
            "SELECT count(*) FROM opsdash.log_event WHERE service = 'drain'"
        )
        .await,
        2000
    );
    // The listener is gone.
    assert!(TcpStream::connect(&addr).is_err());
}

/// Waits for the (already signalled) serve child to exit; its exit code.
fn wait_exit(kids: &mut Children) -> Option<i32> {
    let idx = kids.list.iter().position(|(n, _)| n == "serve")?;
    let (_, mut child) = kids.list.remove(idx);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_tokens_rate_limits_source_and_a_clean_log() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = token_section("shipper-a", "tok-A-7f3e91", "rate = 3");
    let cfg = write_config(dir.path(), &first);
    let log_file = dir.path().join("serve-own.log");
    let mut kids = Children::new(dir.path());
    let (pid, base) = start(
        &mut kids,
        &t.url().unwrap(),
        &cfg,
        &[("OPSDASH_LOG", "opsdash=debug")],
        &["--log-file", log_file.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let post = |token: &'static str, msg: &'static str| {
        http.post(format!("{base}/ingest"))
            .bearer_auth(token)
            .body(format!(
                "{{\"level\":\"info\",\"service\":\"hup\",\"msg\":\"{msg}\"}}\n"
            ))
            .send()
    };
    assert_eq!(post("tok-A-7f3e91", "from a").await.unwrap().status(), 200);
    assert_eq!(post("tok-B-0c52aa", "from b").await.unwrap().status(), 401);

    // Over its rate (3 a second, bursts of 3): 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let r = post("tok-A-7f3e91", "burst").await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("a 429 within 10 quick requests at rate 3");
    assert!(limited.headers().get("retry-after").is_some());

    // A second token, put in force by SIGHUP (the listener stays: same address).
    let second = token_section("shipper-b", "tok-B-0c52aa", "scopes = [\"ingest\"]");
    write_config(dir.path(), &format!("{first}\n{second}"));
    signal(pid, libc::SIGHUP);
    let rt_http = http.clone();
    let b_ok = || {
        let http = rt_http.clone();
        let url = format!("{base}/ingest");
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    http.post(url)
                        .bearer_auth("tok-B-0c52aa")
                        .body("{\"level\":\"info\",\"service\":\"hup\",\"msg\":\"from b\"}\n")
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
        })
        .join()
        .unwrap()
            == 200
    };
    wait_until("token B in force", Duration::from_secs(30), b_ok, || {
        kids.log("serve")
    });
    // Each row records its token's name.
    let pool = &t.db.write;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM opsdash.log_event WHERE message = 'from b' \
             AND attrs->>'opsdash.source' = 'shipper-b'"
        )
        .await,
        1
    );
    assert!(
        count(
            pool,
            "SELECT count(*) FROM opsdash.log_event WHERE message = 'from a' \
             AND attrs->>'opsdash.source' = 'shipper-a'"
        )
        .await
            == 1
    );
    signal(pid, libc::SIGTERM);
    assert_eq!(wait_exit(&mut kids), Some(0));
    let own = std::fs::read_to_string(&log_file).unwrap();
    assert!(own.contains("listening on"), "{own}");
    assert!(own.contains("2 tokens in force"), "{own}");
    let everything = format!("{own}{}", kids.log("serve"));
    for secret in ["tok-A-7f3e91", "tok-B-0c52aa"] {
        assert!(!everything.contains(secret), "{secret} in the log");
    }
    let url = t.url().unwrap();
    if let Some(password) = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.password().map(String::from))
    {
        assert!(
            !everything.contains(&password),
            "the database password in the log"
        );
    }
}

/// A self-signed certificate for 127.0.0.1, as PEM (certificate, key).
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_reloaded_on_sighup() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = certificate();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let mut kids = Children::new(dir.path());
    let (pid, base) = start(&mut kids, &t.url().unwrap(), &cfg, &[], &[]);
    assert!(base.starts_with("https://"), "{base}");
    let line = "{\"level\":\"info\",\"service\":\"tls\",\"msg\":\"over https\"}\n";
    let r = trusting(&cert1)
        .post(format!("{base}/ingest"))
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        reqwest::get(base.replace("https://", "http://") + "/healthz")
            .await
            .is_err()
    );

    let (cert2, key2) = certificate();
    std::fs::write(&cert_path, &cert2).unwrap();
    std::fs::write(&key_path, &key2).unwrap();
    signal(pid, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = trusting(&cert2)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served\n{}",
            kids.log("serve")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old certificate is no longer offered to new connections.
    assert!(trusting(&cert1)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
    assert_eq!(
        count(
            &t.db.write,
            "SELECT count(*) FROM opsdash.log_event WHERE service = 'tls'"
        )
        .await,
        1
    );
}

#[test]
fn a_public_address_without_tls_and_tokens_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let out = Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
}
