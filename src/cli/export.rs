//! `opsdash export`: the lines a filter selects, as CSV, JSON or text, to a file or stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::config::Config;
use crate::export::{self, Format};

#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    /// Filter in the Logs tab's language, e.g. 'level:error+ service:api since:1h'.
    #[arg(long, default_value = "")]
    pub filter: String,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Progress on stderr at most twice a second, and only for people (a terminal).
struct Progress {
    last: Instant,
    start: Instant,
    shown: bool,
    tty: bool,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            last: now,
            start: now,
            shown: false,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, rows: u64) {
        if self.tty && self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            self.shown = true;
            let rate = rows as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
            eprint!("\rexported {rows} lines ({rate:.0} lines/s)");
            let _ = std::io::stderr().flush();
        }
    }
}

pub fn run(cfg: &Config, args: ExportArgs) -> Result<()> {
    let filter = crate::filter::parse(&args.filter)
        .map_err(|e| anyhow::anyhow!("bad --filter {:?}: {e}", args.filter))?;
    if let Some(path) = &args.output {
        // Refuse before connecting, so the mistake costs nothing.
        if path.exists() && !args.force {
            anyhow::bail!(
                "{} already exists (use --force to overwrite, or choose another --output)",
                path.display()
            );
        }
    }
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        let mut progress = Progress::new();
        let rows = match &args.output {
            Some(path) => {
                export::export_to_file(&db.write, &filter, args.format, path, args.force, |n| {
                    progress.update(n)
                })
                .await?
            }
            None => {
                let mut out = std::io::BufWriter::new(std::io::stdout());
                export::export(&db.write, &filter, args.format, &mut out, |n| {
                    progress.update(n)
                })
                .await?
            }
        };
        if progress.shown {
            eprintln!();
        }
        let dest = args
            .output
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "standard output".into());
        eprintln!(
            "exported {rows} lines to {dest} in {:.1} s",
            progress.start.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    })
}
