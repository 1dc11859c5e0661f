//! Syslog headers, as syslog daemons write them to files or send them: RFC 3164 (`Dec  4
//! 03:04:05 host app[123]: text`, the traditional file format of rsyslog, syslog-ng, busybox),
//! the same header with an RFC 3339 time (rsyslog's high-precision file format, Debian 12's
//! default), and RFC 5424 (`<PRI>1 TS HOST APP PROCID MSGID [SD] MSG`), each with or without
//! `<PRI>`. The header gives the event's time, host, program (the service), pid, facility and
//! severity; the message after it is read by the same detector as any line.
//!
//! RFC 3164 times carry no year and no zone: the year is the current one unless that puts the
//! line more than `FUTURE_SLACK` ahead of now (a December line read in January), then the one
//! before; the zone is `ingest.timezone` (the zone of the machine that wrote the file; UTC when
//! unset).

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::timestamp::Zone;
use serde_json::{Map, Value};

use super::envelope::Envelope;
use crate::model::Level;

/// How far ahead of now a year-less time may be before it is taken as last year's (clocks of
/// the machines writing one file differ a little; a file is never days ahead).
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(7);

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// RFC 5424 section 6.2.1 facility names (codes 0-23).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The level of a syslog severity (0-7), shared with journald's `PRIORITY`.
pub fn severity_level(severity: u8) -> Level {
    match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

/// Whether `severity` says more than its level does (notice is info, emerg/alert/crit fatal):
/// such a row keeps the severity's name in attrs.
fn severity_is_finer(severity: u8) -> bool {
    matches!(severity, 0 | 1 | 2 | 5)
}

/// Cheap test for `auto`: does the line start like a syslog header? (Whether it is one is
/// decided by `open`.)
pub fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    match b.first() {
        Some(b'<') => b.get(1).is_some_and(u8::is_ascii_digit),
        Some(b'1') if b.get(1) == Some(&b' ') => true,
        Some(c) if c.is_ascii_digit() => iso_len(b).is_some(),
        Some(_) => month(b).is_some(),
        None => false,
    }
}

fn month(b: &[u8]) -> Option<u32> {
    let m = b.get(..3)?;
    MONTHS
        .iter()
        .position(|name| *name == m)
        .map(|i| i as u32 + 1)
}

/// Length of an RFC 3339 time at the start of `b` (`2024-12-04T03:04:05[.ffffff](Z|+hh:mm)`),
/// when there is one followed by a space or the end.
fn iso_len(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (c, s) in b.iter().zip(shape) {
        let ok = if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == s || (*s == b'T' && *c == b't')
        };
        if !ok {
            return None;
        }
    }
    let end = b.iter().position(|c| *c == b' ').unwrap_or(b.len());
    (end <= 40).then_some(end)
}

/// What a header parse needs besides the line: now (year inference) and the zone of times
/// that carry none.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub zone: Zone,
}

impl Clock {
    /// Now, with zone-less times read as UTC.
    pub fn utc() -> Clock {
        Clock {
            now: Utc::now(),
            zone: Zone::Utc,
        }
    }
}

/// A cursor over the header's bytes.
struct Cur<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cur<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    /// The next space-delimited token (not consuming the space after it).
    fn token(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(' ').unwrap_or(rest.len());
        self.at += end;
        Some(&rest[..end])
    }

    fn space(&mut self) -> bool {
        if self.rest().starts_with(' ') {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) {
        while self.space() {}
    }
}

/// Opens a syslog line; Err when it has no syslog header.
pub fn open<'a>(line: &'a str, clock: &Clock) -> Result<Envelope<'a>, String> {
    let mut cur = Cur { s: line, at: 0 };
    let pri = pri(&mut cur)?;
    let mut env = Envelope {
        format: "syslog",
        ..Envelope::default()
    };
    if let Some(pri) = pri {
        let (facility, severity) = (pri >> 3, pri & 7);
        env.level = Some(severity_level(severity));
        if let Some(name) = FACILITIES.get(usize::from(facility)) {
            env.attrs.insert("facility".into(), Value::from(*name));
        }
        if severity_is_finer(severity) {
            env.attrs.insert(
                "severity".into(),
                Value::from(SEVERITIES[usize::from(severity)]),
            );
        }
    }
    if cur.rest().starts_with("1 ") {
        cur.at += 2;
        rfc5424(&mut cur, clock, &mut env)?;
    } else {
        rfc3164(&mut cur, clock, &mut env)?;
    }
    let stream = match (&env.service, env.attrs.get("pid")) {
        // `app[pid]` written piece by piece rather than through `format!`: this runs per line.
        (Some(app), Some(pid)) => {
            let mut s = String::with_capacity(app.len() + 12);
            s.push_str(app);
            s.push('[');
            match pid.as_i64() {
                Some(n) => s.push_str(itoa::Buffer::new().format(n)),
                None => s.push_str(&pid.to_string()),
            }
            s.push(']');
            s
        }
        (Some(app), None) => app.clone(),
        (None, _) => String::new(),
    };
    env.stream = Some(stream);
    Ok(env)
}

