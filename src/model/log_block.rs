//! Block summaries of log rows (issue 19): a Bloom filter of the searchable keys of the rows one
//! transaction wrote, for the days whose search indexes are not built yet.
//!
//! `log_event`'s word, attribute, trace and user indexes cost most of a row's write. They are
//! built per day once the day is over (the worker's `log_seal` job); until then a day's rows are
//! found through `opsdash.log_block`: one row per writing transaction with a Bloom filter of its
//! rows' keys. A search asks which blocks may hold its keys, then reads only those
//! transactions' rows through the `(tx, id)` index, as ClickHouse's token skip indexes pick the
//! granules to read. The filter only narrows: the search still checks every candidate row with
//! the same conditions, so a false positive costs reading a block, never a wrong answer.
//!
//! Keys are 64-bit hashes of typed values: a message word (its `search_tokens` hash), a trace
//! id, a user id, an attribute's path and value as `#>>` prints it. The hash is FNV-1a with a
//! SplitMix64 finish, written here rather than taken from a hashing crate: the filters are
//! stored, so the function may never change with a dependency's version.
//!
//! The filter has a power-of-two number of bits, each key sets [`PROBES`] of them at
//! `(h1 + i * h2) mod m` (double hashing; h1 and h2 the key's low and high halves), bit `n` at
//! byte `n / 8`, bit `n % 8` from the least significant, as PostgreSQL's `get_bit` reads it
//! (the SQL test `opsdash.log_block_match` in migration 0063 is the other reader). It is built
//! large and folded in halves (OR of the two halves is the filter of the same keys at half
//! the size, since `x mod m/2 = (x mod m) mod m/2`) while the fill stays under [`MAX_FILL`],
//! so its size follows the number of distinct keys without counting them.

use serde_json::Value;

use super::log_row::LogRowRef;

/// Bits set per key.
pub const PROBES: u64 = 6;
/// Fill at which folding stops: a false positive rate of about `MAX_FILL ^ PROBES` (0.2%).
const MAX_FILL: f64 = 0.35;
/// Bits per key (repeats included) of the filter before folding.
const START_BITS_PER_KEY: usize = 16;

/// Kinds of key, hashed in front of the value so equal text in two fields differs.
const WORD: u8 = 1;
const TRACE: u8 = 2;
const USER: u8 = 3;
const ATTR: u8 = 4;
/// An attribute at this path whose `#>>` text the writer cannot spell as PostgreSQL prints it
/// (a fraction or exponent number, an object or array): every value searched at the path may
/// be in the block.
const ATTR_ANY_AT: u8 = 5;
/// Rows whose attrs were not read into keys (kept as raw JSON text): any attribute search.
const ATTRS_UNREAD: u8 = 6;

fn fnv(kind: u8, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(kind);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no text holds (NUL never reaches a row), so ("ab","c") != ("a","bc").
            eat(0);
        }
        p.iter().for_each(|b| eat(*b));
    }
    finish(h)
}

/// SplitMix64's finalizer: every input bit reaches every output bit (FNV's low bits alone are
/// weak, and the probes use both halves).
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A message word, by its `search_tokens` hash.
pub fn word_key(token: i32) -> u64 {
    finish(u64::from(WORD) << 56 ^ u64::from(token as u32))
}

pub fn trace_key(trace_id: &str) -> u64 {
    fnv(TRACE, &[trace_id.as_bytes()])
}

pub fn user_key(user_id: &str) -> u64 {
    fnv(USER, &[user_id.as_bytes()])
}

/// `attrs #>> path = value`.
pub fn attr_key<S: AsRef<str>>(path: &[S], value: &str) -> u64 {
    let mut parts: Vec<&[u8]> = path.iter().map(|p| p.as_ref().as_bytes()).collect();
    parts.push(value.as_bytes());
    fnv(ATTR, &parts)
}

/// Some value at `path` has no [`attr_key`] (see `ATTR_ANY_AT`).
pub fn attr_any_key<S: AsRef<str>>(path: &[S]) -> u64 {
    let parts: Vec<&[u8]> = path.iter().map(|p| p.as_ref().as_bytes()).collect();
    fnv(ATTR_ANY_AT, &parts)
}

/// Some row's attrs were not read (see `ATTRS_UNREAD`).
pub fn attrs_unread_key() -> u64 {
    fnv(ATTRS_UNREAD, &[])
}

/// The keys of one transaction's rows, repeats included (the filter absorbs them).
#[derive(Debug, Default, Clone)]
pub struct BlockKeys {
    keys: Vec<u64>,
    rows: usize,
}

impl BlockKeys {
    /// Adds a row's keys: `tokens` its message's `search_tokens`; `attrs_unread` when its
    /// attrs are written from raw text the keys do not see.
    pub fn add_row(&mut self, r: &LogRowRef, tokens: &[i32], attrs_unread: bool) {
        self.rows += 1;
        self.keys.extend(tokens.iter().map(|t| word_key(*t)));
        if let Some(t) = r.trace_id {
            self.keys.push(trace_key(t));
        }
        if let Some(u) = r.user_id {
            self.keys.push(user_key(u));
        }
        if let Some(a) = r.attrs {
            let mut path = Vec::new();
            self.add_attrs(a, &mut path);
        }
        if attrs_unread {
            self.keys.push(attrs_unread_key());
        }
    }

