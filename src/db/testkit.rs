//! Throwaway PostgreSQL for tests: one private cluster per test process (or the server named by
//! `OPSDASH_TEST_DATABASE_URL`), a template database with the migrations applied, and a fresh
//! database cloned from it for every test. Clusters are stopped and removed when the process
//! exits; clusters left by a killed test run are swept by the next one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::db::embedded::{Cluster, Durability};
use crate::db::pool::{parse_url, Db, DbTarget};

const TEMPLATE: &str = "opsdash_test_template";

#[allow(clippy::large_enum_variant)]
enum Server {
    Cluster(Cluster),
    External {
        url: String,
        options: Box<PgConnectOptions>,
    },
}

impl Server {
    fn options(&self, database: &str) -> PgConnectOptions {
        match self {
            Server::Cluster(c) => c.connect_options(database),
            Server::External { options, .. } => (**options).clone().database(database),
        }
    }

    /// A libpq/sqlx URL for `database` on this server (for tests that run the binary).
    fn url(&self, database: &str) -> String {
        match self {
            Server::Cluster(c) => c.url_for(database),
            Server::External { url, .. } => with_database(url, database),
        }
    }
}

/// `url` with its database path replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..authority_end])
}

static SERVER: OnceLock<std::result::Result<Server, String>> = OnceLock::new();
static OWNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_owned_clusters() {
    let roots = OWNED.lock().map(|v| v.clone()).unwrap_or_default();
    for root in roots {
        remove_cluster(&root);
    }
}

fn remove_cluster(root: &Path) {
    if let Ok(c) = Cluster::new(root.to_path_buf()) {
        let _ = c.stop("immediate");
    }
    let _ = std::fs::remove_dir_all(root);
}

/// Removes clusters of earlier test processes that died before their exit handler ran.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // Our own directories are never stale; and another thread of this process may have just
    // created one and not yet written its owner file (CI once lost a test's directory that way).
    let own = format!("opsdash-test-{}-", std::process::id());
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("opsdash-test-") || name.starts_with(&own) {
            continue;
        }
        let owner = std::fs::read_to_string(e.path().join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let stale = match owner {
            // SAFETY: signal 0 only checks that the process exists.
            Some(pid) => unsafe { libc::kill(pid, 0) != 0 },
            // No owner file: a crash right after mkdir, or another process between its mkdir
            // and its write. Only the first is old.
            None => older_than(&e.path(), Duration::from_secs(600)),
        };
        if stale {
            remove_cluster(&e.path());
        }
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > age)
}

/// A new private cluster in a temp dir, removed when this process exits (or by `TestCluster`'s
/// Drop). Used for the shared test server and by tests that stop and restart the database.
pub fn new_cluster(tag: &str) -> Result<Cluster> {
    let root = std::env::temp_dir().join(format!(
        "opsdash-test-{}-{}-{}",
        std::process::id(),
        tag,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("owner.pid"), std::process::id().to_string())?;
    {
        let mut owned = OWNED.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if owned.is_empty() {
            // SAFETY: registering a plain extern "C" function with no captured state.
            unsafe { libc::atexit(stop_owned_clusters) };
        }
        owned.push(root.clone());
    }
    let cluster = Cluster::new(root)?;
    cluster.ensure_running(Durability::Throwaway)?;
    Ok(cluster)
}

fn block_on<F: std::future::Future<Output = Result<T>> + Send + 'static, T: Send + 'static>(
    f: F,
) -> Result<T> {
    // Runs on its own thread and runtime so it works inside and outside a tokio test.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("test setup thread panicked"))?
}

fn init_server() -> Result<Server> {
    let server = match std::env::var("OPSDASH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External {
            options: Box::new(parse_url(&url)?),
            url,
        },
        _ => {
            sweep_stale();
            Server::Cluster(new_cluster("shared")?)
        }
    };
    let admin = server.options("postgres");
    let tmpl = server.options(TEMPLATE);
    block_on(async move {
        let mut conn = PgConnection::connect_with(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {TEMPLATE}"))
            .execute(&mut conn)
            .await?;
        let t = sqlx::PgPool::connect_with(tmpl).await?;
        crate::db::migrate::MIGRATOR.run(&t).await?;
        t.close().await;
        Ok(())
    })
    .context("preparing the test template database")?;
    Ok(server)
}

fn server() -> Result<&'static Server> {
    SERVER
        .get_or_init(|| init_server().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("test database unavailable: {e}"))
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub db: Db,
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> Result<TestDb> {
        let server = server()?;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect_with(&server.options("postgres")).await?;
        // CREATE DATABASE ... TEMPLATE fails if another session is connected to the template;
        // tests create databases concurrently, so retry briefly.
        let mut tries = 0;
        loop {
            match sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context("creating test database"),
            }
        }
        admin.close().await?;
        let options = server.options(&name);
        let db = Db::from_options(
            options.clone(),
            None,
            DbTarget::External {
                redacted_url: format!("test database {name}"),
            },
            8,
            Duration::from_secs(10),
            Duration::from_secs(30),
        )
        .await?;
        Ok(TestDb { db, name, options })
    }

    /// A URL of this test database, for tests that run the real binary with `--database-url`.
    pub fn url(&self) -> Result<String> {
        Ok(server()?.url(&self.name))
    }
}

