//! De-duplication window: events identical in everything but their timestamp (message, level,
//! service, host, every id, every field and attribute, and for a request-like line every field
//! of its request row) within the window become one stored row whose `repeat_count` says how
//! many arrived, `ts` the first time and `last_seen` the latest. A repeat of a row that is still
//! in the batch being built bumps its count in memory; a repeat of a row already written is
//! remembered and applied by one UPDATE with the next batch.
//!
//! An event is identified by its canonical key (`event_key`): every field in a fixed order,
//! length-prefixed, attributes as sorted key/value pairs. The table hashes the key and compares
//! the whole key on a hash hit, so two different events are never folded, whatever the hash.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::raw_attrs::{Merged, RawAttrs};
use super::record::{LogRecord, RequestRecord};

/// Where the row that absorbs a repeat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No such event within the window: store a new row.
    New,
    /// Fold into the row at this index of the batch being built.
    InBatch(usize),
    /// Fold into a row already sent with batch `seq` (at `index` in it), whose ts is `ts`.
    Sent {
        seq: u64,
        index: usize,
        ts: DateTime<Utc>,
    },
}

struct Entry {
    /// Arrival time of the event that opened the window.
    first_ts: DateTime<Utc>,
    /// The stored row's `ts` (the earliest time folded into it while it was in its batch).
    row_ts: DateTime<Utc>,
    seq: u64,
    index: usize,
}

/// Entries and key bytes kept at most; beyond either the table is emptied (dedup is then
/// best-effort for very high-cardinality streams, which rarely repeat anyway). The bytes bound
/// the memory: keys hold every field of an event.
const MAX_ENTRIES: usize = 200_000;
const MAX_KEY_BYTES: usize = 64 << 20;

pub struct Dedup {
    window_us: i64,
    /// foldhash: several times faster than SipHash on keys of a few hundred bytes, still
    /// seeded per table; every hit is confirmed by comparing the whole key.
    entries: HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>,
    key_bytes: usize,
    newest: Option<DateTime<Utc>>,
    /// `newest` when the table was last pruned (see [`Dedup::prune`]).
    pruned_at: Option<DateTime<Utc>>,
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    // Lines are at most `reader::MAX_LINE` (1 MiB): a u32 length cannot wrap.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, b's', s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.push(b'-'),
    }
}

fn put_num(out: &mut Vec<u8>, tag: u8, n: Option<u64>) {
    match n {
        Some(n) => {
            out.push(tag);
            out.extend_from_slice(&n.to_le_bytes());
        }
        None => out.push(b'-'),
    }
}

/// A JSON value with object keys sorted, whatever order the line had them in.
fn put_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            use std::io::Write;
            // A number's text has no ';': it ends the value without a length.
            out.push(b'#');
            let _ = write!(out, "{n};");
        }
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            put_num(out, b'[', Some(items.len() as u64));
            items.iter().for_each(|i| put_json(out, i));
        }
        Value::Object(map) => {
            put_num(out, b'{', Some(map.len() as u64));
            // serde_json's map is usually sorted already (a BTreeMap unless `preserve_order`).
            let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
            if sorted {
                for (k, v) in map {
                    put_str(out, k);
                    put_json(out, v);
                }
            } else {
                let mut keys: Vec<(&String, &Value)> = map.iter().collect();
                keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (k, v) in keys {
                    put_str(out, k);
                    put_json(out, v);
                }
            }
        }
    }
}

/// `put_json` of the object `map` laid over `raw` (see `RawAttrs::merged`).
fn put_merged(out: &mut Vec<u8>, map: Option<&serde_json::Map<String, Value>>, raw: &RawAttrs) {
    let n = raw.merged(map, |_, _| {});
    put_num(out, b'{', Some(n as u64));
    raw.merged(map, |k, v| {
        put_str(out, k);
        match v {
            Merged::Plain(s) => put_str(out, s),
            Merged::Value(v) => put_json(out, v),
        }
    });
}

