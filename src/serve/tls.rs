//! TLS for the receiver (HTTPS, and syslog over TLS): rustls from the PEM files
//! `server.tls_cert` / `server.tls_key`, reloaded on SIGHUP without closing the listener
//! (connections already open keep the certificate they started with).
//!
//! [`acceptor`] reads the files once; [`Reloadable`] holds the acceptor in force; [`Listener`]
//! accepts TCP connections, does each handshake in its own task (a slow or silent client holds
//! up nobody) and hands finished TLS streams to axum.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A handshake not finished within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// A TLS acceptor for the certificate chain and key in the PEM files `cert` and `key`.
pub fn acceptor(cert: &str, key: &str) -> Result<TlsAcceptor> {
    let mut config = server_config(cert, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The server side of TLS from PEM files, without ALPN: HTTPS adds `http/1.1`, syslog over TLS
/// (RFC 5425) names no protocol.
pub fn server_config(cert: &str, key: &str) -> Result<ServerConfig> {
    let pem = std::fs::read(cert).with_context(|| format!("server.tls_cert {cert}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("server.tls_cert {cert}: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!("server.tls_cert {cert}: no PEM certificate in the file");
    }
    let pem = std::fs::read(key).with_context(|| format!("server.tls_key {key}"))?;
    // The key's own error would not quote it, but say nothing more than where it is anyway.
    let key_der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| anyhow::anyhow!("server.tls_key {key}: no PEM private key in the file"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| format!("server.tls_cert {cert} and server.tls_key {key}"))?;
    Ok(config)
}

/// The acceptor in force, replaced by [`Reloadable::reload`].
#[derive(Clone)]
pub struct Reloadable {
    cert: String,
    key: String,
    current: Arc<RwLock<TlsAcceptor>>,
}

impl Reloadable {
    pub fn new(cert: &str, key: &str) -> Result<Reloadable> {
        Ok(Reloadable {
            cert: cert.to_string(),
            key: key.to_string(),
            current: Arc::new(RwLock::new(acceptor(cert, key)?)),
        })
    }

    /// Reads the files again; on failure the acceptor in force stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = acceptor(&self.cert, &self.key)?;
        match self.current.write() {
            Ok(mut a) => *a = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    pub fn get(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// An HTTPS listener for `axum::serve`: TLS streams whose handshake is done.
pub struct Listener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Listener {
    pub fn new(tcp: TcpListener, tls: Reloadable) -> Result<Listener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(tcp, tls, tx));
        Ok(Listener {
            local,
            ready,
            accepting,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Stop accepting (and so free the port) when axum lets go of the listener.
        self.accepting.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Reloadable,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tls.get();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    let _ = tx.send((s, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
            }
        });
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop never ends on its own; if it did, wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
