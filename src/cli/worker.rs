//! `opsdash worker`: the background jobs without the dashboard (alert evaluation, notifications,
//! rollups, retention), until Ctrl-C or SIGTERM, and the network receiver too when
//! `[server] enabled = true`. Job runs are logged to stderr (or `--log-file`). Under systemd
//! (`contrib/opsdash-worker.service`) it says READY once the jobs (and the listener) are up,
//! pings the watchdog, and drains on SIGTERM; SIGHUP reloads the receiver's tokens and
//! certificate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use sd_notify::NotifyState;
use tokio::sync::{mpsc, oneshot, Notify};

use super::service::{self, Event, Signals};
use crate::config::Config;

#[derive(Debug, ClapArgs)]
pub struct WorkerArgs {
    /// Log every job run, not only leadership changes and failures.
    #[arg(short, long)]
    pub verbose: bool,
    /// Append the log to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

pub fn run(mut cfg: Config, args: WorkerArgs, config_path: Option<PathBuf>) -> Result<ExitCode> {
    let default_filter = if args.verbose {
        "opsdash=debug"
    } else {
        "opsdash=info"
    };
    service::init_log(default_filter, args.log_file.as_deref())?;
    // Running `opsdash worker` is asking for the worker, whatever the dashboard setting says.
    cfg.worker.enabled = true;
    super::runtime()?.block_on(async move {
        let mut signals = Signals::new()?;
        let db = crate::db::Db::open(&cfg).await?;
        db.access.check_work()?;
        let cfg = Arc::new(cfg);
        let handle = crate::jobs::spawn(db.clone(), cfg.clone()).await;
        tracing::info!(instance = %handle.instance, target = %db.target, "worker started");
        // The receiver in the same process when asked for.
        let stop = Arc::new(Notify::new());
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let mut server = None;
        if cfg.server.enabled {
            let (ready_tx, ready_rx) = oneshot::channel();
            let stopped = stop.clone();
            let opts = crate::serve::RunOptions {
                quiet: false,
                ready: Some(ready_tx),
                reload: Some(reload_rx),
            };
            server = Some(tokio::spawn(crate::serve::run_with(
                cfg.clone(),
                db.clone(),
                async move { stopped.notified().await },
                opts,
            )));
            // Not ready until the listener is: a bind failure ends the worker with its reason.
            if ready_rx.await.is_err() {
                if let Some(s) = server.take() {
                    s.await.context("the receiver failed")??;
                }
                anyhow::bail!("the receiver stopped before listening");
            }
        }
        service::notify(&[NotifyState::Ready]);
        service::spawn_watchdog();
        let receiver_failed = loop {
            let failed = async {
                match server.as_mut() {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = failed => break Some(match done {
                    Ok(Ok(())) => anyhow::anyhow!("the receiver stopped"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::Error::new(e).context("the receiver failed"),
                }),
                event = signals.next() => match event {
                    Event::Stop => break None,
                    Event::Reload => super::serve::reload(config_path.as_deref(), &reload_tx).await,
                },
            }
        };
        service::notify(&[NotifyState::Stopping]);
        tracing::info!("stopping: finishing current runs and releasing leases");
        if let Some(e) = receiver_failed {
            handle.shutdown().await;
            return Err(e);
        }
        stop.notify_one();
        if let Some(s) = server {
            s.await.context("the receiver failed")??;
        }
        handle.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
