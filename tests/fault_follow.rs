//! Fault: `opsdash ingest FILE --follow` (the real binary) over 100,000 distinct lines while the
//! file is rotated the ways logrotate does it (rename and create, while running and while the
//! follower is down; copytruncate) and the follower is killed with SIGKILL and restarted, at
//! planned and at arbitrary moments of its reading. Every line must be stored exactly once:
//! the read position is committed with the rows it covers.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsdash::db::testkit::TestDb;

const LINES: u64 = 100_000;
const STEP: u64 = 1_000;
const LIMIT: Duration = Duration::from_secs(90);

/// The binary under test. `OPSDASH_TEST_BIN` overrides Cargo's path: with a target dir shared
/// between worktrees, another checkout's build can replace `target/debug/opsdash` mid-run.
fn bin_path() -> std::path::PathBuf {
    std::env::var_os("OPSDASH_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_opsdash").into())
}

fn append(path: &Path, from: u64, to: u64) {
    let text: String = (from..to)
        .map(|n| format!("{{\"level\":\"info\",\"msg\":\"fault follow {n}\"}}\n"))
        .collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn start(t: &TestDb, log: &Path, err: &Path) -> Child {
    Command::new(bin_path())
        .env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("opsdash-fault-follow-noconfig"),
        )
        .args(["--database-url", &t.url().unwrap(), "ingest", "--follow"])
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(err)
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

fn kill9(c: &mut Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

/// The follower, killed on drop (a failed assertion must not leave it running).
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn stored(t: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(&t.db.write)
        .await
        .unwrap()
}

async fn wait_rows(t: &TestDb, n: u64, err: &Path, started: Instant) {
    loop {
        let c = stored(t).await;
        if c as u64 >= n {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "{c} of {n} rows stored; stderr:\n{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_with_rotations_and_kill_9_stores_every_line_once() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let err = dir.path().join("ingest.stderr");
    let started = Instant::now();
    let mut child = Reaped(Some(start(&t, &log, &err)));
    let (mut kills, mut rotations) = (0, 0);
    for step in 0..LINES / STEP {
        let written = step * STEP;
        match step % 20 {
            // Rename and create while running, once the follower is reading the file (a file
            // renamed before anyone opened it cannot be known to have been this name).
            3 => {
                wait_rows(&t, written - 2 * STEP, &err, started).await;
                std::fs::rename(&log, &rotated).unwrap();
                rotations += 1;
            }
            // Down for a rotation: killed once the last rotated file is read...
            8 => {
                wait_rows(&t, written - 2 * STEP, &err, started).await;
                kill9(child.0.as_mut().unwrap());
                child.0 = None;
                kills += 1;
            }
            // ... rotated while down ...
            9 => {
                std::fs::rename(&log, &rotated).unwrap();
                rotations += 1;
            }
            // ... and back.
            11 => child.0 = Some(start(&t, &log, &err)),
            // Killed wherever it is, restarted at once.
            14 | 16 => {
                kill9(child.0.as_mut().unwrap());
                kills += 1;
                child.0 = Some(start(&t, &log, &err));
            }
            // copytruncate: the copy is never read, so the follower must have read the file.
            18 => {
                wait_rows(&t, written, &err, started).await;
                let _ = std::fs::remove_file(&rotated);
                std::fs::copy(&log, &rotated).unwrap();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                rotations += 1;
            }
            _ => {}
        }
        append(&log, written, written + STEP);
    }
    if child.0.is_none() {
        child.0 = Some(start(&t, &log, &err));
    }
    wait_rows(&t, LINES, &err, started).await;
    let c = child.0.as_mut().unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let stop = Instant::now();
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.0 = None;
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{stderr}");
    let (rows, distinct, repeats): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT message), coalesce(sum(repeat_count), 0)::int8
           FROM opsdash.log_event",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct, repeats),
        (LINES as i64, LINES as i64, LINES as i64),
        "rows, distinct lines, repeat counts (kills {kills}, rotations {rotations}); stderr:\n{stderr}"
    );
    assert!(
        kills >= 15 && rotations >= 15,
        "{kills} kills, {rotations} rotations"
    );
    eprintln!(
        "{LINES} lines, {kills} kill -9, {rotations} rotations: all stored once in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