/// A cluster of its own for a test that stops or freezes the database; removed on drop.
pub struct TestCluster {
    pub cluster: Cluster,
}

impl TestCluster {
    pub fn start(tag: &str) -> Result<TestCluster> {
        sweep_stale();
        let cluster = new_cluster(tag)?;
        let url_opts = cluster.connect_options(crate::db::embedded::DATABASE);
        block_on(async move {
            let pool = sqlx::PgPool::connect_with(url_opts).await?;
            crate::db::migrate::MIGRATOR.run(&pool).await?;
            pool.close().await;
            Ok(())
        })?;
        Ok(TestCluster { cluster })
    }

    pub fn url(&self) -> String {
        self.cluster.url()
    }

    /// Restarts this cluster listening also on TCP port 5432 of `addrs` (from
    /// `free_loopback_pair`: clusters of other tests use other addresses, so the port never
    /// clashes), with `files` written into its data directory (owned by the server user, mode
    /// 0600), `conf` appended to postgresql.conf and `hba` as its whole pg_hba.conf. The test
    /// kit itself keeps connecting through the Unix socket, so `hba` must keep a `local` line.
    pub fn listen_tcp(
        &self,
        addrs: &[std::net::Ipv4Addr],
        conf: &str,
        files: &[(&str, &[u8])],
        hba: &str,
    ) -> Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let pgdata = self.cluster.pgdata();
        let owner = std::fs::metadata(&pgdata)?;
        let place = |name: &str, bytes: &[u8]| -> Result<()> {
            let path = pgdata.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            Ok(())
        };
        for (name, bytes) in files {
            place(name, bytes)?;
        }
        place("pg_hba.conf", hba.as_bytes())?;
        let conf_path = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path)?;
        let listen: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        text.push_str(&format!(
            "\n# test kit: TCP\nlisten_addresses = '{}'\n{conf}\n",
            listen.join(", ")
        ));
        std::fs::write(&conf_path, text)?;
        self.cluster.stop("fast")?;
        self.cluster.restart_stopped()
    }
}

/// Two neighbouring addresses in 127.0.0.0/8 (all of it is loopback on Linux) whose port 5432
/// is free now, picked at random so concurrent test clusters do not meet.
pub fn free_loopback_pair() -> Result<[std::net::Ipv4Addr; 2]> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..50 {
        let (b, c, d) = (
            rng.gen_range(1..=254u8),
            rng.gen_range(0..=255u8),
            rng.gen_range(2..=250u8),
        );
        let pair = [
            std::net::Ipv4Addr::new(127, b, c, d),
            std::net::Ipv4Addr::new(127, b, c, d + 1),
        ];
        let free = pair
            .iter()
            .all(|a| std::net::TcpListener::bind((*a, crate::db::embedded::PORT)).is_ok());
        if free {
            return Ok(pair);
        }
    }
    anyhow::bail!("no free loopback address pair for a test cluster")
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        remove_cluster(&self.cluster.root);
        if let Ok(mut owned) = OWNED.lock() {
            owned.retain(|r| r != &self.cluster.root);
        }
    }
}

/// Waits until the cluster-wide snapshot xmin has passed every transaction `pool` committed so
/// far: the rollup job only trusts rows of transactions below it, and other tests sharing the
/// cluster hold it back for a moment. Gives up after 30 s.
pub async fn wait_for_snapshot_xmin(pool: &sqlx::PgPool) -> Result<()> {
    let mine: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(pool)
        .await?;
    for _ in 0..600 {
        let xmin: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(pool)
                .await?;
        if xmin > mine {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("snapshot xmin did not pass {mine} in 30 s")
}

#[cfg(test)]
mod tests {
    use super::{sweep_stale, with_database};

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://u:p@h:5433/old?sslmode=disable", "t_1"),
            "postgres://u:p@h:5433/t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t_1"), "postgres://u@h/t_1");
        assert_eq!(
            with_database("postgresql://postgres@/x?host=/tmp/s&port=5432", "t_2"),
            "postgresql://postgres@/t_2?host=/tmp/s&port=5432"
        );
    }

    #[test]
    fn the_sweeper_removes_dead_owners_dirs_and_spares_ones_being_created() {
        let tmp = std::env::temp_dir();
        // Ours, caught between mkdir and writing the owner file.
        let mine = tmp.join(format!("opsdash-test-{}-sweeptest", std::process::id()));
        // Another live process's, caught at the same moment.
        let creating = tmp.join("opsdash-test-1-sweeptest-creating");
        // Left by a process that no longer exists (pids never reach i32::MAX).
        let dead = tmp.join("opsdash-test-2147483646-sweeptest-dead");
        for d in [&mine, &creating, &dead] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(dead.join("owner.pid"), "2147483646").unwrap();

        sweep_stale();

        let (mine_kept, creating_kept, dead_kept) =
            (mine.exists(), creating.exists(), dead.exists());
        let _ = std::fs::remove_dir_all(&mine);
        let _ = std::fs::remove_dir_all(&creating);
        assert!(
            mine_kept,
            "our own directory without its owner file was swept"
        );
        assert!(
            creating_kept,
            "a fresh directory without an owner file was swept"
        );
        assert!(!dead_kept, "a dead process's directory was kept");
    }
}
