//! Idle connections of the real `opsdash serve`: a keep-alive connection serves several
//! requests, then is closed by the server once it has sent nothing for `server.idle_timeout_ms`
//! (idle connections hold one of the receiver's 256 places); a connection that never sends a
//! request is closed the same way. Each close is waited for as a condition (the server's end
//! of the stream), with a deadline far above the timeout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::serve::Server;
use opsdash::db::testkit::TestDb;

const IDLE_MS: u64 = 600;
/// How long the server is given to close an idle connection before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

fn connect(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    tcp
}

/// Sends `GET /healthz` and reads its whole answer (by its Content-Length), leaving the
/// connection open.
fn healthz(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: opsdash\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp.read(&mut buf).expect("read the answer");
        assert!(n > 0, "closed before answering: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().expect("length"))
                })
                .expect("a Content-Length");
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// Waits until the server closes `tcp` (end of stream); returns how long that took. Fails if
/// it is still open after [`DEADLINE`] or sends anything.
fn wait_closed(tcp: &mut TcpStream) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 256];
    match tcp.read(&mut buf) {
        Ok(0) => t.elapsed(),
        Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => panic!(
            "still open after {:?} ({e}), idle timeout {IDLE_MS} ms",
            t.elapsed()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        &format!("[server]\nidle_timeout_ms = {IDLE_MS}\n"),
        &[],
    );
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        // Keep-alive still works: two requests on one connection.
        let mut tcp = connect(&base);
        for _ in 0..2 {
            let answer = healthz(&mut tcp);
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        let idle = wait_closed(&mut tcp);
        // Closed by the idle timeout, not at once after the answer.
        assert!(
            idle >= Duration::from_millis(IDLE_MS / 2),
            "closed after {idle:?}"
        );

        // A connection that never sends a request is closed too.
        let mut silent = connect(&base);
        wait_closed(&mut silent);

        // And the server still takes new connections.
        let mut again = connect(&base);
        assert!(healthz(&mut again).starts_with("HTTP/1.1 200"));
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
}
