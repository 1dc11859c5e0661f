//! Command-line interface: argument definitions and dispatch to one module per subcommand.

mod db;
mod demo;
mod ingest;
pub mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{Config, Secret};

#[derive(Debug, Parser)]
#[command(
    name = "opsdash",
    version,
    about = "Terminal operations dashboard: logs, alerts, latency and health, stored in PostgreSQL"
)]
pub struct Args {
    /// PostgreSQL URL (default: OPSDASH_DATABASE_URL, DATABASE_URL, the config file, or the
    /// embedded private cluster).
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Config file (default: ~/.config/opsdash/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the dashboard when no subcommand is given.
    #[command(flatten)]
    pub tui: tui::TuiArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (they also run automatically at start).
    Migrate,
    /// Manage the embedded PostgreSQL cluster: start, stop, status, url.
    Db {
        #[command(subcommand)]
        action: db::DbAction,
    },
    /// Read log lines (JSON, logfmt, nginx/apache access logs) from a file or stdin.
    ///
    /// Secrets are redacted before anything is stored, identical events within the dedup
    /// window become one row with a repeat count, errors are grouped by fingerprint, and rows
    /// go in with COPY, one NOTIFY per batch. Bad lines are reported with their line number
    /// and skipped; the run ends with one summary line on stderr.
    Ingest(ingest::IngestArgs),
    /// Generate demo traffic (24 h of history, then live requests with scripted incidents).
    Demo(demo::DemoArgs),
    /// Open the terminal dashboard (the default when no subcommand is given).
    Tui(tui::TuiArgs),
}

/// Loads the config, with `--database-url` winning over everything else.
pub fn load_config(args: &Args) -> Result<Config> {
    let (mut cfg, _path) = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.database_url {
        cfg.database.url = Secret::new(url.clone());
    }
    Ok(cfg)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let cfg = load_config(&args)?;
    match args.command {
        Some(Command::Migrate) => {
            runtime()?.block_on(async {
                let db = crate::db::Db::open(&cfg).await?;
                println!("migrations applied ({})", db.target);
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Db { action }) => db::run(&cfg, action),
        Some(Command::Ingest(a)) => ingest::run(&cfg, a),
        Some(Command::Demo(demo_args)) => demo::run(&cfg, demo_args),
        Some(Command::Tui(t)) => {
            let t = tui::TuiArgs {
                no_color: t.no_color || args.tui.no_color,
            };
            tui::run(cfg, &t)
        }
        None => tui::run(cfg, &args.tui),
    }
}
