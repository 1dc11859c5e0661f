//! `opsdash ingest FILE --follow` as a real process against a real PostgreSQL: rotations done
//! the way logrotate does them (rename and create, copytruncate, delete and create again),
//! checkpoints that make a restart after `kill -9` resume exactly, globs and several files,
//! the stop signals (INT, TERM, HUP; a second one aborts) and the exit status of rejects.
//! Every line is unique, so a line stored twice shows as count > count(DISTINCT message).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use opsdash::db::testkit::TestDb;

const LIMIT: Duration = Duration::from_secs(30);

/// The binary under test. `OPSDASH_TEST_BIN` overrides Cargo's path: with a target dir shared
/// between worktrees, another checkout's build can replace `target/debug/opsdash` mid-run.
fn bin_path() -> std::path::PathBuf {
    std::env::var_os("OPSDASH_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_opsdash").into())
}

fn binary(t: &TestDb) -> Command {
    let mut c = Command::new(bin_path());
    // Never pick up a developer's config file or environment.
    c.env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("opsdash-follow-test-noconfig"),
        )
        .args(["--database-url", &t.url().unwrap(), "ingest"]);
    c
}

/// Appends lines `<tag> <n>` for n in `from..to` with one write (a follower never sees half a
/// line unless the test wants it).
fn append(path: &Path, tag: &str, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(lines(tag, from, to).as_bytes()).unwrap();
}

fn lines(tag: &str, from: u64, to: u64) -> String {
    (from..to)
        .map(|n| format!("{{\"level\":\"info\",\"msg\":\"{tag} {n}\"}}\n"))
        .collect()
}

/// A running `opsdash ingest`, its stderr in a file (readable while it runs).
struct Follower {
    child: Option<Child>,
    err: PathBuf,
}

impl Follower {
    fn start(t: &TestDb, dir: &Path, name: &str, args: &[&str]) -> Follower {
        let err = dir.join(format!("{name}.stderr"));
        let child = binary(t)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Follower {
            child: Some(child),
            err,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, sig) };
    }

    async fn wait_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < LIMIT,
                "no {needle:?} on stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the exit (panics after LIMIT).
    async fn exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                start.elapsed() < LIMIT,
                "ingest did not exit:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self, sig: i32) -> ExitStatus {
        self.signal(sig);
        self.exit().await
    }

    async fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.exit().await;
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn scalar(t: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&t.db.write)
        .await
        .unwrap()
}

async fn stored(t: &TestDb) -> i64 {
    scalar(t, "SELECT count(*) FROM opsdash.log_event").await
}

