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
        for &b in s.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                0 => {}
                _ => self.buf.push(b),
            }
        }
    }

    pub fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
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

    pub fn ts(&mut self, t: chrono::DateTime<chrono::Utc>) {
        self.plain(t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
    }

    /// A JSON value; `\u0000` escapes are removed because jsonb rejects them.
    pub fn json(&mut self, v: &serde_json::Value) {
        let s = v.to_string();
        if s.contains("\\u0000") {
            self.text(&s.replace("\\u0000", ""));
        } else {
            self.text(&s);
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
}
