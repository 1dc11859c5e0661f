//! `opsdash audit install|uninstall TABLE...`: the row-level audit trigger on application tables,
//! writing before/after, changed columns and the actor to `opsdash.audit_event`.

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
}

pub fn run(cfg: &Config, action: AuditAction) -> Result<ExitCode> {
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
