//! Real `opsdash` child processes for fault tests: a config file, children killed on drop,
//! a feeder appending numbered log lines to a file an `opsdash ingest --follow` reads, and
//! polling waits with generous limits (the machine may be loaded).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes `body` as a 0600 config file in `dir`.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, body).expect("config written");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod config");
    p
}

pub fn opsdash(url: &str, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsdash"));
    c.arg("--database-url").arg(url).arg("--config").arg(config);
    c
}

/// Children that are killed (SIGKILL) and reaped on drop, with their stderr in `dir`.
pub struct Children {
    pub dir: PathBuf,
    pub list: Vec<(String, Child)>,
}

impl Children {
    pub fn new(dir: &Path) -> Children {
        Children {
            dir: dir.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// Spawns `cmd` with stdout and stderr going to `<dir>/<name>.log`.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> u32 {
        let log = std::fs::File::create(self.log_path(name)).expect("log file");
        let err = log.try_clone().expect("log file clone");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("opsdash starts");
        let pid = child.id();
        self.list.push((name.to_string(), child));
        pid
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Every child's log, for failure messages.
    pub fn logs(&self) -> String {
        self.list
            .iter()
            .map(|(n, _)| format!("--- {n}:\n{}", self.log(n)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Names of children that have exited, with their status.
    pub fn exited(&mut self) -> Vec<String> {
        self.list
            .iter_mut()
            .filter_map(|(n, c)| match c.try_wait() {
                Ok(Some(st)) => Some(format!("{n} ({st})")),
                _ => None,
            })
            .collect()
    }

    /// Sends `signal` to the named child and waits for it to exit (up to 20 s).
    pub fn signal_and_wait(&mut self, name: &str, signal: i32) -> std::process::ExitStatus {
        let idx = self
            .list
            .iter()
            .position(|(n, _)| n == name)
            .expect("a child of that name");
        let (_, mut child) = self.list.remove(idx);
        // SAFETY: signalling a child process this test spawned and has not reaped yet.
        unsafe { libc::kill(child.id() as i32, signal) };
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{name} did not exit after signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.list {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 50 ms until it is true; panics with `what` (and `context()`) after `limit`.
/// Returns how long it took.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Appends numbered JSON log lines (`"<prefix> <n>"`, n from 1) to a file every `every`, until
/// stopped; each line is written whole with one write so a follower never sees half a line.
pub struct Feeder {
    pub path: PathBuf,
    pub fed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    pub fn start(path: &Path, prefix: &str, level: &str, every: Duration) -> Feeder {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("feed file");
        let fed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (fed2, stop2) = (fed.clone(), stop.clone());
        let prefix = prefix.to_string();
        let level = level.to_string();
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                n += 1;
                let line = format!(
                    "{{\"level\":\"{level}\",\"service\":\"feed\",\"msg\":\"{prefix} {n}\"}}\n"
                );
                file.write_all(line.as_bytes()).expect("feed write");
                fed2.store(n, Ordering::SeqCst);
                std::thread::sleep(every);
            }
        });
        Feeder {
            path: path.to_path_buf(),
            fed,
            stop,
            thread: Some(thread),
        }
    }

    pub fn fed(&self) -> u64 {
        self.fed.load(Ordering::SeqCst)
    }

    /// Stops feeding; returns the number of lines written.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.fed()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pids of every process of a cluster: the postmaster (first line of postmaster.pid) and its
/// children (backends, checkpointer, WAL writer...).
pub fn cluster_pids(pgdata: &Path) -> Vec<i32> {
    let Some(master) = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
    else {
        return Vec::new();
    };
    let mut pids = vec![master];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields follow the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(master) {
            pids.push(pid);
        }
    }
    pids
}
