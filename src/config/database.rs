//! `[database]`, `[[database.monitor]]` and `[embedded]`: where opsdash's PostgreSQL is, how to
//! reach it, and the private cluster used when no URL is given.

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Primary database URL. Empty: use the embedded private cluster.
    pub url: Secret,
    /// Optional read replica: dashboard reads go there, writes to the primary.
    pub read_url: Secret,
    /// Optional URL of the primary itself when `url` points at a pooler (PgBouncer): the
    /// sessions that need a backend of their own (LISTEN, the live tail, migrations, the
    /// worker) use it. See `db::topology`.
    pub direct_url: Secret,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Time to wait for a connection before reporting the database unreachable.
    pub connect_timeout_ms: u64,
    /// Every dashboard query is cut off after this long.
    pub query_timeout_ms: u64,
    /// TLS to `url` and `read_url` (see `db::tls`): sslmode, root CA, client certificate and
    /// key. A parameter the URL names itself wins.
    pub tls_mode: String,
    pub tls_root_cert: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// No writes from this process whatever the role may do (`--read-only`): operator keys
    /// are refused with a "read-only" line and the in-process worker does not start.
    pub read_only: bool,
    /// Other databases (or servers) whose `pg_stat_statements` the worker samples into
    /// `query_log` beside opsdash's own (`[[database.monitor]]`).
    pub monitor: Vec<MonitorConfig>,
}

/// One monitored database: its statements are stored under `name` (`query_log.database`).
/// The URL's role needs `pg_read_all_stats` (or `pg_monitor`) to see every role's statements;
/// TLS is set in the URL (`sslmode`, `sslrootcert`...).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    pub name: String,
    pub url: Secret,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::default(),
            read_url: Secret::default(),
            direct_url: Secret::default(),
            pool_size: 8,
            connect_timeout_ms: 3000,
            query_timeout_ms: 5000,
            tls_mode: String::new(),
            tls_root_cert: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            read_only: false,
            monitor: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where the private cluster lives (`OPSDASH_DATA_DIR` wins). Empty: `$XDG_DATA_HOME/opsdash`
    /// or `~/.local/share/opsdash`; as root, a per-user place under /var/lib/opsdash when the
    /// postgres user cannot reach that (see `db::embedded::data_root`).
    pub data_dir: String,
    /// Also listen on this loopback TCP address ("127.0.0.1:5433"), password only, so a local
    /// Grafana can connect (`opsdash db url --tcp`). Empty: the Unix socket only.
    pub listen: String,
}

impl EmbeddedConfig {
    /// `listen` parsed; refuses anything but a loopback address with a port.
    pub fn listen_addr(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = self.listen.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "expected a loopback address and port such as \"127.0.0.1:5433\" or \"[::1]:5433\", found {:?}",
                self.listen
            )
        })?;
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "only a loopback address (127.0.0.1 or ::1) is accepted: the embedded cluster is not \
                 meant to be reached from other machines, found {:?}",
                self.listen
            );
        }
        if addr.port() == 0 {
            anyhow::bail!(
                "a port is needed (e.g. \"127.0.0.1:5433\"), found {:?}",
                self.listen
            );
        }
        Ok(Some(addr))
    }
}
