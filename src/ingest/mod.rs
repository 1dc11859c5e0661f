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
pub mod audit;
pub mod container;
pub mod dedup;
pub mod detect;
pub mod envelope;
pub mod fields;
pub mod fingerprint;
pub mod follow;
pub mod journald;
pub mod json;
pub mod layout;
pub mod log_batch;
pub mod logfmt;
pub mod multiline;
pub mod pglog;
pub mod pipeline;
pub mod raw_attrs;
pub mod reader;
pub mod record;
pub mod redact;
pub mod route;
pub mod syslog;
pub mod text;
pub mod timestamp;
pub mod writer;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tokio::io::AsyncRead;

pub use detect::Format;
use follow::{note, Check, FollowSet, Followed};
pub use pipeline::{Options, Pipeline, Rejection, Summary};
use reader::{Found, Line, LineReader, MAX_LINE};

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
    pipeline: Pipeline,
    at_eof: AtEof,
    stop: impl Future<Output = ()>,
) -> Summary {
    run_stream(input, pipeline, at_eof, stop, None).await
}

/// After a stop signal, lines already written to a pipe are still read for this long at most
/// (`systemctl stop` right after a burst must not lose the burst).
const STOP_DRAIN: Duration = Duration::from_secs(2);
/// A pipe with nothing more for this long is taken as drained.
const STOP_QUIET: Duration = Duration::from_millis(50);

/// Pushes the complete lines in `reader`'s buffer. Err when the run must end: the writer
/// stopped, or more than `max_rejects` lines were rejected.
async fn push_stream<R: AsyncRead + Unpin>(
    reader: &mut LineReader<R>,
    pipeline: &mut Pipeline,
    max_rejects: Option<u64>,
) -> Result<(), ()> {
    let counts = pipeline.committed();
    pipeline.begin_chunk();
    let mut done = Ok(());
    while let Some(line) = reader.buffered() {
        counts.read.fetch_add(1, Ordering::Relaxed);
        let pushed = match line {
            Line::Text(l) => pipeline.push_line(l).await,
            Line::TooLong => {
                pipeline.push_too_long();
                Ok(())
            }
        };
        if pushed.is_err() || max_rejects.is_some_and(|m| pipeline.rejected() > m) {
            done = Err(());
            break;
        }
    }
    pipeline.end_chunk();
    done
}

