//! An envelope's fields kept as text until the row is written: journald's dozen fields per
//! entry went through an owned `serde_json::Map` (a key and a value allocated per field, the
//! map built, walked by redaction, serialized again, freed), most of an entry's cost. Here
//! they are two allocations: the fields' keys and plain string values back to back in one
//! buffer, and a list of them sorted by key.
//!
//! The row's attrs are then the line's own fields (a `Map`, `LogRecord::attrs`) laid over
//! these: a key in both takes the map's value. Everything that reads attrs (redaction, the
//! dedup key, the COPY writer, the repeat rows) sees exactly the object the map would hold if
//! these fields had been inserted into it where missing (`merge_into`), byte for byte.

use serde_json::{Map, Value};

/// A field's value: a string written as is between quotes, or any other JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    /// A byte range of `RawAttrs::text` holding a string that needs no escaping in JSON nor
    /// in COPY (no `"`, no `\`, no control character): its JSON text is the string quoted.
    Plain(u32, u32),
    Json(Box<Value>),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    key: (u32, u32),
    /// The key's first 8 bytes (zeros after a shorter key), big-endian: keys compare as
    /// these first, and as whole strings only when these are equal.
    prefix: u64,
    val: Val,
    /// The field's JSON member (`"key":"value"`, both plain) stands whole in the text, from
    /// the byte before the key to the byte after the value: written in one copy.
    member: bool,
}