/// `<PRI>`: 1-3 digits, at most 191 (facility 23, severity 7).
fn pri(cur: &mut Cur) -> Result<Option<u8>, String> {
    let rest = cur.rest();
    if !rest.starts_with('<') {
        return Ok(None);
    }
    let close = rest
        .as_bytes()
        .iter()
        .take(5)
        .position(|c| *c == b'>')
        .ok_or("syslog: <PRI> without its '>'")?;
    let digits = &rest[1..close];
    let pri = match digits.parse::<u8>() {
        Ok(p) if p <= 191 && !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) => p,
        _ => return Err(format!("syslog: bad <PRI> {:?}", &rest[..=close])),
    };
    cur.at += close + 1;
    Ok(Some(pri))
}

/// An RFC 3339 time; one without an offset is read in the clock's zone.
fn iso_time(s: &str, zone: Zone) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    local(zone, naive)
}

/// A wall-clock time in `zone` (see `Zone::to_utc` for DST folds and gaps).
fn local(zone: Zone, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    zone.to_utc(naive)
}

/// RFC 5424 after its version: `TS HOST APP PROCID MSGID SD [MSG]`, `-` for a field not given.
fn rfc5424<'a>(cur: &mut Cur<'a>, clock: &Clock, env: &mut Envelope<'a>) -> Result<(), String> {
    let field = |cur: &mut Cur, what: &str| -> Result<Option<String>, String> {
        let t = cur
            .token()
            .ok_or_else(|| format!("syslog (RFC 5424): no {what}"))?;
        cur.space();
        Ok((t != "-").then(|| t.to_string()))
    };
    if let Some(ts) = field(cur, "timestamp")? {
        env.ts = Some(
            iso_time(&ts, clock.zone)
                .ok_or_else(|| format!("syslog (RFC 5424): bad timestamp {ts:?}"))?,
        );
    }
    env.host = field(cur, "hostname")?;
    env.service = field(cur, "app-name")?;
    if let Some(pid) = field(cur, "procid")? {
        env.attrs.insert("pid".into(), number_or_text(pid));
    }
    if let Some(msgid) = field(cur, "msgid")? {
        env.attrs.insert("msgid".into(), Value::from(msgid));
    }
    if cur.rest().starts_with('-') {
        cur.at += 1;
    } else if cur.rest().starts_with('[') {
        structured_data(cur, &mut env.attrs)?;
    } else {
        return Err("syslog (RFC 5424): no structured data".into());
    }
    cur.space();
    let msg = cur.rest();
    env.text = Cow::Borrowed(msg.strip_prefix('\u{feff}').unwrap_or(msg));
    Ok(())
}

fn number_or_text(s: String) -> Value {
    match s.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(s),
    }
}

/// `[id param="value" ...]...`: each parameter into attrs as `id.param` (a repeated one as an
/// array of its values). Values unescape `\"`, `\\` and `\]`.
fn structured_data(cur: &mut Cur, attrs: &mut Map<String, Value>) -> Result<(), String> {
    let bad = |why: &str| format!("syslog (RFC 5424): structured data: {why}");
    while cur.rest().starts_with('[') {
        cur.at += 1;
        let rest = cur.rest();
        let id_end = rest
            .find([' ', ']'])
            .ok_or_else(|| bad("unterminated element"))?;
        let id = &rest[..id_end];
        if id.is_empty() {
            return Err(bad("empty SD-ID"));
        }
        cur.at += id_end;
        loop {
            cur.spaces();
            if cur.rest().starts_with(']') {
                cur.at += 1;
                break;
            }
            let rest = cur.rest();
            let eq = rest
                .find("=\"")
                .ok_or_else(|| bad("parameter without =\""))?;
            let name = &rest[..eq];
            if name.is_empty() || name.contains([' ', ']']) {
                return Err(bad("bad parameter name"));
            }
            cur.at += eq + 2;
            let mut value = String::new();
            let mut closed = false;
            let mut chars = cur.rest().char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                        // RFC 5424 6.3.3: a backslash before anything else is kept.
                        Some((_, e)) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => value.push('\\'),
                    },
                    '"' => {
                        cur.at += i + 1;
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad("unterminated value"));
            }
            let mut key = String::with_capacity(id.len() + 1 + name.len());
            key.push_str(id);
            key.push('.');
            key.push_str(name);
            match attrs.get_mut(&key) {
                Some(Value::Array(items)) => items.push(Value::from(value)),
                Some(old) => {
                    let first = old.take();
                    *old = Value::Array(vec![first, Value::from(value)]);
                }
                None => {
                    attrs.insert(key, Value::from(value));
                }
            }
        }
    }
    Ok(())
}

