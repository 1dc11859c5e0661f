//! journald's JSON export: one entry per line as `journalctl -o json` prints it (with or
//! without `-f`), or `-o json-seq` (each record after an ASCII RS). Field values are strings,
//! arrays of byte values (data that is not printable UTF-8: binary, invalid UTF-8, or text with
//! control characters such as colour escapes), arrays of those (a field set several times), or
//! null (a field over journalctl's size limit without `--all`).
//!
//! Columns: `MESSAGE` is the text (read by the same detector as any line, so a service logging
//! JSON under systemd is read as JSON), `PRIORITY` the level, `__REALTIME_TIMESTAMP` (µs) the
//! time, `SYSLOG_IDENTIFIER`, else `_SYSTEMD_UNIT` (without `.service`), else `_COMM` the
//! service, `_HOSTNAME` the host. Every other field goes to attrs under its journald name
//! (`_PID`, `_SYSTEMD_UNIT`, `CODE_FILE`, `MESSAGE_ID`...), except the ones no operator filters
//! on and that differ per entry or per boot, which would only make identical events look
//! different: `DROPPED`. An entry with an empty message keeps its `__CURSOR`, so it is never
//! folded with another (its other fields are all it says).

use std::borrow::Cow;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::envelope::Envelope;
use super::pipeline::INVALID_UTF8_ATTR;
use super::raw_attrs::RawAttrs;
use super::syslog::severity_level;

mod scan;
use scan::Scanner;

/// Fields left out of attrs: journal bookkeeping (cursor, sequence numbers, monotonic clocks,
/// boot and machine ids, stream ids, capability masks) and the times and raw copies that the
/// row's columns already hold.
pub const DROPPED: &[&str] = &[
    "__CURSOR",
    "__MONOTONIC_TIMESTAMP",
    "__SEQNUM",
    "__SEQNUM_ID",
    "_BOOT_ID",
    "_MACHINE_ID",
    "_STREAM_ID",
    "_CAP_EFFECTIVE",
    "_SOURCE_MONOTONIC_TIMESTAMP",
    "_SOURCE_REALTIME_TIMESTAMP",
    "SYSLOG_TIMESTAMP",
    "SYSLOG_RAW",
];

/// ASCII record separator: `journalctl -o json-seq` starts each record with it.
const RS: char = '\u{1e}';

/// Cheap test for `auto` on a line starting with `{` (or RS): does it carry journald's keys?
pub fn looks_like(line: &str) -> bool {
    if line.starts_with(RS) {
        return true;
    }
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // Built once: this runs on every JSON line `auto` reads, and `memmem::find` would build
    // its searcher on each call.
    static KEYS: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
        [
            Finder::new(b"\"__REALTIME_TIMESTAMP\""),
            Finder::new(b"\"MESSAGE\""),
            Finder::new(b"\"_HOSTNAME\""),
            Finder::new(b"\"PRIORITY\""),
        ]
    });
    let b = line.as_bytes();
    let has = |k: usize| KEYS[k].find(b).is_some();
    has(0) || (has(1) && (has(2) || has(3)))
}

/// One field's value. A plain string (nearly every field) stays borrowed from the line when it
/// has no escapes, so the fields that become columns or are dropped cost no allocation; byte
/// arrays, repeated fields and null become a `Value` as before.
enum Field<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

impl<'a> Field<'a> {
    /// The value as stored in attrs (the same JSON a `Value` read of the field gives).
    fn into_value(self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.into_owned()),
            Field::Other(v) => v,
        }
    }
}

