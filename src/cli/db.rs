//! `opsdash db start|stop|status|url`: the embedded cluster (`url --tcp`: a read-only password
//! URL for a local Grafana); `opsdash db grant`: an opsdash
//! role for a login role, on any database.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::config::Config;
use crate::db::embedded::{self, Cluster, Durability};

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Start the embedded cluster (initializing it on first use) and apply migrations.
    Start,
    /// Stop the embedded cluster.
    Stop,
    /// Where the embedded cluster lives (and why there) and whether it runs.
    Status {
        #[command(flatten)]
        output: crate::cli::ListOutput,
    },
    /// Print a URL that psql accepts: psql "$(opsdash db url)".
    Url {
        /// A password URL over the loopback TCP address of `embedded.listen`, for a local
        /// Grafana: role opsdash_grafana, read-only (opsdash_reader), password made on first use.
        #[arg(long)]
        tcp: bool,
    },
    /// Make a login role a member of an opsdash role (run as the schema's owner):
    /// `opsdash db grant opsdash_reader alice`.
    Grant {
        /// reader: look at everything; operator: also acknowledge, resolve, silence, triage
        /// and change rules; ingest: store lines only (cannot read them); worker: the jobs.
        #[arg(value_enum)]
        role: GrantRole,
        /// The login role (CREATE ROLE alice LOGIN ...) to receive it.
        user: String,
    },
}

/// The roles migrations/0021_roles.sql creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrantRole {
    #[value(name = "opsdash_reader", alias = "reader")]
    Reader,
    #[value(name = "opsdash_operator", alias = "operator")]
    Operator,
    #[value(name = "opsdash_ingest", alias = "ingest")]
    Ingest,
    #[value(name = "opsdash_worker", alias = "worker")]
    Worker,
}

impl GrantRole {
    fn name(self) -> &'static str {
        match self {
            GrantRole::Reader => "opsdash_reader",
            GrantRole::Operator => "opsdash_operator",
            GrantRole::Ingest => "opsdash_ingest",
            GrantRole::Worker => "opsdash_worker",
        }
    }
}

fn grant(cfg: &Config, role: GrantRole, user: &str) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        crate::query::access::grant(&db.write, role.name(), user).await?;
        crate::outln!(
            "{} granted to {}",
            role.name(),
            crate::sanitize::clean(user)
        );
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The login role `db url --tcp` hands out: read-only through opsdash_reader.
pub const GRAFANA_ROLE: &str = "opsdash_grafana";
/// Its password, in the cluster's root (beside pgdata/), readable by its owner only.
const GRAFANA_PASSWORD_FILE: &str = "grafana.password";

/// Starts the cluster listening on `embedded.listen`, makes sure the Grafana role exists with
/// the stored password (made on first use) and returns the URL to give Grafana.
fn grafana_url(cfg: &Config, cluster: &Cluster) -> Result<String> {
    let Some(addr) = cluster.listen else {
        bail!(
            "the embedded cluster listens on no TCP port: set embedded.listen = \"127.0.0.1:5433\" \
             in the config, then run `opsdash db url --tcp` again"
        );
    };
    cluster.ensure_running(Durability::Default)?;
    let password = grafana_password(&cluster.root)?;
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        let result =
            crate::query::access::ensure_reader_login(&db.write, GRAFANA_ROLE, &password).await;
        db.write.close().await;
        result
    })?;
    Ok(format!(
        "postgresql://{GRAFANA_ROLE}:{password}@{addr}/{}",
        embedded::DATABASE
    ))
}

/// Reads the stored password, or makes one (32 alphanumerics: nothing to escape in a URL) and
/// stores it with mode 0600.
fn grafana_password(root: &std::path::Path) -> Result<String> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(GRAFANA_PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let pw = text.trim().to_string();
            if pw.len() >= 16 && pw.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Ok(pw);
            }
            bail!(
                "{} is not a password opsdash made (32 letters and digits): remove it to get a new one",
                path.display()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    use rand::Rng;
    let pw: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{pw}").with_context(|| format!("writing {}", path.display()))?;
    Ok(pw)
}

pub fn run(cfg: &Config, action: DbAction) -> Result<ExitCode> {
    if let DbAction::Grant { role, user } = &action {
        return grant(cfg, *role, user);
    }
    if !cfg.database.url.is_empty() {
        match action {
            DbAction::Url { tcp: true } => bail!(
                "--tcp is for the embedded cluster, and a database URL is configured: point \
                 Grafana at that server with a role granted opsdash_reader (`opsdash db grant`)"
            ),
            DbAction::Url { tcp: false } => {
                // The user configured this URL; printing it back is what they asked for.
                crate::outln!("{}", cfg.database.url.expose());
                return Ok(ExitCode::SUCCESS);
            }
            _ => bail!(
                "a database URL is configured, so the embedded cluster is not used; \
                 `opsdash db {}` manages only the embedded cluster",
                match action {
                    DbAction::Start => "start",
                    DbAction::Stop => "stop",
                    _ => "status",
                }
            ),
        }
    }
    let root = embedded::data_root(&cfg.embedded.data_dir)?;
    let cluster = Cluster::new(root.path.clone())?.with_listen(cfg.embedded.listen_addr()?);
    match action {
        DbAction::Start => {
            cluster.ensure_running(Durability::Default)?;
            super::runtime()?.block_on(async {
                let db = crate::db::Db::open(cfg).await?;
                db.write.close().await;
                anyhow::Ok(())
            })?;
            crate::outln!("{}", cluster.status());
        }
        DbAction::Stop => {
            if cluster.stop("fast")? {
                crate::outln!("embedded cluster stopped ({})", cluster.pgdata().display());
            } else {
                crate::outln!(
                    "embedded cluster was not running ({})",
                    cluster.pgdata().display()
                );
            }
        }
        DbAction::Status { output } => {
            let st = cluster.status();
            if output.json() {
                crate::cli::json_line(&serde_json::json!({
                    "root": st.root, "root_source": root.source, "pgdata": st.pgdata,
                    "socket_dir": st.socket_dir, "bin_dir": st.bin_dir,
                    "initialized": st.initialized, "pid": st.pid, "run_as": st.run_as,
                    "version": st.version, "url": st.url,
                }))?;
            } else {
                crate::outln!("{st}");
                crate::outln!("  chosen by:  {}", root.source);
            }
        }
        DbAction::Grant { .. } => unreachable!("handled above"),
        DbAction::Url { tcp: false } => {
            cluster.ensure_running(Durability::Default)?;
            crate::outln!("{}", cluster.url());
        }
        DbAction::Url { tcp: true } => {
            crate::outln!("{}", grafana_url(cfg, &cluster)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
