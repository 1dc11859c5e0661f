//! `opsdash serve`: the network receiver in the foreground, until Ctrl-C or SIGTERM; requests
//! under way finish (their rows committed) before it exits.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;

use crate::config::Config;

#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Clients (point them at http://127.0.0.1:4318 by default):
  OpenTelemetry SDK/Collector  OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:4318 (protocol http/protobuf)
  Promtail / Alloy / Vector    loki url http://HOST:4318/loki/api/v1/push
  Vector / Fluent Bit http     POST NDJSON to http://HOST:4318/ingest
  Prometheus                   alerting.alertmanagers: static_configs targets [HOST:4318]
  amtool                       --alertmanager.url=http://HOST:4318
With [[server.token]] configured, clients send `Authorization: Bearer TOKEN`.")]
pub struct ServeArgs {
    /// Listen address (default: server.listen, 127.0.0.1:4318).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow a non-loopback address without TLS or without tokens.
    #[arg(long)]
    pub insecure: bool,
}

pub fn run(mut cfg: Config, args: ServeArgs) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDASH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("opsdash=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    cfg.server.insecure |= args.insecure;
    super::runtime()?.block_on(async move {
        let db = crate::db::Db::open(&cfg).await?;
        crate::serve::run(Arc::new(cfg), db, async {
            let _ = wait_for_signal().await;
        })
        .await
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