fn prefix(key: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// A field as the COPY writer takes it (`RawAttrs::merged_members`).
pub enum Piece<'a> {
    /// `"key":"value"`, needing no escapes.
    Member(&'a str),
    Field(&'a str, Merged<'a>),
}

/// One field of a merge: the raw field, or the map's key and value.
enum Either<'a> {
    Raw(&'a Field),
    Map(&'a str, &'a Value),
}

/// Fields sorted by key (byte order, as `Map`'s keys), each key once.
#[derive(Debug, Clone, PartialEq)]
pub struct RawAttrs {
    text: String,
    fields: Vec<Field>,
    /// `fields` is sorted and without repeated keys (`finish`).
    sorted: bool,
}

/// Entries of more fields are sorted without `ORDERS`.
const MAX_ORDERED: usize = 64;
/// Slots of `ORDERS` (a power of two, at most 64).
const ORDER_SLOTS: usize = 64;

thread_local! {
    /// Orders (field indices, the first `.0` of `.1`) that sorted the fields of this thread's
    /// recent entries, direct-mapped by a hash of the entry's key prefixes in the line's order.
    static ORDERS: std::cell::RefCell<Vec<(u8, [u8; MAX_ORDERED])>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Reorders `fields` (at most `MAX_ORDERED`) so that the field at `order[k]` comes k-th, in place: each
/// cycle of the permutation is followed by swaps.
fn permute(fields: &mut [Field], order: &[u8]) {
    debug_assert!(fields.len() == order.len() && fields.len() <= MAX_ORDERED);
    let mut done = 0u64;
    for start in 0..fields.len() {
        let mut k = start;
        while done & (1 << k) == 0 {
            done |= 1 << k;
            let from = usize::from(order[k]);
            if from == start {
                break;
            }
            // Position k takes its field; the field that stood at `start` moves on to `from`.
            fields.swap(k, from);
            k = from;
        }
    }
}

/// Whether a string's JSON text is the string between quotes, which COPY's text format takes as
/// is: no byte that JSON or COPY escapes.
pub fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// One merged field: a key and its value, from the map or the raw fields.
pub enum Merged<'a> {
    Value(&'a Value),
    /// A plain string (`is_plain`).
    Plain(&'a str),
}

impl Default for RawAttrs {
    /// No fields (sorted already).
    fn default() -> Self {
        RawAttrs::with_capacity(0, 0)
    }
}

impl RawAttrs {
    /// Room for fields of about `bytes` bytes of keys and values.
    pub fn with_capacity(bytes: usize, fields: usize) -> RawAttrs {
        RawAttrs {
            text: String::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
            sorted: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    fn push_text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, self.text.len() as u32)
    }

    fn str_at(&self, (a, b): (u32, u32)) -> &str {
        &self.text[a as usize..b as usize]
    }

    fn key<'a>(&'a self, f: &'a Field) -> &'a str {
        self.str_at(f.key)
    }

    fn val<'a>(&'a self, f: &'a Field) -> Merged<'a> {
        match &f.val {
            Val::Plain(a, b) => Merged::Plain(self.str_at((*a, *b))),
            Val::Json(v) => Merged::Value(v),
        }
    }

    /// Appends a field read from the line, before `finish` (a later field of the same key
    /// replaces it then). `value` must be `is_plain` (a string borrowed from JSON text without
    /// escapes is: JSON strings cannot hold raw control characters).
    pub fn push_plain(&mut self, key: &str, value: &str) {
        debug_assert!(is_plain(value));
        let prefix = prefix(key);
        let member = is_plain(key);
        self.text.push('"');
        let key = self.push_text(key);
        self.text.push_str("\":\"");
        let (a, b) = self.push_text(value);
        self.text.push('"');
        self.fields.push(Field {
            key,
            prefix,
            val: Val::Plain(a, b),
            member,
        });
        self.sorted = false;
    }

    /// `push_plain` of a member as a line has it: `"key":"value"`, the key `key_len` bytes,
    /// both plain (`is_plain`). One copy instead of five.
    pub fn push_member(&mut self, member: &str, key_len: usize) {
        debug_assert!(member.len() >= key_len + 5);
        let start = self.text.len() as u32;
        let key = (start + 1, start + 1 + key_len as u32);
        let val = (key.1 + 3, start + member.len() as u32 - 1);
        debug_assert!(member.starts_with('"') && &member[key_len + 1..key_len + 4] == "\":\"");
        debug_assert!(
            is_plain(&member[1..=key_len]) && is_plain(&member[key_len + 4..member.len() - 1])
        );
        self.text.push_str(member);
        self.fields.push(Field {
            key,
            prefix: prefix(&member[1..=key_len]),
            val: Val::Plain(val.0, val.1),
            member: true,
        });
        self.sorted = false;
    }

    /// No fields, the room kept.
    pub fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.sorted = true;
    }

    /// Appends a field of any value, before `finish`.
    pub fn push_value(&mut self, key: &str, value: Value) {
        let prefix = prefix(key);
        let key = self.push_text(key);
        let val = self.val_of(value);
        self.fields.push(Field {
            key,
            prefix,
            val,
            member: false,
        });
        self.sorted = false;
    }

    fn val_of(&mut self, value: Value) -> Val {
        match value {
            Value::String(s) if is_plain(&s) => {
                let (a, b) = self.push_text(&s);
                Val::Plain(a, b)
            }
            v => Val::Json(Box::new(v)),
        }
    }

    /// Sorts the fields by key; of a key given twice, the last value stays (as inserting them
    /// into a map one by one does).
    pub fn finish(&mut self) {
        if self.sorted {
            return;
        }
        let n = self.fields.len();
        let text = &self.text;
        let key = |f: &Field| &text[f.key.0 as usize..f.key.1 as usize];
        let cmp = |a: &Field, b: &Field| a.prefix.cmp(&b.prefix).then_with(|| key(a).cmp(key(b)));
        let unique = if n <= MAX_ORDERED {
            // The entries of one source come with their fields in one of a few orders: the
            // order that sorted the last entry of this sequence of keys (by their prefixes) is
            // tried first, n - 1 compares where a sort makes several times as many. It fits
            // when it puts the keys in strictly increasing order: then no key is repeated and
            // it is the order the sort gives.
            const K: u64 = 0x9e37_79b9_7f4a_7c15;
            let h = self
                .fields
                .iter()
                .fold(n as u64, |h, f| (h ^ f.prefix).wrapping_mul(K));
            let fields = &mut self.fields;
            ORDERS.with_borrow_mut(|slots| {
                if slots.is_empty() {
                    slots.resize(ORDER_SLOTS, (0, [0; MAX_ORDERED]));
                }
                let (len, order) = &mut slots[(h >> 58) as usize % ORDER_SLOTS];
                let order = &mut order[..n];
                let fits = usize::from(*len) == n
                    && order.windows(2).all(|w| {
                        cmp(&fields[usize::from(w[0])], &fields[usize::from(w[1])]).is_lt()
                    });
                if !fits {
                    // Stable: fields of one key stay in the line's order, and the last is kept.
                    order.iter_mut().enumerate().for_each(|(i, o)| *o = i as u8);
                    order.sort_by(|&a, &b| cmp(&fields[usize::from(a)], &fields[usize::from(b)]));
                    *len = n as u8;
                }
                permute(fields, order);
                fits
            })
        } else {
            self.fields.sort_by(cmp);
            false
        };
        let same = |a: &Field, b: &Field| a.prefix == b.prefix && key(a) == key(b);
        if !unique && (1..n).any(|i| same(&self.fields[i - 1], &self.fields[i])) {
            let mut kept: Vec<Field> = Vec::with_capacity(n);
            for f in std::mem::take(&mut self.fields) {
                match kept.last_mut() {
                    Some(last) if same(last, &f) => *last = f,
                    _ => kept.push(f),
                }
            }
            self.fields = kept;
        }
        self.sorted = true;
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        debug_assert!(self.sorted);
        self.fields.binary_search_by(|f| self.key(f).cmp(key))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// A field's value when it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        let i = self.find(key).ok()?;
        match self.val(&self.fields[i]) {
            Merged::Plain(s) => Some(s),
            Merged::Value(v) => v.as_str(),
        }
    }

    /// A field's value as JSON.
    pub fn get(&self, key: &str) -> Option<Value> {
        let i = self.find(key).ok()?;
        Some(match self.val(&self.fields[i]) {
            Merged::Plain(s) => Value::String(s.to_string()),
            Merged::Value(v) => v.clone(),
        })
    }

    /// Sets a field (after `finish`), replacing its value if it has one.
    pub fn insert(&mut self, key: &str, value: Value) {
        let val = self.val_of(value);
        match self.find(key) {
            Ok(i) => {
                self.fields[i].val = val;
                self.fields[i].member = false;
            }
            Err(i) => {
                let prefix = prefix(key);
                let key = self.push_text(key);
                self.fields.insert(
                    i,
                    Field {
                        key,
                        prefix,
                        val,
                        member: false,
                    },
                );
            }
        }
    }

    /// Redacts the values as `Redactor::object` does a map's: a secret key's value (unless
    /// null) becomes the mask, every other value is redacted as a JSON value.
    pub fn redact(&mut self, r: &super::redact::Redactor) {
        let mut changed: Vec<(usize, Value)> = Vec::new();
        let text = &self.text;
        let fields = &mut self.fields;
        r.with_members(|members| {
            for (i, f) in fields.iter_mut().enumerate() {
                let key = &text[f.key.0 as usize..f.key.1 as usize];
                if let (Val::Plain(_, b), true) = (&f.val, f.member) {
                    // Nearly every field of a journald entry: asked as one piece.
                    let member = &text[f.key.0 as usize - 1..*b as usize + 1];
                    if members.unchanged(member, key.len()) {
                        continue;
                    }
                }
                match &mut f.val {
                    Val::Json(v) if v.is_null() => {}
                    _ if r.is_secret_key(key) => {
                        changed.push((i, Value::String(super::redact::MASK.into())))
                    }
                    Val::Plain(a, b) => {
                        if let Some(s) = r.json_str(&text[*a as usize..*b as usize]) {
                            changed.push((i, Value::String(s)));
                        }
                    }
                    Val::Json(v) => r.json(v),
                }
            }
        });
        for (i, v) in changed {
            let val = self.val_of(v);
            self.fields[i].val = val;
            self.fields[i].member = false;
        }
    }

    /// Puts the fields `map` lacks into it (the map's own values win).
    pub fn merge_into(&self, map: &mut Map<String, Value>) {
        for f in &self.fields {
            let k = self.key(f);
            if !map.contains_key(k) {
                let v = match self.val(f) {
                    Merged::Plain(s) => Value::String(s.to_string()),
                    Merged::Value(v) => v.clone(),
                };
                map.insert(k.to_string(), v);
            }
        }
    }

    /// The object `map` laid over these fields, field by field in key order, to `f`; returns
    /// the number of fields. `map` None: these fields alone.
    pub fn merged<'a>(
        &'a self,
        map: Option<&'a Map<String, Value>>,
        mut f: impl FnMut(&'a str, Merged<'a>),
    ) -> usize {
        let mut n = 0;
        self.merge(map, |e| {
            n += 1;
            match e {
                Either::Raw(m) => f(self.key(m), self.val(m)),
                Either::Map(k, v) => f(k, Merged::Value(v)),
            }
        });
        n
    }

    /// `merged` for the COPY writer: a field standing whole in the text comes as its member
    /// (`"key":"value"`, needing no escapes), any other as its key and value.
    pub fn merged_members<'a>(
        &'a self,
        map: Option<&'a Map<String, Value>>,
        mut f: impl FnMut(Piece<'a>),
    ) {
        self.merge(map, |e| match e {
            Either::Raw(m) => match m.val {
                Val::Plain(_, b) if m.member => f(Piece::Member(
                    &self.text[m.key.0 as usize - 1..b as usize + 1],
                )),
                _ => f(Piece::Field(self.key(m), self.val(m))),
            },
            Either::Map(k, v) => f(Piece::Field(k, Merged::Value(v))),
        })
    }

    /// The merge of `map` over the fields, in key order.
    fn merge<'a>(&'a self, map: Option<&'a Map<String, Value>>, mut f: impl FnMut(Either<'a>)) {
        let Some(map) = map.filter(|m| !m.is_empty()) else {
            self.fields.iter().for_each(|m| f(Either::Raw(m)));
            return;
        };
        let mut mine = self.fields.iter().peekable();
        let mut theirs = map.iter().peekable();
        loop {
            let take_mine = match (mine.peek(), theirs.peek()) {
                (None, None) => return,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(m), Some((k, _))) => match self.key(m).cmp(k.as_str()) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        // The map's value wins.
                        mine.next();
                        false
                    }
                },
            };
            if take_mine {
                if let Some(m) = mine.next() {
                    f(Either::Raw(m));
                }
            } else if let Some((k, v)) = theirs.next() {
                f(Either::Map(k, v));
            }
        }
    }

    /// The fields as a map (tests, and the rare paths that need the whole object).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        self.merge_into(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawAttrs {
        let mut r = RawAttrs::with_capacity(64, 4);
        r.push_plain("_PID", "1");
        r.push_value("N", Value::from(5));
        r.push_plain("CODE_FILE", "a.c");
        r.push_plain("_PID", "2");
        r.push_value("E", Value::from("tab\there"));
        r.finish();
        r
    }

    #[test]
    fn an_envelope_without_fields_answers_lookups() {
        let r = RawAttrs::default();
        assert!(r.is_empty() && !r.contains_key("k") && r.get_str("k").is_none());
    }

    #[test]
    fn the_last_of_a_repeated_key_stays_and_keys_are_sorted() {
        let r = sample();
        let m = r.to_map();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"CODE_FILE":"a.c","E":"tab\there","N":5,"_PID":"2"}"#
        );
        assert_eq!(r.len(), 4);
        assert_eq!(r.get_str("_PID"), Some("2"));
        assert_eq!(r.get_str("N"), None);
        assert_eq!(r.get("N"), Some(Value::from(5)));
    }

    #[test]
    fn the_map_wins_and_the_merge_is_in_key_order() {
        let r = sample();
        let mut map = Map::new();
        map.insert("_PID".into(), Value::from(9));
        map.insert("A".into(), Value::Null);
        map.insert("zz".into(), Value::from("z"));
        let mut seen = Vec::new();
        let n = r.merged(Some(&map), |k, v| {
            let v = match v {
                Merged::Plain(s) => Value::from(s),
                Merged::Value(v) => v.clone(),
            };
            seen.push((k.to_string(), v));
        });
        let mut want = map.clone();
        r.merge_into(&mut want);
        assert_eq!(n, want.len());
        assert_eq!(seen, want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn inserted_values_replace_and_plain_is_exact() {
        let mut r = sample();
        r.insert("_PID", Value::from("x\"y"));
        r.insert("B", Value::Bool(true));
        assert_eq!(r.get("_PID"), Some(Value::from("x\"y")));
        assert!(r.contains_key("B") && !r.contains_key("C"));
        for s in ["plain", "é ✓", "a\u{7f}"] {
            assert!(is_plain(s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for s in ["a\"", "a\\", "a\tb", "\u{1b}"] {
            assert!(!is_plain(s));
        }
    }

    proptest::proptest! {
        /// Entries one after another on one thread, most with the fields of the one before
        /// in the same order (the order that sorted it is tried first), some with repeated
        /// keys or other keys: each comes out sorted, each key once with its last value.
        #[test]
        fn finish_sorts_whatever_order_came_before(
            entries in proptest::collection::vec(
                (
                    proptest::collection::vec((0usize..12, 0u8..4), 0..20),
                    0usize..4,
                ),
                1..12,
            ),
        ) {
            const KEYS: [&str; 12] = [
                "_PID", "_UID", "_SYSTEMD_UNIT", "_SYSTEMD_SLICE", "_SYSTEMD_CGROUP", "_COMM",
                "A", "AB", "_SYSTEMD", "_SYSTEMD_", "CODE_FILE", "é",
            ];
            let mut last: Vec<(usize, u8)> = Vec::new();
            for (fields, repeat) in entries {
                // Half of the entries repeat the one before (another value for each field).
                let fields = if repeat < 2 && !last.is_empty() {
                    last.iter().map(|&(k, v)| (k, v + 1)).collect()
                } else {
                    fields
                };
                let mut r = RawAttrs::default();
                let mut want: std::collections::BTreeMap<&str, String> = Default::default();
                for &(k, v) in &fields {
                    r.push_plain(KEYS[k], &v.to_string());
                    want.insert(KEYS[k], v.to_string());
                }
                r.finish();
                let got: Vec<(&str, String)> = r
                    .fields
                    .iter()
                    .map(|f| match r.val(f) {
                        Merged::Plain(s) => (r.key(f), s.to_string()),
                        Merged::Value(v) => (r.key(f), v.to_string()),
                    })
                    .collect();
                proptest::prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
                last = fields;
            }
        }
    }

    mod against_the_map {
        //! journald entries read with their fields kept as text give the rows (COPY bytes and
        //! dedup keys) the same entries give with their fields in a map, as they were before.
        use super::*;
        use crate::config::{IngestConfig, RedactRule};
        use crate::ingest::envelope::{self, Envelope};
        use crate::ingest::fields::LineContext;
        use crate::ingest::record::LogRecord;
        use crate::ingest::redact::Redactor;
        use crate::ingest::{dedup, journald, Format};
        use chrono::{DateTime, Utc};
        use proptest::prelude::*;

        /// A field's JSON text as journalctl (or a hand-written line) may give it.
        fn value() -> impl Strategy<Value = String> {
            let json = |v: Value| serde_json::to_string(&v).unwrap_or_default();
            prop_oneof![
                4 => "[a-zA-Z0-9 =:._/@-]{0,24}".prop_map(move |t| json(Value::from(t))),
                2 => "[a-z\"\\\\\t\n\u{1b}\u{7f}é✓ ]{0,10}".prop_map(move |t| json(Value::from(t))),
                // Escapes that decode to plain text.
                1 => "[a-z]{0,6}".prop_map(|t| format!("\"\\u00e9{t}\\/x\"")),
                1 => prop::sample::select(vec![
                    "\"password=hunter2 ok\"",
                    "\"card 4111 1111 1111 1111\"",
                    "\"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl\"",
                    "\"ACME-1234\"",
                    "4111111111111111",
                    "null",
                    "7",
                    "-2.5",
                    "true",
                    "[104,105]",
                    "[255,104]",
                    "[\"a\",[98]]",
                    "{\"k\":\"password=x\"}",
                ])
                .prop_map(str::to_string),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "_PID",
                "_UID",
                "_COMM",
                "_SYSTEMD_UNIT",
                "_CMDLINE",
                "CODE_FILE",
                "MESSAGE_ID",
                "PASSWORD",
                "API_KEY",
                "_LINE_BREAK",
                "PRIORITY",
                "SYSLOG_IDENTIFIER",
                "_HOSTNAME",
                "__CURSOR",
                "_BOOT_ID",
                "order_id",
                "msg",
                "opsdash.invalid_utf8",
                // An escaped key: `_PID` again.
                "\\u005fPID",
                "k\\\"q",
            ])
            .prop_map(str::to_string)
        }

        /// The text inside: plain, JSON sharing keys with the journal's fields, logfmt.
        fn message() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9 =:.]{0,30}",
                Just(r#"{"level":"warn","msg":"m","_PID":5,"password":"p","order_id":17}"#.into()),
                Just(r#"{"msg":"n","attrs":3}"#.into()),
                Just("level=error msg=\"x y\" _COMM=other token=abc".into()),
                Just(String::new()),
            ]
        }

        fn entry() -> impl Strategy<Value = String> {
            (
                prop::collection::vec((key(), value(), prop::sample::select(vec!["", " "])), 0..14),
                prop::option::weighted(0.9, message()),
                prop::option::weighted(0.9, 0i64..2_000_000_000_000_000),
            )
                .prop_map(|(fields, msg, ts)| {
                    let mut parts: Vec<String> =
                        // journalctl writes no spaces; a line with some is read the same.
                        fields.iter().map(|(k, v, sp)| format!("\"{k}\"{sp}:{sp}{v}")).collect();
                    if let Some(m) = msg {
                        let m = serde_json::to_string(&m).unwrap_or_default();
                        parts.insert(parts.len() / 2, format!("\"MESSAGE\":{m}"));
                    }
                    if let Some(t) = ts {
                        parts.push(format!("\"__REALTIME_TIMESTAMP\":\"{t}\""));
                    }
                    format!("{{{}}}", parts.join(","))
                })
        }

        /// What the pipeline does to a row before writing it (`add_log`), then its COPY bytes
        /// and dedup key.
        fn row_bytes(mut log: LogRecord, r: &Redactor) -> (Vec<u8>, Vec<u8>) {
            r.string(&mut log.message);
            if let Some(a) = &mut log.attrs {
                r.json(a);
            }
            if let Some(raw) = &mut log.env_attrs {
                raw.redact(r);
            }
            let mut key = Vec::new();
            dedup::event_key(&mut key, &log, None);
            let mut buf = crate::ingest::log_batch::LogBuf::default();
            buf.push_record(&log);
            let mut repeat = log.clone();
            repeat.materialize_attrs();
            let mut again = Vec::new();
            dedup::event_key(&mut again, &repeat, None);
            assert_eq!(again, key, "the materialized row has the same key");
            (buf.copy().as_bytes().to_vec(), key)
        }

        fn read(env: Envelope) -> Option<LogRecord> {
            let ctx = LineContext {
                service: "svc",
                now: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
                level: None,
                zone: &crate::ingest::timestamp::UTC,
            };
            envelope::read(Format::Journald, env, &ctx).ok()?.log
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn rows_are_byte_identical(line in entry(), rule in any::<bool>()) {
                let mut cfg = IngestConfig::default();
                if rule {
                    cfg.redact.push(RedactRule {
                        name: "acme".into(),
                        pattern: "ACME-[0-9]{4}|sys".into(),
                        replacement: "[ACME]".into(),
                    });
                }
                let r = Redactor::new(&cfg).unwrap();
                let Ok(env) = journald::open(&line) else {
                    return Ok(());
                };
                // The fields as the map the entry used to be read into.
                let mut old = env.clone();
                prop_assert!(old.attrs.is_empty());
                old.attrs = std::mem::take(&mut old.raw_attrs).to_map();
                let whole: Map<String, Value> = serde_json::from_str(&line).unwrap();
                for (k, v) in &old.attrs {
                    match whole.get(k) {
                        Some(w) if !["PRIORITY", "MESSAGE", "opsdash.invalid_utf8"].contains(&k.as_str()) => {
                            prop_assert_eq!(w, v, "{}", k)
                        }
                        _ => {}
                    }
                }
                let (new, old) = (read(env), read(old));
                prop_assert_eq!(new.is_some(), old.is_some());
                if let (Some(new), Some(old)) = (new, old) {
                    prop_assert!(old.env_attrs.is_none());
                    prop_assert_eq!(
                        new.merged_attrs().map(|a| a.into_owned()),
                        old.attrs.clone()
                    );
                    let (a, b) = (row_bytes(new, &r), row_bytes(old, &r));
                    prop_assert_eq!(
                        String::from_utf8_lossy(&a.0),
                        String::from_utf8_lossy(&b.0)
                    );
                    prop_assert_eq!(a.1, b.1);
                }
            }
        }
    }
}
