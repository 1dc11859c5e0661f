//! Plain text lines (auto-detection's last resort): the leading timestamp in the forms common
//! loggers write (ISO and its log4j/Python comma variant, Go and nginx `2024/01/02`, Spark
//! `17/06/09`, HDFS `081109 203615`, logcat `03-17`, syslog `Dec  4`, ctime as Apache's error
//! log writes it, glog, Rails), also after one short prefix token (OpenStack writes the file
//! name first), then the level word where such logs put it, and the rest as the message.
//!
//! One hand-written pass with a dispatch on the first byte: no regex cascade per line (plain
//! text is the bulk of many logs and must stay well above 200k lines per CPU-second). A level
//! word is only taken in a level's place: right after the timestamp, after the pid/thread
//! numbers and the logger name that precede it in some layouts, or in brackets; never from
//! the middle of a sentence.
//!
//! Long because of the timestamp forms listed here, each with its own recogniser, tried in order.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::fields::LineContext;
use super::record::{LogRecord, Parsed};
use super::timestamp;
use crate::model::Level;

/// What the head of a line says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Head {
    pub ts: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    /// Byte offset of the message.
    pub message_at: usize,
    /// Byte offset just after the timestamp (0 when none), where a server's own prefix goes on.
    pub after_ts: usize,
    /// Numbers between the timestamp and the level (process and thread ids), in order.
    pub ids: Vec<(usize, usize)>,
    /// The logger name of `time - name - LEVEL - msg` (Python logging's default).
    pub logger: Option<(usize, usize)>,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn month_abbr(b: &[u8], i: usize) -> Option<u32> {
    let m = b.get(i..i + 3)?;
    MONTHS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(m))
        .map(|p| p as u32 + 1)
}

fn is_weekday(b: &[u8], i: usize) -> bool {
    b.get(i..i + 3).is_some_and(|w| {
        [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(w))
    })
}

/// Exactly `n` digits at `i`.
fn num(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let d = b.get(i..i + n)?;
    let mut v = 0u32;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// One or two digits at `i` (a day written ` 4` or `04` or `4`); returns the value and its end.
fn day(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let i = if b.get(i) == Some(&b' ') { i + 1 } else { i };
    match (b.get(i), b.get(i + 1)) {
        (Some(a), Some(c)) if a.is_ascii_digit() && c.is_ascii_digit() => {
            Some((u32::from(a - b'0') * 10 + u32::from(c - b'0'), i + 2))
        }
        (Some(a), _) if a.is_ascii_digit() => Some((u32::from(a - b'0'), i + 1)),
        _ => None,
    }
}

/// `HH:MM:SS` with an optional `.fraction` or `,fraction`: (h, m, s, nanos, end).
fn clock(b: &[u8], i: usize) -> Option<(u32, u32, u32, u32, usize)> {
    let h = num(b, i, 2)?;
    if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
        return None;
    }
    let m = num(b, i + 3, 2)?;
    let s = num(b, i + 6, 2)?;
    let mut end = i + 8;
    let mut nanos = 0;
    if matches!(b.get(end), Some(b'.' | b',')) && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end += 1;
        let mut scale = 100_000_000u32;
        while let Some(c) = b.get(end).filter(|c| c.is_ascii_digit()) {
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
            end += 1;
        }
    }
    Some((h, m, s, nanos, end))
}

/// Zone abbreviations PostgreSQL, Java and others print after a time, with their offsets in
/// minutes (ambiguous ones such as IST are left out: the configured zone reads those times).
const ZONES: &[(&[u8], i32)] = &[
    (b"UTC", 0),
    (b"GMT", 0),
    (b"WET", 0),
    (b"WEST", 60),
    (b"BST", 60),
    (b"CET", 60),
    (b"CEST", 120),
    (b"EET", 120),
    (b"EEST", 180),
    (b"MSK", 180),
    (b"EST", -300),
    (b"EDT", -240),
    (b"CST", -360),
    (b"CDT", -300),
    (b"MST", -420),
    (b"MDT", -360),
    (b"PST", -480),
    (b"PDT", -420),
    (b"JST", 540),
    (b"AEST", 600),
    (b"AEDT", 660),
];

