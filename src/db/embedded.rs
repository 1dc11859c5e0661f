//! The embedded default: a private PostgreSQL cluster under the user's data dir, reachable
//! through a Unix socket in that dir (and, only when `embedded.listen` asks, a loopback TCP
//! address with password authentication). The same code makes throwaway clusters for tests.
//!
//! Postgres refuses to run as root, so when we are root the server runs as the `postgres` system
//! user (via runuser), and the cluster lives where that user can reach it (see `data_root`).
//!
//! One file: initdb, settings, start/stop, running as `postgres` when root, and the tests'
//! throwaway clusters share the same paths and settings.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sqlx::postgres::PgConnectOptions;

/// Default port: it names the socket file (`.s.PGSQL.5432`) when the cluster listens on no TCP
/// port. PostgreSQL has one `port` for socket and TCP alike, so with `embedded.listen` set the
/// socket is named after that port instead (see `Cluster::port`).
pub(crate) const PORT: u16 = 5432;
pub const DATABASE: &str = "opsdash";
pub const SUPERUSER: &str = "postgres";

/// pg_hba.conf lines for `embedded.listen`: loopback TCP only, always with a password.
const TCP_HBA: [&str; 5] = [
    "# opsdash embedded.listen: loopback TCP only, always with a password",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host all all ::1/128 scram-sha-256",
    "host replication all 127.0.0.1/32 scram-sha-256",
    "host replication all ::1/128 scram-sha-256",
];

/// The address as listen_addresses wants it (no brackets around IPv6).
fn listen_host(a: &SocketAddr) -> String {
    a.ip().to_string()
}

/// A PostgreSQL cluster owned by opsdash.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Root of everything the cluster owns: pgdata/, run/ (socket), cluster.lock.
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    /// System user the server runs as, when we are root.
    pub run_as: Option<RunAs>,
    /// Loopback TCP address to listen on too (`embedded.listen`); None: the socket only.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Extra server settings for a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The embedded default: crash-safe (fsync on), commits acknowledged before they reach disk
    /// (synchronous_commit off): a crash may lose the last few hundred ms, never corrupts.
    Default,
    /// Throwaway test clusters: no fsync at all.
    Throwaway,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where the embedded cluster lives: `OPSDASH_DATA_DIR`, the config's `embedded.data_dir`,
/// else the user's data dir (see `data_root`).
pub fn default_root(configured: &str) -> Result<PathBuf> {
    Ok(data_root(configured)?.path)
}

/// The embedded cluster's root and why that place was chosen (`opsdash db status` says both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot {
    pub path: PathBuf,
    pub source: String,
}

/// Chooses the embedded cluster's root:
/// 1. `OPSDASH_DATA_DIR`, 2. `embedded.data_dir`,
/// 3. `$XDG_DATA_HOME/opsdash`, else `$HOME/.local/share/opsdash` (the platform data dir), so
///    two users of one box, or a test with its own HOME and a demo, never share a database.
///
/// As root the server runs as the `postgres` user, which must be able to walk down to the
/// cluster: the user's place is used only if every existing directory on the way is
/// traversable by that user (root's 0700 home is not, and we do not open it up). Otherwise the
/// cluster goes to /var/lib/opsdash/<owner of HOME>, still one per user; a cluster an older
/// opsdash made directly in /var/lib/opsdash is kept in use so no data seems to vanish.
pub fn data_root(configured: &str) -> Result<DataRoot> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    choose_root(
        configured,
        env("OPSDASH_DATA_DIR").map(PathBuf::from),
        env("XDG_DATA_HOME").map(PathBuf::from),
        env("HOME").map(PathBuf::from),
        if is_root() {
            lookup_user(SUPERUSER)
        } else {
            None
        }
        .as_ref(),
        Path::new(LEGACY_ROOT),
    )
}

const LEGACY_ROOT: &str = "/var/lib/opsdash";

