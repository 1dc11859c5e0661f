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

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::Value;

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
    let ctx = LineContext {
        service: "syslog",
        now: clock.now,
        level: None,
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
            assert_eq!(frames(&[&COUNTED[..cut], &COUNTED[cut..]], 1024), want, "cut at {cut}");
        }
    }

    #[test]
    fn newline_framing_and_mixed_streams() {
        let stream = b"<13>Dec  4 03:04:05 web-1 app: one\r\n<14>Dec  4 03:04:06 web-1 app: two\n\n\
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
        assert_eq!((log.service.as_str(), log.level), ("evntslog", Level::Error));
        assert_eq!(log.host.as_deref(), Some("mymachine"));
        assert_eq!(log.message, "disk full");
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["disk"], "sda");
        assert_eq!(attrs["ex@32473.iut"], "3");
        assert_eq!(attrs["msgid"], "ID47");
        assert_eq!(attrs["pid"], 77);
        assert_eq!(attrs["transport"], "udp");

        // RFC 3164 without a host: the sender's address stands in.
        let p = read_message(b"<11>Dec  4 03:04:05 cron[9]: job failed\n", &clock(), Some(peer)).unwrap();
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