/// A zone right after a time: `Z`, `+02:00`, `+0200`, ` +0200`, ` UTC`: (offset minutes, end).
fn zone(b: &[u8], i: usize) -> (Option<i32>, usize) {
    match b.get(i) {
        Some(b'Z') if !b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) => (Some(0), i + 1),
        Some(&sign @ (b'+' | b'-')) => {
            let sign = if sign == b'-' { -1 } else { 1 };
            if let (Some(h), Some(m)) = (num(b, i + 1, 2), num(b, i + 4, 2)) {
                if b[i + 3] == b':' {
                    return (Some(sign * (h as i32 * 60 + m as i32)), i + 6);
                }
            }
            if let (Some(h), Some(m)) = (num(b, i + 1, 2), num(b, i + 3, 2)) {
                if !b.get(i + 5).is_some_and(u8::is_ascii_digit) {
                    return (Some(sign * (h as i32 * 60 + m as i32)), i + 5);
                }
            }
            (None, i)
        }
        Some(b' ') => {
            if matches!(b.get(i + 1), Some(b'+' | b'-')) {
                let (z, end) = zone(b, i + 1);
                if z.is_some() {
                    return (z, end);
                }
            }
            let start = i + 1;
            let mut end = start;
            while b.get(end).is_some_and(u8::is_ascii_uppercase) {
                end += 1;
            }
            if end - start >= 3 && !b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
                if let Some((_, off)) = ZONES.iter().find(|(n, _)| *n == &b[start..end]) {
                    return (Some(*off), end);
                }
            }
            (None, i)
        }
        _ => (None, i),
    }
}

/// A date and a time read from a line: in UTC when it named its offset, else in `ingest.timezone`.
struct Stamp {
    date: NaiveDate,
    h: u32,
    m: u32,
    s: u32,
    nanos: u32,
    offset_min: Option<i32>,
}

impl Stamp {
    fn utc(&self, zone: &timestamp::Zoneless) -> Option<DateTime<Utc>> {
        let t = self
            .date
            .and_hms_nano_opt(self.h, self.m, self.s.min(59), self.nanos)?;
        match self.offset_min {
            Some(off) => Some(t.and_utc() - chrono::Duration::minutes(i64::from(off))),
            None => zone.to_utc(t),
        }
    }
}

/// A date without a year (syslog, logcat) is in the last twelve months: the latest such date
/// not after tomorrow (clocks differ a little).
fn yearless(month: u32, day: u32, now: DateTime<Utc>) -> Option<NaiveDate> {
    let year = now.year();
    let d = NaiveDate::from_ymd_opt(year, month, day)?;
    if d > (now + chrono::Duration::days(1)).date_naive() {
        NaiveDate::from_ymd_opt(year - 1, month, day)
    } else {
        Some(d)
    }
}

/// A two-digit year: the 2000s (logs of the 1990s are rare enough).
fn century(yy: u32) -> i32 {
    2000 + yy as i32
}

/// A timestamp starting at `i`: the time and where it ends.
fn stamp_at(b: &[u8], i: usize, ctx: &LineContext) -> Option<(DateTime<Utc>, usize)> {
    let c = *b.get(i)?;
    if c == b'[' {
        // `[2024-01-02 03:04:05]`, `[Sun Dec 04 04:47:44 2005]`, `[04/Dec/2005:04:47:44 +0000]`
        let (t, end) = stamp_at(b, i + 1, ctx)?;
        return (b.get(end) == Some(&b']')).then_some((t, end + 1));
    }
    let (stamp, end) = if c.is_ascii_digit() {
        digit_stamp(b, i, ctx.now)?
    } else if c.is_ascii_alphabetic() {
        word_stamp(b, i, ctx.now)?
    } else {
        return None;
    };
    // A timestamp is a whole token: `2024-01-02 03:04:05x` is something else.
    if b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some((stamp.utc(ctx.zone)?, end))
}

