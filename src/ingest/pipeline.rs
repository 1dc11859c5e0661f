//! The ingest pipeline: line -> parse -> redact -> fingerprint -> de-duplicate -> batch. Sealed
//! batches go to the writer task (see `writer`), so parsing the next batch overlaps the COPY
//! of the previous one.
//!
//! Long because its stages share one batch under construction (rows, dedup indexes, error groups,
//! repeats) and its counters; the stages' own work lives in their files (fields, redact, dedup,
//! multiline, writer).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::audit::AuditReader;
use super::container::{self, PathMeta};
use super::dedup::{self, Dedup, Verdict};
use super::detect::Format;
use super::envelope;
use super::fields::LineContext;
use super::fingerprint::{self, fingerprint};
use super::log_batch::LogBuf;
use super::multiline::{Joined, Joiner};
use super::record::{AuditRecord, LogRecord, Parsed, QueryRecord, RequestRecord};
use super::redact::Redactor;
use super::syslog::Clock;
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
    /// A custom access-log layout (`--format nginx:'...'`, `ingest.access_format`): lines it
    /// matches are requests; the others are rejected, or detected as usual with `auto`.
    pub layout: Option<Arc<super::layout::Layout>>,
    /// Service for lines that name none.
    pub service: String,
    /// `service` given by the user (`--service`): it wins over the line's own service, app,
    /// logger, name or component field, which is then kept in attrs under its name.
    pub force_service: bool,
    /// Where the lines come from (a file name or "stdin"), for `ingest_stat`.
    pub source: String,
    /// Print the first rejected lines on stderr as they are found.
    pub print_rejects: bool,
    /// Retention periods of `log_event` and `request_log` (`retention.*.keep_days`): rows older
    /// are counted, as the next retention run drops them.
    pub log_keep_days: u32,
    pub request_keep_days: u32,
    /// `retention.log_non_error_keep_days`: log rows below error leave a day's partition then.
    pub log_compact_days: u32,
    /// `--keep`: hold the partitions of such rows from retention until then.
    pub keep_until: Option<DateTime<Utc>>,
    /// `--kind audit`: every line is an audit event (stored only in `audit_event`); a line
    /// without an action and an actor is rejected.
    pub audit_only: bool,
    /// Keep each rejection for `Pipeline::take_rejects` (a receiver answering per request).
    pub collect_rejects: bool,
    /// Retry a failing batch this long at most (`Writer::retry_for`); None: the writer's own
    /// attempts (~20 s).
    pub write_retry: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Auto,
            layout: None,
            service: String::new(),
            source: "stdin".into(),
            print_rejects: false,
            force_service: false,
            log_keep_days: crate::config::RetentionConfig::default()
                .log_event
                .keep_days,
            request_keep_days: crate::config::RetentionConfig::default()
                .request_log
                .keep_days,
            log_compact_days: crate::config::RetentionConfig::default().log_non_error_keep_days,
            keep_until: None,
            audit_only: false,
            collect_rejects: false,
            write_retry: None,
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

/// What a run did. Every line read is one of: an event stored (as a log row, a request row, or
/// both for a request-like line), an event folded into an earlier identical one, a rejected
/// line, a blank line: `lines = events + folded + rejected + blank` once everything is
/// committed. A request-like line whose log row is folded counts as folded; its request row is
/// still stored (latency statistics count every request).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Input lines seen (blank lines included, so numbers match the input).
    pub lines: u64,
    /// Events committed as rows of their own.
    pub events: u64,
    /// Rows committed to `log_event` and `request_log`.
    pub logs: u64,
    pub requests: u64,
    pub queries: u64,
    pub audits: u64,
    pub rejected: u64,
    /// Events folded into an earlier identical one (not stored as rows of their own).
    pub folded: u64,
    pub blank: u64,
    /// Lines joined into the event before them: continuation lines of a multi-line event (a
    /// stack trace's frames) and pieces of split lines (CRI `P`, Docker lines over 16 KiB,
    /// journald's LineMax). An event of N lines counts 1 event and N - 1 joined.
    pub joined: u64,
    /// Rows committed already outside their table's retention period (per table).
    pub old_logs: u64,
    pub old_requests: u64,
    pub log_keep_days: u32,
    pub request_keep_days: u32,
    pub log_compact_days: u32,
    /// Until when `--keep` holds those rows' partitions.
    pub keep_until: Option<DateTime<Utc>>,
    pub elapsed: Duration,
    pub first_rejects: Vec<Rejection>,
    /// Events stored, by the format they were read as.
    pub formats: BTreeMap<&'static str, u64>,
    /// Times read without a zone in this run, and the zone they were read in
    /// (`ingest.timezone`).
    pub zoneless: u64,
    pub zone: String,
    /// Why writing stopped, when it did.
    pub error: Option<String>,
}

