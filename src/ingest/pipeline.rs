//! The ingest pipeline: line -> parse -> redact -> fingerprint -> de-duplicate -> batch. Sealed
//! batches go to the writer task (see `writer`), so parsing the next batch overlaps the COPY
//! of the previous one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::dedup::{Dedup, Verdict};
use super::detect::{parse_line, Format};
use super::fields::LineContext;
use super::fingerprint::fingerprint;
use super::record::{LogRecord, Parsed, RequestRecord};
use super::redact::Redactor;
use super::writer::{self, Batch, Committed, Repeat, Writer};
use crate::config::IngestConfig;
use crate::db::copy::CopyBuf;
use crate::db::Db;
use crate::model::Level;
use crate::query::checkpoint::Checkpoint;
use crate::query::ingest::ErrorGroupDelta;

/// Rejected lines reported individually; the rest are only counted.
pub const REPORTED_REJECTS: usize = 10;

/// Shortens `s` to at most `max` characters for a message.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Service for lines that name none.
    pub service: String,
    /// Where the lines come from (a file name or "stdin"), for `ingest_stat`.
    pub source: String,
    /// Print the first rejected lines on stderr as they are found.
    pub print_rejects: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Auto,
            service: String::new(),
            source: "stdin".into(),
            print_rejects: false,
        }
    }
}

/// A rejected line: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Input lines seen (blank lines included, so numbers match the input).
    pub lines: u64,
    /// Rows committed to `log_event` and `request_log`.
    pub logs: u64,
    pub requests: u64,
    pub rejected: u64,
    /// Events folded into an earlier identical one (not stored as rows of their own).
    pub folded: u64,
    pub elapsed: Duration,
    pub first_rejects: Vec<Rejection>,
    /// Why writing stopped, when it did.
    pub error: Option<String>,
}

impl Summary {
    pub fn rows(&self) -> u64 {
        self.logs + self.requests
    }

    pub fn rows_per_sec(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }

    /// The one line printed at the end of a run.
    pub fn line(&self) -> String {
        format!(
            "ingest: {} rows stored ({} logs, {} requests), {} lines rejected, {} duplicates folded, {:.2}s, {:.0} rows/s",
            self.rows(),
            self.logs,
            self.requests,
            self.rejected,
            self.folded,
            self.elapsed.as_secs_f64(),
            self.rows_per_sec()
        )
    }
}

/// The batch being built.
#[derive(Default)]
struct Building {
    logs: Vec<LogRecord>,
    requests: Vec<RequestRecord>,
    groups: HashMap<String, ErrorGroupDelta>,
    group_users: HashSet<(String, String)>,
    repeats: HashMap<(u64, usize), Repeat>,
    rejected: u64,
    folded: u64,
    positions: Vec<Checkpoint>,
    since: Option<Instant>,
}

impl Building {
    fn rows(&self) -> usize {
        self.logs.len() + self.requests.len()
    }

    fn is_empty(&self) -> bool {
        self.rows() == 0
            && self.repeats.is_empty()
            && self.rejected == 0
            && self.folded == 0
            && self.positions.is_empty()
    }
}

pub struct Pipeline {
    opts: Options,
    redactor: Redactor,
    dedup: Dedup,
    batch_size: usize,
    flush_interval: Duration,
    seq: u64,
    cur: Building,
    lines: u64,
    rejected: u64,
    folded: u64,
    first_rejects: Vec<Rejection>,
    tx: Option<mpsc::Sender<Batch>>,
    writer: Option<JoinHandle<Result<()>>>,
    writer_error: Option<String>,
    committed: Arc<Committed>,
    started: Instant,
}

impl Pipeline {
    /// Starts the writer task; call inside a tokio runtime.
    pub fn new(db: Db, cfg: &IngestConfig, opts: Options) -> Result<Pipeline> {
        let window = humantime::parse_duration(&cfg.dedup_window)
            .with_context(|| format!("ingest.dedup_window {:?}", cfg.dedup_window))?;
        let redactor = Redactor::new(cfg)?;
        let committed = Arc::new(Committed::default());
        // Two batches in flight: one being written, one waiting; more only costs memory.
        let (tx, rx) = mpsc::channel(2);
        let writer = Writer::new(db, opts.source.clone(), committed.clone());
        let handle = tokio::spawn(writer.run(rx));
        Ok(Pipeline {
            opts,
            redactor,
            dedup: Dedup::new(window),
            batch_size: cfg.batch_size.max(1),
            flush_interval: Duration::from_millis(cfg.flush_interval_ms.max(1)),
            seq: 0,
            cur: Building::default(),
            lines: 0,
            rejected: 0,
            folded: 0,
            first_rejects: Vec::new(),
            tx: Some(tx),
            writer: Some(handle),
            writer_error: None,
            committed,
            started: Instant::now(),
        })
    }