    /// Keys of the scalar leaves under `v`, as `#>>` reads them at their path of object keys.
    fn add_attrs<'a>(&mut self, v: &'a Value, path: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(k);
                    match child {
                        Value::String(s) => self.keys.push(attr_key(path, s)),
                        Value::Bool(b) => self
                            .keys
                            .push(attr_key(path, if *b { "true" } else { "false" })),
                        // Integers print the same in serde_json and PostgreSQL's numeric.
                        Value::Number(n) if n.is_i64() || n.is_u64() => {
                            self.keys.push(attr_key(path, &n.to_string()))
                        }
                        Value::Null => {}
                        // `#>>` of the object itself is its JSON text, which no searched value
                        // stands for (`filter::probes` asks nothing then).
                        Value::Object(_) => self.add_attrs(child, path),
                        _ => self.keys.push(attr_any_key(path)),
                    }
                    path.pop();
                }
            }
            // attrs that are not an object: no path reaches into them by name.
            _ => self.keys.push(attrs_unread_key()),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The filter of the keys added so far.
    pub fn bloom(&self) -> Vec<u8> {
        build(&self.keys)
    }
}

/// The positions a key sets in a filter of `m` bits (`m` a power of two).
fn positions(key: u64, m: u64) -> impl Iterator<Item = u64> {
    let h1 = key & 0xffff_ffff;
    let h2 = (key >> 32) | 1;
    (0..PROBES).map(move |i| (h1 + i * h2) & (m - 1))
}

/// The filter of `keys`: at least 64 bits, folded while under `MAX_FILL`.
pub fn build(keys: &[u64]) -> Vec<u8> {
    let m = (keys.len() * START_BITS_PER_KEY)
        .max(64)
        .next_power_of_two() as u64;
    let mut words = vec![0u64; (m / 64) as usize];
    for k in keys {
        for p in positions(*k, m) {
            words[(p / 64) as usize] |= 1 << (p % 64);
        }
    }
    while words.len() > 1 {
        let half = words.len() / 2;
        let ones: u32 = (0..half)
            .map(|i| (words[i] | words[i + half]).count_ones())
            .sum();
        if f64::from(ones) / (half as f64 * 64.0) > MAX_FILL {
            break;
        }
        for i in 0..half {
            words[i] |= words[i + half];
        }
        words.truncate(half);
    }
    // Little-endian words: bit n of the filter is bit n % 8 of byte n / 8.
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Whether `key` may be among the filter's keys (what `opsdash.log_block_match` answers).
pub fn may_hold(bloom: &[u8], key: u64) -> bool {
    let m = bloom.len() as u64 * 8;
    m > 0 && positions(key, m).all(|p| bloom[(p / 8) as usize] >> (p % 8) & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn row<'a>(msg: &'a str, attrs: Option<&'a Value>) -> LogRowRef<'a> {
        LogRowRef {
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            user_id: Some("alice"),
            attrs,
            ..LogRowRef::new(Utc::now(), crate::model::Level::Info, "api", msg)
        }
    }

    #[test]
    fn every_key_added_is_held_and_few_others_are() {
        let mut b = BlockKeys::default();
        let attrs =
            serde_json::json!({"order": {"id": 4242, "ok": true, "amount": 1.5}, "region": "eu"});
        for i in 0..2000 {
            let msg = format!("payment {i} declined for card");
            let r = row(&msg, Some(&attrs));
            b.add_row(&r, &crate::model::search_tokens::search_tokens(&msg), false);
        }
        let bloom = b.bloom();
        assert!(bloom.len().is_power_of_two());
        for k in &b.keys {
            assert!(may_hold(&bloom, *k));
        }
        assert!(may_hold(&bloom, attr_key(&["order", "id"], "4242")));
        assert!(may_hold(&bloom, attr_key(&["order", "ok"], "true")));
        assert!(may_hold(&bloom, attr_any_key(&["order", "amount"])));
        assert!(!may_hold(&bloom, attr_any_key(&["order"])));
        assert!(may_hold(&bloom, attr_key(&["region"], "eu")));
        assert!(may_hold(
            &bloom,
            trace_key("4bf92f3577b34da6a3ce929d0e0e4736")
        ));
        assert!(may_hold(&bloom, user_key("alice")));
        // Keys never added: about MAX_FILL^PROBES of them pass.
        let false_hits = (0..100_000)
            .filter(|i| may_hold(&bloom, user_key(&format!("user{i}"))))
            .count();
        assert!(false_hits < 1000, "{false_hits} of 100000");
        // Folded: well under the unfolded 16 bits per key pushed.
        assert!(bloom.len() * 8 < b.keys.len() * START_BITS_PER_KEY);
    }

    #[test]
    fn kinds_and_parts_do_not_collide() {
        assert_ne!(trace_key("x"), user_key("x"));
        assert_ne!(attr_key(&["ab"], "c"), attr_key(&["a"], "bc"));
        assert_ne!(attr_key(&["a", "b"], "c"), attr_key(&["a"], "b"));
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        assert!(!may_hold(&[], word_key(1)));
        let b = build(&[]);
        assert_eq!(b.len(), 8);
        assert!(!may_hold(&b, word_key(1)));
    }
}
