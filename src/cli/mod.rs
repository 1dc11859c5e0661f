//! Command-line interface: argument definitions and dispatch to one module per subcommand.

// Before the modules: `outln!`/`out!` are used by every subcommand.
#[macro_use]
pub mod out;

mod alerts;
pub mod archive;
pub mod audit;
mod db;
mod demo;
mod export;
mod ingest;
pub mod retention;
mod serve;
pub mod tui;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Secret};

#[derive(Debug, Parser)]
#[command(
    name = "opsdash",
    version,
    about = "Terminal operations dashboard: logs, alerts, latency and health, stored in PostgreSQL",
    after_help = ENVIRONMENT_HELP
)]
pub struct Args {
    /// PostgreSQL URL (default: OPSDASH_DATABASE_URL, DATABASE_URL, the config file, or the
    /// embedded private cluster).
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The primary itself when the database URL points at a pooler: LISTEN, the worker and
    /// migrations use it (default: OPSDASH_DATABASE_DIRECT_URL, the config file).
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub direct_url: Option<String>,
    /// Config file (default: ~/.config/opsdash/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Look, never touch: acknowledging, resolving, silencing and rule changes are refused with
    /// a "read-only" line, and no background jobs run in this process.
    #[arg(long, global = true)]
    pub read_only: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the dashboard when no subcommand is given.
    #[command(flatten)]
    pub tui: tui::TuiArgs,
}

/// The environment variables opsdash reads, shown after `opsdash --help` and in the man page.
pub const ENVIRONMENT_HELP: &str = "\
Environment:
  OPSDASH_DATABASE_URL, DATABASE_URL
                     PostgreSQL URL (over the config file; --database-url wins over both)
  OPSDASH_DATABASE_READ_URL
                     read replica for the dashboard's reads
  OPSDASH_DATABASE_DIRECT_URL
                     the primary itself when the URL points at a pooler (PgBouncer):
                     LISTEN, the worker and migrations use it (--direct-url wins)
  OPSDASH_DATA_DIR   where the embedded cluster lives (over embedded.data_dir); default:
                     $XDG_DATA_HOME/opsdash, else $HOME/.local/share/opsdash; as root, that
                     place only when the postgres user can reach it, else
                     /var/lib/opsdash/<user>. `opsdash db status` prints the one in use.
  OPSDASH_LOG        log filter of `opsdash worker` (e.g. opsdash=debug)
  NO_COLOR           no colours in the dashboard";

/// How a listing prints: an aligned table for people, or one JSON object per line for scripts
/// (`jq`, `while read`), with the same fields whatever the terminal width.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, text from the database escaped for the terminal.
    #[default]
    Table,
    /// One JSON object per line (JSON escaping keeps control characters inert).
    Json,
}

/// The `--output` flag every listing has.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ListOutput {
    /// Output format: `table` for people, `json` for scripts (one JSON object per line).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

impl ListOutput {
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// Prints one JSON object as one line.
pub fn json_line(v: &impl serde::Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
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
    /// Run the background jobs (alerts, notifications, rollups, retention) without the dashboard,
    /// until Ctrl-C or SIGTERM.
    Worker(worker::WorkerArgs),
    /// Alerts from the shell: list, show, ack, resolve, silence, rules, dead.
    Alerts {
        #[command(subcommand)]
        action: alerts::AlertsAction,
    },
    /// Export the log lines a filter selects as CSV, JSON or text (streaming, any size).
    Export(export::ExportArgs),
    /// Open the terminal dashboard (the default when no subcommand is given).
    Tui(tui::TuiArgs),
    /// Read log lines (JSON, logfmt, nginx/apache access logs) from a file or stdin.
    ///
    /// Secrets are redacted before anything is stored, identical events within the dedup
    /// window become one row with a repeat count, errors are grouped by fingerprint, and rows
    /// go in with COPY, one NOTIFY per batch. Bad lines are reported with their line number
    /// and skipped; the run ends with one summary line on stderr.
    Ingest(ingest::IngestArgs),
    /// Receive logs, traces and alerts over HTTP: OTLP, Loki push, NDJSON and the Alertmanager
    /// API (Prometheus, amtool), committed before each 2xx.
    Serve(serve::ServeArgs),
    /// Generate demo traffic (24 h of history, then live requests with scripted incidents).
    Demo(demo::DemoArgs),
    /// Archives of dropped partitions: list them, restore one into the database.
    Archive {
        #[command(subcommand)]
        action: archive::ArchiveAction,
    },
    /// Retention: status per table, or one run now.
    Retention {
        #[command(subcommand)]
        action: retention::RetentionAction,
    },
    /// Row-level audit trigger on application tables: install, uninstall, list.
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Print a shell completion script: `opsdash completions bash > /etc/bash_completion.d/opsdash`,
    /// `opsdash completions zsh > ~/.zfunc/_opsdash`, `opsdash completions fish >
    /// ~/.config/fish/completions/opsdash.fish`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `opsdash man > opsdash.1; man ./opsdash.1`.
    Man,
}

/// Loads the config, with `--database-url` winning over everything else.
pub fn load_config(args: &Args) -> Result<Config> {
    let (mut cfg, _path) = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.database_url {
        cfg.database.url = Secret::new(url.clone());
    }
    if let Some(url) = &args.direct_url {
        cfg.database.direct_url = Secret::new(url.clone());
    }
    cfg.database.read_only |= args.read_only;
    Ok(cfg)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn run(args: Args) -> Result<ExitCode> {
    // These describe the program, not a deployment: a broken config must not stop them.
    match &args.command {
        Some(Command::Completions { shell }) => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Args::command(), "opsdash", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Man) => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Args::command()).render(&mut buf)?;
            out!("{}", String::from_utf8_lossy(&buf));
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let cfg = load_config(&args)?;
    match args.command {
        Some(Command::Migrate) => {
            runtime()?.block_on(async {
                let db = crate::db::Db::open_as(&cfg, true).await?;
                crate::outln!("migrations applied ({})", db.target);
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Db { action }) => db::run(&cfg, action),
        Some(Command::Ingest(a)) => ingest::run(&cfg, a),
        Some(Command::Demo(demo_args)) => demo::run(&cfg, demo_args),
        Some(Command::Archive { action }) => archive::run(&cfg, action),
        Some(Command::Audit { action }) => audit::run(&cfg, action),
        Some(Command::Retention { action }) => retention::run(&cfg, action),
        Some(Command::Worker(a)) => worker::run(cfg, a),
        Some(Command::Serve(a)) => serve::run(cfg, a),
        Some(Command::Alerts { action }) => alerts::run(cfg, action),
        Some(Command::Export(a)) => {
            export::run(&cfg, a)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Tui(t)) => {
            let t = tui::TuiArgs {
                no_color: t.no_color || args.tui.no_color,
            };
            tui::run(cfg, &t)
        }
        None => tui::run(cfg, &args.tui),
        Some(Command::Completions { .. } | Command::Man) => unreachable!("handled above"),
    }
}