/// Waits until `n` rows are stored (never a fixed sleep); panics with stderr after LIMIT.
async fn wait_rows(t: &TestDb, n: i64, f: &Follower) {
    let start = Instant::now();
    loop {
        let c = stored(t).await;
        if c >= n {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{c} of {n} rows stored after {LIMIT:?}; stderr:\n{}",
            f.stderr()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Exactly `n` rows, every one a distinct line.
async fn assert_exactly(t: &TestDb, n: i64, f: &Follower) {
    let rows = stored(t).await;
    let distinct = scalar(t, "SELECT count(DISTINCT message) FROM opsdash.log_event").await;
    let repeats = scalar(
        t,
        "SELECT coalesce(sum(repeat_count), 0)::int8 FROM opsdash.log_event",
    )
    .await;
    assert_eq!(
        (rows, distinct, repeats),
        (n, n, n),
        "rows, distinct lines, repeat counts; stderr:\n{}",
        f.stderr()
    );
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    (dir, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_create_rotation_reads_old_file_to_its_end_then_the_new_one() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    append(&log, "before", 0, 100);
    let mut f = Follower::start(&t, dir.path(), "f", &[log.to_str().unwrap(), "--follow"]);
    wait_rows(&t, 100, &f).await;
    // logrotate `create`: rename, the application still writes a little to its open file,
    // then the new file appears and gets 100 lines.
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    old.write_all(lines("late", 0, 20).as_bytes()).unwrap();
    drop(old);
    append(&log, "after", 0, 100);
    wait_rows(&t, 220, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success(), "{}", f.stderr());
    assert_exactly(&t, 220, &f).await;
    assert!(
        f.stderr().contains("replaced by a new file"),
        "{}",
        f.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_is_noticed_even_when_the_file_regrows_past_the_old_size() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    append(&log, "a", 0, 50);
    let mut f = Follower::start(&t, dir.path(), "f", &[log.to_str().unwrap(), "--follow"]);
    wait_rows(&t, 50, &f).await;
    // copytruncate, then 50 longer lines at once: the file is bigger than before when the
    // follower looks again, so only its changed first bytes tell it was truncated.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "after copytruncate, a longer line", 0, 50);
    wait_rows(&t, 100, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success(), "{}", f.stderr());
    assert_exactly(&t, 100, &f).await;
    assert!(f.stderr().contains("truncated"), "{}", f.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_created_again() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    append(&log, "first", 0, 30);
    let mut f = Follower::start(&t, dir.path(), "f", &[log.to_str().unwrap(), "--follow"]);
    wait_rows(&t, 30, &f).await;
    std::fs::remove_file(&log).unwrap();
    f.wait_stderr("removed or renamed").await;
    append(&log, "second", 0, 40);
    wait_rows(&t, 70, &f).await;
    assert!(f.stop(libc::SIGINT).await.success(), "{}", f.stderr());
    assert_exactly(&t, 70, &f).await;
    assert!(
        f.stderr().contains("replaced by a new file"),
        "{}",
        f.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_loses_nothing_and_repeats_nothing() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    let args = [log.to_str().unwrap(), "--follow"];
    let mut total = 0;
    for round in 0..4u64 {
        let mut f = Follower::start(&t, dir.path(), &format!("f{round}"), &args);
        // Lines arrive in bursts while the follower reads; it dies mid-stream.
        for burst in 0..10 {
            append(&log, &format!("r{round} b{burst}"), 0, 300);
            total += 300;
        }
        wait_rows(&t, total as i64 - 1500, &f).await;
        f.kill9().await;
        // Written while no one reads.
        append(&log, &format!("r{round} down"), 0, 100);
        total += 100;
    }
    let mut f = Follower::start(&t, dir.path(), "last", &args);
    wait_rows(&t, total as i64, &f).await;
    let st = f.stop(libc::SIGTERM).await;
    assert_exactly(&t, total as i64, &f).await;
    assert!(st.success(), "{}", f.stderr());
    assert!(f.stderr().contains("resuming at byte"), "{}", f.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_and_hup_commit_what_was_written_and_exit_0() {
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGHUP, "HUP")] {
        let t = TestDb::new().await.unwrap();
        let (dir, log) = setup();
        append(&log, "ready", 0, 1);
        let mut f = Follower::start(&t, dir.path(), name, &[log.to_str().unwrap(), "--follow"]);
        wait_rows(&t, 1, &f).await;
        append(&log, name, 0, 3000);
        // The scenario: the signal comes 50 ms after the burst (`systemctl stop`).
        std::thread::sleep(Duration::from_millis(50));
        let st = f.stop(sig).await;
        assert!(st.success(), "SIG{name}: {st:?}\n{}", f.stderr());
        assert_exactly(&t, 3001, &f).await;
        assert!(f.stderr().contains("3001 rows stored"), "{}", f.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_on_a_pipe_commits_what_was_written() {
    let t = TestDb::new().await.unwrap();
    let mut child = binary(&t)
        .args(["--follow", "--service", "piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines("ready", 0, 1).as_bytes()).unwrap();
    let start = Instant::now();
    while stored(&t).await < 1 {
        assert!(start.elapsed() < LIMIT, "first line never stored");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stdin.write_all(lines("piped", 0, 3000).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stored(&t).await, 3001, "{stderr}");
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_aborts_and_says_what_was_not_committed() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    let args = [log.to_str().unwrap(), "--follow"];
    append(&log, "ready", 0, 1);
    let mut f = Follower::start(&t, dir.path(), "f", &args);
    wait_rows(&t, 1, &f).await;
    // Hold the checkpoint table: the next batch's transaction waits on it.
    let mut lock = t.db.write.begin().await.unwrap();
    sqlx::query("LOCK TABLE opsdash.ingest_checkpoint IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    append(&log, "held", 0, 100);
    let start = Instant::now();
    while scalar(
        &t,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE c.relname = 'ingest_checkpoint' AND NOT l.granted",
    )
    .await
        == 0
    {
        assert!(
            start.elapsed() < LIMIT,
            "the writer never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f.signal(libc::SIGTERM);
    f.wait_stderr("SIGTERM: stopping").await;
    let st = f.stop(libc::SIGINT).await;
    assert_eq!(st.code(), Some(128 + libc::SIGINT), "{}", f.stderr());
    assert!(
        f.stderr()
            .contains("aborted; 100 lines read were not committed"),
        "{}",
        f.stderr()
    );
    lock.rollback().await.unwrap();
    // What the abort dropped is read again from the saved position.
    let mut f = Follower::start(&t, dir.path(), "again", &args);
    wait_rows(&t, 101, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success());
    assert_exactly(&t, 101, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_while_down_resumes_in_the_rotated_file() {
    let t = TestDb::new().await.unwrap();
    let (dir, log) = setup();
    let args = [log.to_str().unwrap(), "--follow"];
    append(&log, "one", 0, 100);
    let mut f = Follower::start(&t, dir.path(), "f", &args);
    wait_rows(&t, 100, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success());
    // While down: more lines, rotation, lines in the new file.
    append(&log, "one more", 0, 20);
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, "two", 0, 30);
    let mut f = Follower::start(&t, dir.path(), "g", &args);
    wait_rows(&t, 150, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success());
    assert_exactly(&t, 150, &f).await;
    assert!(
        f.stderr().contains("rotated while not followed"),
        "{}",
        f.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globs_and_several_files_in_one_process() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("app");
    std::fs::create_dir(&apps).unwrap();
    append(&apps.join("api.log"), "api", 0, 40);
    append(&apps.join("web.log"), "web", 0, 50);
    append(&apps.join("skip.txt"), "skip", 0, 7);
    let other = dir.path().join("jobs.log");
    append(&other, "jobs", 0, 10);
    let pattern = format!("{}/*.log", apps.display());
    let mut f = Follower::start(
        &t,
        dir.path(),
        "f",
        &[&pattern, other.to_str().unwrap(), "--follow"],
    );
    wait_rows(&t, 100, &f).await;
    // A file new to the glob is picked up; the others keep growing.
    append(&apps.join("worker.log"), "worker", 0, 25);
    append(&apps.join("api.log"), "api", 40, 45);
    append(&other, "jobs", 10, 15);
    wait_rows(&t, 135, &f).await;
    assert!(f.stop(libc::SIGTERM).await.success(), "{}", f.stderr());
    assert_exactly(&t, 135, &f).await;
    let per: Vec<(String, i64)> =
        sqlx::query_as("SELECT service, count(*) FROM opsdash.log_event GROUP BY 1 ORDER BY 1")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    let per: Vec<(&str, i64)> = per.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(
        per,
        [("api", 45), ("jobs", 15), ("web", 50), ("worker", 25)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_says_whether_lines_were_rejected() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    append(&good, "good", 0, 10);
    let out = binary(&t).arg(&good).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 10 good, 5 bad, 10 good.
    let mixed = dir.path().join("mixed.log");
    append(&mixed, "m", 0, 10);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&mixed)
        .unwrap()
        .write_all(b"{\"msg\":\n".repeat(5).as_slice())
        .unwrap();
    append(&mixed, "m", 10, 20);
    let out = binary(&t)
        .args(["--format", "json"])
        .arg(&mixed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("20 rows stored"), "{stderr}");

    let t = TestDb::new().await.unwrap();
    let out = binary(&t)
        .args(["--format", "json", "--max-rejects", "2"])
        .arg(&mixed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("more than 2 lines rejected"), "{stderr}");
    // It stopped at the third bad line: the 10 good lines before are stored, none after.
    assert_eq!(stored(&t).await, 10, "{stderr}");
}
