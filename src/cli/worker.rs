//! `opsdash worker`: the background jobs without the dashboard (alert evaluation, notifications,
//! rollups, retention), until Ctrl-C or SIGTERM. Job runs are logged to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::config::Config;

#[derive(Debug, ClapArgs)]
pub struct WorkerArgs {
    /// Log every job run, not only leadership changes and failures.
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(mut cfg: Config, args: WorkerArgs) -> Result<ExitCode> {
    let default_filter = if args.verbose {
        "opsdash=debug"
    } else {
        "opsdash=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDASH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    // Running `opsdash worker` is asking for the worker, whatever the dashboard setting says.
    cfg.worker.enabled = true;
    super::runtime()?.block_on(async move {
        let db = crate::db::Db::open(&cfg).await?;
        db.access.check_work()?;
        let handle = crate::worker::spawn(db.clone(), Arc::new(cfg)).await;
        tracing::info!(instance = %handle.instance, target = %db.target, "worker started");
        wait_for_signal().await?;
        tracing::info!("stopping: finishing current runs and releasing leases");
        handle.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