    /// When the buffered rows must be sent at the latest (None when nothing is buffered).
    pub fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        self.cur
            .since
            .map(|t| tokio::time::Instant::from_std(t + self.flush_interval))
    }

    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        self.cur.rejected += 1;
        self.cur.since.get_or_insert_with(Instant::now);
        if self.first_rejects.len() < REPORTED_REJECTS {
            let r = Rejection {
                line: self.lines,
                reason: crate::sanitize::clean(&clip(&reason, 200)),
            };
            if self.opts.print_rejects {
                eprintln!("{r}");
            }
            self.first_rejects.push(r);
        }
    }

    /// Records where a followed file stands after the line pushed next; saved with the batch
    /// that holds that line (see `follow`).
    pub fn mark_position(&mut self, cp: Checkpoint) {
        match self.cur.positions.iter_mut().find(|p| p.path == cp.path) {
            Some(p) => *p = cp,
            None => self.cur.positions.push(cp),
        }
    }

    /// Service for the following lines that name none (several files followed at once).
    pub fn set_default_service(&mut self, service: &str) {
        if self.opts.service != service {
            self.opts.service = service.to_string();
        }
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Counts shared with the writer, readable while the run goes on (signal handling).
    pub fn committed(&self) -> Arc<Committed> {
        self.committed.clone()
    }

    /// Counts a line that was too long to read (see `reader::MAX_LINE`).
    pub fn push_too_long(&mut self) {
        self.lines += 1;
        self.reject(format!(
            "line longer than {} bytes, skipped",
            super::reader::MAX_LINE
        ));
    }

    /// Parses one input line (without its newline) into the current batch; sends the batch to
    /// the writer when full. Fails only when the writer has stopped (database gone).
    pub async fn push_line(&mut self, raw: &[u8]) -> Result<()> {
        self.lines += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                self.reject(format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1));
                return Ok(());
            }
        };
        let ctx = LineContext {
            service: &self.opts.service,
            now: Utc::now(),
        };
        match parse_line(self.opts.format, text, &ctx) {
            Ok(parsed) => {
                let has_nul = memchr::memchr(0, raw).is_some()
                    || memchr::memmem::find(raw, b"\\u0000").is_some();
                self.accept(parsed, has_nul);
            }
            Err(reason) => self.reject(reason),
        }
        if self.cur.rows() >= self.batch_size {
            self.send(None).await?;
        }
        Ok(())
    }

    fn accept(&mut self, parsed: Parsed, has_nul: bool) {
        self.cur.since.get_or_insert_with(Instant::now);
        if let Some(mut log) = parsed.log {
            if has_nul {
                log.strip_nul();
            }
            self.add_log(log);
        }
        if let Some(mut req) = parsed.request {
            if has_nul {
                req.strip_nul();
            }
            self.redactor.string(&mut req.route);
            self.redactor.opt_string(&mut req.user_agent);
            self.cur.requests.push(req);
        }
    }

    fn add_log(&mut self, mut log: LogRecord) {
        let r = &self.redactor;
        r.string(&mut log.message);
        r.opt_string(&mut log.user_agent);
        r.opt_string(&mut log.route);
        if let Some(attrs) = &mut log.attrs {
            r.json(attrs);
        }
        if log.level >= Level::Error {
            let fp = fingerprint(&log.service, log.error_type.as_deref(), &log.message);
            let g = self
                .cur
                .groups
                .entry(fp.clone())
                .or_insert_with(|| ErrorGroupDelta {
                    fingerprint: fp.clone(),
                    service: log.service.clone(),
                    error_type: log.error_type.clone(),
                    sample_message: log.message.clone(),
                    first_seen: log.ts,
                    last_seen: log.ts,
                    count: 0,
                });
            g.count += 1;
            if log.ts < g.first_seen {
                g.first_seen = log.ts;
            }
            if log.ts > g.last_seen {
                g.last_seen = log.ts;
                g.sample_message.clone_from(&log.message);
            }
            if let Some(user) = &log.user_id {
                self.cur.group_users.insert((fp.clone(), user.clone()));
            }
            log.fingerprint = Some(fp);
        }
        let index = self.cur.logs.len();
        let verdict = self.dedup.check(
            &log.service,
            log.level.as_i16(),
            &log.message,
            log.ts,
            self.seq,
            index,
        );
        match verdict {
            Verdict::New => self.cur.logs.push(log),
            Verdict::InBatch(i) => {
                self.folded += 1;
                self.cur.folded += 1;
                if let Some(row) = self.cur.logs.get_mut(i) {
                    row.repeat_count = row.repeat_count.saturating_add(1);
                }
            }
            Verdict::Sent { seq, index, ts } => {
                self.folded += 1;
                self.cur.folded += 1;
                self.cur
                    .repeats
                    .entry((seq, index))
                    .or_insert_with(|| Repeat {
                        seq,
                        ts,
                        service: log.service.clone(),
                        level: log.level.as_i16(),
                        message: log.message.clone(),
                        add: 0,
                    })
                    .add += 1;
            }
        }
    }

    fn seal(&mut self, done: Option<oneshot::Sender<()>>) -> Batch {
        let cur = std::mem::take(&mut self.cur);
        let mut logs = CopyBuf::with_capacity(cur.logs.len() * 256);
        let mut days: Vec<NaiveDate> = Vec::new();
        let mut note_day = |d: NaiveDate| {
            if days.last() != Some(&d) && !days.contains(&d) {
                days.push(d);
            }
        };
        for r in &cur.logs {
            writer::encode_log(&mut logs, r);
            note_day(r.ts.date_naive());
        }
        let mut requests = CopyBuf::with_capacity(cur.requests.len() * 192);
        for r in &cur.requests {
            writer::encode_request(&mut requests, r);
            note_day(r.ts.date_naive());
        }
        let mut groups: Vec<ErrorGroupDelta> = cur.groups.into_values().collect();
        groups.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        let batch = Batch {
            seq: self.seq,
            logs,
            requests,
            days,
            repeats: cur.repeats.into_values().collect(),
            groups,
            group_users: cur.group_users.into_iter().collect(),
            rejected: cur.rejected,
            folded: cur.folded,
            positions: cur.positions,
            lines_through: self.lines,
            done,
        };
        self.seq += 1;
        self.dedup.prune();
        batch
    }

    async fn send(&mut self, done: Option<oneshot::Sender<()>>) -> Result<()> {
        let batch = self.seal(done);
        let sent = match &self.tx {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.writer_failure().await);
        }
        Ok(())
    }

    /// The writer's error once it has stopped.
    async fn writer_failure(&mut self) -> anyhow::Error {
        self.tx = None;
        if let Some(h) = self.writer.take() {
            let msg = match h.await {
                Ok(Ok(())) => "the database writer stopped".to_string(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => format!("the database writer failed: {e}"),
            };
            self.writer_error = Some(msg);
        }
        anyhow::anyhow!(self
            .writer_error
            .clone()
            .unwrap_or_else(|| "the database writer stopped".into()))
    }

    /// Sends whatever is buffered without waiting for it to be written (the `--follow` timer).
    pub async fn flush_buffered(&mut self) -> Result<()> {
        if self.cur.is_empty() {
            self.cur.since = None;
            return Ok(());
        }
        self.send(None).await
    }

    /// Sends whatever is buffered and waits until everything sent so far is committed.
    pub async fn flush(&mut self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.send(Some(done)).await?;
        if wait.await.is_err() {
            return Err(self.writer_failure().await);
        }
        Ok(())
    }

    /// Writes what is buffered, stops the writer, and reports.
    pub async fn finish(mut self) -> Summary {
        if self.writer_error.is_none() && !self.cur.is_empty() {
            let _ = self.send(None).await;
        }
        self.tx = None;
        if let Some(h) = self.writer.take() {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.writer_error = Some(format!("{e:#}")),
                Err(e) => self.writer_error = Some(format!("the database writer failed: {e}")),
            }
        }
        Summary {
            lines: self.lines,
            logs: self.committed.logs.load(Ordering::Relaxed),
            requests: self.committed.requests.load(Ordering::Relaxed),
            rejected: self.rejected,
            folded: self.folded,
            elapsed: self.started.elapsed(),
            first_rejects: self.first_rejects,
            error: self.writer_error,
        }
    }
}
