//! A transaction's log rows as the writer and the demo send them: the COPY text and the block
//! summaries (`model::log_block`, one per run of [`BLOCK_ROWS`] rows) that find them until their
//! day's search indexes are built. Both are made here, row by row, so no log row reaches the
//! table without its keys.

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::record::LogRecord;
use super::writer::{encode_log, encode_log_row, log_row};
use crate::db::copy::CopyBuf;
use crate::model::log_block::BlockKeys;
use crate::model::log_row::{LogRowRef, LOG_COPY_COLUMNS};
use crate::query::log_block;

/// Rows per block: a search reads whole blocks, so a word seen once in 10,000 rows costs about
/// a tenth of the unsealed rows rather than half of them (batches of 5,000).
pub const BLOCK_ROWS: usize = 1000;

/// One block being built: its keys and its rows' time span.
struct Block {
    keys: BlockKeys,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
}

#[derive(Default)]
pub struct LogBuf {
    copy: CopyBuf,
    blocks: Vec<Block>,
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
        match self.blocks.last_mut() {
            Some(b) if b.keys.rows() < BLOCK_ROWS => {
                b.lo = b.lo.min(r.ts);
                b.hi = b.hi.max(r.ts);
                b.keys.add_row(r, tokens, attrs_unread);
            }
            _ => {
                let mut keys = BlockKeys::default();
                keys.add_row(r, tokens, attrs_unread);
                self.blocks.push(Block {
                    keys,
                    lo: r.ts,
                    hi: r.ts,
                });
            }
        }
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

    /// The block filters of the rows so far (built by `send`; the ingest bench times them).
    pub fn blooms(&self) -> Vec<Vec<u8>> {
        self.blocks.iter().map(|b| b.keys.bloom()).collect()
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.copy.clear();
        self.blocks.clear();
    }

    /// Writes the rows into `table` (`opsdash.log_event`) within the caller's transaction,
    /// with their blocks. Returns the rows written.
    pub async fn send(&self, conn: &mut PgConnection, table: &str) -> Result<u64> {
        if self.blocks.is_empty() {
            return Ok(0);
        }
        let written = self.copy.send(&mut *conn, table, LOG_COPY_COLUMNS).await?;
        let mut notes = log_block::Notes::default();
        for b in &self.blocks {
            notes.push(b.keys.rows(), b.lo, b.hi, b.keys.bloom());
        }
        log_block::note(&mut *conn, &notes).await?;
        Ok(written)
    }
}