/// Appends the canonical key of an event to `out`: every field of the log row but its time
/// (and the row's own bookkeeping: repeat count, last time), then every field of the request
/// row but its time when the line is request-like.
pub fn event_key(out: &mut Vec<u8>, log: &LogRecord, req: Option<&RequestRecord>) {
    put_num(out, b'l', Some(log.level.as_i16() as u64));
    put_str(out, &log.service);
    put_opt(out, log.host.as_deref());
    put_str(out, &log.message);
    put_opt(out, log.trace_id.as_deref());
    put_opt(out, log.span_id.as_deref());
    put_opt(out, log.request_id.as_deref());
    put_opt(out, log.user_id.as_deref());
    put_opt(out, log.route.as_deref());
    put_opt(out, log.method.as_deref());
    put_num(out, b'i', log.status.map(|s| s as u64));
    put_num(out, b'd', log.duration_ms.map(f64::to_bits));
    put_opt(out, log.ip.as_deref());
    put_opt(out, log.user_agent.as_deref());
    put_opt(out, log.error_type.as_deref());
    match (&log.attrs, &log.env_attrs) {
        (Some(a), None) => put_json(out, a),
        (None, None) => out.push(b'-'),
        // The object the map with the envelope's fields added would be, key by key.
        (Some(Value::Object(m)), Some(raw)) => put_merged(out, Some(m), raw),
        (None, Some(raw)) => put_merged(out, None, raw),
        (Some(a), Some(_)) => put_json(out, a),
    }
    put_opt(out, log.fingerprint.as_deref());
    let Some(r) = req else {
        out.push(b'.');
        return;
    };
    out.push(b'R');
    put_str(out, &r.service);
    put_str(out, &r.method);
    put_str(out, &r.route);
    put_num(out, b'i', Some(r.status as u64));
    put_num(out, b'd', Some(r.duration_ms.to_bits()));
    put_num(out, b'b', r.bytes.map(|b| b as u64));
    put_opt(out, r.user_id.as_deref());
    put_opt(out, r.trace_id.as_deref());
    put_opt(out, r.request_id.as_deref());
    put_opt(out, r.ip.as_deref());
    put_opt(out, r.user_agent.as_deref());
    put_opt(out, r.error_code.as_deref());
    put_str(out, r.direction.as_str());
    put_opt(out, r.integration.as_deref());
}

