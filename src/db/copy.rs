//! COPY ... FROM STDIN in PostgreSQL's text format: the fast path for every bulk writer (ingest,
//! demo traffic, archive restore). Rows are encoded into one buffer and sent in one COPY.

use anyhow::{Context, Result};
use sqlx::PgConnection;

/// Builds the text-format payload of a COPY: tab-separated fields, `\N` for NULL, one row a line.
#[derive(Default)]
pub struct CopyBuf {
    buf: Vec<u8>,
    rows: usize,
    field_in_row: usize,
}

impl CopyBuf {
    pub fn with_capacity(bytes: usize) -> Self {
        CopyBuf {
            buf: Vec::with_capacity(bytes),
            rows: 0,
            field_in_row: 0,
        }
    }

    fn sep(&mut self) {
        if self.field_in_row > 0 {
            self.buf.push(b'\t');
        }
        self.field_in_row += 1;
    }

    pub fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
    }

    /// A text field, escaped. NUL bytes cannot be stored in a PostgreSQL text value: they are
    /// dropped here so one bad byte never fails the whole batch.
    pub fn text(&mut self, s: &str) {
        self.sep();
        escape_into(&mut self.buf, s.as_bytes());
    }

    pub fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    /// A field whose bytes `write` appends, already escaped for COPY's text format (a JSON
    /// text written piece by piece).
    pub fn escaped_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.sep();
        write(&mut self.buf);
    }

    /// A value whose Display output needs no escaping (numbers, timestamps in RFC 3339).
    pub fn plain(&mut self, v: impl std::fmt::Display) {
        use std::io::Write;
        self.sep();
        let _ = write!(self.buf, "{v}");
    }

    pub fn opt_plain<T: std::fmt::Display>(&mut self, v: Option<T>) {
        match v {
            Some(v) => self.plain(v),
            None => self.null(),
        }
    }

    /// An integer, as its Display writes it: itoa rather than `write!`, whose formatting
    /// machinery cost more than the digits (every log row has a level and a repeat count).
    pub fn int(&mut self, v: impl itoa::Integer) {
        self.sep();
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    pub fn opt_int<T: itoa::Integer>(&mut self, v: Option<T>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    /// An `int4[]` value (`{1,-2}`): digits, signs and commas need no escaping.
    pub fn int_array(&mut self, v: &[i32]) {
        self.sep();
        // itoa rather than `write!`: the formatting machinery cost more than the digits, and
        // a row's search tokens are a few dozen numbers.
        let mut digits = itoa::Buffer::new();
        self.buf.push(b'{');
        for (i, n) in v.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(digits.format(*n).as_bytes());
        }
        self.buf.push(b'}');
    }

    pub fn ts(&mut self, t: chrono::DateTime<chrono::Utc>) {
        self.plain(t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
    }

    /// A JSON value. jsonb rejects the NUL character, so NULs are removed from every string
    /// (keys included) first; the text is only rewritten when a NUL is really there.
    pub fn json(&mut self, v: &serde_json::Value) {
        if has_nul(v) {
            let mut clean = v.clone();
            strip_nul(&mut clean);
            self.text(&clean.to_string());
        } else {
            self.text(&v.to_string());
        }
    }

    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.rows += 1;
        self.field_in_row = 0;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows = 0;
        self.field_in_row = 0;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Sends the rows with `COPY table (columns) FROM STDIN` on `conn`; returns rows written.
    pub async fn send(
        &self,
        conn: &mut PgConnection,
        table: &str,
        columns: &[&str],
    ) -> Result<u64> {
        if self.rows == 0 {
            return Ok(0);
        }
        let stmt = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
        let mut copy = conn
            .copy_in_raw(&stmt)
            .await
            .with_context(|| format!("starting COPY into {table}"))?;
        // Chunks keep each CopyData message well under the protocol's 1 GiB limit.
        for chunk in self.buf.chunks(1 << 20) {
            copy.send(chunk).await.context("sending COPY data")?;
        }
        copy.finish()
            .await
            .with_context(|| format!("COPY into {table}"))
    }
}

/// Bytes COPY's text format escapes (or, for NUL, drops).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0] = true;
    t
};

