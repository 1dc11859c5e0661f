//! Syslog receivers (`[server] syslog_udp`, `syslog_tcp`, `syslog_tls`): messages from
//! rsyslog, syslog-ng, `logger` and network devices, read with the same header parser as
//! syslog files (`ingest::syslog`: RFC 3164 and RFC 5424) and stored through the sink.
//!
//! Framing: UDP carries one message per datagram (RFC 5426). TCP and TLS (RFC 6587, RFC 5425)
//! carry a stream in which each message is either octet-counted (`LEN SP MSG`) or ends with a
//! newline; senders differ, so the framing is decided per message by its first bytes.
//!
//! Durability: a stream sender's only acknowledgement is TCP's own, so a connection reads no
//! further until what it has read is committed (a slow or absent database slows the senders
//! down through TCP, and nothing read is dropped). A datagram has no acknowledgement at all:
//! under overload the datagrams that do not fit the bounded queue are dropped and counted.
//!
//! One file: the three transports share the framing reader and the hand-off to the sink.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::reply::Reject;
use super::sink::Sink;
use crate::config::Config;
use crate::ingest::timestamp::Zone;

use crate::ingest::detect::Format;
use crate::ingest::envelope::{self, Envelope};
use crate::ingest::fields::LineContext;
use crate::ingest::pipeline::INVALID_UTF8_ATTR;
use crate::ingest::record::Parsed;
use crate::ingest::syslog::{self as header, Clock};

/// Longest message kept (the same bound as a line of a file); a longer one is skipped to its
/// end and counted.
pub const MAX_MESSAGE: usize = crate::ingest::reader::MAX_LINE;

/// Longest octet count read (`LEN` digits); anything longer is not a count.
const MAX_LEN_DIGITS: usize = 10;

/// One framed message of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Vec<u8>),
    /// A message over `MAX_MESSAGE` bytes, skipped.
    TooLong,
}

/// What the framer is in the middle of skipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The rest of an overlong newline-terminated message.
    ToNewline,
    /// The rest of an overlong octet-counted message.
    Bytes(usize),
}

/// Splits a TCP/TLS byte stream into messages (RFC 6587: octet counting or a newline trailer,
/// decided per message). Holds at most one incomplete message of `max` bytes.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    skip: Skip,
    max: usize,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            skip: Skip::Nothing,
            max,
        }
    }

    /// Bytes held for a message not complete yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Adds bytes read from the stream and appends the messages they complete to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            match self.skip {
                Skip::Bytes(n) => {
                    let k = n.min(rest.len());
                    at += k;
                    self.skip = if k == n {
                        Skip::Nothing
                    } else {
                        Skip::Bytes(n - k)
                    };
                    if k < n {
                        break;
                    }
                    continue;
                }
                Skip::ToNewline => match memchr::memchr(b'\n', rest) {
                    Some(i) => {
                        at += i + 1;
                        self.skip = Skip::Nothing;
                        continue;
                    }
                    None => {
                        at = self.buf.len();
                        break;
                    }
                },
                Skip::Nothing => {}
            }
            // Trailers between messages (a newline after an octet-counted one, CRLF, NUL).
            let lead = rest
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
                .count();
            if lead > 0 {
                at += lead;
                continue;
            }
            if rest.is_empty() {
                break;
            }
            match octet_count(rest) {
                Count::Complete(digits, len) => {
                    let body = digits + 1;
                    if len > self.max {
                        out.push(Frame::TooLong);
                        at += body;
                        self.skip = Skip::Bytes(len);
                        continue;
                    }
                    if rest.len() < body + len {
                        break;
                    }
                    out.push(Frame::Message(rest[body..body + len].to_vec()));
                    at += body + len;
                    continue;
                }
                Count::NeedMore => break,
                Count::NotCounted => {}
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let line = &rest[..i];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.len() > self.max {
                        out.push(Frame::TooLong);
                    } else {
                        out.push(Frame::Message(line.to_vec()));
                    }
                    at += i + 1;
                }
                None => {
                    if rest.len() > self.max {
                        out.push(Frame::TooLong);
                        at = self.buf.len();
                        self.skip = Skip::ToNewline;
                    }
                    break;
                }
            }
        }
        self.buf.drain(..at);
    }

    /// The stream ended: a last newline-framed message without its newline is still one.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        let rest = std::mem::take(&mut self.buf);
        if self.skip != Skip::Nothing {
            return;
        }
        let end = rest
            .iter()
            .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
            .map_or(0, |i| i + 1);
        let rest = &rest[..end];
        if rest.is_empty() {
            return;
        }
        // An octet count whose message never came whole is a truncated message, kept as text.
        out.push(Frame::Message(rest.to_vec()));
    }
}