fn digit_stamp(b: &[u8], i: usize, now: DateTime<Utc>) -> Option<(Stamp, usize)> {
    let sep = |k: usize| b.get(i + k).copied();
    // ISO `2024-01-02T03:04:05.678+01:00`, log4j/Python `2024-01-02 03:04:05,678`, Go and
    // nginx `2024/01/02 03:04:05`.
    if let (Some(y), Some(s @ (b'-' | b'/'))) = (num(b, i, 4), sep(4)) {
        let mo = num(b, i + 5, 2)?;
        if sep(7) != Some(s) {
            return None;
        }
        let d = num(b, i + 8, 2)?;
        if !matches!(sep(10), Some(b'T' | b' ' | b'_')) {
            return None;
        }
        let (h, m, sec, nanos, end) = clock(b, i + 11)?;
        let (offset_min, end) = zone(b, end);
        let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
        return Some((
            Stamp {
                date,
                h,
                m,
                s: sec,
                nanos,
                offset_min,
            },
            end,
        ));
    }
    // Spark `17/06/09 20:10:40`
    if let (Some(yy), Some(b'/'), Some(b'/'), Some(b' ')) = (num(b, i, 2), sep(2), sep(5), sep(8)) {
        let (mo, d) = (num(b, i + 3, 2)?, num(b, i + 6, 2)?);
        let (h, m, sec, nanos, end) = clock(b, i + 9)?;
        let date = NaiveDate::from_ymd_opt(century(yy), mo, d)?;
        return Some((
            Stamp {
                date,
                h,
                m,
                s: sec,
                nanos,
                offset_min: None,
            },
            end,
        ));
    }
    // HDFS `081109 203615`
    if let (Some(ymd), Some(b' '), Some(hms)) = (num(b, i, 6), sep(6), num(b, i + 7, 6)) {
        let date = NaiveDate::from_ymd_opt(century(ymd / 10000), ymd / 100 % 100, ymd % 100)?;
        let (h, m, sec) = (hms / 10000, hms / 100 % 100, hms % 100);
        return Some((
            Stamp {
                date,
                h,
                m,
                s: sec,
                nanos: 0,
                offset_min: None,
            },
            i + 13,
        ));
    }
    // logcat `03-17 16:13:38.811`
    if let (Some(mo), Some(b'-'), Some(d), Some(b' ')) =
        (num(b, i, 2), sep(2), num(b, i + 3, 2), sep(5))
    {
        let (h, m, sec, nanos, end) = clock(b, i + 6)?;
        let date = yearless(mo, d, now)?;
        return Some((
            Stamp {
                date,
                h,
                m,
                s: sec,
                nanos,
                offset_min: None,
            },
            end,
        ));
    }
    // Tomcat `04-Dec-2005 04:47:44.123`, access-log style `04/Dec/2005:04:47:44 +0000`
    if let (Some(d), Some(s @ (b'-' | b'/'))) = (num(b, i, 2), sep(2)) {
        let mo = month_abbr(b, i + 3)?;
        let y = num(b, i + 7, 4)?;
        if sep(6) != Some(s) || !matches!(sep(11), Some(b' ' | b':')) {
            return None;
        }
        let (h, m, sec, nanos, end) = clock(b, i + 12)?;
        let (offset_min, end) = zone(b, end);
        let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
        return Some((
            Stamp {
                date,
                h,
                m,
                s: sec,
                nanos,
                offset_min,
            },
            end,
        ));
    }
    None
}

fn word_stamp(b: &[u8], i: usize, now: DateTime<Utc>) -> Option<(Stamp, usize)> {
    // ctime `Sun Dec 04 04:47:44 2005` (Apache's error log), with `.123456` in Apache 2.4.
    let mut at = i;
    let weekday = is_weekday(b, i) && b.get(i + 3) == Some(&b' ');
    if weekday {
        at += 4;
    }
    let mo = month_abbr(b, at)?;
    if b.get(at + 3) != Some(&b' ') {
        return None;
    }
    let (d, end) = day(b, at + 4)?;
    if b.get(end) != Some(&b' ') {
        return None;
    }
    let (h, m, sec, nanos, mut end) = clock(b, end + 1)?;
    let (offset_min, zend) = zone(b, end);
    end = zend;
    let year = if b.get(end) == Some(&b' ') {
        num(b, end + 1, 4).filter(|_| !b.get(end + 5).is_some_and(u8::is_ascii_digit))
    } else {
        None
    };
    let date = match year {
        Some(y) => {
            end += 5;
            NaiveDate::from_ymd_opt(y as i32, mo, d)?
        }
        // Syslog's `Dec  4 03:04:05` has no year; ctime always has one.
        None if !weekday => yearless(mo, d, now)?,
        None => return None,
    };
    Some((
        Stamp {
            date,
            h,
            m,
            s: sec,
            nanos,
            offset_min,
        },
        end,
    ))
}

