//! Connection pools. Writes go to the primary; dashboard reads go to the read replica when one is
//! configured. Every connection option is built here so timeouts and names are set once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use crate::config::{redact_url, Config};
use crate::db::access::{self, Access};
use crate::db::embedded::{self, Cluster, Durability};
use crate::db::topology::{self, Topology};

/// Longest wait for the pooler probes at connect time (`db::topology`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle this long is pinged before use (see `Db::from_options`).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Where the data lives, for status lines (never holds a password).
#[derive(Debug, Clone)]
pub enum DbTarget {
    Embedded { url: String },
    External { redacted_url: String },
}

impl std::fmt::Display for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Embedded { url } => write!(f, "embedded ({url})"),
            DbTarget::External { redacted_url } => f.write_str(redacted_url),
        }
    }
}

/// The pools every part of opsdash uses.
#[derive(Clone)]
pub struct Db {
    /// Primary: ingest, worker, operator actions.
    pub write: PgPool,
    /// Dashboard reads (the replica when configured, else the primary).
    pub read: PgPool,
    pub target: DbTarget,
    /// Connect options for the primary URL.
    pub write_options: PgConnectOptions,
    /// For sessions that need a backend of their own (LISTEN, the tail's reader, the worker,
    /// migrations): `database.direct_url`, else the primary URL (see `db::topology`).
    pub direct_options: PgConnectOptions,
    /// Pooler and replica: what was found out, shared by every clone.
    pub topology: Arc<Topology>,
    pub query_timeout: Duration,
    /// What the connected role may do, decided once at connect time (`Db::open`).
    pub access: Access,
}

impl std::fmt::Debug for Db {
    // PgConnectOptions' Debug output contains the password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("target", &self.target).finish()
    }
}

pub fn parse_url(url: &str) -> Result<PgConnectOptions> {
    // libpq accepts an empty host with `?host=/socket/dir` (the form `opsdash db url` prints);
    // sqlx refuses an empty host, so give it a placeholder the `host` parameter overrides.
    let patched;
    let url = match url.find("://") {
        Some(i) if url[i + 3..].starts_with('/') || url[i + 3..].contains("@/") => {
            let (scheme, rest) = url.split_at(i + 3);
            patched = match rest.find("@/") {
                Some(at) if !rest[..at].contains('/') => {
                    format!("{scheme}{}@localhost{}", &rest[..at], &rest[at + 1..])
                }
                _ if rest.starts_with('/') => format!("{scheme}localhost{rest}"),
                _ => url.to_string(),
            };
            patched.as_str()
        }
        _ => url,
    };
    PgConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("bad database URL {}: {e}", redact_url(url)))
}

fn tune(opts: PgConnectOptions) -> PgConnectOptions {
    opts.application_name("opsdash").disable_statement_logging()
}

impl Db {
    /// Opens the configured database, or starts the embedded cluster when none is configured;
    /// brings the schema up to date when we own it (anyone else checks its version), then
    /// finds out what the role may do.
    pub async fn open(cfg: &Config) -> Result<Db> {
        Db::open_as(cfg, false).await
    }

    /// `open`, migrating whoever we are (`opsdash migrate`) when `force_migrate`.
    pub async fn open_as(cfg: &Config, force_migrate: bool) -> Result<Db> {
        let mut db = Db::connect(cfg).await?;
        db.prepare_schema(force_migrate).await?;
        db.access = Access::detect(&db.write, cfg.database.read_only).await?;
        Ok(db)
    }

