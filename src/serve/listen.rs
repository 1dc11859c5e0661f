//! A cap on the connections the receiver holds at once, in front of axum: every open connection
//! costs memory (hyper's buffers, the router's per-connection services, the request's headers)
//! whether or not its body is ever taken, so a burst of clients must not open as many as it
//! likes. A connection over the cap is accepted, answered `429 Too Many Requests` with
//! `Retry-After` and closed, without being handed to the HTTP server: OTLP exporters, Promtail
//! and the other shippers retry it later like any 429.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections served at once; more are refused (429) until one closes.
pub const MAX_CONNECTIONS: usize = 256;
/// Refused connections being answered at once; past this a refused connection is just closed.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is given to send its request before it is answered (reading
/// it first lets the client see the 429 rather than a reset).
const REFUSE_READ: Duration = Duration::from_millis(200);
/// Bytes of a refused connection's request read (and dropped) before it is answered.
const REFUSE_DRAIN: usize = 64 << 10;

/// The answer of a connection over the cap.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
Retry-After: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 40\r\n\
Connection: close\r\n\
\r\n\
too many connections, try again shortly\n";

/// A listener whose connections hold a permit of [`MAX_CONNECTIONS`] while they are open.
pub struct Capped<L> {
    inner: L,
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

impl<L> Capped<L> {
    pub fn new(inner: L, max: usize) -> Capped<L> {
        Capped {
            inner,
            open: Arc::new(Semaphore::new(max.max(1))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }
}

impl<L> axum::serve::Listener for Capped<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = Counted<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            if let Ok(permit) = self.open.clone().try_acquire_owned() {
                return (
                    Counted {
                        io,
                        _permit: permit,
                    },
                    addr,
                );
            }
            // Over the cap. Answered in its own task so that the accept loop goes on; when too
            // many are being answered already, closed at once.
            if let Ok(slot) = self.refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(io).await;
                    drop(slot);
                });
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Reads what the client sent within [`REFUSE_READ`] (at most [`REFUSE_DRAIN`] bytes), answers
/// [`REFUSAL`] and closes.
async fn refuse<I: AsyncRead + AsyncWrite + Unpin>(mut io: I) {
    let mut buf = [0u8; 8192];
    let mut read = 0;
    let _ = tokio::time::timeout(REFUSE_READ, async {
        while read < REFUSE_DRAIN {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(REFUSAL).await?;
        io.shutdown().await
    })
    .await;
}

/// A connection holding its place under the cap until it is dropped.
pub struct Counted<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn connections_over_the_cap_get_429_and_the_others_are_served() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut capped = Capped::new(tcp, 1);
        let first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (held, _) = capped.accept().await;
        // The second connection is over the cap: it is answered 429 while accept goes on.
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let accepted = tokio::spawn(async move {
            let (io, _) = capped.accept().await;
            io
        });
        let mut answer = Vec::new();
        second.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
        assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        // Once the first closes, a new connection is taken again.
        drop(held);
        drop(first);
        let third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = tokio::time::timeout(Duration::from_secs(5), accepted)
            .await
            .expect("the next connection is accepted once a place is free")
            .unwrap();
        drop((io, third));
    }
}