/// Level words as loggers print them (any case): the full set of names and the short forms.
fn level_name(t: &[u8]) -> Option<Level> {
    const NAMES: &[(&[u8], Level)] = &[
        (b"TRACE", Level::Trace),
        (b"FINEST", Level::Trace),
        (b"FINER", Level::Trace),
        (b"VERBOSE", Level::Trace),
        (b"DEBUG", Level::Debug),
        (b"FINE", Level::Debug),
        (b"DBG", Level::Debug),
        (b"INFO", Level::Info),
        (b"NOTICE", Level::Info),
        (b"CONFIG", Level::Info),
        (b"INF", Level::Info),
        (b"WARN", Level::Warn),
        (b"WARNING", Level::Warn),
        (b"WRN", Level::Warn),
        (b"ERROR", Level::Error),
        (b"ERR", Level::Error),
        (b"SEVERE", Level::Error),
        (b"DPANIC", Level::Error),
        (b"FATAL", Level::Fatal),
        (b"CRIT", Level::Fatal),
        (b"CRITICAL", Level::Fatal),
        (b"ALERT", Level::Fatal),
        (b"EMERG", Level::Fatal),
        (b"EMERGENCY", Level::Fatal),
        (b"PANIC", Level::Fatal),
    ];
    if !(3..=9).contains(&t.len()) {
        return None;
    }
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(t))
        .map(|(_, l)| *l)
}

/// logcat's and glog's one-letter levels.
fn level_letter(c: u8) -> Option<Level> {
    Some(match c {
        b'V' => Level::Trace,
        b'D' => Level::Debug,
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' | b'A' => Level::Fatal,
        _ => return None,
    })
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| *c == b' ' || *c == b'\t') {
        i += 1;
    }
    i
}

fn token_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| *c != b' ' && *c != b'\t') {
        i += 1;
    }
    i
}

/// The end of a bracketed group starting at `i` (nested brackets allowed), just after its `]`.
fn bracket_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in b.iter().enumerate().skip(i) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// A level word as a token: `ERROR`, `error`, `[error]`, `[core:error]` (Apache 2.4's
/// module:level), `<warn>`, `ERROR:`.
fn level_token(tok: &[u8], lower_ok: bool) -> Option<Level> {
    let (inner, bracketed) = match (tok.first(), tok.last()) {
        (Some(b'['), Some(b']')) | (Some(b'<'), Some(b'>')) | (Some(b'('), Some(b')'))
            if tok.len() > 2 =>
        {
            (&tok[1..tok.len() - 1], true)
        }
        _ => (tok.strip_suffix(b":").unwrap_or(tok), false),
    };
    let inner = match inner.iter().rposition(|c| *c == b':') {
        Some(p) if bracketed => &inner[p + 1..],
        _ => inner,
    };
    let inner = inner.strip_suffix(b":").unwrap_or(inner);
    let l = level_name(inner)?;
    // Lower case only where a level is expected anyway or it is marked as one.
    let upper = inner.iter().all(u8::is_ascii_uppercase);
    (upper || bracketed || lower_ok || tok.ends_with(b":")).then_some(l)
}

/// Skips the separators loggers put after a level (`-`, `--`, `:`, `|`).
fn skip_separators(b: &[u8], mut i: usize) -> usize {
    loop {
        i = skip_spaces(b, i);
        match b.get(i) {
            Some(b'-' | b':' | b'|')
                if matches!(b.get(i + 1), None | Some(b' ' | b'-' | b':' | b'\t')) =>
            {
                i += 1
            }
            _ => return i,
        }
    }
}

/// Finds the level after a timestamp ending at `i` (see the module doc for where it may be).
fn level_after(b: &[u8], i: usize, head: &mut Head) {
    let mut at = skip_spaces(b, i);
    let mut first = true;
    for _ in 0..5 {
        at = skip_separators(b, at);
        let Some(&c) = b.get(at) else { return };
        if c == b'[' {
            let Some(end) = bracket_end(b, at) else {
                return;
            };
            if let Some(l) = level_token(&b[at..end], true) {
                head.level = Some(l);
                head.message_at = skip_separators(b, end);
                return;
            }
            // A thread or module name before the level (`[main] INFO`, `[pid 1:tid 2]`).
            at = end;
            first = false;
            continue;
        }
        let end = token_end(b, at);
        let tok = &b[at..end];
        if tok.iter().all(u8::is_ascii_digit) {
            head.ids.push((at, end));
            at = end;
            continue;
        }
        if tok.len() == 1 && !head.ids.is_empty() {
            // logcat: `pid tid E Tag: msg`
            if let Some(l) = level_letter(c) {
                head.level = Some(l);
                head.message_at = skip_spaces(b, end);
            }
            return;
        }
        if let Some(l) = level_token(tok, first) {
            head.level = Some(l);
            head.message_at = skip_separators(b, end);
            return;
        }
        // Python logging: `time - name - LEVEL - msg`: one name, then a dash.
        let next = skip_spaces(b, end);
        if head.logger.is_none()
            && b.get(next) == Some(&b'-')
            && b.get(next + 1) == Some(&b' ')
            && tok.len() <= 100
        {
            head.logger = Some((at, end));
            at = next;
            first = false;
            continue;
        }
        return;
    }
}

