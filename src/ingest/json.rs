//! JSON lines from structured loggers. The line is read field by field without building a
//! `serde_json::Value` for the whole object: strings without escapes are borrowed from the input,
//! and only nested objects (kept whole in attrs) allocate a tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::fields::{self, LineContext, Val};
use super::record::Parsed;

/// An object key, borrowed from the line when it has no escapes.
pub(super) struct Key<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
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
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValVisitor;
        impl<'de> Visitor<'de> for ValVisitor {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
                Ok(Val::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val<'de>, E> {
                Ok(Val::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val<'de>, E> {
                Ok(Val::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<'de>, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Val::Nested)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Val<'de>, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Val::Nested)
            }
        }
        d.deserialize_any(ValVisitor)
    }
}

/// The top-level object's fields, in order.
struct Fields<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some((k, v)) = map.next_entry::<Key<'de>, Val<'de>>()? {
                    out.push((k.0, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

/// serde_json's message without the "at line 1 column N" a one-line document does not need.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => &msg,
    };
    format!("invalid JSON: {msg} at column {}", e.column())
}

/// Parses one JSON line (an object) into its records.
pub fn parse(line: &str, ctx: &LineContext) -> Result<Parsed, String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let fields = Fields::deserialize(&mut de).map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    if fields.0.iter().any(|(k, _)| k == "error_severity") {
        // PostgreSQL's jsonlog.
        return super::pglog::from_json_fields(fields.0, ctx);
    }
    let mut parsed = fields::build(fields.0, ctx)?;
    parsed.format = "json";
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use chrono::{DateTime, Utc};

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    #[test]
    fn pino_line() {
        let line = r#"{"level":50,"time":1700000000123,"pid":7,"hostname":"h1","name":"api","msg":"db \"down\"","err":{"type":"Error","message":"x","stack":"s"}}"#;
        let log = parse(line, &ctx()).unwrap().log.unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.service, "api");
        assert_eq!(log.host.as_deref(), Some("h1"));
        assert_eq!(log.message, "db \"down\"");
        assert_eq!(log.error_type.as_deref(), Some("Error"));
        assert_eq!(log.ts.timestamp_millis(), 1_700_000_000_123);
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["pid"], Value::from(7));
        assert_eq!(attrs["err"]["stack"], Value::from("s"));
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse("{\"a\":", &ctx()).unwrap_err();
        assert!(e.starts_with("invalid JSON: "), "{e}");
        assert!(e.contains("column"), "{e}");
        let e = parse("[1,2]", &ctx()).unwrap_err();
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = parse("{} x", &ctx()).unwrap_err();
        assert!(e.contains("trailing"), "{e}");
    }
}
