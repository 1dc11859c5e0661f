//! `[server] enabled = true`: the receiver inside `opsdash worker` (stored rows, SIGTERM exit 0)
//! and inside the dashboard, which writes its own, its worker's and its receiver's diagnostics
//! to `$XDG_STATE_HOME/opsdash/dashboard.log` instead of the terminal it owns.

mod common;

use std::time::Duration;

use common::procs::{opsdash, wait_until, write_config, Children};
use common::tmux::Tmux;
use opsdash::db::testkit::TestDb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn post(url: &str, msg: &str) -> Option<u16> {
    reqwest::Client::new()
        .post(url)
        .body(format!(
            "{{\"level\":\"info\",\"service\":\"inproc\",\"msg\":\"{msg}\"}}\n"
        ))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn count(pool: &sqlx::PgPool, msg: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE message = $1")
        .bind(msg)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_the_receiver() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!("[server]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut kids = Children::new(dir.path());
    let log_file = dir.path().join("worker-own.log");
    let mut cmd = opsdash(&t.url().unwrap(), &cfg);
    cmd.args(["worker", "--log-file"]).arg(&log_file);
    kids.spawn("worker", cmd);
    wait_until(
        "the worker's receiver",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log_file)
                .unwrap_or_default()
                .contains("listening on")
        },
        || kids.log("worker") + &std::fs::read_to_string(&log_file).unwrap_or_default(),
    );
    let url = format!("http://127.0.0.1:{port}/ingest");
    assert_eq!(post(&url, "via the worker").await, Some(200));
    assert_eq!(count(&t.db.write, "via the worker").await, 1);
    let st = kids.signal_and_wait("worker", libc::SIGTERM);
    assert!(st.success(), "{st:?}\n{}", kids.log("worker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_the_receiver_and_logs_to_a_file() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!("[server]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let state = dir.path().join("state");
    let tmux = Tmux::start("serve-inproc", 120, 40);
    tmux.send_literal(&format!(
        "XDG_STATE_HOME='{}' {} --database-url '{}' --config '{}'",
        state.display(),
        env!("CARGO_BIN_EXE_opsdash"),
        t.url().unwrap(),
        cfg.display()
    ));
    tmux.send(&["Enter"]);
    let url = format!("http://127.0.0.1:{port}/ingest");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if post(&url, "via the dashboard").await == Some(200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard's receiver never answered\n{}",
            tmux.capture()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&t.db.write, "via the dashboard").await, 1);
    let log_path = state.join("opsdash").join("dashboard.log");
    wait_until(
        "the worker's lines in the dashboard log",
        Duration::from_secs(60),
        || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            log.contains("listening on") && log.contains("leading this job")
        },
        || std::fs::read_to_string(&log_path).unwrap_or_default() + &tmux.capture(),
    );
    // None of it on the terminal the dashboard owns.
    let screen = tmux.capture();
    assert!(!screen.contains("listening on"), "{screen}");
    assert!(!screen.contains("leading this job"), "{screen}");
}