/// glog `E0102 03:04:05.678901   123 file.go:12] msg` (the year is not written).
fn glog(b: &[u8], ctx: &LineContext, head: &mut Head) -> bool {
    let Some(l) = b.first().and_then(|c| level_letter(*c)) else {
        return false;
    };
    let (Some(mo), Some(d), Some(b' ')) = (num(b, 1, 2), num(b, 3, 2), b.get(5)) else {
        return false;
    };
    let Some((h, m, s, nanos, end)) = clock(b, 6) else {
        return false;
    };
    let Some(date) = yearless(mo, d, ctx.now) else {
        return false;
    };
    let stamp = Stamp {
        date,
        h,
        m,
        s,
        nanos,
        offset_min: None,
    };
    head.ts = stamp.utc(ctx.zone);
    head.level = Some(l);
    let at = skip_spaces(b, end);
    let id_end = token_end(b, at);
    if id_end > at && b[at..id_end].iter().all(u8::is_ascii_digit) {
        head.ids.push((at, id_end));
        head.message_at = skip_spaces(b, id_end);
    } else {
        head.message_at = at;
    }
    head.after_ts = end;
    true
}

/// Ruby's Logger (Rails): `E, [2024-01-02T03:04:05.678 #123] ERROR -- progname: msg`.
fn ruby_logger(b: &[u8], ctx: &LineContext, head: &mut Head) -> bool {
    if !(b.len() > 4
        && b[1] == b','
        && b[2] == b' '
        && b[3] == b'['
        && level_letter(b[0]).is_some())
    {
        return false;
    }
    let Some((ts, end)) = stamp_at(b, 4, ctx) else {
        return false;
    };
    let at = skip_spaces(b, end);
    let mut close = at;
    if b.get(at) == Some(&b'#') {
        let id_end = token_end(b, at + 1);
        let id_end = if b.get(id_end.saturating_sub(1)) == Some(&b']') {
            id_end - 1
        } else {
            id_end
        };
        head.ids.push((at + 1, id_end));
        close = id_end;
    }
    if b.get(close) != Some(&b']') {
        return false;
    }
    head.ts = Some(ts);
    head.after_ts = close + 1;
    let at = skip_spaces(b, close + 1);
    let end = token_end(b, at);
    head.level = level_token(&b[at..end], true).or_else(|| level_letter(b[0]));
    // `-- progname: msg`: the program name (often empty) stays with the message.
    let mut msg = skip_spaces(b, end);
    if b[msg..].starts_with(b"-- ") {
        msg += 3;
        if b[msg..].starts_with(b": ") {
            msg += 2;
        }
    }
    head.message_at = msg;
    true
}

/// Reads the head of a line: timestamp, level, and where the message starts.
pub fn head(line: &str, ctx: &LineContext) -> Head {
    let b = line.as_bytes();
    let mut head = Head::default();
    let Some(&first) = b.first() else {
        return head;
    };
    if first.is_ascii_uppercase() && (glog(b, ctx, &mut head) || ruby_logger(b, ctx, &mut head)) {
        return head;
    }
    let mut found = stamp_at(b, 0, ctx);
    if found.is_none() {
        // One short prefix token before the time (OpenStack's file name, a host, a tag).
        let end = token_end(b, 0);
        if end < 80 && !b[..end].contains(&b'=') {
            let next = skip_spaces(b, end);
            if b.get(next)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'[')
            {
                found = stamp_at(b, next, ctx);
            }
        }
    }
    match found {
        Some((ts, end)) => {
            head.ts = Some(ts);
            head.after_ts = end;
            head.message_at = skip_separators(b, end);
            level_after(b, end, &mut head);
            if head.level.is_none() {
                // Numbers and a name not followed by a level are part of the message.
                head.ids.clear();
                head.logger = None;
            }
        }
        None => {
            // No time: a level word at the very start (`WARN: low memory`, `[error] x`).
            let end = if first == b'[' {
                bracket_end(b, 0).unwrap_or(0)
            } else {
                token_end(b, 0)
            };
            if let Some(l) = level_token(&b[..end], false) {
                head.level = Some(l);
                head.message_at = skip_separators(b, end);
            }
        }
    }
    head
}