enum Count {
    /// `LEN SP`: the digits' length and LEN.
    Complete(usize, usize),
    /// Only digits so far: the next bytes decide.
    NeedMore,
    NotCounted,
}

/// Whether `b` starts with an octet count (`[1-9][0-9]* SP`), as RFC 6587 3.4.1 frames it.
fn octet_count(b: &[u8]) -> Count {
    if !matches!(b.first(), Some(b'1'..=b'9')) {
        return Count::NotCounted;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > MAX_LEN_DIGITS {
        return Count::NotCounted;
    }
    match b.get(digits) {
        None => Count::NeedMore,
        Some(b' ') => match std::str::from_utf8(&b[..digits])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(len) => Count::Complete(digits, len),
            None => Count::NotCounted,
        },
        Some(_) => Count::NotCounted,
    }
}

/// Where a message came from, for rows whose header names no host.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: IpAddr,
    /// `udp`, `tcp` or `tls`, kept in attrs as `transport`.
    pub transport: &'static str,
}

/// Reads one received message: its syslog header (RFC 3164 or 5424, as in files) and the text
/// inside, read like any line. A message whose header cannot be read is kept whole as its text
/// (RFC 3164 4.3.3: a relay keeps what it cannot parse). None for an empty message.
pub fn read_message(msg: &[u8], clock: &Clock, peer: Option<Peer>) -> Option<Parsed> {
    let mut msg = msg;
    while let Some((last, head)) = msg.split_last() {
        if matches!(last, b'\n' | b'\r' | b'\0') {
            msg = head;
        } else {
            break;
        }
    }
    if msg.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // Some senders write Latin-1; the rest of the message is worth keeping (as file ingest).
    let (text, invalid_utf8) = match std::str::from_utf8(msg) {
        Ok(t) => (Cow::Borrowed(t), false),
        Err(_) => (String::from_utf8_lossy(msg), true),
    };
    let mut env = header::open(&text, clock).unwrap_or_else(|_| Envelope {
        format: "syslog",
        ..Envelope::bare(&text)
    });
    if let Some(peer) = peer {
        if env.host.is_none() {
            env.host = Some(peer.ip.to_string());
        }
        env.attrs
            .insert("transport".into(), Value::from(peer.transport));
    }
    // Times inside the message (a JSON body's own) are read in the receiver's zone too.
    let zone = crate::ingest::timestamp::Zoneless::new(clock.zone);
    let ctx = LineContext {
        service: "syslog",
        now: clock.now,
        level: None,
        zone: &zone,
    };
    let has_nul = memchr::memchr(0, text.as_bytes()).is_some();
    // `read` of a header's text never fails in auto detection: text is the last resort.
    let mut parsed = envelope::read(Format::Syslog, env, &ctx).ok()?;
    if let Some(log) = &mut parsed.log {
        if has_nul {
            log.strip_nul();
        }
        if invalid_utf8 {
            let attrs = log
                .attrs
                .get_or_insert_with(|| Value::Object(Default::default()));
            if let Some(map) = attrs.as_object_mut() {
                map.insert(INVALID_UTF8_ATTR.into(), Value::Bool(true));
            }
        }
    }
    Some(parsed)
}