/// Appends `s` escaped for COPY's text format: runs without special bytes (nearly all of a
/// value) are copied whole rather than byte by byte.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if !SPECIAL[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&s[run..i]);
        run = i + 1;
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {}
        }
    }
    out.extend_from_slice(&s[run..]);
}

fn has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn strip_nul(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => s.retain(|c| c != '\0'),
        Value::Array(a) => a.iter_mut().for_each(strip_nul),
        Value::Object(o) => {
            let entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
            for (mut k, mut v) in entries {
                k.retain(|c| c != '\0');
                strip_nul(&mut v);
                o.insert(k, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_format() {
        let mut b = CopyBuf::default();
        b.text("a\tb\\c\nd\0e");
        b.null();
        b.plain(42);
        b.end_row();
        assert_eq!(b.as_bytes(), b"a\\tb\\\\c\\nde\t\\N\t42\n");
        assert_eq!(b.rows(), 1);
    }

    proptest::proptest! {
        /// The run-copying escape writes what escaping byte by byte writes.
        #[test]
        fn escaping_matches_the_byte_by_byte_rules(s in "[a-z\\\\\t\n\r\0é ]{0,40}") {
            let mut expect = Vec::new();
            for &b in s.as_bytes() {
                match b {
                    b'\\' => expect.extend_from_slice(b"\\\\"),
                    b'\t' => expect.extend_from_slice(b"\\t"),
                    b'\n' => expect.extend_from_slice(b"\\n"),
                    b'\r' => expect.extend_from_slice(b"\\r"),
                    0 => {}
                    _ => expect.push(b),
                }
            }
            let mut b = CopyBuf::default();
            b.text(&s);
            proptest::prop_assert_eq!(b.as_bytes(), &expect[..]);
        }

        #[test]
        fn int_arrays_match_display(v in proptest::collection::vec(proptest::num::i32::ANY, 0..6)) {
            let mut b = CopyBuf::default();
            b.int_array(&v);
            let expect = format!(
                "{{{}}}",
                v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            );
            proptest::prop_assert_eq!(b.as_bytes(), expect.as_bytes());
        }
    }

    #[test]
    fn ints_are_written_as_display_writes_them() {
        let mut a = CopyBuf::default();
        let mut b = CopyBuf::default();
        for v in [
            0i64,
            7,
            -1,
            i64::from(i16::MIN),
            i64::from(i32::MAX),
            i64::MIN,
        ] {
            a.int(v);
            b.plain(v);
        }
        a.opt_int(Some(-3i16));
        b.opt_plain(Some(-3i16));
        a.opt_int(None::<i16>);
        b.opt_plain(None::<i16>);
        a.end_row();
        b.end_row();
        assert_eq!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn int_arrays_are_array_literals() {
        let mut b = CopyBuf::default();
        b.int_array(&[3, -4]);
        b.int_array(&[]);
        b.end_row();
        assert_eq!(b.as_bytes(), b"{3,-4}\t{}\n");
    }

    #[test]
    fn json_drops_nul_but_keeps_a_literal_backslash_u0000() {
        let mut b = CopyBuf::default();
        b.json(&serde_json::json!({"a\u{0}": "x\u{0}y", "lit": "\\u0000"}));
        let text = String::from_utf8(b.as_bytes().to_vec()).unwrap();
        // COPY text escaping doubles backslashes; undo it to get the JSON back.
        let json: serde_json::Value = serde_json::from_str(&text.replace("\\\\", "\\")).unwrap();
        assert_eq!(json["a"], "xy");
        assert_eq!(json["lit"], "\\u0000");
    }
}
