//! A line's envelope: the outer format some logs arrive in (journald's JSON export, a container
//! runtime's json-file or CRI line, a syslog header) around the text the program wrote. The
//! envelope gives the event's time, host, service, stream and level; the text inside is then
//! read by the same detector as any bare line (JSON, logfmt, access log, plain text), so a
//! service that logs JSON under systemd or in a container is read as JSON. Multi-line joining
//! works on the text inside, stream by stream.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::detect::{parse_line, Format};
use super::fields::LineContext;
use super::raw_attrs::RawAttrs;
use super::record::Parsed;
use super::syslog::Clock;
use super::{container, journald, syslog};
use crate::model::Level;

/// What the envelope of one line says, and the text inside it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Envelope<'a> {
    /// The envelope's format (`journald`, `docker`, `cri`, `syslog`...); empty for a bare line.
    pub format: &'static str,
    /// The text the program wrote (without the envelope's trailing newline).
    pub text: Cow<'a, str>,
    pub ts: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub host: Option<String>,
    /// The envelope's other fields (pid, unit, stream, facility...): kept in the row's attrs
    /// under what the text's own fields do not already use.
    pub attrs: Map<String, Value>,
    /// More such fields, kept as the line's text (journald's): `attrs` and the text's own
    /// fields win over them.
    pub raw_attrs: RawAttrs,
    /// Lines of different streams never join (a container's stdout and stderr, two programs
    /// in one syslog file).
    pub stream: Option<String>,
    /// The text continues in the stream's next line (CRI `P`, a Docker line without its
    /// newline).
    pub partial: bool,
}

impl<'a> Envelope<'a> {
    /// A line without an envelope: the text is the whole line.
    pub fn bare(text: &'a str) -> Envelope<'a> {
        Envelope {
            text: Cow::Borrowed(text),
            ..Envelope::default()
        }
    }

    pub fn into_owned(self) -> Envelope<'static> {
        Envelope {
            format: self.format,
            text: Cow::Owned(self.text.into_owned()),
            ts: self.ts,
            level: self.level,
            service: self.service,
            host: self.host,
            attrs: self.attrs,
            raw_attrs: self.raw_attrs,
            stream: self.stream,
            partial: self.partial,
        }
    }
}

/// Opens the envelope of one line: with `auto` the line's own shape decides (a line that only
/// looks like an envelope is a bare line); an envelope format given by the user rejects a line
/// without that envelope; a format without an envelope gives the bare line. `clock` reads
/// syslog times that carry no year or zone.
pub fn open<'a>(format: Format, line: &'a str, clock: &Clock) -> Result<Envelope<'a>, String> {
    match format {
        Format::Journald => journald::open(line),
        Format::Docker => container::open_docker(line),
        Format::Cri => container::open_cri(line),
        Format::Syslog => syslog::open(line, clock),
        Format::Auto => Ok(sniff(line, clock).unwrap_or_else(|| Envelope::bare(line))),
        _ => Ok(Envelope::bare(line)),
    }
}

/// The envelope `auto` finds by the line's first bytes, then by parsing it.
fn sniff<'a>(line: &'a str, clock: &Clock) -> Option<Envelope<'a>> {
    match line.as_bytes().first()? {
        b'{' if container::looks_like_docker(line) => container::open_docker(line).ok(),
        b'{' | 0x1e if journald::looks_like(line) => journald::open(line).ok(),
        b'0'..=b'9' if container::looks_like_cri(line) => container::open_cri(line).ok(),
        b'{' => None,
        _ if syslog::looks_like(line) => syslog::open(line, clock).ok(),
        _ => None,
    }
}

/// The format the text inside an envelope is read with: the given one for bare formats,
/// detection per line inside an envelope.
fn inner(format: Format) -> Format {
    match format {
        Format::Journald | Format::Docker | Format::Cri | Format::Syslog => Format::Auto,
        f => f,
    }
}

/// Reads the text inside `env` and lays the envelope's fields under what the text says itself
/// (the text's own time, level, service and host win; the envelope fills what it lacks).
pub fn read(format: Format, mut env: Envelope, ctx: &LineContext) -> Result<Parsed, String> {
    let text = std::mem::take(&mut env.text);
    read_text(format, env, &text, ctx)
}

/// `read` with the text taken out of its envelope (`env.text` is not read): the caller keeps
/// the text's buffer for the next line.
pub fn read_text(
    format: Format,
    env: Envelope,
    text: &str,
    ctx: &LineContext,
) -> Result<Parsed, String> {
    let inner_ctx = LineContext {
        service: env.service.as_deref().unwrap_or(ctx.service),
        now: env.ts.unwrap_or(ctx.now),
        level: env.level.or(ctx.level),
        zone: ctx.zone,
    };
    let mut parsed = parse_line(inner(format), text, &inner_ctx)?;
    if !env.format.is_empty() {
        parsed.format = env.format;
    }
    if let Some(log) = &mut parsed.log {
        if log.host.is_none() {
            log.host = env.host.clone();
        }
        if !env.attrs.is_empty() {
            let attrs = log.attrs.get_or_insert_with(|| Value::Object(Map::new()));
            if let Some(map) = attrs.as_object_mut() {
                if map.len() < env.attrs.len() {
                    // The envelope's map is the bigger one (journald's dozen fields): the
                    // text's few fields go into it rather than the other way round.
                    let own = std::mem::replace(map, env.attrs);
                    for (k, v) in own {
                        map.insert(k, v);
                    }
                } else {
                    for (k, v) in env.attrs {
                        map.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    if let Some(log) = &mut parsed.log {
        // The raw fields go under the map (text and `attrs` win, see `LogRecord::env_attrs`),
        // unless the text's attrs are not an object (then the envelope's fields were dropped
        // above too).
        if !env.raw_attrs.is_empty() && log.attrs.as_ref().is_none_or(Value::is_object) {
            log.env_attrs = Some(env.raw_attrs);
        }
    }
    if let Some(audit) = &mut parsed.audit {
        if audit.host.is_none() {
            audit.host = env.host;
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_line_reads_as_before() {
        let ctx = LineContext {
            service: "svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        };
        let line = r#"{"level":"warn","msg":"slow","host":"h1"}"#;
        let clock = Clock {
            now: ctx.now,
            zone: crate::ingest::timestamp::Zone::Utc,
        };
        let env = open(Format::Auto, line, &clock).unwrap();
        let p = read(Format::Auto, env, &ctx).unwrap();
        assert_eq!(p, parse_line(Format::Auto, line, &ctx).unwrap());
        assert_eq!(p.format, "json");
    }

    #[test]
    fn the_envelope_fills_what_the_text_lacks() {
        let ctx = LineContext {
            service: "svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        };
        let mut env = Envelope::bare(r#"{"msg":"hi","pid":9}"#);
        env.format = "test";
        env.ts = DateTime::<Utc>::from_timestamp(1_700_000_000, 0);
        env.level = Some(Level::Error);
        env.host = Some("box".into());
        env.service = Some("unit".into());
        env.attrs.insert("pid".into(), Value::from(1));
        env.attrs.insert("unit".into(), Value::from("u.service"));
        let p = read(Format::Auto, env, &ctx).unwrap();
        let log = p.log.unwrap();
        assert_eq!(p.format, "test");
        assert_eq!(log.ts.timestamp(), 1_700_000_000);
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.service, "unit");
        assert_eq!(log.host.as_deref(), Some("box"));
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["pid"], Value::from(9), "the text's own field wins");
        assert_eq!(attrs["unit"], Value::from("u.service"));
    }
}