impl<'de> de::Deserialize<'de> for Field<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a journal field's value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<'de>, E> {
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<'de>, E> {
                // Value::from turns a non-finite float into null, as a Value read does.
                Ok(Field::Other(Value::from(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                use serde::Deserialize;
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                use serde::Deserialize;
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Field::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of one entry that make columns, and the rest.
struct Entry<'a> {
    message: Option<Field<'a>>,
    priority: Option<Field<'a>>,
    realtime: Option<Field<'a>>,
    source_realtime: Option<Field<'a>>,
    hostname: Option<Field<'a>>,
    identifier: Option<Field<'a>>,
    cursor: Option<Field<'a>>,
    /// The other fields, kept as text (plain strings, nearly all of them, copied from the
    /// line as they are) and sorted once at the end (of a field given twice, the last value
    /// stays, as with inserts into a map).
    attrs: RawAttrs,
    /// The kept fields `open` reads, as they stand in `attrs` (see `Seen`).
    pid: Seen<'a>,
    comm: Seen<'a>,
    unit: Seen<'a>,
    line_break: Seen<'a>,
}

/// A kept field `open` reads: its last value when that is a string borrowed from the line,
/// saving a search of the sorted fields; `Ask` when the value has to be looked up there.
#[derive(Clone, Copy)]
enum Seen<'a> {
    Absent,
    Str(&'a str),
    Ask,
}

impl<'a> Seen<'a> {
    fn get<'b>(self, attrs: &'b RawAttrs, key: &str) -> Option<&'b str>
    where
        'a: 'b,
    {
        match self {
            Seen::Absent => None,
            Seen::Str(s) => Some(s),
            Seen::Ask => attrs.get_str(key),
        }
    }
}

/// An object key, borrowed from the line when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads an entry; `attrs` is where its other fields go.
struct EntrySeed {
    attrs: RawAttrs,
}

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Entry<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Entry<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a journal entry (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<'de>, A::Error> {
        let mut e = Entry::new(self.attrs);
        while let Some(Key(key)) = map.next_key::<Key>()? {
            match role(&key) {
                Role::Dropped => {
                    map.next_value::<IgnoredAny>()?;
                }
                role => {
                    let v = map.next_value::<Field>()?;
                    e.put(role, &key, v, None);
                }
            }
        }
        Ok(e)
    }
}

/// What a field of an entry is for.
#[derive(Clone, Copy)]
enum Role {
    Message,
    Priority,
    Realtime,
    SourceRealtime,
    Hostname,
    Identifier,
    Cursor,
    Dropped,
    /// Kept in attrs; `open` also reads the ones it names.
    Kept(Option<Watched>),
}

#[derive(Clone, Copy)]
enum Watched {
    Pid,
    Comm,
    Unit,
    LineBreak,
}

fn role(key: &str) -> Role {
    match key {
        "MESSAGE" => Role::Message,
        "PRIORITY" => Role::Priority,
        "__REALTIME_TIMESTAMP" => Role::Realtime,
        "_SOURCE_REALTIME_TIMESTAMP" => Role::SourceRealtime,
        "_HOSTNAME" => Role::Hostname,
        "SYSLOG_IDENTIFIER" => Role::Identifier,
        "__CURSOR" => Role::Cursor,
        k if is_dropped(k) => Role::Dropped,
        "_PID" => Role::Kept(Some(Watched::Pid)),
        "_COMM" => Role::Kept(Some(Watched::Comm)),
        "_SYSTEMD_UNIT" => Role::Kept(Some(Watched::Unit)),
        "_LINE_BREAK" => Role::Kept(Some(Watched::LineBreak)),
        _ => Role::Kept(None),
    }
}

impl<'a> Entry<'a> {
    fn new(attrs: RawAttrs) -> Entry<'a> {
        Entry {
            message: None,
            priority: None,
            realtime: None,
            source_realtime: None,
            hostname: None,
            identifier: None,
            cursor: None,
            attrs,
            pid: Seen::Absent,
            comm: Seen::Absent,
            unit: Seen::Absent,
            line_break: Seen::Absent,
        }
    }