impl Dedup {
    /// A zero window disables de-duplication.
    pub fn new(window: std::time::Duration) -> Dedup {
        Dedup {
            window_us: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            entries: HashMap::default(),
            key_bytes: 0,
            newest: None,
            pruned_at: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.window_us > 0
    }

    /// Looks the event with canonical key `key` (see `event_key`) up; when it is new, remembers
    /// it as row `index` of batch `seq`. A fold into a row of the batch being built that is
    /// earlier than the row moves the row's time back (the caller does the same to the row).
    pub fn check(&mut self, key: &[u8], ts: DateTime<Utc>, seq: u64, index: usize) -> Verdict {
        if !self.enabled() {
            return Verdict::New;
        }
        if self.newest.is_none_or(|n| ts > n) {
            self.newest = Some(ts);
        }
        if let Some(e) = self.entries.get_mut(key) {
            let gap = (ts - e.first_ts).num_microseconds().unwrap_or(i64::MAX);
            if gap.abs() < self.window_us {
                return if e.seq == seq {
                    if ts < e.row_ts {
                        e.row_ts = ts;
                    }
                    Verdict::InBatch(e.index)
                } else {
                    Verdict::Sent {
                        seq: e.seq,
                        index: e.index,
                        ts: e.row_ts,
                    }
                };
            }
            *e = Entry {
                first_ts: ts,
                row_ts: ts,
                seq,
                index,
            };
            return Verdict::New;
        }
        self.key_bytes += key.len();
        self.entries.insert(
            key.into(),
            Entry {
                first_ts: ts,
                row_ts: ts,
                seq,
                index,
            },
        );
        Verdict::New
    }

    /// Forgets events whose window has closed (relative to the newest event seen). The walk
    /// over the whole table runs only once time has moved on by an eighth of the window since
    /// the last one, or when the table is over its bounds: pipelines that seal many small
    /// batches (a receiver commits each group of requests) walked it on every batch, 4% of the
    /// receiver's CPU. An entry kept a little longer changes nothing: `check` compares times.
    pub fn prune(&mut self) {
        let Some(newest) = self.newest else {
            return;
        };
        let window = self.window_us;
        let moved = self.pruned_at.is_none_or(|p| {
            (newest - p)
                .num_microseconds()
                .is_none_or(|g| g.abs() >= window / 8)
        });
        let over = self.entries.len() > MAX_ENTRIES || self.key_bytes > MAX_KEY_BYTES;
        if !moved && !over {
            return;
        }
        self.pruned_at = Some(newest);
        let mut freed = 0;
        self.entries.retain(|k, e| {
            let keep = (newest - e.first_ts)
                .num_microseconds()
                .is_some_and(|g| g < window);
            if !keep {
                freed += k.len();
            }
            keep
        });
        self.key_bytes -= freed;
        if self.entries.len() > MAX_ENTRIES || self.key_bytes > MAX_KEY_BYTES {
            self.entries = HashMap::default();
            self.key_bytes = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn key(svc: &str, level: Level, msg: &str) -> Vec<u8> {
        let mut k = Vec::new();
        event_key(
            &mut k,
            &LogRecord::new(t(0), level, svc.into(), msg.into()),
            None,
        );
        k
    }

    #[test]
    fn folds_within_window_only() {
        let mut d = Dedup::new(Duration::from_secs(10));
        let a = key("a", Level::Info, "m");
        assert_eq!(d.check(&a, t(0), 0, 0), Verdict::New);
        assert_eq!(d.check(&a, t(9_999), 0, 1), Verdict::InBatch(0));
        assert_eq!(
            d.check(&key("a", Level::Warn, "m"), t(1), 0, 1),
            Verdict::New
        );
        assert_eq!(
            d.check(&a, t(5_000), 1, 0),
            Verdict::Sent {
                seq: 0,
                index: 0,
                ts: t(0)
            }
        );
        assert_eq!(d.check(&a, t(10_000), 1, 0), Verdict::New);
        d.check(&key("b", Level::Info, "m"), t(20_000), 1, 1);
        d.prune();
        assert_eq!(d.len(), 1);
        let mut off = Dedup::new(Duration::ZERO);
        assert_eq!(off.check(&a, t(0), 0, 0), Verdict::New);
        assert_eq!(off.check(&a, t(0), 0, 1), Verdict::New);
    }

    #[test]
    fn an_earlier_repeat_in_the_batch_moves_the_row_back() {
        let mut d = Dedup::new(Duration::from_secs(10));
        let a = key("a", Level::Info, "m");
        assert_eq!(d.check(&a, t(5_000), 0, 0), Verdict::New);
        assert_eq!(d.check(&a, t(1_000), 0, 1), Verdict::InBatch(0));
        assert_eq!(
            d.check(&a, t(6_000), 1, 0),
            Verdict::Sent {
                seq: 0,
                index: 0,
                ts: t(1_000)
            }
        );
    }

    /// The old key (service, level, message) folded these; every one is a different event.
    #[test]
    fn events_differing_in_any_field_have_different_keys() {
        let base = LogRecord::new(t(0), Level::Info, "svc".into(), String::new());
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.host = Some("h".into());
        variants.push(v);
        let mut v = base.clone();
        v.attrs = Some(serde_json::json!({"op": "get", "user": "a"}));
        variants.push(v);
        let mut v = base.clone();
        v.attrs = Some(serde_json::json!({"op": "get", "user": "b"}));
        variants.push(v);
        let mut v = base.clone();
        v.attrs = Some(serde_json::json!({"op": "get", "user": 1}));
        variants.push(v);
        let mut v = base.clone();
        v.attrs = Some(serde_json::json!({}));
        variants.push(v);
        let mut v = base.clone();
        v.duration_ms = Some(0.0);
        variants.push(v);
        let mut v = base.clone();
        v.trace_id = Some(String::new());
        variants.push(v);
        let keys: Vec<Vec<u8>> = variants
            .iter()
            .map(|r| {
                let mut k = Vec::new();
                event_key(&mut k, r, None);
                k
            })
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Attribute order is not part of the event; the time is not either.
        let mut a = base.clone();
        a.attrs = Some(serde_json::from_str(r#"{"x":1,"y":{"b":2,"a":3}}"#).unwrap());
        let mut b = base.clone();
        b.ts = t(7);
        b.attrs = Some(serde_json::from_str(r#"{"y":{"a":3,"b":2},"x":1}"#).unwrap());
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        event_key(&mut ka, &a, None);
        event_key(&mut kb, &b, None);
        assert_eq!(ka, kb);
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec!["", "a", "b", "a b"]).prop_map(String::from))
    }

    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..3).prop_map(Value::from),
            prop::sample::select(vec!["", "x", "1"]).prop_map(Value::from),
        ]
    }

    prop_compose! {
        fn record()(
            level in 0usize..3,
            service in prop::sample::select(vec!["", "api", "db"]),
            message in prop::sample::select(vec!["", "m", "m "]),
            host in opt_text(),
            trace in opt_text(),
            user in opt_text(),
            status in prop::option::of(prop::sample::select(vec![200i16, 500])),
            duration in prop::option::of(prop::sample::select(vec![0.0f64, 1.5])),
            attrs in prop::option::of(prop::collection::btree_map(
                prop::sample::select(vec!["op", "user", "k"]), json_value(), 0..3)),
        ) -> LogRecord {
            let level = [Level::Info, Level::Warn, Level::Error][level];
            let mut r = LogRecord::new(t(0), level, service.into(), message.into());
            r.host = host;
            r.trace_id = trace;
            r.user_id = user;
            r.status = status;
            r.duration_ms = duration;
            r.attrs = attrs.map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            });
            r
        }
    }

