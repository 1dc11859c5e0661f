//! `opsdash serve`: one HTTP listener (and optional syslog sockets) that takes logs, traces and
//! alerts from the shippers and servers teams already run, and answers 2xx only once what it
//! took is committed.
//!
//! Layout: `reply` (how a request is refused), `body` (decompression with a size limit),
//! `auth` (bearer tokens), `sink` (the pipeline behind every route), then one module per
//! protocol, each adding its routes in [`router`].

pub mod auth;
pub mod body;
mod health;
mod ndjson;
pub mod reply;
pub mod sink;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::Router;

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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
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

/// Serves until `shutdown` completes, then stops taking requests and lets the ones under way
/// finish (their rows committed).
pub async fn run(
    cfg: Arc<Config>,
    db: Db,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr: SocketAddr = cfg
        .server
        .listen
        .parse()
        .with_context(|| format!("server.listen {:?}: not an address", cfg.server.listen))?;
    check_exposure(&addr, &cfg.server)?;
    let sink = sink::Sink::start(db.clone(), cfg.clone());
    let state = State { sink, db, cfg };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!("opsdash serve: listening on http://{local}");
    eprintln!("opsdash serve: listening on http://{local}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}
