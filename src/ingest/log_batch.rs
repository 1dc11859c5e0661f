//! A transaction's log rows as the writer and the demo send them: the COPY text and the block
//! summary (`model::log_block`) that finds them until their day's search indexes are built.
//! Both are made here, row by row, so no log row reaches the table without its keys.

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::record::LogRecord;
use super::writer::{encode_log, encode_log_row, log_row};
use crate::db::copy::CopyBuf;
use crate::model::log_block::BlockKeys;
use crate::model::log_row::{LogRowRef, LOG_COPY_COLUMNS};

#[derive(Default)]
pub struct LogBuf {
    copy: CopyBuf,
    keys: BlockKeys,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl LogBuf {
    pub fn with_capacity(bytes: usize) -> LogBuf {
        LogBuf {
            copy: CopyBuf::with_capacity(bytes),
            ..LogBuf::default()
        }
    }

    /// A row built by its writer (the demo).
    pub fn push_row(&mut self, r: &LogRowRef) {
        let tokens = r.tokens();
        encode_log_row(&mut self.copy, r, &tokens);
        self.note(r, &tokens, false);
    }

    /// An ingested record.
    pub fn push_record(&mut self, r: &LogRecord) {
        let row = log_row(r);
        let tokens = row.tokens();
        let unread = encode_log(&mut self.copy, r, &row, &tokens);
        self.note(&row, &tokens, unread);
    }

    fn note(&mut self, r: &LogRowRef, tokens: &[i32], attrs_unread: bool) {
        self.keys.add_row(r, tokens, attrs_unread);
        self.span = Some(match self.span {
            Some((lo, hi)) => (lo.min(r.ts), hi.max(r.ts)),
            None => (r.ts, r.ts),
        });
    }

    pub fn rows(&self) -> usize {
        self.copy.rows()
    }

    pub fn is_empty(&self) -> bool {
        self.copy.is_empty()
    }

    /// The COPY text (what the CPU side of the ingest bench measures).
    pub fn copy(&self) -> &CopyBuf {
        &self.copy
    }

    /// The block filter of the rows so far (built by `send`; the ingest bench times it).
    pub fn bloom(&self) -> Vec<u8> {
        self.keys.bloom()
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.copy.clear();
        self.keys = BlockKeys::default();
        self.span = None;
    }

    /// Writes the rows into `table` (`opsdash.log_event`) within the caller's transaction,
    /// with their block. Returns the rows written.
    pub async fn send(&self, conn: &mut PgConnection, table: &str) -> Result<u64> {
        let Some((lo, hi)) = self.span else {
            return Ok(0);
        };
        crate::query::log_block::note(&mut *conn, lo, hi, self.keys.rows(), &self.bloom()).await?;
        self.copy.send(conn, table, LOG_COPY_COLUMNS).await
    }
}
