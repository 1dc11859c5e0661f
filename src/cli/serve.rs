//! `opsdash serve`: the network receiver in the foreground, until Ctrl-C or SIGTERM; requests
//! under way finish (their rows committed) before it exits 0. SIGHUP reloads the tokens and the
//! TLS certificate. Under systemd (`contrib/opsdash-serve.service`) it says READY once the
//! listener is bound and the database reached, pings the watchdog, and says STOPPING on SIGTERM.

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
#[command(after_help = "\
Clients (point them at http://127.0.0.1:4318 by default):
  OpenTelemetry SDK/Collector  OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:4318 (protocol http/protobuf)
  Promtail / Alloy / Vector    loki url http://HOST:4318/loki/api/v1/push
  Vector / Fluent Bit http     POST NDJSON to http://HOST:4318/ingest
  Prometheus                   alerting.alertmanagers: static_configs targets [HOST:4318]
  amtool                       --alertmanager.url=http://HOST:4318
  Prometheus scrape            http://HOST:4318/metrics
With [[server.token]] configured, clients send `Authorization: Bearer TOKEN`.
Signals: SIGTERM/Ctrl-C drain (stop accepting, commit what is queued, exit 0); SIGHUP reloads
the tokens and the TLS certificate. Log filter: OPSDASH_LOG, else RUST_LOG (default opsdash=info).")]
pub struct ServeArgs {
    /// Listen address (default: server.listen, 127.0.0.1:4318).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow a non-loopback address without TLS or without tokens.
    #[arg(long)]
    pub insecure: bool,
    /// Append the log to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

pub fn run(mut cfg: Config, args: ServeArgs, config_path: Option<PathBuf>) -> Result<ExitCode> {
    service::init_log("opsdash=info", args.log_file.as_deref())?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    cfg.server.insecure |= args.insecure;
    // Refused before the database is even opened: the one-line reason is all the output.
    let addr: std::net::SocketAddr = cfg
        .server
        .listen
        .parse()
        .with_context(|| format!("server.listen {:?}: not an address", cfg.server.listen))?;
    crate::serve::check_exposure(&addr, &cfg.server)?;
    super::runtime()?.block_on(async move {
        let mut signals = Signals::new()?;
        let db = crate::db::Db::open(&cfg).await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let opts = crate::serve::RunOptions {
            quiet: false,
            ready: Some(ready_tx),
            reload: Some(reload_rx),
        };
        let mut server = tokio::spawn(crate::serve::run_with(
            Arc::new(cfg),
            db,
            async move { stopped.notified().await },
            opts,
        ));
        tokio::spawn(async move {
            // The database was reached by Db::open; the listener is bound now.
            if ready_rx.await.is_ok() {
                service::notify(&[NotifyState::Ready]);
                service::spawn_watchdog();
            }
        });
        loop {
            tokio::select! {
                done = &mut server => return done.context("the receiver failed")?,
                event = signals.next() => match event {
                    Event::Stop => break,
                    Event::Reload => reload(config_path.as_deref(), &reload_tx).await,
                },
            }
        }
        service::notify(&[NotifyState::Stopping]);
        tracing::info!("stopping: answering the requests under way, then exiting");
        stop.notify_one();
        server.await.context("the receiver failed")?
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP: reads the config file again and hands it to the receiver; a config that does not
/// load leaves the one in force.
pub(crate) async fn reload(path: Option<&std::path::Path>, to: &mpsc::Sender<Config>) {
    service::notify(&[NotifyState::Reloading]);
    match Config::load(path) {
        Ok((cfg, _)) => {
            let _ = to.send(cfg).await;
        }
        Err(e) => tracing::warn!("SIGHUP: config not reloaded: {e}"),
    }
    service::notify(&[NotifyState::Ready]);
}
