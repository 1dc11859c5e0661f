//! `opsdash audit install|uninstall|list`: the row-level audit trigger on application tables,
//! writing before/after, changed columns and the actor to `opsdash.audit_event`; and
//! `opsdash audit search`: the trail through the filter line, paged through all of it, or who
//! deleted one row (`--who-deleted TABLE ID`).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Config;
use crate::sanitize::sanitize;

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Install the audit trigger on tables (schema-qualified or on the search_path).
    /// The application names the acting user with `SET LOCAL opsdash.actor = 'alice'`;
    /// otherwise the database user is recorded.
    Install {
        /// Tables to audit (schema.table or on the search_path).
        #[arg(required = true)]
        tables: Vec<String>,
    },
    /// Remove the audit trigger from tables.
    Uninstall {
        /// Tables to stop auditing.
        #[arg(required = true)]
        tables: Vec<String>,
    },
    /// Tables that carry the audit trigger.
    List {
        #[command(flatten)]
        output: crate::cli::ListOutput,
    },
    /// Search the audit trail with the filter line, newest first, through all of it.
    #[command(after_help = format!("Filter line:\n{}", crate::filter::audit::AUDIT_FILTER_HELP))]
    Search(SearchArgs),
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Filter line, e.g. `actor:alice action:*delete* since:1d` (several words are joined).
    pub filter: Vec<String>,
    /// Deletes of one row: the table (schema.table, or a table name in any schema) and the
    /// row's primary key as the trigger records it (`a,b` for a composite key).
    #[arg(long, num_args = 2, value_names = ["TABLE", "ID"], conflicts_with = "filter")]
    pub who_deleted: Option<Vec<String>>,
    /// Stop after this many rows (default: all of them).
    #[arg(long)]
    pub limit: Option<u64>,
    /// `text` for people (escaped as the dashboard shows it), `json` for scripts (one exact
    /// object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub format: SearchFormat,
    /// Text as stored, without escaping: to a file or a pipe only (refused on a terminal).
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchFormat {
    Text,
    Json,
}

/// Rows fetched per query while paging through the trail.
const PAGE: i64 = 500;

pub fn run(cfg: &Config, action: AuditAction) -> Result<ExitCode> {
    if let AuditAction::Search(args) = action {
        return search(cfg, args);
    }
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        let pool = &db.write;
        match action {
            AuditAction::Install { tables } => {
                for t in &tables {
                    let pk = install(pool, t).await?;
                    if pk.is_empty() {
                        crate::outln!(
                            "{}: audit trigger installed (no primary key: resource_id stays empty)",
                            sanitize(t)
                        );
                    } else {
                        crate::outln!(
                            "{}: audit trigger installed (resource_id = {})",
                            sanitize(t),
                            sanitize(&pk.join(","))
                        );
                    }
                }
            }
            AuditAction::Uninstall { tables } => {
                for t in &tables {
                    if uninstall(pool, t).await? {
                        crate::outln!("{}: audit trigger removed", sanitize(t));
                    } else {
                        crate::outln!("{}: had no audit trigger", sanitize(t));
                    }
                }
            }
            AuditAction::List { output } => {
                let tables = crate::query::audit::audited_tables(pool).await?;
                if output.json() {
                    for t in tables {
                        crate::cli::json_line(&serde_json::json!({ "table": t }))?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                if tables.is_empty() {
                    crate::outln!("no audited tables");
                }
                for t in tables {
                    crate::outln!("{}", sanitize(&t));
                }
            }
            AuditAction::Search(_) => {}
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Installs the trigger. Returns the primary-key columns that identify a row in `resource_id`.
pub async fn install(pool: &sqlx::PgPool, table: &str) -> Result<Vec<String>> {
    crate::query::audit::install_trigger(pool, table)
        .await
        .with_context(|| format!("installing the audit trigger on {}", sanitize(table)))
}

pub async fn uninstall(pool: &sqlx::PgPool, table: &str) -> Result<bool> {
    crate::query::audit::uninstall_trigger(pool, table)
        .await
        .with_context(|| format!("removing the audit trigger from {}", sanitize(table)))
}

/// `opsdash audit search`: refuses a bad filter before connecting, then prints page after page.
fn search(cfg: &Config, args: SearchArgs) -> Result<ExitCode> {
    let line = args.filter.join(" ");
    let filter = crate::filter::audit::parse_audit(&line)
        .map_err(|e| anyhow::anyhow!("bad filter {line:?}: {e}"))?;
    // Nothing from the data reaches a terminal unescaped, whatever the flags say.
    if args.raw && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "--raw writes control characters as they are, so it is refused when standard output \
             is a terminal: redirect it to a file or a pipe"
        );
    }
    let limit = args
        .limit
        .map_or(i64::MAX, |n| n.min(i64::MAX as u64) as i64);
    super::runtime()?.block_on(async {
        let db = crate::db::Db::open(cfg).await?;
        let pool = &db.read;
        let mut printed: i64 = 0;
        if let Some(target) = &args.who_deleted {
            let [table, id] = target.as_slice() else {
                anyhow::bail!("--who-deleted takes a table and a row id");
            };
            let rows = crate::query::audit::who_deleted_in(pool, table, id, limit.min(10_000))
                .await
                .context("searching the audit trail")?;
            if rows.is_empty() && args.format == SearchFormat::Text {
                eprintln!(
                    "no delete of {}/{} in the audit trail (is the table audited? opsdash audit list)",
                    sanitize(table),
                    sanitize(id)
                );
            }
            for r in &rows {
                print_row(r, args.format, args.raw)?;
            }
            return anyhow::Ok(ExitCode::SUCCESS);
        }
        let mut key = None;
        while printed < limit {
            let want = PAGE.min(limit - printed);
            let rows = crate::query::audit::search(pool, &filter, key, want)
                .await
                .context("searching the audit trail")?;
            for r in &rows {
                print_row(r, args.format, args.raw)?;
            }
            printed += rows.len() as i64;
            match rows.last() {
                Some(last) if rows.len() as i64 == want => {
                    key = Some(crate::query::audit::AuditKey {
                        ts: last.ts,
                        id: last.id,
                    })
                }
                _ => break,
            }
        }
        if printed == 0 && args.format == SearchFormat::Text {
            eprintln!("no audit rows match");
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// One row: a JSON object, or a text line `time  actor  action  type/id  outcome` with
/// tabs and line breaks inside values escaped, so one row is always one line.
fn print_row(r: &crate::query::audit::AuditEvent, format: SearchFormat, raw: bool) -> Result<()> {
    if format == SearchFormat::Json {
        return crate::cli::json_line(r);
    }
    let text = |s: &str| -> String {
        if raw {
            s.replace('\n', "\\n").replace('\r', "\\r")
        } else {
            sanitize(s).into_owned()
        }
    };
    let resource = match (&r.resource_type, &r.resource_id) {
        (Some(t), Some(id)) => format!("{}/{}", text(t), text(id)),
        (Some(t), None) => text(t),
        (None, Some(id)) => text(id),
        (None, None) => "-".into(),
    };
    crate::outln!(
        "{}  {}  {}  {}  {}",
        r.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        text(&r.actor),
        text(&r.action),
        resource,
        text(&r.outcome)
    );
    Ok(())
}
