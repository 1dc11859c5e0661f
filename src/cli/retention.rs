//! `opsdash retention status|run`: what retention keeps and when it drops next, and one run now
//! (the worker runs the same job every 15 minutes).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::query::retention as q;
use crate::sanitize::sanitize;
use crate::worker::retention::run_once;

#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// Per table: period, oldest data, next drop, archive size, last error.
    Status {
        #[command(flatten)]
        output: crate::cli::ListOutput,
    },
    /// Run retention once now: make partitions, move default rows, archive and drop expired
    /// partitions, compact old logs, anonymize, trim.
    Run,
}

pub fn run(cfg: &Config, action: RetentionAction) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        match action {
            RetentionAction::Status { output } => {
                let status = q::retention_status(&db, &cfg.retention).await?;
                if output.json() {
                    for s in status {
                        crate::cli::json_line(&serde_json::json!({
                            "table": s.table, "keep_days": s.keep_days, "archive": s.archive,
                            "oldest": s.oldest, "next_drop": s.next_drop,
                            "archive_bytes": s.archive_bytes, "last_run": s.last_run,
                            "last_error": s.last_error,
                        }))?;
                    }
                    for h in q::hold_list(&db.read).await? {
                        crate::cli::json_line(&serde_json::json!({
                            "held": h.table_name, "partition": h.partition,
                            "until": h.until, "reason": h.reason,
                        }))?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                crate::outln!(
                    "{:<16} {:>6} {:<7} {:<17} {:<17} {:>10}  last error",
                    "table",
                    "days",
                    "archive",
                    "oldest",
                    "next drop",
                    "archived"
                );
                for s in status {
                    let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
                        v.map(|v| v.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into())
                    };
                    crate::outln!(
                        "{:<16} {:>6} {:<7} {:<17} {:<17} {:>10}  {}",
                        s.table,
                        s.keep_days,
                        if s.archive { "yes" } else { "no" },
                        t(s.oldest),
                        t(s.next_drop),
                        s.archive_bytes,
                        sanitize(s.last_error.as_deref().unwrap_or("-"))
                    );
                }
                // Days kept past their period (a restore, `opsdash ingest --keep`).
                let holds = q::hold_list(&db.read).await?;
                if !holds.is_empty() {
                    crate::outln!();
                    crate::outln!("{:<16} {:<28} {:<17}  reason", "held", "partition", "until");
                    for h in holds {
                        crate::outln!(
                            "{:<16} {:<28} {:<17}  {}",
                            sanitize(&h.table_name),
                            sanitize(&h.partition),
                            h.until.format("%Y-%m-%d %H:%M"),
                            sanitize(&h.reason)
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            RetentionAction::Run => {
                let dir = crate::archive::archive_dir(cfg)?;
                let report = run_once(&db, &cfg.retention, &dir).await?;
                crate::outln!(
                    "partition days ensured: {}; moved from default: {}; dropped: {} ({} archived, \
                     {} tables freed); compacted: {}; anonymized: {}; trimmed: {}",
                    report.partitions_created,
                    report.moved_from_default.len(),
                    report.dropped.len(),
                    report.archived.len(),
                    report.freed.len(),
                    report.compacted.len(),
                    report.anonymized.len(),
                    report
                        .trimmed
                        .iter()
                        .map(|(t, n)| format!("{t} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(why) = &report.anonymize_refused {
                    eprintln!("warning: {}", sanitize(why));
                }
                for e in &report.errors {
                    eprintln!("failed: {}", sanitize(e));
                }
                Ok(if report.errors.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    })
}