impl Summary {
    pub fn rows(&self) -> u64 {
        self.logs + self.requests + self.queries + self.audits
    }

    /// `json 120, syslog 4`: the events stored, by the format each was read as.
    pub fn formats_line(&self) -> String {
        let mut by_count: Vec<(&&'static str, &u64)> = self.formats.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        by_count
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn rows_per_sec(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }

    /// Lines read but not accounted for by a commit (the writer stopped).
    pub fn uncommitted(&self) -> u64 {
        self.lines
            .saturating_sub(self.events + self.joined + self.folded + self.rejected + self.blank)
    }

    /// The one line printed at the end of a run: the accounting of every line, then the rows.
    pub fn line(&self) -> String {
        let lost = match self.uncommitted() {
            0 => String::new(),
            n => format!(" + {n} not committed"),
        };
        let mut tables = format!("log_event {}, request_log {}", self.logs, self.requests);
        if self.queries > 0 {
            tables.push_str(&format!(", query_log {}", self.queries));
        }
        if self.audits > 0 {
            tables.push_str(&format!(", audit_event {}", self.audits));
        }
        let mut formats = match self.formats_line() {
            f if f.is_empty() => f,
            f => format!("; formats: {f}"),
        };
        if self.zoneless > 0 {
            formats.push_str(&format!(
                "; times without a zone read as {} (ingest.timezone)",
                self.zone
            ));
        }
        let joined = match self.joined {
            0 => String::new(),
            n => format!(" + {n} lines joined into them"),
        };
        format!(
            "ingest: {} lines read = {} events stored{joined} + {} folded + {} rejected + {} \
             blank{lost}; {} rows stored: {tables}{formats}; {:.2}s, {:.0} rows/s",
            self.lines,
            self.events,
            self.folded,
            self.rejected,
            self.blank,
            self.rows(),
            self.elapsed.as_secs_f64(),
            self.rows_per_sec()
        )
    }

    /// A second line when stored rows are already outside the retention period: the next
    /// retention run drops them unless they are held (`--keep`).
    pub fn retention_line(&self) -> Option<String> {
        let old = self.old_logs + self.old_requests;
        if old == 0 {
            return None;
        }
        let what = format!(
            "ingest: {old} stored rows are older than the retention period (log_event {} of {} \
             days, below error {} days; request_log {} of {} days)",
            self.old_logs,
            self.log_keep_days,
            self.log_compact_days.min(self.log_keep_days),
            self.old_requests,
            self.request_keep_days
        );
        Some(match self.keep_until {
            Some(until) => format!(
                "{what}; held from retention until {} (see `opsdash retention status`)",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            None => format!(
                "{what} and will be dropped by the next retention run; `opsdash ingest --keep` \
                 holds them"
            ),
        })
    }
}

/// The batch being built.
#[derive(Default)]
struct Building {
    logs: Vec<LogRecord>,
    requests: Vec<RequestRecord>,
    queries: Vec<QueryRecord>,
    audits: Vec<AuditRecord>,
    groups: HashMap<String, ErrorGroupDelta>,
    group_users: HashSet<(String, String)>,
    repeats: HashMap<(u64, usize), Repeat>,
    rejected: u64,
    folded: u64,
    lines: u64,
    events: u64,
    blank: u64,
    joined: u64,
    positions: Vec<Checkpoint>,
    since: Option<Instant>,
}

impl Building {
    fn rows(&self) -> usize {
        self.logs.len() + self.requests.len() + self.queries.len() + self.audits.len()
    }

    fn is_empty(&self) -> bool {
        self.rows() == 0
            && self.repeats.is_empty()
            && self.rejected == 0
            && self.folded == 0
            && self.lines == 0
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
    blank: u64,
    joined: u64,
    /// Multi-line joining (None with `--format json`: every line is whole).
    joiner: Option<Joiner>,
    audit: AuditReader,
    /// The file (checkpoint key) the next lines come from; "" for a stream.
    source: Arc<str>,
    /// Per source, the position after its last line pushed (`mark_position`), and the one
    /// noted for the line about to be pushed.
    after: HashMap<Arc<str>, Checkpoint>,
    noted: Option<Checkpoint>,
    /// Events stored, by the format they were read as (for the summary).
    formats: BTreeMap<&'static str, u64>,
    /// Scratch buffer of the event key being looked up.
    key: Vec<u8>,
    /// Zone of times written without one (`ingest.timezone`), with their count in this run.
    zoneless: super::timestamp::Zoneless,
    /// The file being read and what its path says (a container's log).
    source_path: Option<std::path::PathBuf>,
    source_meta: Option<PathMeta>,
    /// Rows of days before these are outside the retention period.
    log_cutoff: NaiveDate,
    /// Log rows below error of days before this are removed by compaction.
    log_compact_cutoff: NaiveDate,
    request_cutoff: NaiveDate,
    first_rejects: Vec<Rejection>,
    recent_rejects: Option<Vec<Rejection>>,
    tx: Option<mpsc::Sender<Batch>>,
    writer: Option<JoinHandle<Result<()>>>,
    writer_error: Option<String>,
    committed: Arc<Committed>,
    started: Instant,
    /// `opsdash.source` attr put on every log row (a receiver's token name), see
    /// [`Pipeline::set_source_attr`].
    source_attr: Option<serde_json::Value>,
    /// The clock read once for the lines of one chunk of input (`begin_chunk`), None between
    /// chunks (each line then reads it).
    chunk_clock: Option<(DateTime<Utc>, Instant)>,
}

impl Pipeline {
    /// Starts the writer task; call inside a tokio runtime.
    pub fn new(db: Db, cfg: &IngestConfig, opts: Options) -> Result<Pipeline> {
        let window = humantime::parse_duration(&cfg.dedup_window)
            .with_context(|| format!("ingest.dedup_window {:?}", cfg.dedup_window))?;
        let redactor = Redactor::new(cfg)?;
        let zone = super::timestamp::Zone::parse(&cfg.timezone)
            .map_err(|e| anyhow::anyhow!("ingest.timezone: {e}"))?;
        let committed = Arc::new(Committed::default());
        // Two batches in flight: one being written, one waiting; more only costs memory.
        let (tx, rx) = mpsc::channel(2);
        let writer =
            Writer::new(db, opts.source.clone(), committed.clone()).retry_for(opts.write_retry);
        let handle = tokio::spawn(writer.run(rx));
        let joiner = match opts.format {
            Format::Json => None,
            _ => Some(
                Joiner::new(
                    &cfg.multiline,
                    cfg.multiline_max_lines,
                    cfg.multiline_max_bytes,
                    Duration::from_millis(cfg.multiline_quiet_ms.min(1000)),
                )
                .map_err(anyhow::Error::msg)?,
            ),
        };
        let collect_rejects = opts.collect_rejects;
        let today = Utc::now().date_naive();
        let cutoff = |days: u32| today - chrono::Duration::days(i64::from(days));
        Ok(Pipeline {
            log_cutoff: cutoff(opts.log_keep_days),
            log_compact_cutoff: cutoff(opts.log_compact_days.min(opts.log_keep_days)),
            request_cutoff: cutoff(opts.request_keep_days),
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
            blank: 0,
            joined: 0,
            joiner,
            audit: AuditReader::new(&cfg.audit),
            source: Arc::from(""),
            after: HashMap::new(),
            noted: None,
            formats: BTreeMap::new(),
            key: Vec::with_capacity(512),
            zoneless: super::timestamp::Zoneless::new(zone),
            source_path: None,
            source_meta: None,
            first_rejects: Vec::new(),
            recent_rejects: collect_rejects.then(Vec::new),
            tx: Some(tx),
            writer: Some(handle),
            writer_error: None,
            committed,
            started: Instant::now(),
            source_attr: None,
            chunk_clock: None,
        })
    }

    /// Reads the clock once for the lines pushed until `end_chunk` (the lines of one buffer
    /// read from the input): they arrived together, and a clock read per line is a measurable
    /// part of reading a line.
    pub fn begin_chunk(&mut self) {
        self.chunk_clock = Some((Utc::now(), Instant::now()));
    }

    pub fn end_chunk(&mut self) {
        self.chunk_clock = None;
    }

    /// Now, as wall time (a line without a time of its own) and as an instant (multi-line
    /// quiet periods).
    fn now(&self) -> (DateTime<Utc>, Instant) {
        self.chunk_clock
            .unwrap_or_else(|| (Utc::now(), Instant::now()))
    }

    /// When the buffered rows must be sent at the latest (None when nothing is buffered).
    pub fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        let batch = self.cur.since.map(|t| t + self.flush_interval);
        let joining = self.joiner.as_ref().and_then(Joiner::deadline);
        let at = match (batch, joining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        at.map(tokio::time::Instant::from_std)
    }

    fn reject(&mut self, reason: String) {
        self.reject_at(self.lines, reason)
    }

    fn reject_at(&mut self, line: u64, reason: String) {
        self.rejected += 1;
        self.cur.rejected += 1;
        self.cur.since.get_or_insert_with(Instant::now);
        if self.first_rejects.len() < REPORTED_REJECTS {
            let r = Rejection {
                line,
                reason: crate::sanitize::clean(&clip(&reason, 200)),
            };
            if self.opts.print_rejects {
                eprintln!("{r}");
            }
            self.first_rejects.push(r);
        }
        if let Some(recent) = &mut self.recent_rejects {
            if recent.len() < REPORTED_REJECTS {
                recent.push(Rejection {
                    line,
                    reason: crate::sanitize::clean(&clip(&reason, 200)),
                });
            }
        }
    }

    /// Rejections since the last call (kept only with `Options::collect_rejects`): a receiver
    /// tells each request about its own bad records.
    pub fn take_rejects(&mut self) -> Vec<Rejection> {
        self.recent_rejects
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Adds one event already parsed by a receiver (OTLP, Loki...): it takes the same road as a
    /// parsed line from here on (redaction, dedup, fingerprints, error groups), counted as one
    /// input line.
    pub async fn push_parsed(&mut self, parsed: Parsed) -> Result<()> {
        self.lines += 1;
        self.cur.lines += 1;
        // Receivers' strings may hold NULs (PostgreSQL text cannot): always check.
        self.accept(parsed, true, false);
        if self.cur.rows() >= self.batch_size {
            self.send(None).await?;
        }
        Ok(())
    }

    /// Records where a followed file stands after the line pushed next; saved with the batch
    /// that holds that line (see `follow`).
    pub fn mark_position(&mut self, cp: Checkpoint) {
        if self.joiner.is_none() {
            return self.save_position(cp);
        }
        // A mark with no line after it (a rotated file's new start) still counts.
        self.settle_mark();
        self.noted = Some(cp);
    }

    fn save_position(&mut self, cp: Checkpoint) {
        match self.cur.positions.iter_mut().find(|p| p.path == cp.path) {
            Some(p) => *p = cp,
            None => self.cur.positions.push(cp),
        }
    }

    /// Saves with the batch the position of `source` that covers only events handed to it: a
    /// pending multi-line event's lines are not committed yet, so the position stays before
    /// its first line until it is.
    fn update_position(&mut self, source: &Arc<str>) {
        let Some(j) = &self.joiner else { return };
        let cp = match j.held(source) {
            Some(held) => held.cloned(),
            None => self.after.get(source).cloned(),
        };
        if let Some(cp) = cp {
            self.save_position(cp);
        }
    }

    /// The file the following lines come from (several files read at once): lines of two
    /// files never join.
    pub fn set_source(&mut self, key: &Arc<str>) {
        if !Arc::ptr_eq(&self.source, key) {
            self.source = key.clone();
        }
    }

    /// Service for the following lines that name none (several files followed at once).
    pub fn set_default_service(&mut self, service: &str) {
        if self.opts.service != service {
            self.opts.service = service.to_string();
        }
    }

    /// The file the following lines come from: a container log's path names its pod,
    /// namespace and container (see `container::path_meta`).
    pub fn set_source_path(&mut self, path: &std::path::Path) {
        if self.source_path.as_deref() != Some(path) {
            self.source_meta = container::path_meta(path);
            self.source_path = Some(path.to_path_buf());
        }
    }

    /// Input lines (or records) pushed so far.
    /// Every log row from now on records `name` under the `opsdash.source` attr (the receiver
    /// sets its client's token name; log rows have no column for who sent them).
    pub fn set_source_attr(&mut self, name: &str) {
        self.source_attr = Some(serde_json::Value::String(name.to_string()));
    }

    pub fn lines(&self) -> u64 {
        self.lines
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
        self.cur.lines += 1;
        self.settle_mark();
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
            // Blank lines neither end nor join a multi-line event (Go prints one between a
            // panic and its goroutines).
            self.cur.lines += 1;
            self.blank += 1;
            self.cur.blank += 1;
            self.cur.since.get_or_insert_with(Instant::now);
            self.settle_mark();
            return Ok(());
        }
        // Invalid UTF-8 is replaced (U+FFFD) and the row says so: the rest of the line is
        // worth keeping, and only a line its format cannot read is rejected.
        let (text, invalid_utf8) = match std::str::from_utf8(raw) {
            Ok(t) => (std::borrow::Cow::Borrowed(t), false),
            Err(_) => (String::from_utf8_lossy(raw), true),
        };
        static ESCAPED_NUL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u0000"));
        let has_nul = memchr::memchr(0, raw).is_some() || ESCAPED_NUL.find(raw).is_some();
        let (now, instant) = self.now();
        let clock = Clock {
            now,
            zone: self.zoneless.zone(),
        };
        match envelope::open(self.opts.format, &text, &clock) {
            Ok(mut env) => {
                // An envelope's decoding (journald's byte arrays, JSON escapes) can make NULs
                // the raw line did not show.
                let has_nul = has_nul
                    || (!env.format.is_empty() && memchr::memchr(0, env.text.as_bytes()).is_some());
                // The file's container metadata belongs to this line's source, which may no
                // longer be the current one when a pending event is handed on.
                if let Some(meta) = &self.source_meta {
                    if env.service.is_none() {
                        env.service.clone_from(&meta.service);
                    }
                    for (k, v) in &meta.attrs {
                        if !env.raw_attrs.contains_key(k) {
                            env.attrs.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
                let line = Joined::single(env, self.lines, has_nul, invalid_utf8);
                match self.joiner.as_mut() {
                    None => self.read_event(line),
                    Some(j) => {
                        let source = self.source.clone();
                        let start = self.after.get(&source).cloned();
                        let done = j.push(&source, &self.opts.service, line, start, instant);
                        for ev in done.into_iter().flatten() {
                            self.read_event(ev);
                        }
                        self.settle_mark();
                    }
                }
            }
            Err(reason) => {
                self.cur.lines += 1;
                self.reject(reason);
                self.settle_mark();
            }
        }
        if self.cur.rows() >= self.batch_size {
            self.send(None).await?;
        }
        Ok(())
    }

    /// The line just pushed is accounted for: the position noted for it becomes its source's
    /// latest, saved unless a pending event holds it back.
    fn settle_mark(&mut self) {
        if let Some(cp) = self.noted.take() {
            let source = cp.path.clone();
            self.after.insert(source.clone(), cp);
            self.update_position(&source);
        }
    }

    /// Hands the pending multi-line events on: those quiet for long enough, or all of them
    /// (end of input, an explicit flush).
    fn drain_joiner(&mut self, all: bool) {
        let Some(j) = self.joiner.as_mut() else {
            return;
        };
        if j.pending_lines() == 0 {
            return;
        }
        let done = j.drain(Instant::now(), all);
        for ev in done {
            self.read_event(ev);
        }
        let sources: Vec<Arc<str>> = self.after.keys().cloned().collect();
        for s in sources {
            self.update_position(&s);
        }
    }

    /// Reads one event's text (inside its envelope) into the current batch, then hands the
    /// text's buffer back to the joiner.
    fn read_event(&mut self, mut ev: Joined) {
        let text = std::mem::take(&mut ev.env.text);
        self.read_text(ev, &text);
        if let (Some(j), std::borrow::Cow::Owned(s)) = (self.joiner.as_mut(), text) {
            j.recycle(s);
        }
    }

    fn read_text(&mut self, ev: Joined, text: &str) {
        let n = ev.lines;
        self.cur.lines += n;
        self.joined += n - 1;
        self.cur.joined += n - 1;
        // A joined event holding a stack trace is an error unless its text names a level.
        let level = (n > 1 && fingerprint::stack_signature(text).is_some()).then_some(Level::Error);
        let ctx = LineContext {
            service: &self.opts.service,
            now: self.now().0,
            level,
            zone: &self.zoneless,
        };
        if let Some(layout) = &self.opts.layout {
            match layout.read(text, &ctx) {
                Ok(parsed) => return self.accept(parsed, ev.has_nul, ev.invalid_utf8),
                Err(reason) if self.opts.format != Format::Auto => {
                    return self.reject_at(ev.first_line, reason)
                }
                Err(_) => {}
            }
        }
        // Only a line that may be an audit event gets a second look.
        let audit_text = (self.opts.audit_only || self.audit.may_be_audit(text)).then_some(text);
        let parsed = envelope::read_text(self.opts.format, ev.env, text, &ctx)
            .and_then(|p| self.find_audit(p, audit_text));
        match parsed {
            Ok(parsed) => self.accept(parsed, ev.has_nul, ev.invalid_utf8),
            Err(reason) => self.reject_at(ev.first_line, reason),
        }
    }

    /// Adds the audit event a parsed line carries (a JSON line with an action and an actor, an
    /// sshd login line); with `--kind audit` keeps only that, and a line without one fails.
    fn find_audit(&self, mut p: Parsed, json_text: Option<&str>) -> Result<Parsed, String> {
        if p.audit.is_none() {
            if let Some(log) = &p.log {
                let json = json_text.filter(|t| t.trim_start().starts_with('{'));
                let found = match json {
                    Some(t) => match self.audit.from_json(t, log.ts) {
                        Ok(a) => Some(a),
                        Err(e) if self.opts.audit_only => return Err(format!("--kind audit: {e}")),
                        Err(_) => None,
                    },
                    None => self.audit.from_sshd(&log.message, &log.service, log.ts),
                };
                p.audit = found.map(|mut a| {
                    a.host = a.host.take().or_else(|| log.host.clone());
                    a.ip = a.ip.take().or_else(|| log.ip.clone());
                    a.request_id = a.request_id.take().or_else(|| log.request_id.clone());
                    a.trace_id = a.trace_id.take().or_else(|| log.trace_id.clone());
                    a
                });
            }
        }
        if self.opts.audit_only {
            if p.audit.is_none() {
                return Err(
                    "--kind audit: not an audit event (a JSON line with an action and an actor, \
                     or an sshd login line)"
                        .into(),
                );
            }
            p.log = None;
            p.request = None;
            p.query = None;
        }
        Ok(p)
    }

    fn accept(&mut self, mut parsed: Parsed, has_nul: bool, invalid_utf8: bool) {
        self.cur.since.get_or_insert_with(Instant::now);
        if self.opts.force_service {
            self.force_service(&mut parsed);
        }
        let mut req = parsed.request;
        if let Some(req) = &mut req {
            if has_nul {
                req.strip_nul();
            }
            self.redactor.string(&mut req.route);
            self.redactor.opt_string(&mut req.user_agent);
        }
        let mut stored = true;
        if let Some(mut log) = parsed.log {
            if has_nul {
                log.strip_nul();
            }
            if invalid_utf8 {
                mark_invalid_utf8(&mut log);
            }
            if let Some(name) = &self.source_attr {
                let attrs = log
                    .attrs
                    .get_or_insert_with(|| serde_json::Value::Object(Default::default()));
                if let Some(map) = attrs.as_object_mut() {
                    map.insert(SOURCE_ATTR.into(), name.clone());
                }
            }
            stored = self.add_log(log, req.as_ref());
        }
        if let Some(req) = req {
            self.cur.requests.push(req);
        }
        if let Some(mut query) = parsed.query {
            if has_nul {
                query.strip_nul();
            }
            self.redactor.string(&mut query.query);
            self.cur.queries.push(query);
        }
        if let Some(mut audit) = parsed.audit {
            if has_nul {
                audit.strip_nul();
            }
            for v in [&mut audit.before, &mut audit.after, &mut audit.changes]
                .into_iter()
                .flatten()
            {
                self.redactor.json(v);
            }
            self.cur.audits.push(audit);
        }
        if stored {
            self.cur.events += 1;
            *self.formats.entry(parsed.format).or_insert(0) += 1;
        }
    }

    /// `--service` given by the user replaces the line's own name, kept in attrs under the
    /// field it came from (unless the line has another field of that name).
    fn force_service(&self, p: &mut Parsed) {
        let forced = &self.opts.service;
        if let Some(log) = &mut p.log {
            if log.service != *forced {
                let old = std::mem::replace(&mut log.service, forced.clone());
                let in_env = |k: &str| log.env_attrs.as_ref().is_some_and(|r| r.contains_key(k));
                if let Some(key) = p.service_from.take().filter(|k| !in_env(k)) {
                    let attrs = log
                        .attrs
                        .get_or_insert_with(|| serde_json::Value::Object(Default::default()));
                    if let Some(map) = attrs.as_object_mut() {
                        map.entry(key.to_string())
                            .or_insert(serde_json::Value::String(old));
                    }
                }
            }
        }
        if let Some(req) = &mut p.request {
            req.service.clone_from(forced);
        }
    }

    /// Adds the log row of an event (with its request row, part of the event's identity);
    /// returns whether it is stored as a new row (false: folded into an identical one).
    fn add_log(&mut self, mut log: LogRecord, req: Option<&RequestRecord>) -> bool {
        if log.error_type.is_none() && log.message.contains('\n') {
            log.error_type = fingerprint::exception_type(&log.message);
        }
        let r = &self.redactor;
        r.string(&mut log.message);
        r.opt_string(&mut log.user_agent);
        r.opt_string(&mut log.route);
        if let Some(attrs) = &mut log.attrs {
            r.json(attrs);
        }
        if let Some(raw) = &mut log.env_attrs {
            raw.redact(r);
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
        let verdict = if self.dedup.enabled() {
            self.key.clear();
            dedup::event_key(&mut self.key, &log, req);
            self.dedup.check(&self.key, log.ts, self.seq, index)
        } else {
            Verdict::New
        };
        match verdict {
            Verdict::New => {
                self.cur.logs.push(log);
                return true;
            }
            Verdict::InBatch(i) => {
                if let Some(row) = self.cur.logs.get_mut(i) {
                    row.repeat_count = row.repeat_count.saturating_add(1);
                    let last = row.last_seen.unwrap_or(row.ts).max(log.ts);
                    row.ts = row.ts.min(log.ts);
                    row.last_seen = Some(last);
                }
            }
            Verdict::Sent { seq, index, ts } => {
                let r = self.cur.repeats.entry((seq, index)).or_insert_with(|| {
                    // The repeat is matched by its attrs as one value.
                    let mut row = log.clone();
                    row.materialize_attrs();
                    Repeat {
                        seq,
                        ts,
                        last: log.ts,
                        row,
                        add: 0,
                    }
                });
                r.add += 1;
                r.last = r.last.max(log.ts);
            }
        }
        self.folded += 1;
        self.cur.folded += 1;
        false
    }

    fn seal(&mut self, done: Option<oneshot::Sender<()>>) -> Batch {
        let cur = std::mem::take(&mut self.cur);
        let mut logs = LogBuf::with_capacity(cur.logs.len() * 256);
        let mut days: Vec<NaiveDate> = Vec::new();
        let mut note_day = |d: NaiveDate| {
            if days.last() != Some(&d) && !days.contains(&d) {
                days.push(d);
            }
        };
        let (mut old_logs, mut old_requests) = (0, 0);
        let mut old_days: Vec<(&'static str, NaiveDate)> = Vec::new();
        let mut note_old = |table: &'static str, d: NaiveDate| {
            if !old_days.contains(&(table, d)) {
                old_days.push((table, d));
            }
        };
        for r in &cur.logs {
            logs.push_record(r);
            let day = r.ts.date_naive();
            note_day(day);
            if day < self.log_cutoff || (r.level < Level::Error && day < self.log_compact_cutoff) {
                old_logs += 1;
                note_old("log_event", day);
            }
        }
        let mut requests = CopyBuf::with_capacity(cur.requests.len() * 192);
        for r in &cur.requests {
            writer::encode_request(&mut requests, r);
            let day = r.ts.date_naive();
            note_day(day);
            if day < self.request_cutoff {
                old_requests += 1;
                note_old("request_log", day);
            }
        }
        let mut queries = CopyBuf::with_capacity(cur.queries.len() * 192);
        for r in &cur.queries {
            writer::encode_query(&mut queries, r);
            note_day(r.ts.date_naive());
        }
        let mut audits = CopyBuf::with_capacity(cur.audits.len() * 192);
        for r in &cur.audits {
            writer::encode_audit(&mut audits, r);
            note_day(r.ts.date_naive());
        }
        let holds = match self.opts.keep_until {
            Some(_) => old_days
                .into_iter()
                .map(|(t, d)| (t, crate::query::retention::partition_name(t, d)))
                .collect(),
            None => Vec::new(),
        };
        let mut groups: Vec<ErrorGroupDelta> = cur.groups.into_values().collect();
        groups.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        let batch = Batch {
            seq: self.seq,
            logs,
            requests,
            queries,
            audits,
            days,
            repeats: cur.repeats.into_values().collect(),
            groups,
            group_users: cur.group_users.into_iter().collect(),
            rejected: cur.rejected,
            folded: cur.folded,
            lines: cur.lines,
            events: cur.events,
            blank: cur.blank,
            joined: cur.joined,
            old_logs,
            old_requests,
            holds,
            hold_until: self.opts.keep_until,
            positions: cur.positions,
            lines_through: self.lines - self.joiner.as_ref().map_or(0, Joiner::pending_lines),
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
        self.drain_joiner(false);
        if self.cur.is_empty() {
            self.cur.since = None;
            return Ok(());
        }
        self.send(None).await
    }

    /// Sends whatever is buffered and waits until everything sent so far is committed.
    pub async fn flush(&mut self) -> Result<()> {
        let wait = self.flush_then().await?;
        if wait.await.is_err() {
            return Err(self.writer_failure().await);
        }
        Ok(())
    }

    /// Sends whatever is buffered without waiting for its commit: the receiver is told once
    /// everything sent so far is committed, and dropped if the writer fails first (then
    /// [`Pipeline::finish`] says why). A receiver parses its next requests meanwhile.
    pub async fn flush_then(&mut self) -> Result<oneshot::Receiver<()>> {
        self.drain_joiner(true);
        let (done, wait) = oneshot::channel();
        self.send(Some(done)).await?;
        Ok(wait)
    }

    /// Writes what is buffered, stops the writer, and reports.
    pub async fn finish(mut self) -> Summary {
        self.drain_joiner(true);
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
        let c = &self.committed;
        Summary {
            lines: self.lines,
            events: c.events.load(Ordering::Relaxed),
            logs: c.logs.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            queries: c.queries.load(Ordering::Relaxed),
            audits: c.audits.load(Ordering::Relaxed),
            rejected: self.rejected,
            folded: self.folded,
            blank: self.blank,
            joined: self.joined,
            old_logs: c.old_logs.load(Ordering::Relaxed),
            old_requests: c.old_requests.load(Ordering::Relaxed),
            log_keep_days: self.opts.log_keep_days,
            request_keep_days: self.opts.request_keep_days,
            log_compact_days: self.opts.log_compact_days,
            keep_until: self.opts.keep_until,
            elapsed: self.started.elapsed(),
            first_rejects: self.first_rejects,
            formats: self.formats,
            zoneless: self.zoneless.count(),
            zone: self.zoneless.zone().name(),
            error: self.writer_error,
        }
    }
}

/// Attribute naming who sent a row to `opsdash serve` (the name of its bearer token).
pub const SOURCE_ATTR: &str = "opsdash.source";

/// Attribute set on a row whose line had bytes that are not UTF-8 (replaced by U+FFFD).
pub const INVALID_UTF8_ATTR: &str = "opsdash.invalid_utf8";

fn mark_invalid_utf8(log: &mut LogRecord) {
    let attrs = log
        .attrs
        .get_or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(map) = attrs.as_object_mut() {
        map.insert(INVALID_UTF8_ATTR.into(), serde_json::Value::Bool(true));
    }
}