/// `run`, stopping early once more than `max_rejects` lines were rejected. On `stop`, what the
/// input already holds is still read (briefly), then everything read is committed.
pub async fn run_stream<R: AsyncRead + Unpin>(
    input: R,
    mut pipeline: Pipeline,
    at_eof: AtEof,
    stop: impl Future<Output = ()>,
    max_rejects: Option<u64>,
) -> Summary {
    let mut reader = LineReader::new(input, MAX_LINE);
    tokio::pin!(stop);
    let mut waiting = false;
    let mut read_error = None;
    let mut stopped = false;
    loop {
        if push_stream(&mut reader, &mut pipeline, max_rejects)
            .await
            .is_err()
        {
            break;
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
            Event::Stop => {
                stopped = true;
                break;
            }
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
                    pipeline.committed().read.fetch_add(1, Ordering::Relaxed);
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
    if stopped {
        let until = tokio::time::Instant::now() + STOP_DRAIN;
        while let Ok(Ok(true)) = tokio::time::timeout(STOP_QUIET, reader.fill()).await {
            if push_stream(&mut reader, &mut pipeline, max_rejects)
                .await
                .is_err()
                || tokio::time::Instant::now() > until
            {
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

/// Why a file run ends early.
enum Halt {
    /// The writer stopped (its error is in the summary).
    Writer,
    /// More than `max_rejects` lines were rejected.
    Rejects,
}

/// Pushes the complete lines buffered for `f`, each after noting the position after it (so the
/// batch that holds a line also holds its position, whenever the batch is sealed).
async fn push_file(
    f: &mut Followed,
    pipeline: &mut Pipeline,
    marks: bool,
    max_rejects: Option<u64>,
) -> Result<(), Halt> {
    let Some(open) = f.cur.as_mut() else {
        return Ok(());
    };
    pipeline.set_default_service(&f.service);
    pipeline.set_source_path(&f.path);
    pipeline.set_source(&f.key);
    pipeline.begin_chunk();
    let done = push_file_lines(open, &f.key, pipeline, marks, max_rejects).await;
    pipeline.end_chunk();
    done
}

/// `push_file`'s loop, between the chunk's clock reads.
async fn push_file_lines(
    open: &mut follow::OpenFile,
    key: &std::sync::Arc<str>,
    pipeline: &mut Pipeline,
    marks: bool,
    max_rejects: Option<u64>,
) -> Result<(), Halt> {
    let counts = pipeline.committed();
    while let Some(found) = open.lines.next_line() {
        if marks {
            if let Some(cp) = open.checkpoint(key) {
                pipeline.mark_position(cp);
            }
        }
        counts.read.fetch_add(1, Ordering::Relaxed);
        let pushed = match found {
            Found::Text(r) => pipeline.push_line(open.lines.slice(r)).await,
            Found::TooLong => {
                pipeline.push_too_long();
                Ok(())
            }
        };
        if pushed.is_err() {
            return Err(Halt::Writer);
        }
        if max_rejects.is_some_and(|m| pipeline.rejected() > m) {
            return Err(Halt::Rejects);
        }
    }
    Ok(())
}

/// Pushes `f`'s last line when it has no newline (the file is left for good, or read once).
async fn push_rest(f: &mut Followed, pipeline: &mut Pipeline, marks: bool) -> Result<(), Halt> {
    let Some(open) = f.cur.as_mut() else {
        return Ok(());
    };
    if let Some(r) = open.lines.rest() {
        if marks {
            if let Some(cp) = open.checkpoint(&f.key) {
                pipeline.mark_position(cp);
            }
        }
        pipeline.committed().read.fetch_add(1, Ordering::Relaxed);
        pipeline.set_default_service(&f.service);
        pipeline.set_source_path(&f.path);
        pipeline.set_source(&f.key);
        if pipeline.push_line(open.lines.slice(r)).await.is_err() {
            return Err(Halt::Writer);
        }
    }
    Ok(())
}

/// Reads one chunk of `f` and pushes its lines; returns the bytes read.
async fn pump(
    f: &mut Followed,
    pipeline: &mut Pipeline,
    marks: bool,
    max_rejects: Option<u64>,
) -> Result<usize, Halt> {
    let n = match f.cur.as_mut().map(|o| o.read_chunk()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            note(&format!("{}: {e}; no longer read", f.path.display()));
            f.cur = None;
            0
        }
    };
    push_file(f, pipeline, marks, max_rejects).await?;
    Ok(n)
}

/// After a stop: at most this much more is read from the files (what was written before the
/// signal); the rest waits for the next run at the saved position.
const STOP_READ: u64 = 64 << 20;

/// Reads the regular files of `set` (names followed like `tail -F` when `follow`, else read
/// once) through `pipeline`, saving each file's position with the batch that covers it, until
/// `stop` resolves (or, reading once, every file is at its end). More than `max_rejects`
/// rejected lines end the run early.
pub async fn run_files(
    mut set: FollowSet,
    mut pipeline: Pipeline,
    follow: bool,
    stop: impl Future<Output = ()>,
    max_rejects: Option<u64>,
) -> Summary {
    tokio::pin!(stop);
    let marks = set.marks;
    let mut last_scan = tokio::time::Instant::now();
    let mut halted = false;
    let mut stopped = false;
    'run: loop {
        let mut progressed = false;
        for f in set.files.iter_mut() {
            match pump(f, &mut pipeline, marks, max_rejects).await {
                Ok(n) => progressed |= n > 0,
                Err(_) => {
                    halted = true;
                    break 'run;
                }
            }
        }
        if (&mut stop).now_or_never().is_some() {
            stopped = true;
            break;
        }
        let deadline = pipeline.flush_deadline();
        if progressed {
            if deadline.is_some_and(|d| d <= tokio::time::Instant::now())
                && pipeline.flush_buffered().await.is_err()
            {
                halted = true;
                break;
            }
            continue;
        }
        if !follow {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut stop => {
                stopped = true;
                break;
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                if pipeline.flush_buffered().await.is_err() {
                    halted = true;
                    break;
                }
            }
            _ = tokio::time::sleep(FOLLOW_POLL) => {
                for i in 0..set.files.len() {
                    if check_file(&mut set, i, &mut pipeline, max_rejects).await.is_err() {
                        halted = true;
                        break 'run;
                    }
                }
                if set.has_patterns() && last_scan.elapsed() >= GLOB_SCAN {
                    last_scan = tokio::time::Instant::now();
                    set.scan(false);
                }
            }
        }
    }
    if stopped {
        // What was written before the signal is still read, up to the size seen now.
        'drain: for f in set.files.iter_mut() {
            let Some(end) = f.cur.as_ref().and_then(|o| o.size().ok()) else {
                continue;
            };
            let end = end.min(f.cur.as_ref().map_or(0, |o| o.lines.read_end()) + STOP_READ);
            while f.cur.as_ref().is_some_and(|o| o.lines.read_end() < end) {
                match pump(f, &mut pipeline, marks, max_rejects).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => break 'drain,
                }
            }
        }
    } else if !halted && !follow {
        for f in set.files.iter_mut() {
            if push_rest(f, &mut pipeline, marks).await.is_err() {
                break;
            }
        }
    }
    pipeline.finish().await
}

/// How often globs are matched again for new files.
const GLOB_SCAN: Duration = Duration::from_millis(500);

/// At the end of file `i`: follows a rotation (reading the old file to its end first) or a
/// truncation, saying so on stderr.
async fn check_file(
    set: &mut FollowSet,
    i: usize,
    pipeline: &mut Pipeline,
    max_rejects: Option<u64>,
) -> Result<(), Halt> {
    let marks = set.marks;
    let f = &mut set.files[i];
    match f.check() {
        Check::Same => Ok(()),
        Check::Truncated => {
            push_rest(f, pipeline, marks).await?;
            note(&format!(
                "{}: truncated (copytruncate?); reading it again from the start",
                f.path.display()
            ));
            f.restart();
            Ok(())
        }
        Check::Replaced(new) => {
            // Lines the writer added to the old file before it switched are read first.
            while pump(f, pipeline, marks, max_rejects).await? > 0 {}
            push_rest(f, pipeline, marks).await?;
            let (mut left, mut dev, mut ino) = (0, 0, 0);
            if let Some(old) = &f.cur {
                (left, dev, ino) = (old.lines.read_end(), old.dev, old.ino);
            }
            note(&format!(
                "{}: replaced by a new file (rotated, or removed and created again); read the old one to its end (byte {left}), now reading the new one from the start",
                f.path.display()
            ));
            f.cur = Some(new);
            if let Some(cur) = f.cur.as_mut() {
                if marks {
                    // The new file's start, so a restart does not look for the old one.
                    if let Some(cp) = cur.checkpoint(&f.key) {
                        pipeline.mark_position(cp);
                    }
                }
            }
            set.left_behind(dev, ino, left);
            Ok(())
        }
    }
}
