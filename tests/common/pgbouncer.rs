//! A real PgBouncer (1.21 or newer, built by `.ci/setup`) in front of a test
//! cluster: a generated ini, a free TCP port on 127.0.0.1, trust authentication, run in the
//! foreground as the cluster's server user (PgBouncer refuses to run as root) and stopped on drop.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsdash::db::embedded::Cluster;

pub struct PgBouncer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl PgBouncer {
    /// Starts PgBouncer with `pool_mode` ("transaction" or "session") in front of `cluster`,
    /// tracking up to `max_prepared_statements` protocol-level prepared statements per server
    /// connection (0: passed through untouched, as PgBouncer before 1.21 did).
    pub fn start(cluster: &Cluster, pool_mode: &str, max_prepared_statements: u32) -> PgBouncer {
        let dir = cluster
            .root
            .join(format!("pgbouncer-{pool_mode}-{max_prepared_statements}"));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let port = free_port();
        // In session mode every client connection holds a server connection until it closes:
        // the test's own pools, the tail, two workers and the ingest runs need far more than
        // PgBouncer's default 20 (the cluster allows 200).
        // Every user name must be in the auth file, even with trust.
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").expect("userlist");
        let ini = format!(
            "[databases]\n\
             * = host={socket} port=5432\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {pool_mode}\n\
             max_prepared_statements = {max_prepared_statements}\n\
             max_client_conn = 200\n\
             default_pool_size = 100\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            socket = cluster.socket_dir().display(),
            dir = dir.display(),
        );
        let ini_path = dir.join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).expect("pgbouncer.ini");
        if let Some(r) = &cluster.run_as {
            for p in [&dir, &dir.join("userlist.txt"), &ini_path] {
                std::os::unix::fs::chown(p, Some(r.uid), Some(r.gid)).expect("chown");
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let mut cmd = match &cluster.run_as {
            Some(r) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(&r.user).arg("--").arg("pgbouncer");
                c
            }
            None => Command::new("pgbouncer"),
        };
        let child = cmd
            .arg(&ini_path)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer not found: run .ci/setup (it builds PgBouncer 1.24)");
        let mut bouncer = PgBouncer { child, port, dir };
        bouncer.wait_listening();
        bouncer
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "pgbouncer did not listen within 20 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.dir)).unwrap_or_default()
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("pgbouncer.log")
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Under runuser, PgBouncer is runuser's child: killing runuser would leave it running.
        // Its pid file names it; SIGTERM is its immediate shutdown.
        let pid = std::fs::read_to_string(self.dir.join("pgbouncer.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            // SAFETY: kill only sends a signal to the pid PgBouncer wrote for itself.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let start = Instant::now();
            // SAFETY: signal 0 only checks that the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