/// Parses a free-text line; never fails.
pub fn parse(line: &str, ctx: &LineContext) -> Parsed {
    let line = line.trim();
    let h = head(line, ctx);
    if h.ts.is_some() {
        // PostgreSQL's own log has a plain-text shape: a time, a short prefix, `LOG:  `.
        let pg = if line.as_bytes().get(h.after_ts) == Some(&b',') {
            super::pglog::from_csv(line, ctx)
        } else {
            super::pglog::from_text(line, &h, ctx)
        };
        if let Some(p) = pg {
            return p;
        }
    }
    let message = line.get(h.message_at..).unwrap_or(line).trim_end();
    let mut log = LogRecord::new(
        h.ts.unwrap_or(ctx.now),
        h.level.or(ctx.level).unwrap_or(Level::Info),
        ctx.service.to_string(),
        message.to_string(),
    );
    if !h.ids.is_empty() || h.logger.is_some() {
        let mut attrs = Map::new();
        for ((s, e), name) in h.ids.iter().zip(["pid", "tid"]) {
            if let Ok(n) = line[*s..*e].parse::<i64>() {
                attrs.insert(name.into(), Value::from(n));
            }
        }
        if let Some((s, e)) = h.logger {
            attrs.insert("logger".into(), Value::from(&line[s..e]));
        }
        log.attrs = Some(Value::Object(attrs));
    }
    Parsed {
        log: Some(log),
        format: "text",
        ..Parsed::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap()
    }

    /// (time as RFC 3339 with millis or "-", level, message, attrs as JSON or "")
    fn read(line: &str) -> (String, Level, String, String) {
        let ctx = LineContext {
            service: "svc",
            now: now(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        };
        let log = parse(line, &ctx).log.unwrap();
        let ts = if log.ts == ctx.now {
            "-".to_string()
        } else {
            log.ts.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
        };
        let attrs = log.attrs.map(|a| a.to_string()).unwrap_or_default();
        (ts, log.level, log.message, attrs)
    }

    fn check(line: &str, ts: &str, level: Level, msg: &str) {
        let (t, l, m, _) = read(line);
        assert_eq!((t.as_str(), l, m.as_str()), (ts, level, msg), "{line}");
    }

    #[test]
    fn real_layouts_keep_their_time_and_level() {
        check(
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            "2005-12-04T04:47:44.000",
            Level::Error,
            "mod_jk child workerEnv in error state 6",
        );
        check(
            "[Sun Dec 04 04:47:44.123456 2005] [core:error] [pid 1:tid 2] AH00037: Symbolic link not allowed",
            "2005-12-04T04:47:44.123",
            Level::Error,
            "[pid 1:tid 2] AH00037: Symbolic link not allowed",
        );
        check(
            "2015-07-29 17:41:44,747 - WARN  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@688] - Notification time out: 3200",
            "2015-07-29T17:41:44.747",
            Level::Warn,
            "[QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@688] - Notification time out: 3200",
        );
        check(
            "081109 203615 148 WARN dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
            "2008-11-09T20:36:15.000",
            Level::Warn,
            "dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
        );
        check(
            "03-17 16:13:38.811  1702  2395 E WindowManager: printFreezingDisplayLogsopening app wtoken",
            "2024-03-17T16:13:38.811",
            Level::Error,
            "WindowManager: printFreezingDisplayLogsopening app wtoken",
        );
        check(
            "17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi",
            "2017-06-09T20:10:40.000",
            Level::Info,
            "spark.SecurityManager: Changing view acls to: yarn,curi",
        );
        check(
            "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b] 10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200",
            "2017-05-16T00:00:00.008",
            Level::Info,
            "nova.osapi_compute.wsgi.server [req-38101a0b] 10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200",
        );
        check(
            "Dec  4 03:04:05 host sshd[42]: Accepted publickey",
            "2023-12-04T03:04:05.000",
            Level::Info,
            "host sshd[42]: Accepted publickey",
        );
        check(
            "2024-01-02 03:04:05,678 ERROR [main] c.x.Foo - connection refused",
            "2024-01-02T03:04:05.678",
            Level::Error,
            "[main] c.x.Foo - connection refused",
        );
        check(
            "2024-01-02 03:04:05,678 - app.db - ERROR - pool exhausted",
            "2024-01-02T03:04:05.678",
            Level::Error,
            "pool exhausted",
        );
        check(
            "2024/01/02 03:04:05 listening on :8080",
            "2024-01-02T03:04:05.000",
            Level::Info,
            "listening on :8080",
        );
        check(
            "2024/01/02 03:04:05 [error] 123#0: *1 connect() failed (111: Connection refused) while connecting to upstream",
            "2024-01-02T03:04:05.000",
            Level::Error,
            "123#0: *1 connect() failed (111: Connection refused) while connecting to upstream",
        );
        check(
            "E0102 03:04:05.678901    123 file.go:12] rpc failed",
            "2024-01-02T03:04:05.678",
            Level::Error,
            "file.go:12] rpc failed",
        );
        check(
            "E, [2024-01-02T03:04:05.678 #123] ERROR -- : undefined method `x' for nil",
            "2024-01-02T03:04:05.678",
            Level::Error,
            "undefined method `x' for nil",
        );
        check(
            "W, [2024-01-02T03:04:05.678901 #9]  WARN -- app: slow",
            "2024-01-02T03:04:05.678",
            Level::Warn,
            "app: slow",
        );
        check(
            "04-Dec-2005 04:47:44.123 SEVERE [main] org.apache.catalina.startup.Catalina.start failed",
            "2005-12-04T04:47:44.123",
            Level::Error,
            "[main] org.apache.catalina.startup.Catalina.start failed",
        );
    }

    #[test]
    fn zones_written_in_the_line_are_honoured() {
        check(
            "2024-01-02 03:04:05.678 UTC [123] x",
            "2024-01-02T03:04:05.678",
            Level::Info,
            "[123] x",
        );
        check(
            "2024-01-02T03:04:05+02:00 ERROR x",
            "2024-01-02T01:04:05.000",
            Level::Error,
            "x",
        );
        check(
            "2024-01-02 03:04:05 CET warn: x",
            "2024-01-02T02:04:05.000",
            Level::Warn,
            "x",
        );
    }

    #[test]
    fn level_words_only_in_a_levels_place() {
        check(
            "2024-01-02 03:04:05 user error in form",
            "2024-01-02T03:04:05.000",
            Level::Info,
            "user error in form",
        );
        check(
            "2024-01-02 03:04:05 error: disk full",
            "2024-01-02T03:04:05.000",
            Level::Error,
            "disk full",
        );
        check("hello error world", "-", Level::Info, "hello error world");
        check("WARN: low memory", "-", Level::Warn, "low memory");
        check("[ERROR] x", "-", Level::Error, "x");
        check("I think so", "-", Level::Info, "I think so");
        check(
            "Error handling is fine",
            "-",
            Level::Info,
            "Error handling is fine",
        );
        check("E1234 is not glog", "-", Level::Info, "E1234 is not glog");
        check(
            "2024-01-02 03:04:05 42 things",
            "2024-01-02T03:04:05.000",
            Level::Info,
            "42 things",
        );
    }

    #[test]
    fn ids_and_logger_go_to_attrs() {
        let (_, _, _, attrs) = read("03-17 16:13:38.811  1702  2395 W Tag: x");
        assert_eq!(attrs, r#"{"pid":1702,"tid":2395}"#);
        let (_, _, _, attrs) = read("2024-01-02 03:04:05,678 - app.db - ERROR - x");
        assert_eq!(attrs, r#"{"logger":"app.db"}"#);
    }

    #[test]
    fn broken_times_are_not_times() {
        check(
            "2024-13-02 03:04:05 x",
            "-",
            Level::Info,
            "2024-13-02 03:04:05 x",
        );
        check(
            "2024-01-02 03:04:05x y",
            "-",
            Level::Info,
            "2024-01-02 03:04:05x y",
        );
        check("Dec 99 03:04:05 x", "-", Level::Info, "Dec 99 03:04:05 x");
        for cut in [
            "[Sun Dec 04 04:47",
            "081109 2036",
            "03-17 16:1",
            "E0102 03:0",
            "E, [2024",
        ] {
            let _ = read(cut);
        }
    }
}
