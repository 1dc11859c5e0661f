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
    /// Service for lines that name none (default: the file name without its extension).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
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
    if let Some(e) = &summary.error {
        anyhow::bail!("{e}");
    }
    if summary.rows() == 0 && summary.rejected > 0 {
        anyhow::bail!("nothing stored: every line was rejected");
    }
    Ok(ExitCode::SUCCESS)
}
