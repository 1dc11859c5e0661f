//! `opsdash tui` (the default): open the database, then the dashboard.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::Config;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuiArgs {
    /// No colours at all (emphasis by bold and reverse only); also when NO_COLOR is set.
    #[arg(long)]
    pub no_color: bool,
}

pub fn run(cfg: Config, args: &TuiArgs) -> Result<ExitCode> {
    crate::cli::runtime()?.block_on(async move {
        // The database first: if it cannot be opened the terminal is never touched and the
        // error is one line on stderr.
        let db = crate::db::Db::open(&cfg).await?;
        let opts = crate::tui::Options {
            no_color: args.no_color,
            instance: Some(crate::worker::instance_id()),
        };
        crate::tui::run(db, Arc::new(cfg), opts)
            .await
            .context("dashboard")?;
        Ok(ExitCode::SUCCESS)
    })
}
