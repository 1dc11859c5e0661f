//! `opsdash archive list|restore FILE`: the archives retention wrote before dropping partitions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::archive;
use crate::config::Config;
use crate::sanitize::sanitize;

#[derive(Debug, Subcommand)]
pub enum ArchiveAction {
    /// List the archives in the archive directory, verifying each one.
    List {
        #[command(flatten)]
        output: crate::cli::ListOutput,
    },
    /// Verify an archive and load it back into its partition (the .copy.gz or its manifest).
    Restore {
        /// The archive: its .copy.gz file or its .manifest.json.
        file: PathBuf,
        /// Keep the restored partition this many days before retention may drop it again.
        #[arg(long, default_value_t = 7)]
        hold_days: u32,
    },
}

pub fn run(cfg: &Config, action: ArchiveAction) -> Result<ExitCode> {
    match action {
        ArchiveAction::List { output } => {
            let dir = archive::archive_dir(cfg)?;
            let entries = archive::list(&dir)?;
            if output.json() {
                let mut bad = 0;
                for (path, m) in entries {
                    let line = match m {
                        Ok(m) => {
                            let check = archive::verify(&path, &m).map(|_| ()).map_err(|e| {
                                bad += 1;
                                format!("{e:#}")
                            });
                            serde_json::json!({
                                "table": m.table, "partition": m.partition, "rows": m.rows,
                                "bytes": m.bytes, "ok": check.is_ok(), "error": check.err(),
                                "file": path.with_file_name(&m.file),
                            })
                        }
                        Err(e) => {
                            bad += 1;
                            serde_json::json!({
                                "file": path, "ok": false, "error": format!("{e:#}"),
                            })
                        }
                    };
                    crate::cli::json_line(&line)?;
                }
                return Ok(if bad > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            if entries.is_empty() {
                crate::outln!("no archives in {}", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            crate::outln!(
                "{:<14} {:<28} {:>10} {:>12}  {:<8} file",
                "table",
                "partition",
                "rows",
                "bytes",
                "check"
            );
            let mut bad = 0;
            for (path, m) in entries {
                match m {
                    Ok(m) => {
                        let check = match archive::verify(&path, &m) {
                            Ok(_) => "ok".to_string(),
                            Err(e) => {
                                bad += 1;
                                format!("BAD: {e:#}")
                            }
                        };
                        crate::outln!(
                            "{:<14} {:<28} {:>10} {:>12}  {:<8} {}",
                            sanitize(&m.table),
                            sanitize(&m.partition),
                            m.rows,
                            m.bytes,
                            sanitize(&check),
                            sanitize(&path.with_file_name(&m.file).display().to_string())
                        );
                    }
                    Err(e) => {
                        bad += 1;
                        crate::outln!("{}: {}", path.display(), sanitize(&format!("{e:#}")));
                    }
                }
            }
            Ok(if bad > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        ArchiveAction::Restore { file, hold_days } => {
            super::runtime()?.block_on(async {
                let db = crate::db::Db::open(cfg).await?;
                let (m, rows) = archive::restore(&db.write, &file, hold_days).await?;
                crate::outln!(
                    "restored {rows} rows of {} into {} (kept {hold_days} days before retention may drop it again)",
                    sanitize(&m.table),
                    sanitize(&m.partition)
                );
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
