//! `opsdash ingest`: reads log lines from a file or standard input into the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::ingest::{self, AtEof, Format, Options, Pipeline};

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// File to read; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Line format; `auto` decides per line (JSON, access log, logfmt, else plain text).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Service of every line: given, it wins over the line's own `service`, `app`, `logger`,
    /// `name` or `component` field (kept in attrs under its name). Not given, lines that name
    /// none get the file name without its extension.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Hold the days of rows older than the retention period (`retention.*.keep_days`) from
    /// retention for DURATION (`--keep=90d`; default 30d), e.g. a one-off import of old logs; the holds are
    /// listed by `opsdash retention status`. Without it, ingest says how many rows the next
    /// retention run will drop.
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "30d"
    )]
    pub keep: Option<String>,
    /// Keep reading as the input grows (`tail -F app.log | opsdash ingest --follow`, or a file
    /// that is appended to); rows are written at least every `ingest.flush_interval_ms`.
    /// Ctrl-C writes what is buffered and prints the summary.
    #[arg(long)]
    pub follow: bool,
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: never stop early.
        std::future::pending::<()>().await;
    }
}

pub fn run(cfg: &Config, args: IngestArgs) -> Result<ExitCode> {
    let file = args.file.filter(|f| f.as_os_str() != "-");
    let source = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    let force_service = args.service.is_some();
    let keep_until = match &args.keep {
        Some(d) => {
            let d = humantime::parse_duration(d)
                .with_context(|| format!("--keep {d:?}: expected a duration such as 30d"))?;
            let d = chrono::Duration::from_std(d).context("--keep: duration too long")?;
            let until = chrono::Utc::now().checked_add_signed(d);
            Some(until.context("--keep: duration too long")?)
        }
        None => None,
    };
    let service = args.service.unwrap_or_else(|| {
        file.as_ref()
            .and_then(|f| f.file_stem())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let opts = Options {
        format: args.format,
        service,
        source,
        print_rejects: true,
        force_service,
        log_keep_days: cfg.retention.log_event.keep_days,
        request_keep_days: cfg.retention.request_log.keep_days,
        log_compact_days: cfg.retention.log_non_error_keep_days,
        keep_until,
    };
    let rt = super::runtime()?;
    let summary = rt.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        let pipeline = Pipeline::new(db, &cfg.ingest, opts)?;
        let summary = match &file {
            Some(path) => {
                let f = tokio::fs::File::open(path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                let regular = f.metadata().await.map(|m| m.is_file()).unwrap_or(false);
                let at_eof = if args.follow && regular {
                    AtEof::Wait
                } else {
                    AtEof::Stop
                };
                ingest::run(f, pipeline, at_eof, ctrl_c()).await
            }
            None => ingest::run(tokio::io::stdin(), pipeline, AtEof::Stop, ctrl_c()).await,
        };
        anyhow::Ok(summary)
    });
    // A read of standard input may still be pending in a blocking thread: do not wait for it.
    rt.shutdown_background();
    let summary = summary?;
    eprintln!("{}", summary.line());
    if let Some(old) = summary.retention_line() {
        eprintln!("{old}");
    }
    if let Some(e) = &summary.error {
        anyhow::bail!("{e}");
    }
    if summary.rows() == 0 && summary.rejected > 0 {
        anyhow::bail!("nothing stored: every line was rejected");
    }
    Ok(ExitCode::SUCCESS)
}