fn choose_root(
    configured: &str,
    env_dir: Option<PathBuf>,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    server_user: Option<&RunAs>,
    system_root: &Path,
) -> Result<DataRoot> {
    let found = |path: PathBuf, source: &str| {
        Ok(DataRoot {
            path,
            source: source.to_string(),
        })
    };
    if let Some(d) = env_dir {
        return found(d, "OPSDASH_DATA_DIR");
    }
    if !configured.is_empty() {
        return found(PathBuf::from(configured), "embedded.data_dir in the config");
    }
    // XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
    let (user_dir, source) = match (xdg_data_home.filter(|p| p.is_absolute()), &home) {
        (Some(x), _) => (Some(x.join("opsdash")), "$XDG_DATA_HOME/opsdash"),
        (None, Some(h)) => (
            Some(h.join(".local/share/opsdash")),
            "$HOME/.local/share/opsdash",
        ),
        (None, None) => (
            directories::ProjectDirs::from("", "", "opsdash").map(|d| d.data_dir().to_path_buf()),
            "the platform data dir",
        ),
    };
    let Some(server_user) = server_user else {
        return match user_dir {
            Some(d) => found(d, source),
            None => bail!("no home directory: set embedded.data_dir or OPSDASH_DATA_DIR"),
        };
    };
    if let Some(d) = user_dir.filter(|d| reachable_by(d, server_user)) {
        return found(
            d,
            &format!("{source} (reachable by the {} user)", server_user.user),
        );
    }
    if system_root.join("pgdata/PG_VERSION").is_file() {
        return found(
            system_root.to_path_buf(),
            &format!(
                "the cluster an earlier opsdash made in {} (shared by every root user: set                  OPSDASH_DATA_DIR to move)",
                system_root.display()
            ),
        );
    }
    let owner = home
        .as_deref()
        .and_then(|h| fs::metadata(h).ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        // SAFETY: geteuid has no preconditions and cannot fail.
        .unwrap_or_else(|| unsafe { libc::geteuid() });
    let name = user_name(owner).unwrap_or_else(|| owner.to_string());
    found(
        system_root.join(name),
        &format!(
            "per-user place (the {} user cannot reach the home directory)",
            server_user.user
        ),
    )
}

/// Whether `user` can walk from / down to `dir` (or to its deepest existing ancestor; what is
/// missing is created by us, traversable).
fn reachable_by(dir: &Path, user: &RunAs) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut p = PathBuf::new();
    for part in dir.components() {
        p.push(part);
        let Ok(m) = fs::metadata(&p) else {
            return true;
        };
        if !m.is_dir() {
            return false;
        }
        let mode = m.mode();
        let x = if m.uid() == user.uid {
            mode & 0o100
        } else if m.gid() == user.gid {
            mode & 0o010
        } else {
            mode & 0o001
        };
        if x == 0 {
            return false;
        }
    }
    true
}

fn user_name(uid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

/// Finds the PostgreSQL server binaries (initdb, pg_ctl, postgres): the newest
/// /usr/lib/postgresql/*/bin first, then PATH.
pub fn find_bin_dir() -> Result<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| has_all(p))
        .collect();
    versioned.sort();
    if let Some((_, p)) = versioned.pop() {
        return Ok(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Follow a symlink so pg_ctl finds `postgres` beside the real initdb.
                let real = fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    if has_all(parent) {
                        return Ok(parent.to_path_buf());
                    }
                }
            }
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or under \
         /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: apt-get install postgresql; \
         Fedora: dnf install postgresql-server; macOS: brew install postgresql) or point opsdash \
         at an existing database with --database-url"
    )
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == name {
            return Some(RunAs {
                user: name.to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            });
        }
    }
    None
}

impl Cluster {
    pub fn new(root: PathBuf) -> Result<Cluster> {
        let bin_dir = find_bin_dir()?;
        let run_as = if is_root() {
            Some(lookup_user(SUPERUSER).ok_or_else(|| {
                anyhow!(
                    "running as root, but there is no `postgres` system user to run the server as \
                     (Postgres refuses to run as root): create it (useradd --system postgres) or \
                     run opsdash as an ordinary user"
                )
            })?)
        } else {
            None
        };
        Ok(Cluster {
            root,
            bin_dir,
            run_as,
            listen: None,
        })
    }

    /// The same cluster, also listening on `listen` (a loopback address, checked by the config).
    pub fn with_listen(mut self, listen: Option<SocketAddr>) -> Cluster {
        self.listen = listen;
        self
    }

    /// The server's one port: the TCP one when listening, which also names the socket file.
    pub fn port(&self) -> u16 {
        self.listen.map_or(PORT, |a| a.port())
    }

    pub fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn log_file(&self) -> PathBuf {
        self.pgdata().join("server.log")
    }

