//! The receiver's HTTP/1 connections, served by hyper itself rather than `axum::serve`, for the
//! one thing that leaves out: a timer. With it, hyper's header read timeout closes a connection
//! that sends no request for `server.idle_timeout_ms`, whether it is a keep-alive connection
//! left idle after its last answer or a new one that never sends (the timeout runs whenever
//! hyper waits for a request's head). Every open connection holds one of the listener's places
//! ([`super::listen::MAX_CONNECTIONS`]), so idle ones must give theirs back. Requests under way
//! are not affected: the timer stops once a request's head is read.
//!
//! On shutdown the listener closes at once, idle connections are closed, and the ones with a
//! request under way get their answer first (hyper's graceful shutdown).

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Bytes a connection's read buffer grows to at most (hyper's default is ~400 KiB). Each open
/// connection keeps its buffer, and the buffer only needs to hold a request's head: a body
/// larger than this is read in several reads. Also the largest request head taken.
const READ_BUFFER: usize = 64 << 10;

/// Serves `app` on every connection `listener` accepts until `shutdown` completes, then waits
/// for the requests under way.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    idle: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle.max(Duration::from_millis(1)))
        .keep_alive(true)
        .max_buf_size(READ_BUFFER);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _addr) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A connection's error (the client went away, the idle timeout) is its own end.
            if let Err(e) = conn.await {
                tracing::debug!("connection closed: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