    /// Takes one field (not a dropped one): a column's value (a field given twice keeps its
    /// last value), or a kept field, copied as `whole` (the member `"key":"value"` as the line
    /// has it) when there is one.
    fn put(&mut self, role: Role, key: &str, v: Field<'a>, whole: Option<&'a str>) {
        let slot = match role {
            Role::Message => &mut self.message,
            Role::Priority => &mut self.priority,
            Role::Realtime => &mut self.realtime,
            Role::SourceRealtime => &mut self.source_realtime,
            Role::Hostname => &mut self.hostname,
            Role::Identifier => &mut self.identifier,
            Role::Cursor => &mut self.cursor,
            Role::Dropped => return,
            Role::Kept(watched) => {
                let seen = watched.map(|w| match w {
                    Watched::Pid => &mut self.pid,
                    Watched::Comm => &mut self.comm,
                    Watched::Unit => &mut self.unit,
                    Watched::LineBreak => &mut self.line_break,
                });
                match v {
                    Field::Str(Cow::Borrowed(v)) => {
                        match whole {
                            Some(m) => self.attrs.push_member(m, key.len()),
                            None => self.attrs.push_plain(key, v),
                        }
                        if let Some(seen) = seen {
                            *seen = Seen::Str(v);
                        }
                    }
                    v => {
                        self.attrs.push_value(key, v.into_value());
                        if let Some(seen) = seen {
                            *seen = Seen::Ask;
                        }
                    }
                }
                return;
            }
        };
        *slot = Some(v);
    }
}

/// Reads an entry with `Scanner`; None when it gave up (`e` is then to be dropped).
fn scan_entry<'a>(json: &'a str, e: &mut Entry<'a>) -> Option<()> {
    let mut s = Scanner::new(json)?;
    while let Some(key) = s.key()? {
        match role(&key) {
            Role::Dropped => s.skip_value()?,
            role => {
                let v = s.value()?;
                let whole = s.whole_member();
                e.put(role, &key, v, whole);
            }
        }
    }
    Some(())
}

/// `DROPPED.contains(k)` as one match (compiled to a switch on length and bytes rather than a
/// dozen string compares for each of an entry's fields). `__CURSOR` and
/// `_SOURCE_REALTIME_TIMESTAMP` are read into their slots before this is asked.
fn is_dropped(k: &str) -> bool {
    matches!(
        k,
        "__CURSOR"
            | "__MONOTONIC_TIMESTAMP"
            | "__SEQNUM"
            | "__SEQNUM_ID"
            | "_BOOT_ID"
            | "_MACHINE_ID"
            | "_STREAM_ID"
            | "_CAP_EFFECTIVE"
            | "_SOURCE_MONOTONIC_TIMESTAMP"
            | "_SOURCE_REALTIME_TIMESTAMP"
            | "SYSLOG_TIMESTAMP"
            | "SYSLOG_RAW"
    )
}

/// A field's text: a string as is (still borrowed when it was), a byte array decoded (lossily:
/// the bool says bytes were replaced), a repeated field's values joined by newlines.
fn text_of(f: Field<'_>) -> Option<(Cow<'_, str>, bool)> {
    match f {
        Field::Str(s) => Some((s, false)),
        Field::Other(v) => value_text(v).map(|(s, bad)| (Cow::Owned(s), bad)),
    }
}

fn value_text(v: Value) -> Option<(String, bool)> {
    match v {
        Value::String(s) => Some((s, false)),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| u8::try_from(n).unwrap_or(b'?'))
                .collect();
            match String::from_utf8(bytes) {
                Ok(s) => Some((s, false)),
                Err(e) => Some((String::from_utf8_lossy(e.as_bytes()).into_owned(), true)),
            }
        }
        Value::Array(items) => {
            let mut bad = false;
            let parts: Vec<String> = items
                .into_iter()
                .filter_map(value_text)
                .map(|(s, b)| {
                    bad |= b;
                    s
                })
                .collect();
            Some((parts.join("\n"), bad))
        }
        _ => None,
    }
}

fn number_of(f: &Field) -> Option<i64> {
    match f {
        Field::Str(s) => s.trim().parse().ok(),
        Field::Other(Value::Number(n)) => n.as_i64(),
        Field::Other(_) => None,
    }
}

/// Opens one `journalctl -o json` line; Err when it is not a journal entry. The text borrows
/// from the line when MESSAGE is a string without escapes.
pub fn open(line: &str) -> Result<Envelope<'_>, String> {
    open_with(line, true)
}

