//! `opsdash db start|stop|status|url`: the embedded cluster; `opsdash db grant`: an opsdash
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
    Url,
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

pub fn run(cfg: &Config, action: DbAction) -> Result<ExitCode> {
    if let DbAction::Grant { role, user } = &action {
        return grant(cfg, *role, user);
    }
    if !cfg.database.url.is_empty() {
        match action {
            DbAction::Url => {
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
    let cluster = Cluster::new(root.path.clone())?;
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
        DbAction::Url => {
            cluster.ensure_running(Durability::Default)?;
            crate::outln!("{}", cluster.url());
        }
    }
    Ok(ExitCode::SUCCESS)
}