    /// The event without its time: what must survive de-duplication exactly.
    fn timeless(r: &LogRecord) -> LogRecord {
        let mut r = r.clone();
        r.ts = t(0);
        r
    }

    proptest! {
        /// Simulates storage: every event is either a new row or adds to one. The set of distinct
        /// events (all fields but time) stored equals the set read, each row only absorbs events
        /// identical to it, the counts add up per event, a row's time is the earliest folded
        /// into it, and (for input in time order) two rows of one event are never closer than
        /// the window. Times are random, backwards too unless `in_order`.
        #[test]
        fn stored_events_are_exactly_the_events_read(
            events in prop::collection::vec((record(), -3000i64..6000, any::<bool>()), 1..200),
            window_ms in 1u64..20_000,
            in_order in any::<bool>(),
        ) {
            let mut d = Dedup::new(Duration::from_millis(window_ms));
            // (batch, index) -> (event, first ts, count)
            let mut rows: HashMap<(u64, usize), (LogRecord, i64, u64)> = HashMap::new();
            let mut seq = 0u64;
            let mut batch_len = 0usize;
            let mut now = 0i64;
            let mut key = Vec::new();
            for (rec, step, seal) in &events {
                now += if in_order { step.abs() } else { *step };
                let mut rec = rec.clone();
                rec.ts = t(now);
                key.clear();
                event_key(&mut key, &rec, None);
                match d.check(&key, rec.ts, seq, batch_len) {
                    Verdict::New => {
                        rows.insert((seq, batch_len), (timeless(&rec), now, 1));
                        batch_len += 1;
                    }
                    Verdict::InBatch(i) => {
                        let row = rows.get_mut(&(seq, i)).unwrap();
                        prop_assert_eq!(&row.0, &timeless(&rec));
                        row.1 = row.1.min(now);
                        row.2 += 1;
                    }
                    Verdict::Sent { seq: s, index, ts } => {
                        let row = rows.get_mut(&(s, index)).unwrap();
                        prop_assert_eq!(&row.0, &timeless(&rec));
                        prop_assert_eq!(t(row.1), ts);
                        row.2 += 1;
                    }
                }
                if *seal {
                    seq += 1;
                    batch_len = 0;
                    d.prune();
                }
            }
            let total: u64 = rows.values().map(|r| r.2).sum();
            prop_assert_eq!(total, events.len() as u64);
            let mut read: Vec<(LogRecord, u64)> = Vec::new();
            for (rec, _, _) in &events {
                let rec = timeless(rec);
                match read.iter_mut().find(|(r, _)| *r == rec) {
                    Some((_, n)) => *n += 1,
                    None => read.push((rec, 1)),
                }
            }
            for (rec, n) in &read {
                let stored: Vec<&(LogRecord, i64, u64)> =
                    rows.values().filter(|r| r.0 == *rec).collect();
                prop_assert!(!stored.is_empty(), "event lost: {rec:?}");
                prop_assert_eq!(stored.iter().map(|r| r.2).sum::<u64>(), *n);
                let mut times: Vec<i64> = stored.iter().map(|r| r.1).collect();
                times.sort();
                for w in times.windows(2).filter(|_| in_order) {
                    prop_assert!(w[1] - w[0] >= window_ms as i64, "rows {} and {} closer than {}", w[0], w[1], window_ms);
                }
            }
            prop_assert!(rows.values().all(|r| read.iter().any(|(e, _)| *e == r.0)));
        }
    }
}