    /// Migrations need to own the schema: its owner (or a first start, when there is no schema
    /// yet) applies them; any other role only checks that the schema is as new as this build.
    pub async fn prepare_schema(&self, force_migrate: bool) -> Result<()> {
        let who = crate::query::access::ownership(&self.write).await?;
        if force_migrate || who.owner || !who.schema_exists {
            return self.migrate().await;
        }
        let needs = crate::db::migrate::latest();
        let at = crate::query::access::schema_version(&self.write)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "role {} cannot read the schema version ({}): run `opsdash migrate` as \
                     the owner, or `opsdash db grant opsdash_reader {}`",
                    who.role,
                    e.root_cause(),
                    who.role
                )
            })?;
        if at.is_none_or(|at| at < needs) {
            anyhow::bail!(access::behind_message(at, needs));
        }
        Ok(())
    }

    /// Applies pending migrations, on the direct URL when there is one: sqlx holds a session
    /// advisory lock while it migrates, which a transaction pooler cannot keep.
    async fn migrate(&self) -> Result<()> {
        if !self.topology.has_direct {
            if self.topology.transaction_pooled() {
                return crate::db::migrate::run_without_session_lock(&self.write).await;
            }
            return crate::db::migrate::run(&self.write).await;
        }
        let direct = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.direct_options.clone());
        let result = crate::db::migrate::run(&direct).await;
        direct.close().await;
        result
    }

    /// Like `open` without migrations.
    pub async fn connect(cfg: &Config) -> Result<Db> {
        let (write_opts, target) = if cfg.database.url.is_empty() {
            let root = embedded::default_root(&cfg.embedded.data_dir)?;
            let listen = cfg.embedded.listen_addr()?;
            let cluster = tokio::task::spawn_blocking(move || -> Result<Cluster> {
                let c = Cluster::new(root)?.with_listen(listen);
                c.ensure_running(Durability::Default)?;
                Ok(c)
            })
            .await
            .context("starting the embedded cluster")??;
            (
                cluster.connect_options(embedded::DATABASE),
                DbTarget::Embedded { url: cluster.url() },
            )
        } else {
            let url = cfg.database.url.expose();
            (
                crate::db::tls::apply(parse_url(url)?, url, &cfg.database)?,
                DbTarget::External {
                    redacted_url: redact_url(url),
                },
            )
        };
        let read_opts = if cfg.database.read_url.is_empty() {
            None
        } else {
            let url = cfg.database.read_url.expose();
            Some(crate::db::tls::apply(parse_url(url)?, url, &cfg.database)?)
        };
        let direct_opts = if cfg.database.direct_url.is_empty() {
            None
        } else {
            Some(parse_url(cfg.database.direct_url.expose())?)
        };
        let db = Db::from_parts(
            write_opts,
            read_opts,
            direct_opts,
            target,
            cfg.database.pool_size,
            Duration::from_millis(cfg.database.connect_timeout_ms),
            Duration::from_millis(cfg.database.query_timeout_ms),
        )
        .await?;
        // An unknown answer (the probe failed) leaves everything as for a plain server.
        let probe = topology::probe_pooling(&db.write_options);
        // A few round trips on two connections; generous, since an unanswered probe leaves
        // opsdash assuming a plain server.
        let timeout = Duration::from_millis(cfg.database.connect_timeout_ms).max(PROBE_TIMEOUT);
        if let Ok(Ok(p)) = tokio::time::timeout(timeout, probe).await {
            db.topology.set_pooling(p);
        }
        if db.topology.transaction_pooled() {
            let probe = topology::probe_prepared_statements(&db.write_options);
            if let Ok(Ok(false)) = tokio::time::timeout(timeout, probe).await {
                anyhow::bail!("{}", topology::NO_PREPARED_STATEMENTS);
            }
        }
        Ok(db)
    }

    pub async fn from_options(
        write_opts: PgConnectOptions,
        read_opts: Option<PgConnectOptions>,
        target: DbTarget,
        pool_size: u32,
        connect_timeout: Duration,
        query_timeout: Duration,
    ) -> Result<Db> {
        Db::from_parts(
            write_opts,
            read_opts,
            None,
            target,
            pool_size,
            connect_timeout,
            query_timeout,
        )
        .await
    }

    /// `direct_opts`: `database.direct_url` (see `db::topology`).
    pub async fn from_parts(
        write_opts: PgConnectOptions,
        read_opts: Option<PgConnectOptions>,
        direct_opts: Option<PgConnectOptions>,
        target: DbTarget,
        pool_size: u32,
        connect_timeout: Duration,
        query_timeout: Duration,
    ) -> Result<Db> {
        let write_opts = tune(write_opts);
        let read_opts = read_opts.map(tune);
        let topology = Arc::new(Topology::new(direct_opts.is_some(), read_opts.clone()));
        let direct_options = direct_opts.map(tune).unwrap_or_else(|| write_opts.clone());
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(pool_size)
                .min_connections(0)
                .acquire_timeout(connect_timeout)
                .idle_timeout(Duration::from_secs(60))
                // sqlx pings a connection on every acquire by default (and again on every
                // release): two round trips per query. One used within the last second is known
                // good; one idle for longer is still pinged, so a server restart while the pool
                // sat idle costs no failed query.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IF_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
        };
        let write = pool_options().connect_lazy_with(write_opts.clone());
        // Reads the dashboard waits on get a server-side cut-off too, so a slow query frees its
        // backend even when the client gave up on it.
        // Set after connecting, not by the startup `options` parameter, which PgBouncer
        // refuses; and not at all through a transaction pooler, where the setting would stay on
        // a server connection that other clients (ours and others') get next.
        let read_base = read_opts.clone().unwrap_or_else(|| write_opts.clone());
        let timeout_ms = query_timeout.as_millis().to_string();
        let read = {
            let topology = topology.clone();
            pool_options()
                .after_connect(move |conn, _| {
                    let (topology, timeout_ms) = (topology.clone(), timeout_ms.clone());
                    Box::pin(async move {
                        if topology.session_state_ok() {
                            crate::query::topology::set_session(
                                conn,
                                "statement_timeout",
                                &timeout_ms,
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
                .connect_lazy_with(read_base)
        };
        if read_opts.is_some() {
            topology::spawn_replica_watch(
                &topology,
                read.clone(),
                write_opts.clone(),
                connect_timeout,
            );
        }
        // Fail early with one clear line when the database cannot be reached.
        tokio::time::timeout(connect_timeout + Duration::from_secs(1), write.acquire())
            .await
            .map_err(|_| anyhow::anyhow!("timed out connecting to {target}"))?
            .map_err(|e| match crate::db::tls::explain(&e, &write_opts) {
                // The TLS step that failed, in one line, instead of rustls' nested errors.
                Some(step) => anyhow::anyhow!("connecting to {target}: {step}"),
                None => anyhow::Error::new(e).context(format!("connecting to {target}")),
            })?;
        Ok(Db {
            write,
            read,
            target,
            write_options: write_opts,
            direct_options,
            topology,
            query_timeout,
            access: Access::unchecked(),
        })
    }
}

impl Db {
    /// The same database with a write pool whose commits wait for the WAL flush
    /// (`synchronous_commit = on`), for writers whose commits are followed by effects outside
    /// the database (a notification sent, a lease acted on, a file archived): the embedded
    /// cluster runs with synchronous_commit off, and a crash must not forget a commit the
    /// world has already seen. Lazy: connects on first use.
    pub fn durable(&self) -> Db {
        // The worker's writes (leases, outbox, alerts) go to the direct URL when there is one.
        // The setting is SET after connecting: PgBouncer refuses the startup `options`.
        let options = self.direct_options.clone();
        let topology = self.topology.clone();
        let write = self
            .write
            .options()
            .clone()
            .after_connect(move |conn, _| {
                let topology = topology.clone();
                Box::pin(async move {
                    if topology.has_direct || topology.session_state_ok() {
                        crate::query::topology::set_session(conn, "synchronous_commit", "on")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Db {
            write,
            read: self.read.clone(),
            target: self.target.clone(),
            write_options: options,
            direct_options: self.direct_options.clone(),
            topology: self.topology.clone(),
            query_timeout: self.query_timeout,
            access: self.access.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_socket_url_with_empty_host_parses() {
        let o = parse_url("postgresql://postgres@/opsdash?host=/tmp/x/run&port=5432").unwrap();
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()),
            Some("/tmp/x/run".into())
        );
        assert_eq!(o.get_database(), Some("opsdash"));
        assert_eq!(o.get_username(), "postgres");
        let o = parse_url("postgresql:///opsdash?host=/tmp/y").unwrap();
        assert_eq!(o.get_database(), Some("opsdash"));
        let o = parse_url("postgres://u:pw@db.example:6000/app").unwrap();
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 6000);
    }
}
