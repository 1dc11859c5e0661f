//! `opsdash db start|stop|status|url`: the embedded cluster.

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
    /// Where the embedded cluster lives and whether it runs.
    Status,
    /// Print a URL that psql accepts: psql "$(opsdash db url)".
    Url,
}

pub fn run(cfg: &Config, action: DbAction) -> Result<ExitCode> {
    if !cfg.database.url.is_empty() {
        match action {
            DbAction::Url => {
                // The user configured this URL; printing it back is what they asked for.
                println!("{}", cfg.database.url.expose());
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
    let cluster = Cluster::new(embedded::default_root(&cfg.embedded.data_dir)?)?;
    match action {
        DbAction::Start => {
            cluster.ensure_running(Durability::Default)?;
            super::runtime()?.block_on(async {
                let db = crate::db::Db::open(cfg).await?;
                db.write.close().await;
                anyhow::Ok(())
            })?;
            println!("{}", cluster.status());
        }
        DbAction::Stop => {
            if cluster.stop("fast")? {
                println!("embedded cluster stopped ({})", cluster.pgdata().display());
            } else {
                println!(
                    "embedded cluster was not running ({})",
                    cluster.pgdata().display()
                );
            }
        }
        DbAction::Status => {
            println!("{}", cluster.status());
        }
        DbAction::Url => {
            cluster.ensure_running(Durability::Default)?;
            println!("{}", cluster.url());
        }
    }
    Ok(ExitCode::SUCCESS)
}