/// Datagrams queued for the database at most, in bytes: more are dropped (and counted).
const UDP_QUEUE_BYTES: usize = 8 << 20;
/// Messages submitted together at most.
const BATCH: usize = 2000;
/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 64 << 10;
/// Longest wait between tries when the database cannot take a stream's messages.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// After the stop, a connection is still read this long at most, and until it is quiet for
/// `STOP_QUIET`.
const STOP_DRAIN: Duration = Duration::from_secs(2);
const STOP_QUIET: Duration = Duration::from_millis(200);
/// Source name of the rows (the syslog protocol carries no token).
const SOURCE: &str = "syslog";

/// What the syslog receivers did, for the log line at shutdown and for metrics.
#[derive(Debug, Default)]
pub struct Counts {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub rejected: AtomicU64,
    /// Datagrams dropped because the queue was full (UDP only).
    pub dropped: AtomicU64,
    /// Messages over `MAX_MESSAGE` bytes, skipped.
    pub too_long: AtomicU64,
    /// Messages read from a stream but not stored when the receiver stopped with the
    /// database still away.
    pub lost_at_stop: AtomicU64,
}

/// The running syslog receivers.
pub struct Listeners {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pub counts: Arc<Counts>,
}

impl Listeners {
    /// Stops taking connections and datagrams; what was read is committed first (or, with
    /// the database away, given up after a last try and counted).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let c = &self.counts;
        let received = c.received.load(Ordering::Relaxed);
        if received > 0 {
            tracing::info!(
                received,
                stored = c.stored.load(Ordering::Relaxed),
                rejected = c.rejected.load(Ordering::Relaxed),
                dropped = c.dropped.load(Ordering::Relaxed),
                too_long = c.too_long.load(Ordering::Relaxed),
                lost_at_stop = c.lost_at_stop.load(Ordering::Relaxed),
                "syslog receivers stopped"
            );
        }
    }
}

/// What every receiver task shares.
#[derive(Clone)]
struct Ctx {
    sink: Sink,
    zone: Zone,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
}

impl Ctx {
    fn clock(&self) -> Clock {
        Clock {
            now: chrono::Utc::now(),
            zone: self.zone,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

fn address(what: &str, text: &str, insecure: bool, tls: bool) -> Result<Option<SocketAddr>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = text
        .trim()
        .parse()
        .with_context(|| format!("server.{what} {text:?}: not an address (IP:PORT)"))?;
    if !addr.ip().is_loopback() && !tls && !insecure {
        bail!(
            "refusing to take syslog in clear text on {addr} (server.{what}): use \
             server.syslog_tls, or set server.insecure"
        );
    }
    Ok(Some(addr))
}

/// Binds the configured syslog sockets (none by default) and starts their tasks.
pub async fn start(cfg: &Config, sink: Sink) -> Result<Listeners> {
    let server = &cfg.server;
    let zone =
        Zone::parse(&cfg.ingest.timezone).map_err(|e| anyhow::anyhow!("ingest.timezone: {e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Ctx {
        sink,
        zone,
        counts: Arc::new(Counts::default()),
        stop: stop_rx,
    };
    let mut tasks = Vec::new();
    if let Some(addr) = address("syslog_udp", &server.syslog_udp, server.insecure, false)? {
        let socket = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("syslog over UDP on {addr}"))?;
        announce("udp", &socket.local_addr()?);
        tasks.push(tokio::spawn(udp(socket, ctx.clone())));
    }
    if let Some(addr) = address("syslog_tcp", &server.syslog_tcp, server.insecure, false)? {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("syslog over TCP on {addr}"))?;
        announce("tcp", &listener.local_addr()?);
        tasks.push(tokio::spawn(accept(listener, None, ctx.clone())));
    }
    if let Some(addr) = address("syslog_tls", &server.syslog_tls, server.insecure, true)? {
        let acceptor = tls_acceptor(&server.tls_cert, &server.tls_key)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("syslog over TLS on {addr}"))?;
        announce("tls", &listener.local_addr()?);
        tasks.push(tokio::spawn(accept(listener, Some(acceptor), ctx.clone())));
    }
    Ok(Listeners {
        stop: stop_tx,
        tasks,
        counts: ctx.counts,
    })
}

