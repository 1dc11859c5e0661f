//! `opsdash serve`: one HTTP listener (and optional syslog sockets) that takes logs, traces and
//! alerts from the shippers and servers teams already run, and answers 2xx only once what it
//! took is committed.
//!
//! Layout: `listen` (the cap on open connections), `conn` (HTTP/1 connections, their idle
//! timeout and graceful shutdown), `reply` (how a request is refused), `body`
//! (decompression with a size limit),
//! `auth` (bearer tokens), `sink` (the pipeline behind every route), then one module per
//! protocol, each adding its routes in [`router`].

pub mod alertmanager;
pub mod auth;
pub mod body;
mod conn;
mod health;
pub mod listen;
pub mod loki;
pub mod metrics;
mod ndjson;
pub mod otlp;
pub mod reply;
pub mod sink;
pub mod syslog;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::{DefaultBodyLimit, Request, State as AxState};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::db::Db;

/// What every route handler gets.
#[derive(Clone)]
pub struct State {
    pub sink: sink::Sink,
    pub db: Db,
    pub cfg: Arc<Config>,
}

/// Every route of the receiver.
pub fn router(state: State) -> Router {
    let limit = state.cfg.server.body_limit;
    Router::new()
        .merge(health::routes())
        .merge(ndjson::routes())
        .merge(alertmanager::routes())
        .merge(loki::routes())
        .merge(otlp::routes())
        .merge(metrics::routes())
        // Layers wrap the routes merged above them: every route must be merged before here.
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::layer,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Refuses to listen where anyone could send without a token or read tokens in clear text,
/// unless `insecure` says so.
pub fn check_exposure(addr: &SocketAddr, cfg: &crate::config::ServerConfig) -> Result<()> {
    if addr.ip().is_loopback() || cfg.insecure {
        return Ok(());
    }
    let tls = !cfg.tls_cert.is_empty() && !cfg.tls_key.is_empty();
    if !tls || cfg.token.is_empty() {
        bail!(
            "refusing to listen on {addr} without TLS and tokens (server.tls_cert, server.tls_key \
             and [[server.token]]); pass --insecure to do it anyway"
        );
    }
    Ok(())
}

/// Middleware behind `auth`: the token's rate limit, then the memory budget for the body
/// (429 with Retry-After for either).
async fn limits(AxState(state): AxState<State>, req: Request, next: Next) -> Response {
    let sends = req.method() != Method::GET && auth::scope_of(req.uri().path()).is_some();
    if let Some(name) = req
        .extensions()
        .get::<auth::Client>()
        .and_then(|c| c.name.clone())
    {
        let rate = state
            .sink
            .tokens()
            .iter()
            .find(|t| t.name == name)
            .map_or(0, |t| t.rate);
        if let Err(retry_after) = state.sink.take_rate(&name, rate) {
            return reply::Reject::RateLimited { retry_after }.into_response();
        }
    }
    if !sends {
        return next.run(req).await;
    }
    let limit = state.cfg.server.body_limit;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Refused before a byte of it is read; a body without a length is cut at the limit while
    // it streams in (DefaultBodyLimit), and counts as large as the limit until then.
    if declared.is_some_and(|n| n > limit) {
        return reply::Reject::TooLarge(format!(
            "body larger than {limit} bytes (server.body_limit)"
        ))
        .into_response();
    }
    let size = declared.unwrap_or(limit);
    let Some(_held) = state.sink.hold(size) else {
        return reply::Reject::Busy { retry_after: 1 }.into_response();
    };
    next.run(req).await
}

/// How a caller that embeds the receiver (`opsdash serve`, the worker, the dashboard) talks to
/// it while it runs.
#[derive(Default)]
pub struct RunOptions {
    /// No "listening on" line on stderr (the dashboard owns the terminal).
    pub quiet: bool,
    /// Told the bound address once the listener is up (systemd's READY).
    pub ready: Option<oneshot::Sender<SocketAddr>>,
    /// Each config received puts its tokens in force and reloads the TLS certificate (SIGHUP).
    pub reload: Option<mpsc::Receiver<Config>>,
}

/// Serves until `shutdown` completes, then stops taking requests and lets the ones under way
/// finish (their rows committed).
pub async fn run(
    cfg: Arc<Config>,
    db: Db,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with(cfg, db, shutdown, RunOptions::default()).await
}

/// [`run`] with a caller's options. On `shutdown` the listener closes at once, requests under
/// way get their answer (their rows committed), then the sink's pipelines are finished.
pub async fn run_with(
    cfg: Arc<Config>,
    db: Db,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    opts: RunOptions,
) -> Result<()> {
    let addr: SocketAddr = cfg
        .server
        .listen
        .parse()
        .with_context(|| format!("server.listen {:?}: not an address", cfg.server.listen))?;
    check_exposure(&addr, &cfg.server)?;
    let tls = if cfg.server.tls_cert.is_empty() && cfg.server.tls_key.is_empty() {
        None
    } else {
        Some(tls::Reloadable::new(
            &cfg.server.tls_cert,
            &cfg.server.tls_key,
        )?)
    };
    let idle_ms = cfg.server.idle_timeout_ms;
    let sink = sink::Sink::start(db.clone(), cfg.clone());
    let syslog = syslog::start(&cfg, sink.clone()).await?;
    let state = State {
        sink: sink.clone(),
        db,
        cfg,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("opsdash serve: listening on {scheme}://{local}");
    if !opts.quiet {
        eprintln!("opsdash serve: listening on {scheme}://{local}");
    }
    if let Some(mut reload) = opts.reload {
        let (sink, tls) = (sink.clone(), tls.clone());
        tokio::spawn(async move {
            while let Some(cfg) = reload.recv().await {
                let n = cfg.server.token.len();
                sink.set_tokens(cfg.server.token);
                if let Some(tls) = &tls {
                    match tls.reload() {
                        Ok(()) => tracing::info!("reloaded the TLS certificate"),
                        Err(e) => tracing::warn!("TLS certificate not reloaded: {e:#}"),
                    }
                }
                tracing::info!("reloaded: {n} tokens in force");
            }
        });
    }
    if let Some(ready) = opts.ready {
        let _ = ready.send(local);
    }
    let app = router(state);
    let idle = Duration::from_millis(idle_ms);
    match tls {
        None => {
            use axum::serve::ListenerExt;
            // Answers are small and written once: no waiting on Nagle for them.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let capped = listen::Capped::new(listener, listen::MAX_CONNECTIONS);
            conn::serve(capped, app, idle, shutdown).await;
        }
        Some(tls) => {
            let tls = tls::Listener::new(listener, tls)?;
            let capped = listen::Capped::new(tls, listen::MAX_CONNECTIONS);
            conn::serve(capped, app, idle, shutdown).await;
        }
    }
    syslog.stop().await;
    sink.close(Duration::from_secs(30)).await;
    tracing::info!("opsdash serve: stopped");
    Ok(())
}
