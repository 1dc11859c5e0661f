//! `opsdash export`: the lines a filter selects, as CSV, JSON or text, to a file or stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::config::Config;
use crate::export::{self, Format, Mode};

/// What `opsdash export --help` says after the flags: how text from the data is written.
pub const EXPORT_HELP: &str = "\
Escaping (log lines are attacker-controlled):
  text   Escaped as the dashboard shows it: control characters as ^X (ESC as ^[), bidi and C1
         controls as <U+XXXX>, so OSC 52, title and clear-screen sequences are inert; a line
         break inside a message is ^J, so one record is always one line.
  csv    RFC 4180. A text cell starting with =, +, -, @, tab or CR gets a leading ' (OWASP's
         guard against CSV injection: spreadsheets would run it as a formula). Strip one leading
         ' from such cells to get the stored value, or use --format json.
  json   Exact (JSON escaping keeps control characters inert).
  --raw  Text and CSV as stored: no escaping, no formula guard; in text a line break inside a
         value is still written as \\n (and CR as \\r), one record per line. Refused when
         standard output is a terminal.";

#[derive(Debug, ClapArgs)]
#[command(after_help = format!("{EXPORT_HELP}\n\nFilter language (--filter):\n{}", crate::filter::FILTER_HELP))]
pub struct ExportArgs {
    /// Filter in the Logs tab's language, e.g. 'level:error+ service:api since:1h'.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// Output format (see "Escaping" below).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write text and CSV values as stored (to a file or a pipe only; see "Escaping" below).
    #[arg(long)]
    pub raw: bool,
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
    // Nothing from the data reaches a terminal unescaped, whatever the flags say.
    if args.raw && args.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--raw writes control characters as they are, so it is refused when standard output \
             is a terminal: redirect it to a file or a pipe, or use -o FILE"
        );
    }
    let mode = if args.raw { Mode::Raw } else { Mode::Escaped };
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
                export::export_to_file_with(
                    &db.write,
                    &filter,
                    args.format,
                    mode,
                    path,
                    args.force,
                    |n| progress.update(n),
                )
                .await?
            }
            None => {
                let mut out = std::io::BufWriter::new(std::io::stdout());
                export::export_with(&db.write, &filter, args.format, mode, &mut out, |n| {
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
