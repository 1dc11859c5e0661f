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

/// How long after the dashboard starts its in-process worker jobs begin.
const WORKER_START_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(cfg: Config, args: &TuiArgs) -> Result<ExitCode> {
    // The dashboard owns the terminal: its own diagnostics and its in-process worker's and
    // receiver's go to a file (`$XDG_STATE_HOME/opsdash/dashboard.log`), else nowhere.
    if let Some(path) = super::service::dashboard_log_path() {
        if let Err(e) = super::service::init_log("opsdash=info", Some(&path)) {
            eprintln!("opsdash: no dashboard log: {e:#}");
        }
    }
    crate::cli::runtime()?.block_on(async move {
        // The database first: if it cannot be opened the terminal is never touched and the
        // error is one line on stderr.
        let db = crate::db::Db::open(&cfg).await?;
        let instance = crate::worker::instance_id();
        let cfg = Arc::new(cfg);
        // The background jobs run in the dashboard process too (each job in one instance at a
        // time, whatever the number of open dashboards); `worker.enabled = false` turns them off.
        // They start a moment after the dashboard, so its first paint does not compete with
        // every job's first run.
        // A role that may not run them (a reader, --read-only) leaves them to other processes.
        let worker = db.access.can_work().then(|| {
            let (db, cfg, instance) = (db.clone(), cfg.clone(), instance.clone());
            tokio::spawn(async move {
                tokio::time::sleep(WORKER_START_DELAY).await;
                crate::jobs::spawn_as(db, cfg, instance).await
            })
        });
        // `[server] enabled = true`: the receiver runs while the dashboard does.
        let stop_server = std::sync::Arc::new(tokio::sync::Notify::new());
        let server = cfg.server.enabled.then(|| {
            let stopped = stop_server.clone();
            let opts = crate::serve::RunOptions {
                quiet: true,
                ..Default::default()
            };
            let (db, cfg) = (db.clone(), cfg.clone());
            tokio::spawn(async move {
                let run =
                    crate::serve::run_with(cfg, db, async move { stopped.notified().await }, opts);
                if let Err(e) = run.await {
                    tracing::error!("receiver: {e:#}");
                }
            })
        });
        let opts = crate::tui::Options {
            no_color: args.no_color,
            instance: Some(instance),
            background: None,
        };
        let result = crate::tui::run(db, cfg, opts).await.context("dashboard");
        if let Some(server) = server {
            stop_server.notify_one();
            let _ = server.await;
        }
        match worker {
            Some(worker) if worker.is_finished() => {
                if let Ok(w) = worker.await {
                    w.shutdown().await;
                }
            }
            Some(worker) => worker.abort(),
            None => {}
        }
        result?;
        Ok(ExitCode::SUCCESS)
    })
}
