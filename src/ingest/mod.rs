//! Log ingestion: `opsdash ingest` and the library API behind it.
//!
//! lines -> parse (json / logfmt / access log / text) -> redact -> fingerprint -> de-duplicate
//! -> batch -> COPY into the partitioned tables -> one NOTIFY per batch.
//!
//! ```no_run
//! # async fn demo(db: opsdash::db::Db) -> anyhow::Result<()> {
//! use opsdash::ingest::{Options, Pipeline};
//! let cfg = opsdash::config::IngestConfig::default();
//! let mut p = Pipeline::new(db, &cfg, Options::default())?;
//! p.push_line(br#"{"level":"error","msg":"boom","service":"api"}"#).await?;
//! p.flush().await?; // committed
//! let summary = p.finish().await;
//! println!("{}", summary.line());
//! # Ok(()) }
//! ```

pub mod access;
pub mod dedup;
pub mod detect;
pub mod fields;
pub mod fingerprint;
pub mod json;
pub mod logfmt;
pub mod pipeline;
pub mod reader;
pub mod record;
pub mod redact;
pub mod route;
pub mod text;
pub mod timestamp;
pub mod writer;

use std::future::Future;
use std::time::Duration;

use tokio::io::AsyncRead;

pub use detect::Format;
pub use pipeline::{Options, Pipeline, Rejection, Summary};
use reader::{Line, LineReader, MAX_LINE};

/// What to do at the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEof {
    /// Finish (a file read once, or a pipe whose writer closed it).
    Stop,
    /// Wait for the file to grow, like `tail -f`.
    Wait,
}

/// How often a followed file is checked for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

enum Event {
    Stop,
    Flush,
    Read(std::io::Result<bool>),
    Poll,
}

/// Feeds `input` through `pipeline` until the input ends (or `stop` resolves, e.g. Ctrl-C),
/// flushing buffered rows at least every `ingest.flush_interval_ms`, then writes what is left
/// and reports.
pub async fn run<R: AsyncRead + Unpin>(
    input: R,
    mut pipeline: Pipeline,
    at_eof: AtEof,
    stop: impl Future<Output = ()>,
) -> Summary {
    let mut reader = LineReader::new(input, MAX_LINE);
    tokio::pin!(stop);
    let mut waiting = false;
    let mut read_error = None;
    'outer: loop {
        while let Some(line) = reader.buffered() {
            let pushed = match line {
                Line::Text(l) => pipeline.push_line(l).await,
                Line::TooLong => {
                    pipeline.push_too_long();
                    Ok(())
                }
            };
            if pushed.is_err() {
                break 'outer;
            }
        }
        let deadline = pipeline.flush_deadline();
        let event = tokio::select! {
            biased;
            _ = &mut stop => Event::Stop,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => Event::Flush,
            _ = tokio::time::sleep(FOLLOW_POLL), if waiting => Event::Poll,
            r = reader.fill(), if !waiting => Event::Read(r),
        };
        match event {
            Event::Stop => break,
            Event::Flush => {
                if pipeline.flush_buffered().await.is_err() {
                    break;
                }
            }
            Event::Poll => waiting = false,
            Event::Read(Ok(true)) => {}
            Event::Read(Ok(false)) if at_eof == AtEof::Wait => waiting = true,
            Event::Read(Ok(false)) => {
                if let Some(Line::Text(l)) = reader.rest() {
                    let _ = pipeline.push_line(l).await;
                }
                break;
            }
            Event::Read(Err(e)) => {
                read_error = Some(format!("reading input: {e}"));
                break;
            }
        }
    }
    let mut summary = pipeline.finish().await;
    if summary.error.is_none() {
        summary.error = read_error;
    }
    summary
}
