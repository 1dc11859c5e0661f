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

impl<'a> LogRowRef<'a> {
    /// A row of `message` at `ts` from `service`, every optional field empty and no repeat:
    /// the start of a struct update (`LogRowRef { trace_id: .., ..LogRowRef::new(..) }`).
    pub fn new(ts: DateTime<Utc>, level: Level, service: &'a str, message: &'a str) -> Self {
        LogRowRef {
            ts,
            level,
            service,
            host: None,
            message,
            trace_id: None,
            span_id: None,
            request_id: None,
            user_id: None,
            route: None,
            method: None,
            status: None,
            duration_ms: None,
            ip: None,
            user_agent: None,
            error_type: None,
            attrs: None,
            fingerprint: None,
            repeat_count: 1,
            last_seen: None,
        }
    }

    /// The row's search tokens: the words of its message (`search_tokens`), as the table's trigger would compute them.
    pub fn tokens(&self) -> Vec<i32> {
        memoised_tokens(self.message)
    }
}

/// Tokens up to this long are memoised (longer ones are hashed each time: rare in messages).
const MEMO_TOKEN_LEN: usize = 24;
/// Slots of the per-thread memo (a power of two): a log's vocabulary of frequent words fits.
const MEMO_SLOTS: usize = 4096;

/// One memoised token (lower-cased, `len` bytes of `token`; `len` 0 is an empty slot) and its
/// hash as `search_tokens` computes it.
#[derive(Clone, Copy)]
struct MemoSlot {
    len: u8,
    token: [u8; MEMO_TOKEN_LEN],
    hash: i32,
}

thread_local! {
    /// Direct-mapped: a token's slot is fixed by a fast hash of its bytes and a newcomer
    /// replaces the slot's old token, so the memo never grows and a lookup is one compare.
    static TOKEN_MEMO: std::cell::RefCell<Vec<MemoSlot>> = std::cell::RefCell::new(vec![
        MemoSlot {
            len: 0,
            token: [0; MEMO_TOKEN_LEN],
            hash: 0,
        };
        MEMO_SLOTS
    ]);
}

/// `search_tokens(text)` with each word's hash remembered per thread: the same words (service
/// names, verbs, field names) come back on most lines, and a SHA-256 per word was about a
/// tenth of a row's encoding. The hash is `search_tokens`'s, so the stored numbers are the
/// ones SQL and the filter compute, byte for byte.
fn memoised_tokens(text: &str) -> Vec<i32> {
    use std::hash::BuildHasher;
    // A lower-cased word's hash as `search_tokens` defines it (the first 4 bytes of its
    // SHA-256, big-endian), computed here so a miss allocates nothing; the tests compare the
    // two on any text.
    let hash = |word: &[u8]| {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(word);
        i32::from_be_bytes([d[0], d[1], d[2], d[3]])
    };
    let one = |run: &[u8]| hash(&run.to_ascii_lowercase());
    let mut out = Vec::new();
    TOKEN_MEMO.with_borrow_mut(|memo| {
        let mut lower = [0u8; MEMO_TOKEN_LEN];
        for run in text
            .as_bytes()
            .split(|b| !b.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
        {
            if run.len() > MEMO_TOKEN_LEN {
                out.push(one(run));
                continue;
            }
            let word = &mut lower[..run.len()];
            word.copy_from_slice(run);
            word.make_ascii_lowercase();
            let at = foldhash::fast::FixedState::with_seed(0).hash_one(&*word) as usize
                & (MEMO_SLOTS - 1);
            let slot = &mut memo[at];
            if usize::from(slot.len) == word.len() && slot.token[..word.len()] == *word {
                out.push(slot.hash);
                continue;
            }
            let hash = hash(word);
            slot.len = word.len() as u8;
            slot.token[..word.len()].copy_from_slice(word);
            slot.hash = hash;
            out.push(hash);
        }
    });
    out.sort_unstable();
    out.dedup();
    out
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

    /// A row with only `message` set, to ask its tokens.
    fn row(message: &str) -> LogRowRef<'_> {
        let epoch = DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default();
        LogRowRef::new(epoch, Level::Info, "svc", message)
    }

    #[test]
    fn memoised_tokens_are_the_search_tokens() {
        use crate::model::search_tokens::search_tokens;
        let long = format!("{} tail", "Ab1".repeat(20));
        let texts = [
            "GET /api/Users/42 took 12ms",
            "get /API/users/42 TOOK 12MS again",
            "ошибка — café !",
            "",
            long.as_str(),
            "a b c a B C 0 00 000",
        ];
        // Twice: the second pass reads every word from the memo.
        for _ in 0..2 {
            for t in texts {
                assert_eq!(row(t).tokens(), search_tokens(t), "{t:?}");
            }
        }
        // More distinct words than the memo has slots: slots are taken over, never wrong.
        for n in 0..3 * MEMO_SLOTS {
            let t = format!("w{n} W{} x{n}y", n / 2);
            assert_eq!(row(&t).tokens(), search_tokens(&t), "{t:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn memoised_tokens_match_for_any_text(t in "[a-zA-Z0-9 ./_é-]{0,80}") {
            proptest::prop_assert_eq!(row(&t).tokens(), crate::model::search_tokens::search_tokens(&t));
            proptest::prop_assert_eq!(row(&t).tokens(), crate::model::search_tokens::search_tokens(&t));
        }
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