/// `open`, reading the entry with `Scanner` first (`scan`) or with serde only.
fn open_with(line: &str, scan: bool) -> Result<Envelope<'_>, String> {
    let json = line.trim_start_matches(RS);
    // Room for the kept fields (about half the line: the dropped ones and the columns are the
    // rest), within glibc's per-thread cache of small blocks.
    let mut e = Entry::new(RawAttrs::with_capacity((json.len() / 2).min(1000), 16));
    if !scan || scan_entry(json, &mut e).is_none() {
        let mut attrs = std::mem::take(&mut e.attrs);
        attrs.clear();
        let mut de = serde_json::Deserializer::from_str(json);
        e = EntrySeed { attrs }
            .deserialize(&mut de)
            .and_then(|e| de.end().map(|()| e))
            .map_err(|err| format!("journald: {err}"))?;
    }
    if e.message.is_none() && e.realtime.is_none() {
        return Err("journald: an entry has MESSAGE or __REALTIME_TIMESTAMP".into());
    }
    let mut attrs = std::mem::take(&mut e.attrs);
    attrs.finish();
    let mut env = Envelope {
        format: "journald",
        ..Envelope::default()
    };
    let mut text = Cow::Borrowed("");
    match e.message.take() {
        Some(Field::Other(Value::Null)) => {
            // Over journalctl's field size limit: it printed null (`--all` prints it whole).
            attrs.insert("MESSAGE", Value::Null);
        }
        Some(v) => {
            if let Some((t, invalid)) = text_of(v) {
                text = t;
                if invalid {
                    attrs.insert(INVALID_UTF8_ATTR, Value::Bool(true));
                }
            }
        }
        None => {}
    }
    // A line cut by journald's LineMax continues in the stream's next entry.
    env.partial = e.line_break.get(&attrs, "_LINE_BREAK") == Some("line-max");
    if let Some(p) = e.priority.as_ref().and_then(number_of) {
        match u8::try_from(p) {
            Ok(p) if p <= 7 => env.level = Some(severity_level(p)),
            _ => {
                attrs.insert("PRIORITY", Value::from(p));
            }
        }
    }
    env.ts = e
        .realtime
        .as_ref()
        .or(e.source_realtime.as_ref())
        .and_then(number_of)
        .and_then(DateTime::from_timestamp_micros);
    env.host = e
        .hostname
        .and_then(text_of)
        .map(|(h, _)| h.into_owned())
        .filter(|h| !h.is_empty());
    let unit = e.unit.get(&attrs, "_SYSTEMD_UNIT");
    env.service = match e.identifier.and_then(text_of) {
        Some((id, _)) if !id.is_empty() => Some(id.into_owned()),
        _ => unit
            .map(|u| u.strip_suffix(".service").unwrap_or(u).to_string())
            .or_else(|| e.comm.get(&attrs, "_COMM").map(str::to_string)),
    };
    let pid = e.pid.get(&attrs, "_PID").unwrap_or("");
    let service = env.service.as_deref().unwrap_or_default();
    let mut stream = String::with_capacity(service.len() + pid.len() + 2);
    stream.push_str(service);
    stream.push('[');
    stream.push_str(pid);
    stream.push(']');
    env.stream = Some(stream);
    if text.is_empty() {
        if let Some(c) = e.cursor {
            attrs.insert("__CURSOR", c.into_value());
        }
    }
    env.text = text;
    env.raw_attrs = attrs;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use serde_json::Map;

    const FIXTURE: &str = include_str!("../../tests/fixtures/sources/journald/json.jsonl");

    fn entries() -> Vec<Envelope<'static>> {
        FIXTURE.lines().map(|l| open(l).unwrap()).collect()
    }

    #[test]
    fn journalctl_json_fills_the_columns() {
        let all = entries();
        let e = &all[0];
        assert_eq!(
            e.text,
            "Accepted publickey for deploy from 10.0.0.7 port 52144 ssh2: ED25519 SHA256:Qm1x"
        );
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(
            e.ts.unwrap().to_rfc3339(),
            "2024-12-04T03:04:05.123456+00:00"
        );
        assert_eq!(e.service.as_deref(), Some("sshd"));
        assert_eq!(e.host.as_deref(), Some("web-1"));
        assert_eq!(e.raw_attrs.to_map()["_PID"], "812");
        assert_eq!(e.raw_attrs.to_map()["_SYSTEMD_UNIT"], "ssh.service");
        for k in DROPPED {
            assert!(!e.raw_attrs.to_map().contains_key(*k), "{k} is dropped");
        }
        for k in ["MESSAGE", "PRIORITY", "_HOSTNAME", "SYSLOG_IDENTIFIER"] {
            assert!(!e.raw_attrs.to_map().contains_key(k), "{k} is a column");
        }
        assert_eq!(all[5].level, Some(Level::Fatal), "PRIORITY 2 (crit)");
        assert_eq!(all[6].level, Some(Level::Warn));
        assert_eq!(all[6].raw_attrs.to_map()["CODE_LINE"], "5621");
        assert_eq!(
            all[6].raw_attrs.to_map()["MESSAGE_ID"],
            "d9b373ed55a64feb8242e02dbe79a49c"
        );
    }

    /// The attrs map is built after the whole entry is read: a field given twice keeps its
    /// last value (as inserting field by field did), and the map holds every other field.
    #[test]
    fn a_repeated_field_keeps_its_last_value() {
        let e = open(
            r#"{"MESSAGE":"m","_PID":"1","CODE_FILE":"a.c","_PID":"2","__REALTIME_TIMESTAMP":"1700000000000000"}"#,
        )
        .unwrap();
        assert_eq!(e.raw_attrs.to_map()["_PID"], "2");
        assert_eq!(e.raw_attrs.to_map()["CODE_FILE"], "a.c");
        assert_eq!(e.raw_attrs.to_map().len(), 2);
        assert_eq!(e.stream.as_deref(), Some("[2]"));
    }

    #[test]
    fn the_dropped_list_and_its_match_agree() {
        for k in DROPPED {
            assert!(is_dropped(k), "{k}");
        }
        for k in ["_PID", "MESSAGE", "__CURSOR_X", "_BOOT", ""] {
            assert!(!is_dropped(k), "{k}");
        }
    }

    #[test]
    fn plain_messages_borrow_the_line_and_escaped_ones_decode() {
        let e = open(r#"{"MESSAGE":"plain","__REALTIME_TIMESTAMP":"1"}"#).unwrap();
        assert!(matches!(e.text, Cow::Borrowed("plain")));
        let e = open(r#"{"MESSAGE":"tab\there \u00e9","_PID":"7","N":5,"B":true}"#).unwrap();
        assert!(matches!(e.text, Cow::Owned(_)));
        assert_eq!(e.text, "tab\there \u{e9}");
        assert_eq!(e.raw_attrs.to_map()["_PID"], "7");
        assert_eq!(e.raw_attrs.to_map()["N"], 5);
        assert_eq!(e.raw_attrs.to_map()["B"], true);
    }

    #[test]
    fn attrs_hold_the_same_json_as_a_value_read_of_the_line() {
        for line in FIXTURE.lines() {
            let whole: Map<String, Value> = serde_json::from_str(line).unwrap();
            let e = open(line).unwrap();
            for (k, v) in &whole {
                match e.raw_attrs.to_map().get(k) {
                    // An out-of-range PRIORITY is kept as a number.
                    Some(a) if k != "PRIORITY" => assert_eq!(a, v, "{k}"),
                    Some(_) => {}
                    None => assert!(
                        is_dropped(k)
                            || ["MESSAGE", "PRIORITY", "_HOSTNAME", "SYSLOG_IDENTIFIER"]
                                .contains(&k.as_str())
                            || k == "__REALTIME_TIMESTAMP",
                        "{k} is lost"
                    ),
                }
            }
        }
    }

    #[test]
    fn byte_array_messages_are_decoded() {
        let all = entries();
        let bad = all.iter().find(|e| e.text.contains("upload of")).unwrap();
        assert_eq!(bad.text, "upload of caf\u{fffd}.txt failed: bad name");
        assert_eq!(bad.raw_attrs.to_map()[INVALID_UTF8_ATTR], true);
        assert_eq!(bad.level, Some(Level::Error));
        let esc = all.iter().find(|e| e.text.contains("ready")).unwrap();
        assert_eq!(esc.text, "\x1b[32mready\x1b[0m on :8080 \u{2713}");
        assert!(
            !esc.raw_attrs.to_map().contains_key(INVALID_UTF8_ATTR),
            "valid UTF-8"
        );
    }

    #[test]
    fn service_falls_back_to_unit_then_command() {
        let all = entries();
        let backup = all.iter().find(|e| e.text.starts_with("snapshot")).unwrap();
        assert_eq!(backup.service.as_deref(), Some("backup"));
        let tick = all.iter().find(|e| e.text == "tick").unwrap();
        assert_eq!(tick.service.as_deref(), Some("cron-helper"));
        assert_eq!(tick.level, Some(Level::Debug));
    }

    #[test]
    fn empty_messages_keep_what_tells_them_apart() {
        let empty: Vec<_> = entries()
            .into_iter()
            .filter(|e| e.text.is_empty())
            .collect();
        assert_eq!(empty.len(), 7);
        for (i, a) in empty.iter().enumerate() {
            assert!(a.raw_attrs.to_map().contains_key("__CURSOR"));
            for b in &empty[i + 1..] {
                assert_ne!(a.raw_attrs.to_map(), b.raw_attrs.to_map());
            }
        }
    }

    /// The scanner reads what serde reads: the same envelope, attrs byte for byte, and the
    /// same error (serde's: the scanner gives such lines up).
    fn same_both_ways(line: &str) {
        assert_eq!(open_with(line, true), open_with(line, false), "{line}");
    }

    #[test]
    fn the_scanner_and_serde_agree_on_the_fixtures() {
        let seq = include_str!("../../tests/fixtures/sources/journald/json-seq.txt");
        for line in FIXTURE.lines().chain(seq.lines()) {
            same_both_ways(line);
            let json = line.trim_start_matches(RS);
            let mut e = Entry::new(RawAttrs::default());
            assert!(
                scan_entry(json, &mut e).is_some(),
                "journalctl's output is scanned: {line}"
            );
            // Cut anywhere: a malformed line.
            for cut in (0..line.len())
                .step_by(7)
                .filter(|&c| line.is_char_boundary(c))
            {
                same_both_ways(&line[..cut]);
            }
        }
        for line in [
            r#"{}"#,
            r#"{"MESSAGE":"a"}  "#,
            r#"{"MESSAGE":"a"} x"#,
            "{\"MESSAGE\":\"a\"}\n",
            r#" {"MESSAGE":"a"}"#,
            r#"{"MESSAGE" : "a", "_PID":"1"}"#,
            r#"{"MESSAGE":"\ud83d\ude00 \ud800 x","_PID":"\u0031"}"#,
            r#"{"MESSAGE":"\ud83d\ude00","_PID":"1"}"#,
            r#"{"MESSAGE":"\q"}"#,
            r#"{"MESSAGE":"\u12"}"#,
            r#"{"MESSAGE":"\u00E9\u00e9\/\b\f\n\r\t\"\\"}"#,
            r#"{"MESSAGE":[104,105],"_X":[0,255,256,999],"_Y":[01],"_Z":[1000]}"#,
            r#"{"MESSAGE":[],"_X":[1,]}"#,
            r#"{"MESSAGE":[1.5]}"#,
            r#"{"MESSAGE":[-1]}"#,
            r#"{"MESSAGE":["a",[98]],"N":5,"B":true,"O":{"k":"v"},"Z":null}"#,
            r#"{"MESSAGE":"m","\u005fPID":"2","k\"q":"v","__CURSOR":"c\"","__SEQNUM":"\u00"}"#,
            r#"{"MESSAGE":"m","MESSAGE":"n","_PID":"1","_PID":"2","__REALTIME_TIMESTAMP":"1"}"#,
            r#"{"MESSAGE":"","__CURSOR":"s=1;i=2","_SOURCE_REALTIME_TIMESTAMP":"17"}"#,
            "{\"MESSAGE\":\"tab\there\"}",
            "{\"MESSAGE\":\"caf\u{e9} \u{2713}\",\"_COMM\":\"\u{7f}\"}",
            r#"{"MESSAGE":"a","_PID":"1""#,
            r#"{"MESSAGE":"a",}"#,
            r#"{"MESSAGE":"a","#,
            r#"{"MESSAGE""#,
            r#"{""#,
            r#"{"#,
            "",
        ] {
            same_both_ways(line);
        }
    }

    use proptest::strategy::Just;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn the_scanner_and_serde_agree(
            members in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "MESSAGE", "PRIORITY", "_PID", "_COMM", "_SYSTEMD_UNIT", "_LINE_BREAK",
                        "__CURSOR", "_BOOT_ID", "__REALTIME_TIMESTAMP", "_HOSTNAME",
                        "SYSLOG_IDENTIFIER", "_SOURCE_REALTIME_TIMESTAMP", "CODE_FILE", "K\\u0041",
                    ]),
                    proptest::prop_oneof![
                        6 => "\"[a-zA-Z0-9 =:._/@;-]{0,40}\"",
                        3 => "\"([a-z]|\\\\[\"\\\\/bfnrt]|\\\\u00[0-9a-f]{2}|\\\\u[1-9a-cefA-CEF][0-9a-fA-F]{3}){0,6}\"",
                        // Invalid escapes, surrogates.
                        1 => "\"([a-z]|\\\\[\"\\\\/bfnrtxu]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}){0,8}\"",
                        2 => "\\[([1-9][0-9]{0,2},){0,4}[0-9]\\]",
                        1 => "\\[([0-9]{1,4},){0,4}[0-9]{1,4}\\]",
                        1 => "(null|true|-?[0-9]{1,3}(\\.[0-9])?|\\[\\]|\\{\\})",
                    ],
                    // journalctl writes no spaces; other writers may.
                    proptest::prop_oneof![
                        28 => Just(""),
                        1 => Just(" "),
                        1 => Just("\t"),
                    ],
                ),
                0..12,
            ),
            cut in 0usize..2000,
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v, sp)| format!("\"{k}\":{sp}{v}"))
                .collect();
            let line = format!("{{{}}}", body.join(","));
            same_both_ways(&line);
            if line.is_char_boundary(cut.min(line.len())) {
                same_both_ways(&line[..cut.min(line.len())]);
            }
        }
    }

    #[test]
    fn json_seq_and_odd_values() {
        let seq = include_str!("../../tests/fixtures/sources/journald/json-seq.txt");
        let first = seq.lines().next().unwrap();
        assert!(first.starts_with(RS) && looks_like(first));
        assert!(open(first).unwrap().ts.is_some());
        let e = open(r#"{"MESSAGE":null,"PRIORITY":"9","__REALTIME_TIMESTAMP":"1"}"#).unwrap();
        assert_eq!(e.text, "");
        assert_eq!(e.raw_attrs.to_map()["MESSAGE"], Value::Null);
        assert_eq!(
            e.raw_attrs.to_map()["PRIORITY"],
            9,
            "out of range: kept, no level"
        );
        assert_eq!(e.level, None);
        let e = open(r#"{"MESSAGE":["a",[98]],"_LINE_BREAK":"line-max"}"#).unwrap();
        assert_eq!(e.text, "a\nb");
        assert!(e.partial);
        assert!(open(r#"{"msg":"x"}"#).is_err());
        assert!(open(r#"{"MESSAGE":"x"} trailing"#).is_err());
        assert!(!looks_like(r#"{"msg":"MESSAGE"}"#));
    }
}
