//! The log row's one column set (issue 16 item 5): the columns of `opsdash.log_event` that the
//! ingest writer and the demo write (`LOG_COPY_COLUMNS`, through one encoder,
//! `ingest::writer::encode_log_row`), that export writes out and that the Logs queries read
//! (`LOG_COLUMNS`), and the borrowed row the encoder takes. A column added here reaches every
//! one of them; the level is a `Level` everywhere (stored as a smallint).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Level;

/// What a log row's COPY writes, in order: the exported columns, then the time of the latest
/// repeat folded into the row and the row's search tokens (computed in Rust, so the server
/// never tokenizes a row the writer or the demo wrote).
pub const LOG_COPY_COLUMNS: &[&str] = &[
    "ts",
    "level",
    "service",
    "host",
    "message",
    "trace_id",
    "span_id",
    "request_id",
    "user_id",
    "route",
    "method",
    "status",
    "duration_ms",
    "ip",
    "user_agent",
    "error_type",
    "attrs",
    "fingerprint",
    "repeat_count",
    "last_seen",
    "search_tokens",
];

/// The log row's exported columns (what export writes after the id, what a Logs line holds):
/// the COPY's columns less the last repeat's time and the tokens.
pub const LOG_COLUMNS: &[&str] = LOG_COPY_COLUMNS.split_at(LOG_COPY_COLUMNS.len() - 2).0;

/// The select list of a whole Logs line: the id, the writing transaction as a bigint under the
/// column's own name, then `LOG_COLUMNS` in order (`query::logs::LogLine` decodes it by
/// position). Displayed where SQL is built: `format!("SELECT {LINE_COLUMNS} FROM ...")`.
pub struct LineColumns;

pub const LINE_COLUMNS: LineColumns = LineColumns;

impl std::fmt::Display for LineColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("id, tx::text::bigint AS tx")?;
        for c in LOG_COLUMNS {
            write!(f, ", {c}")?;
        }
        Ok(())
    }
}

/// One log row as it is written, borrowed from whoever built it (an ingested `LogRecord`, a
/// generated demo line). Its strings and attrs hold no NUL (PostgreSQL text cannot): the
/// ingest pipeline removes them, the demo never makes one.
#[derive(Debug, Clone, Copy)]
pub struct LogRowRef<'a> {
    pub ts: DateTime<Utc>,
    pub level: Level,
    pub service: &'a str,
    pub host: Option<&'a str>,
    pub message: &'a str,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub route: Option<&'a str>,
    pub method: Option<&'a str>,
    pub status: Option<i16>,
    pub duration_ms: Option<f64>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub error_type: Option<&'a str>,
    pub attrs: Option<&'a Value>,
    pub fingerprint: Option<&'a str>,
    pub repeat_count: i32,
    pub last_seen: Option<DateTime<Utc>>,
}

impl LogRowRef<'_> {
    /// The row's search tokens: the words of its message (`search_tokens`), as the table's trigger would compute them.
    pub fn tokens(&self) -> Vec<i32> {
        super::search_tokens::search_tokens(self.message)
    }
}

/// A level travels as its stored number (a Logs line serialized for a test or a tool reads the
/// same as the column).
impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i16(self.as_i16())
    }
}

impl<'de> serde::Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Level::from_i16(i16::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_select_list_is_the_id_the_transaction_and_the_exported_columns() {
        let s = LINE_COLUMNS.to_string();
        let cols: Vec<&str> = s.split(", ").collect();
        assert_eq!(cols[..2], ["id", "tx::text::bigint AS tx"]);
        assert_eq!(&cols[2..], LOG_COLUMNS);
        assert_eq!(LOG_COLUMNS.last(), Some(&"repeat_count"));
        assert_eq!(LOG_COPY_COLUMNS.len(), LOG_COLUMNS.len() + 2);
    }

    #[test]
    fn levels_serialize_as_their_stored_number() {
        for l in Level::ALL {
            let v = serde_json::to_value(l).unwrap_or_default();
            assert_eq!(v, serde_json::json!(l.as_i16()));
            assert_eq!(serde_json::from_value::<Level>(v).ok(), Some(l));
        }
    }
}