/// `Mmm dd hh:mm:ss[.frac]` with an optional year after the day; the year is inferred when
/// absent (see the module's comment).
fn bsd_time(cur: &mut Cur, clock: &Clock) -> Option<DateTime<Utc>> {
    let b = cur.rest().as_bytes();
    let m = month(b)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    cur.at += 4;
    cur.spaces();
    let day: u32 = cur.token()?.parse().ok()?;
    cur.space();
    let mut year = None;
    let mut tok = cur.token()?;
    if tok.len() == 4 && tok.bytes().all(|c| c.is_ascii_digit()) {
        year = tok.parse::<i32>().ok();
        cur.space();
        tok = cur.token()?;
    }
    let time = clock_time(tok)?;
    if let Some(y) = year {
        return local(
            clock.zone,
            NaiveDate::from_ymd_opt(y, m, day)?.and_time(time),
        );
    }
    let this_year = clock.zone.year_of(clock.now);
    // Feb 29 exists in one year of four: look back until the date exists and is not ahead.
    (0..=4).find_map(|back| {
        let date = NaiveDate::from_ymd_opt(this_year - back, m, day)?;
        local(clock.zone, date.and_time(time)).filter(|t| *t <= clock.now + FUTURE_SLACK)
    })
}

/// `HH:MM:SS[.fraction]` as chrono's `%H:%M:%S%.f` reads it. The shape syslog daemons write
/// (two digits each, 1 to 9 fraction digits) is read by hand: chrono's format-string parser
/// cost more than the rest of the header. Anything else goes to chrono (a test holds the two
/// to the same results).
fn clock_time(tok: &str) -> Option<NaiveTime> {
    let b = tok.as_bytes();
    let two = |i: usize| -> Option<u32> {
        let (h, l) = (*b.get(i)?, *b.get(i + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    let hand = || -> Option<NaiveTime> {
        let (h, m, sec) = (two(0)?, two(3)?, two(6)?);
        if b[2] != b':' || b[5] != b':' || h > 23 || m > 59 || sec > 59 {
            return None;
        }
        let nanos = match b.get(8) {
            None => 0,
            Some(b'.') => {
                let frac = &b[9..];
                if !(1..=9).contains(&frac.len()) || !frac.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let n = frac.iter().fold(0u32, |v, c| v * 10 + u32::from(c - b'0'));
                n * 10u32.pow(9 - frac.len() as u32)
            }
            Some(_) => return None,
        };
        NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
    };
    hand().or_else(|| NaiveTime::parse_from_str(tok, "%H:%M:%S%.f").ok())
}

fn is_level_word(s: &str) -> bool {
    const WORDS: [&str; 12] = [
        "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "CRIT", "FATAL",
        "ALERT", "EMERG",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// `tag[pid]:` or `tag:` at the start of `s`: the tag, its pid and the bytes it takes (with the
/// colon).
fn tag(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let end = s.find([':', '[', ' '])?;
    let name = &s[..end];
    if name.is_empty() || end > 64 {
        return None;
    }
    let after = &s[end..];
    if let Some(rest) = after.strip_prefix('[') {
        let close = rest.find(']')?;
        let pid = &rest[..close];
        if pid.is_empty() || pid.len() > 20 || pid.contains(' ') {
            return None;
        }
        rest[close + 1..]
            .starts_with(':')
            .then_some((name, Some(pid), end + 1 + close + 2))
    } else {
        after.starts_with(':').then_some((name, None, end + 1))
    }
}

/// RFC 3164 (or its RFC 3339-time variant): `TIME [HOST] TAG[PID]: MSG`. A line whose header
/// has no tag (`-- MARK --`, `last message repeated 3 times`) keeps the rest as its message.
fn rfc3164<'a>(cur: &mut Cur<'a>, clock: &Clock, env: &mut Envelope<'a>) -> Result<(), String> {
    let start = cur.at;
    let iso = cur
        .rest()
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit);
    let ts = if iso {
        let t = cur.token().ok_or("syslog: no timestamp")?;
        iso_len(t.as_bytes()).and_then(|_| iso_time(t, clock.zone))
    } else {
        bsd_time(cur, clock)
    };
    let ts = ts.ok_or_else(|| {
        format!(
            "not a syslog line: no timestamp at {:?}",
            super::pipeline::clip(&cur.s[start..], 24)
        )
    })?;
    env.ts = Some(ts);
    if !cur.space() {
        return Err("not a syslog line: nothing after the timestamp".into());
    }
    cur.spaces();
    // `TAG:` right after the time: no host (a local daemon's socket, logger -u).
    let mut found = tag(cur.rest());
    if found.is_none() {
        let save = cur.at;
        let host = cur.token().unwrap_or("");
        cur.space();
        found = tag(cur.rest());
        // An application's own `2024-... INFO main: text` is not a syslog header.
        if iso && (found.is_none() || is_level_word(host)) {
            return Err("not a syslog line: no host and tag after the time".into());
        }
        if host.is_empty() {
            cur.at = save;
        } else {
            env.host = Some(host.to_string());
        }
    }
    if let Some((name, pid, len)) = found {
        env.service = Some(name.to_string());
        if let Some(pid) = pid {
            env.attrs
                .insert("pid".into(), number_or_text(pid.to_string()));
        }
        cur.at += len;
        cur.space();
    }
    env.text = Cow::Borrowed(cur.rest());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now: &str) -> Clock {
        Clock {
            now: DateTime::parse_from_rfc3339(now)
                .unwrap()
                .with_timezone(&Utc),
            zone: Zone::Utc,
        }
    }

    fn ts(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn rfc3164_file_line() {
        let c = clock("2024-12-10T00:00:00Z");
        let e = open(
            "Dec  4 03:04:05 web-1 sshd[812]: Accepted publickey for deploy",
            &c,
        )
        .unwrap();
        assert_eq!(e.ts, ts("2024-12-04T03:04:05Z"));
        assert_eq!(e.host.as_deref(), Some("web-1"));
        assert_eq!(e.service.as_deref(), Some("sshd"));
        assert_eq!(e.attrs["pid"], 812);
        assert_eq!(e.text, "Accepted publickey for deploy");
        assert_eq!(e.level, None, "no <PRI>: the text decides");
        assert_eq!(e.stream.as_deref(), Some("sshd[812]"));
    }

    #[test]
    fn year_is_last_years_when_this_years_would_be_ahead() {
        let c = clock("2025-01-02T10:00:00Z");
        let e = open("Dec 31 23:59:59 h cron[1]: x", &c).unwrap();
        assert_eq!(e.ts, ts("2024-12-31T23:59:59Z"));
        // A few days ahead is clock skew, not last year.
        let e = open("Jan  4 00:00:00 h cron[1]: x", &c).unwrap();
        assert_eq!(e.ts, ts("2025-01-04T00:00:00Z"));
        // Feb 29 goes back to the last leap year.
        let c = clock("2027-03-01T00:00:00Z");
        let e = open("Feb 29 12:00:00 h a: x", &c).unwrap();
        assert_eq!(e.ts, ts("2024-02-29T12:00:00Z"));
    }

    #[test]
    fn zoneless_times_read_in_the_configured_zone() {
        let mut c = clock("2024-07-10T00:00:00Z");
        c.zone = Zone::parse("Europe/Berlin").unwrap();
        let e = open("Jul  4 12:00:00 h a: x", &c).unwrap();
        assert_eq!(e.ts, ts("2024-07-04T10:00:00Z"), "CEST is UTC+2");
        let e = open("Jan  4 12:00:00 h a: x", &c).unwrap();
        assert_eq!(e.ts, ts("2024-01-04T11:00:00Z"), "CET is UTC+1");
        // An RFC 3339 time keeps its own offset.
        let e = open("2024-07-04T12:00:00.5+00:00 h a[1]: x", &c).unwrap();
        assert_eq!(e.ts, ts("2024-07-04T12:00:00.5Z"));
    }

    #[test]
    fn pri_gives_level_and_facility() {
        let c = clock("2024-12-10T00:00:00Z");
        let e = open("<38>Dec  4 03:04:05 sshd[9]: Failed password", &c).unwrap();
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(e.attrs["facility"], "auth");
        assert_eq!(e.host, None, "the tag follows the time: no host");
        assert_eq!(e.service.as_deref(), Some("sshd"));
        let e = open("<3>Dec  4 03:04:05 box kernel: oops", &c).unwrap();
        assert_eq!(e.level, Some(Level::Error));
        assert_eq!(e.attrs["facility"], "kern");
        let e = open("<13>Dec  4 03:04:05 box app: x", &c).unwrap();
        assert_eq!(e.attrs["severity"], "notice");
        assert!(open("<999>Dec  4 03:04:05 box app: x", &c).is_err());
    }

    #[test]
    fn lines_without_a_tag_keep_their_text() {
        let c = clock("2024-12-10T00:00:00Z");
        let e = open("Dec  4 03:20:01 web-1 -- MARK --", &c).unwrap();
        assert_eq!(e.host.as_deref(), Some("web-1"));
        assert_eq!(e.service, None);
        assert_eq!(e.text, "-- MARK --");
        let e = open(
            "Dec  4 03:04:05 web-1 kernel: [ 12.5] usb 1-1: new device",
            &c,
        )
        .unwrap();
        assert_eq!(e.service.as_deref(), Some("kernel"));
        assert_eq!(e.text, "[ 12.5] usb 1-1: new device");
        let e = open(
            "Dec  4 03:04:05 web-1 postfix/smtpd[77]: connect from x",
            &c,
        )
        .unwrap();
        assert_eq!(e.service.as_deref(), Some("postfix/smtpd"));
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let c = clock("2024-12-10T00:00:00Z");
        let line = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
                    [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]\
                    [examplePriority@32473 class=\"high\" note=\"a \\\"q\\\" \\] z\"] \u{feff}An application event";
        let e = open(line, &c).unwrap();
        assert_eq!(e.ts, ts("2003-10-11T22:14:15.003Z"));
        assert_eq!(e.host.as_deref(), Some("mymachine.example.com"));
        assert_eq!(e.service.as_deref(), Some("evntslog"));
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(e.attrs["severity"], "notice");
        assert_eq!(e.attrs["facility"], "local4");
        assert_eq!(e.attrs["msgid"], "ID47");
        assert!(e.attrs.get("pid").is_none());
        assert_eq!(e.attrs["exampleSDID@32473.eventSource"], "Application");
        assert_eq!(e.attrs["examplePriority@32473.note"], "a \"q\" ] z");
        assert_eq!(e.text, "An application event");
        let e = open("<34>1 - - su - - - 'su root' failed", &c).unwrap();
        assert_eq!(
            (e.ts, e.host, e.text.as_ref()),
            (None, None, "'su root' failed")
        );
        assert!(open("<34>1 2003-10-11T22:14:15Z h a - - [bad", &c).is_err());
    }

    proptest::proptest! {
        /// The hand-read clock time is chrono's `%H:%M:%S%.f` reading, on times of every shape
        /// near the common one (one-digit fields, leap seconds, long and empty fractions).
        #[test]
        fn clock_time_reads_as_chrono_does(
            h in 0u32..30, m in 0u32..70, sec in 0u32..65,
            frac in "(\\.[0-9]{0,11})?", pad in proptest::bool::ANY, tail in "( |x)?",
        ) {
            let tok = if pad {
                format!("{h:02}:{m:02}:{sec:02}{frac}{tail}")
            } else {
                format!("{h}:{m}:{sec}{frac}{tail}")
            };
            let chrono = NaiveTime::parse_from_str(&tok, "%H:%M:%S%.f").ok();
            proptest::prop_assert_eq!(clock_time(&tok), chrono, "{:?}", tok);
        }
    }

    #[test]
    fn application_lines_with_a_leading_time_are_not_syslog() {
        let c = clock("2024-12-10T00:00:00Z");
        assert!(open("2024-12-04T03:04:05Z INFO main: starting", &c).is_err());
        assert!(open("2024-12-04T03:04:05Z starting the server", &c).is_err());
        assert!(open("Started server", &c).is_err());
    }
}