    /// A URL both psql (libpq) and opsdash (sqlx) accept. The socket directory is the
    /// percent-encoded host: sqlx rejects the empty host of `postgresql://u@/db?host=DIR`.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    pub fn url_for(&self, database: &str) -> String {
        let host: String = self
            .socket_dir()
            .to_string_lossy()
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' | '~' => c.to_string(),
                c => {
                    let mut b = [0u8; 4];
                    c.encode_utf8(&mut b)
                        .bytes()
                        .map(|x| format!("%{x:02X}"))
                        .collect()
                }
            })
            .collect();
        format!("postgresql://{SUPERUSER}@{host}:{}/{database}", self.port())
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(self.port())
            .username(SUPERUSER)
            .database(database)
            .application_name("opsdash")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            Some(r) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(&r.user).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        };
        // The server user may not be able to enter our working directory (e.g. /root).
        cmd.current_dir("/");
        cmd.stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("running {program}"))?;
        Ok(out)
    }

    pub(crate) fn give_to_server_user(&self, path: &Path, mode: u32) -> Result<()> {
        if let Some(r) = &self.run_as {
            chown(path, Some(r.uid), Some(r.gid))
                .with_context(|| format!("chown {} to {}", path.display(), r.user))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(())
    }

    pub fn is_initialized(&self) -> bool {
        self.pgdata().join("PG_VERSION").is_file()
    }

    /// Server pid when a postmaster is running for this data dir.
    pub fn running_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) == 0 };
        alive.then_some(pid as u32)
    }

    fn socket_ready(&self) -> bool {
        self.socket_dir()
            .join(format!(".s.PGSQL.{}", self.port()))
            .exists()
    }

    /// Starts the cluster if it is not running (initializing it first if needed) and makes sure
    /// the `opsdash` database exists. Safe to call from several processes at once: a file lock
    /// serializes them, and later callers find the cluster running and reuse it.
    pub fn ensure_running(&self, durability: Durability) -> Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        if self.run_as.is_some() {
            // The server user must traverse the root to reach pgdata/ and run/.
            let mode = fs::metadata(&self.root)?.permissions().mode();
            if mode & 0o011 != 0o011 {
                fs::set_permissions(&self.root, fs::Permissions::from_mode(mode | 0o711))?;
            }
        }
        let lock = File::create(self.root.join("cluster.lock"))
            .with_context(|| format!("creating lock file in {}", self.root.display()))?;
        lock.lock().context("locking the embedded cluster")?;

        if !self.is_initialized() {
            self.init(durability)?;
        }
        if self.listen.is_some() {
            self.ensure_tcp_hba()?;
        }
        if self.listen_changed() {
            // `embedded.listen` changed since the server started: port and listen_addresses
            // take effect only at start, so restart (open sessions reconnect).
            self.stop("fast")?;
        }
        if self.running_pid().is_none() || !self.socket_ready() {
            self.start()?;
        }
        self.wait_accepting(Duration::from_secs(30))?;
        self.ensure_database(DATABASE)?;
        drop(lock);
        Ok(())
    }

    fn init(&self, durability: Durability) -> Result<()> {
        let pgdata = self.pgdata();
        if pgdata.exists() {
            // A previous initdb died half-way: start over rather than use a broken cluster.
            fs::remove_dir_all(&pgdata)
                .with_context(|| format!("removing incomplete {}", pgdata.display()))?;
        }
        fs::create_dir_all(&pgdata)?;
        self.give_to_server_user(&pgdata, 0o700)?;
        let socket_dir = self.socket_dir();
        fs::create_dir_all(&socket_dir)?;
        // Only the owner may reach the socket: the cluster trusts local connections.
        self.give_to_server_user(&socket_dir, 0o700)?;

        let pgdata_s = pgdata.to_string_lossy().to_string();
        let out = self.run(
            "initdb",
            &[
                "-D",
                &pgdata_s,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "initdb failed for {}: {}",
                pgdata.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut conf = format!(
            "\n# opsdash embedded cluster\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 200\n\
             shared_buffers = 256MB\n\
             max_wal_size = 2GB\n\
             synchronous_commit = off\n\
             log_min_messages = warning\n\
             log_min_error_statement = panic\n",
            socket_dir.display()
        );
        if durability == Durability::Throwaway {
            conf.push_str("fsync = off\nfull_page_writes = off\nshared_buffers = 128MB\n");
        }
        let conf_path = pgdata.join("postgresql.conf");
        let mut existing = fs::read_to_string(&conf_path).unwrap_or_default();
        existing.push_str(&conf);
        fs::write(&conf_path, existing)?;
        Ok(())
    }

    fn start(&self) -> Result<()> {
        let socket_dir = self.socket_dir();
        if !socket_dir.exists() {
            fs::create_dir_all(&socket_dir)?;
            self.give_to_server_user(&socket_dir, 0o700)?;
        }
        let pgdata = self.pgdata().to_string_lossy().to_string();
        let log = self.log_file().to_string_lossy().to_string();
        let mut args = vec!["start", "-D", &pgdata, "-l", &log, "-w", "-t", "60", "-s"];
        // Command-line options win over postgresql.conf (listen_addresses = ''), so turning
        // `embedded.listen` off again needs no edit of the conf file.
        let options = self
            .listen
            .map(|a| format!("-p {} -c listen_addresses={}", a.port(), listen_host(&a)));
        if let Some(o) = &options {
            args.extend(["-o", o]);
        }
        let out = self.run("pg_ctl", &args)?;
        if !out.status.success() {
            let tail = fs::read_to_string(self.log_file())
                .map(|t| t.lines().rev().take(5).collect::<Vec<_>>().join(" | "))
                .unwrap_or_default();
            bail!(
                "could not start the embedded PostgreSQL in {}: {} {}",
                self.pgdata().display(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tail
            );
        }
        Ok(())
    }

    /// (port, listen_addresses) the running server uses, from lines 4 and 6 of postmaster.pid.
    fn running_listen(&self) -> Option<(u16, String)> {
        self.running_pid()?;
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let port = lines.get(3)?.trim().parse().ok()?;
        let addr = lines.get(5).map_or("", |l| l.trim());
        Some((port, addr.to_string()))
    }

    /// Whether the running server's port, or its address when we want one, differs from ours.
    /// With `embedded.listen` off only the port counts: listen_addresses set by hand in
    /// postgresql.conf (as the test kit's `listen_tcp` does) must not cause a restart each time.
    fn listen_changed(&self) -> bool {
        let Some((port, addr)) = self.running_listen() else {
            return false;
        };
        match self.listen {
            Some(a) => port != a.port() || addr != listen_host(&a),
            None => port != PORT,
        }
    }

    /// Makes every TCP connection need a password (scram-sha-256): initdb's `--auth=trust`
    /// wrote `host ... trust` lines for the loopback addresses, which would let anyone on this
    /// machine in once we listen, so those go and ours come first (the first match wins). The
    /// Unix socket keeps its trust lines. Read by the server at its next start.
    fn ensure_tcp_hba(&self) -> Result<()> {
        let path = self.pgdata().join("pg_hba.conf");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let tcp_trust = |l: &str| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.first().is_some_and(|w| w.starts_with("host")) && words.last() == Some(&"trust")
        };
        let has_ours = TCP_HBA
            .iter()
            .all(|ours| text.lines().any(|l| l.trim() == *ours));
        if has_ours && !text.lines().any(tcp_trust) {
            return Ok(());
        }
        let mut out: String = TCP_HBA.iter().map(|l| format!("{l}\n")).collect();
        for l in text.lines() {
            if !tcp_trust(l) && !TCP_HBA.contains(&l.trim()) {
                out.push_str(l);
                out.push('\n');
            }
        }
        fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    fn wait_accepting(&self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = self.run(
                "pg_isready",
                &[
                    "-h",
                    &self.socket_dir().to_string_lossy(),
                    "-p",
                    &self.port().to_string(),
                    "-U",
                    SUPERUSER,
                    "-q",
                ],
            );
            if matches!(out, Ok(ref o) if o.status.success()) {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "the embedded PostgreSQL in {} does not accept connections (see {})",
                    self.pgdata().display(),
                    self.log_file().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = self.run(
            "psql",
            &[
                "-h",
                &self.socket_dir().to_string_lossy(),
                "-p",
                &self.port().to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates `name` if missing (optionally as a copy of `template`).
    pub fn ensure_database(&self, name: &str) -> Result<()> {
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT 1 FROM pg_database WHERE datname = '{}'",
                name.replace('\'', "''")
            ),
        )?;
        if exists != "1" {
            self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        }
        Ok(())
    }

    /// Stops the server: `fast` waits for nothing (rolls back open transactions), `immediate`
    /// simulates a crash.
    pub fn stop(&self, mode: &str) -> Result<bool> {
        if self.running_pid().is_none() {
            return Ok(false);
        }
        let pgdata = self.pgdata().to_string_lossy().to_string();
        let out = self.run("pg_ctl", &["stop", "-D", &pgdata, "-m", mode, "-w", "-s"])?;
        if !out.status.success() {
            bail!(
                "pg_ctl stop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(true)
    }

    /// Starts a stopped, already initialized cluster (tests that restart the database).
    pub fn restart_stopped(&self) -> Result<()> {
        self.start()?;
        self.wait_accepting(Duration::from_secs(30))
    }

    /// Server version string (e.g. "15.8"), from the binaries.
    pub fn server_version(&self) -> Option<String> {
        let out = Command::new(self.bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().nth(2).map(str::to_string)
    }

    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            root: self.root.clone(),
            pgdata: self.pgdata(),
            socket_dir: self.socket_dir(),
            bin_dir: self.bin_dir.clone(),
            initialized: self.is_initialized(),
            pid: self.running_pid(),
            run_as: self.run_as.as_ref().map(|r| r.user.clone()),
            version: self.server_version(),
            url: self.url(),
            listen: self.listen,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub root: PathBuf,
    pub pgdata: PathBuf,
    pub socket_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub initialized: bool,
    pub pid: Option<u32>,
    pub run_as: Option<String>,
    pub version: Option<String>,
    pub url: String,
    pub listen: Option<SocketAddr>,
}

impl std::fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match (self.initialized, self.pid) {
            (false, _) => "not initialized".to_string(),
            (true, Some(pid)) => format!("running (pid {pid})"),
            (true, None) => "stopped".to_string(),
        };
        writeln!(f, "embedded cluster: {state}")?;
        writeln!(f, "  root:       {}", self.root.display())?;
        writeln!(f, "  data dir:   {}", self.pgdata.display())?;
        match self.listen {
            Some(a) => writeln!(
                f,
                "  socket dir: {} (also TCP {a}, password only)",
                self.socket_dir.display()
            )?,
            None => writeln!(f, "  socket dir: {} (no TCP)", self.socket_dir.display())?,
        }
        writeln!(
            f,
            "  server:     {} {}",
            self.bin_dir.display(),
            self.version.as_deref().unwrap_or("")
        )?;
        if let Some(u) = &self.run_as {
            writeln!(f, "  runs as:    {u} (opsdash is running as root)")?;
        }
        write!(f, "  url:        {}", self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres_like() -> RunAs {
        RunAs {
            user: "postgres".into(),
            uid: 4_000_000,
            gid: 4_000_000,
        }
    }

    #[test]
    fn the_root_follows_env_config_xdg_then_home() {
        let r = |env: Option<&str>, cfg: &str, xdg: Option<&str>, home: Option<&str>| {
            choose_root(
                cfg,
                env.map(PathBuf::from),
                xdg.map(PathBuf::from),
                home.map(PathBuf::from),
                None,
                Path::new("/nonexistent"),
            )
            .unwrap()
            .path
        };
        assert_eq!(r(Some("/e"), "/c", Some("/x"), Some("/h")), Path::new("/e"));
        assert_eq!(r(None, "/c", Some("/x"), Some("/h")), Path::new("/c"));
        assert_eq!(r(None, "", Some("/x"), Some("/h")), Path::new("/x/opsdash"));
        // A relative XDG_DATA_HOME is invalid by the spec and ignored.
        assert_eq!(
            r(None, "", Some("rel"), Some("/h")),
            Path::new("/h/.local/share/opsdash")
        );
    }

    #[test]
    fn as_root_an_unreachable_home_gives_a_per_user_place_and_an_old_cluster_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        let closed = base.path().join("closed");
        let system = base.path().join("var-lib-opsdash");
        fs::create_dir_all(&open).unwrap();
        fs::create_dir_all(&closed).unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
        let pg = postgres_like();
        let r = |home: &Path| {
            choose_root("", None, None, Some(home.to_path_buf()), Some(&pg), &system).unwrap()
        };
        assert_eq!(r(&open).path, open.join(".local/share/opsdash"));
        let per_user = r(&closed);
        assert!(per_user.path.starts_with(&system), "{per_user:?}");
        assert_ne!(per_user.path, system);
        assert!(per_user.source.contains("per-user"), "{per_user:?}");
        fs::create_dir_all(system.join("pgdata")).unwrap();
        fs::write(system.join("pgdata/PG_VERSION"), "15").unwrap();
        assert_eq!(
            r(&closed).path,
            system,
            "an existing cluster is not abandoned"
        );
        assert_eq!(r(&open).path, open.join(".local/share/opsdash"));
    }
}