fn announce(transport: &str, addr: &SocketAddr) {
    tracing::info!("opsdash serve: syslog over {transport} on {addr}");
    eprintln!("opsdash serve: syslog over {transport} on {addr}");
}

/// The TLS side of RFC 5425 (TLS 1.2 at least, which is rustls's floor), from the same PEM
/// files as HTTPS.
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor> {
    if cert.is_empty() || key.is_empty() {
        bail!("server.syslog_tls needs server.tls_cert and server.tls_key");
    }
    Ok(TlsAcceptor::from(Arc::new(super::tls::server_config(
        cert, key,
    )?)))
}

/// Accepts stream connections until the stop; each is served by its own task, all awaited
/// before returning (what they read is committed).
async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, mut ctx: Ctx) {
    let mut conns = tokio::task::JoinSet::new();
    let transport = if tls.is_some() { "tls" } else { "tcp" };
    loop {
        let accepted = tokio::select! {
            _ = ctx.stop.changed() => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!("syslog over {transport}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = Peer {
            ip: from.ip(),
            transport,
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            match tls {
                None => stream_messages(stream, peer, ctx).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(s)) => stream_messages(s, peer, ctx).await,
                        Ok(Err(e)) => tracing::info!("syslog over tls from {from}: {e}"),
                        Err(_) => {
                            tracing::info!("syslog over tls from {from}: handshake timed out")
                        }
                    }
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// Reads one stream connection: frames its messages and commits each read's messages before
/// reading on (TCP's flow control then holds the sender back while the database is slow).
async fn stream_messages<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: Peer,
    mut ctx: Ctx,
) {
    let mut framer = Framer::new(MAX_MESSAGE);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut frames = Vec::new();
    let mut stop_at = None;
    loop {
        let read = if ctx.stopping() {
            // What the sender wrote before the stop is still read, for a moment; then the
            // connection is closed.
            let until = *stop_at.get_or_insert_with(|| tokio::time::Instant::now() + STOP_DRAIN);
            let quiet = tokio::time::Instant::now() + STOP_QUIET;
            match tokio::time::timeout_at(until.min(quiet), stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => Ok(0),
            }
        } else {
            tokio::select! {
                biased;
                r = stream.read(&mut buf) => r,
                _ = ctx.stop.changed() => continue,
            }
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("syslog over {} from {}: {e}", peer.transport, peer.ip);
                0
            }
        };
        if n == 0 {
            framer.finish(&mut frames);
        } else {
            framer.feed(&buf[..n], &mut frames);
        }
        while !frames.is_empty() {
            let batch: Vec<Frame> = frames.drain(..frames.len().min(BATCH)).collect();
            store_frames(&ctx, batch, peer).await;
        }
        if n == 0 {
            // Everything read is committed: say so with an orderly close (TLS close_notify).
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads datagrams into a queue bounded in bytes (dropping and counting what does not fit)
/// while another task stores them.
async fn udp(socket: UdpSocket, mut ctx: Ctx) {
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
    let writer = {
        let ctx = ctx.clone();
        let queued = queued.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while rx.recv_many(&mut got, BATCH).await > 0 {
                let bytes: usize = got.iter().map(|(d, _)| d.len()).sum();
                let datagrams = std::mem::take(&mut got);
                submit(&ctx, || {
                    let clock = ctx.clock();
                    datagrams
                        .iter()
                        .filter_map(|(d, from)| {
                            let peer = Peer {
                                ip: from.ip(),
                                transport: "udp",
                            };
                            read_message(d, &clock, Some(peer))
                        })
                        .collect()
                })
                .await;
                // Freed only once stored: while the database is slow the queue fills and
                // datagrams are dropped (and counted) instead of piling up.
                queued.fetch_sub(bytes, Ordering::Relaxed);
            }
        })
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let got = tokio::select! {
            _ = ctx.stop.changed() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, from) = match got {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!("syslog over udp: {e}");
                continue;
            }
        };
        ctx.counts.received.fetch_add(1, Ordering::Relaxed);
        if queued.load(Ordering::Relaxed) + n > UDP_QUEUE_BYTES {
            ctx.counts.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        queued.fetch_add(n, Ordering::Relaxed);
        if tx.send((buf[..n].to_vec(), from)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Stores a stream's framed messages.
async fn store_frames(ctx: &Ctx, frames: Vec<Frame>, peer: Peer) {
    let c = &ctx.counts;
    c.received.fetch_add(frames.len() as u64, Ordering::Relaxed);
    let too_long = frames.iter().filter(|f| **f == Frame::TooLong).count() as u64;
    c.too_long.fetch_add(too_long, Ordering::Relaxed);
    c.rejected.fetch_add(too_long, Ordering::Relaxed);
    submit(ctx, || {
        let clock = ctx.clock();
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Message(m) => read_message(m, &clock, Some(peer)),
                Frame::TooLong => None,
            })
            .collect()
    })
    .await;
}

/// Commits the rows `read` makes, trying again while the database is busy or away for as long
/// as the receiver runs (a stream's sender waits meanwhile; datagrams overflow their queue).
/// The rows are made again for each try: the sink takes them, and messages are cheap to read.
async fn submit(ctx: &Ctx, read: impl Fn() -> Vec<Parsed>) {
    let mut wait = Duration::from_millis(50);
    let mut last_try = false;
    loop {
        let rows = read();
        if rows.is_empty() {
            return;
        }
        let n = rows.len() as u64;
        match ctx.sink.submit_parsed(SOURCE, rows).await {
            Ok(stored) => {
                let c = &ctx.counts;
                c.stored.fetch_add(stored.accepted, Ordering::Relaxed);
                c.rejected.fetch_add(stored.rejected, Ordering::Relaxed);
                return;
            }
            Err(
                e @ (Reject::Busy { .. } | Reject::Unavailable { .. } | Reject::RateLimited { .. }),
            ) => {
                if last_try {
                    ctx.counts.lost_at_stop.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!("syslog: {n} messages read but not stored at stop: {e}");
                    return;
                }
                last_try = ctx.stopping();
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
            Err(e) => {
                ctx.counts.rejected.fetch_add(n, Ordering::Relaxed);
                tracing::warn!("syslog: {n} messages refused: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::timestamp::Zone;
    use crate::model::Level;
    use chrono::{DateTime, Utc};

    fn frames(chunks: &[&[u8]], max: usize) -> Vec<Frame> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(s.as_bytes().to_vec())
    }

    /// What `logger --rfc5424 --octet-count -T` and rsyslog's omfwd write, byte for byte.
    const COUNTED: &[u8] = b"86 <13>1 2024-12-04T03:04:05.123456+00:00 web-1 deploy 812 - [timeQuality tzKnown=\"1\"] hi\
79 <13>1 2024-12-04T03:04:06.000001+00:00 web-1 deploy 812 - - second message here";

    #[test]
    fn octet_counted_messages_split_anywhere() {
        let want = vec![
            msg("<13>1 2024-12-04T03:04:05.123456+00:00 web-1 deploy 812 - [timeQuality tzKnown=\"1\"] hi"),
            msg("<13>1 2024-12-04T03:04:06.000001+00:00 web-1 deploy 812 - - second message here"),
        ];
        assert_eq!(frames(&[COUNTED], 1024), want);
        // Cut at every byte: a count, a message or a boundary split across reads.
        for cut in 0..COUNTED.len() {
            assert_eq!(
                frames(&[&COUNTED[..cut], &COUNTED[cut..]], 1024),
                want,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn newline_framing_and_mixed_streams() {
        let stream =
            b"<13>Dec  4 03:04:05 web-1 app: one\r\n<14>Dec  4 03:04:06 web-1 app: two\n\n\
17 <13>1 - - - - - x\n<13>1 - - - - - - \xc3\xa9t\xc3\xa9\n";
        assert_eq!(
            frames(&[stream], 1024),
            vec![
                msg("<13>Dec  4 03:04:05 web-1 app: one"),
                msg("<14>Dec  4 03:04:06 web-1 app: two"),
                msg("<13>1 - - - - - x"),
                msg("<13>1 - - - - - - été"),
            ]
        );
        // A line of digits that is not a count ("2024-...") is newline-framed.
        assert_eq!(
            frames(&[b"2", b"024-12-04T03:04:05Z host app: x\n"], 1024),
            vec![msg("2024-12-04T03:04:05Z host app: x")]
        );
        // A last message without its newline, at the end of the stream.
        assert_eq!(frames(&[b"<13>a: tail"], 1024), vec![msg("<13>a: tail")]);
    }

    #[test]
    fn overlong_messages_are_skipped_whole_and_counted() {
        let mut long = b"<13>app: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 100));
        long.extend(b"\n<13>app: after\n");
        let got = frames(&[&long[..30], &long[30..]], 50);
        assert_eq!(got, vec![Frame::TooLong, msg("<13>app: after")]);
        let mut f = Framer::new(50);
        let mut out = Vec::new();
        f.feed(&long[..80], &mut out);
        assert!(f.pending() <= 50, "memory stays bounded: {}", f.pending());
        let counted = format!("200 {}9 <13>a: ok", "y".repeat(200));
        let got = frames(&[&counted.as_bytes()[..70], &counted.as_bytes()[70..]], 50);
        assert_eq!(got, vec![Frame::TooLong, msg("<13>a: ok")]);
    }

    fn clock() -> Clock {
        Clock {
            now: DateTime::parse_from_rfc3339("2024-12-10T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            zone: Zone::Utc,
        }
    }

    #[test]
    fn messages_read_like_syslog_files() {
        let peer = Peer {
            ip: "192.0.2.7".parse().unwrap(),
            transport: "udp",
        };
        let p = read_message(
            b"<165>1 2024-12-04T03:04:05.5Z mymachine evntslog 77 ID47 [ex@32473 iut=\"3\"] {\"msg\":\"disk full\",\"level\":\"error\",\"disk\":\"sda\"}",
            &clock(),
            Some(peer),
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!(p.format, "syslog");
        assert_eq!(log.ts.to_rfc3339(), "2024-12-04T03:04:05.500+00:00");
        assert_eq!(
            (log.service.as_str(), log.level),
            ("evntslog", Level::Error)
        );
        assert_eq!(log.host.as_deref(), Some("mymachine"));
        assert_eq!(log.message, "disk full");
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["disk"], "sda");
        assert_eq!(attrs["ex@32473.iut"], "3");
        assert_eq!(attrs["msgid"], "ID47");
        assert_eq!(attrs["pid"], 77);
        assert_eq!(attrs["transport"], "udp");

        // RFC 3164 without a host: the sender's address stands in.
        let p = read_message(
            b"<11>Dec  4 03:04:05 cron[9]: job failed\n",
            &clock(),
            Some(peer),
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!((log.service.as_str(), log.level), ("cron", Level::Error));
        assert_eq!(log.host.as_deref(), Some("192.0.2.7"));
        assert_eq!(log.message, "job failed");

        // No header at all: kept whole.
        let p = read_message(b"just some text \xff", &clock(), None).unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.message, "just some text \u{fffd}");
        assert_eq!(log.service, "syslog");
        assert_eq!(log.attrs.unwrap()[INVALID_UTF8_ATTR], true);

        assert!(read_message(b" \r\n", &clock(), None).is_none());
    }
}
