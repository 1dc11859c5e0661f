//! The database side of the pipeline: one task that takes sealed batches and writes each in one
//! transaction - COPY into the partitioned parents, repeat counts, error groups, a statistics
//! row, and one NOTIFY for the live tail. It runs while the next batch is being parsed.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, Postgres};
use tokio::sync::{mpsc, oneshot};

use super::raw_attrs::{is_plain, Merged, Piece, RawAttrs};
use super::record::{AuditRecord, LogRecord, QueryRecord, RequestRecord};
use super::timestamp::format_copy;
use crate::db::copy::CopyBuf;
use crate::db::Db;
use crate::model::log_row::LogRowRef;
use crate::query::ingest::{self as q, ErrorGroupDelta, RepeatDelta};

pub const LOG_TABLE: &str = "opsdash.log_event";
pub const REQUEST_TABLE: &str = "opsdash.request_log";
pub const QUERY_TABLE: &str = "opsdash.query_log";
pub const AUDIT_TABLE: &str = "opsdash.audit_event";

/// The log row's columns: one declaration for the writer, the demo, export and the Logs
/// queries (`model::log_row`).
pub use crate::model::log_row::{LOG_COLUMNS, LOG_COPY_COLUMNS};

pub const REQUEST_COLUMNS: &[&str] = &[
    "ts",
    "service",
    "method",
    "route",
    "status",
    "duration_ms",
    "bytes",
    "user_id",
    "trace_id",
    "request_id",
    "ip",
    "user_agent",
    "error_code",
    "direction",
    "integration",
];

pub use crate::demo::rows::{AUDIT_COLUMNS, QUERY_COLUMNS};

/// Daily partitions are made for days this far back and ahead; rows outside stay in the
/// DEFAULT partition (a log from year 1 must not create a partition for year 1).
const PARTITION_DAYS_BACK: i64 = 400;
const PARTITION_DAYS_AHEAD: i64 = 7;

thread_local! {
    /// A row's attrs serialized, reused from row to row (encoding runs once per row).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// serde_json's compact output with each of its escapes' backslash doubled: that is the JSON
/// text escaped for COPY's text format, since the JSON writer escapes every byte COPY treats
/// specially (backslash, tab, newline, carriage return, every control byte) and nothing else
/// of its output is special to COPY.
struct CopyEscaped;

impl serde_json::ser::Formatter for CopyEscaped {
    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape;
        // An escaped backslash (JSON `\\`) has both its backslashes doubled; every other
        // escape has one, its first byte.
        if let CharEscape::ReverseSolidus = char_escape {
            return writer.write_all(b"\\\\\\\\");
        }
        writer.write_all(b"\\")?;
        serde_json::ser::CompactFormatter.write_char_escape(writer, char_escape)
    }
}

/// A row's attrs as a COPY field: the JSON text written already escaped for COPY
/// (`CopyEscaped`), so it is not scanned a second time (the biggest field of a journald or JSON
/// row). The same bytes as `buf.text` of the JSON text.
fn attrs_field(buf: &mut CopyBuf, a: &serde_json::Value) {
    SCRATCH.with_borrow_mut(|json| {
        json.clear();
        let mut ser = serde_json::Serializer::with_formatter(&mut *json, CopyEscaped);
        match serde::Serialize::serialize(a, &mut ser) {
            Ok(()) => match std::str::from_utf8(json) {
                Ok(escaped) => buf.plain(escaped),
                Err(_) => buf.text(&a.to_string()),
            },
            Err(_) => buf.text(&a.to_string()),
        }
    })
}

/// A row's attrs given as its map laid over an envelope's raw fields (`LogRecord::env_attrs`):
/// the same bytes as `attrs_field` of the merged object, written field by field, the raw
/// fields' plain strings copied as they are.
fn merged_attrs_field(buf: &mut CopyBuf, map: Option<&serde_json::Value>, raw: &RawAttrs) {
    let map = match map {
        Some(serde_json::Value::Object(m)) => Some(m),
        // Not an object: the envelope's fields are not kept (see `envelope::read_text`).
        Some(a) => return attrs_field(buf, a),
        None => None,
    };
    buf.escaped_with(|out| {
        // Writing into a Vec cannot fail, nor can serializing a Value.
        let json_str = |out: &mut Vec<u8>, s: &str| {
            if is_plain(s) {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                let mut ser = serde_json::Serializer::with_formatter(&mut *out, CopyEscaped);
                let _ = serde::Serializer::serialize_str(&mut ser, s);
            }
        };
        out.push(b'{');
        // Every member is followed by a comma; the last one is replaced by the brace.
        raw.merged_members(map, |piece| {
            match piece {
                Piece::Member(m) => out.extend_from_slice(m.as_bytes()),
                Piece::Field(k, v) => {
                    json_str(out, k);
                    out.push(b':');
                    match v {
                        Merged::Plain(s) => {
                            out.push(b'"');
                            out.extend_from_slice(s.as_bytes());
                            out.push(b'"');
                        }
                        Merged::Value(v) => {
                            let mut ser =
                                serde_json::Serializer::with_formatter(&mut *out, CopyEscaped);
                            let _ = serde::Serialize::serialize(v, &mut ser);
                        }
                    }
                }
            }
            out.push(b',');
        });
        match out.last_mut() {
            Some(last @ b',') => *last = b'}',
            _ => out.push(b'}'),
        }
    });
}

/// One ingested record as a log row with its `tokens` (see `encode_log_row`); true when its
/// attrs were written from an envelope's raw fields (which block keys do not read).
pub fn encode_log(buf: &mut CopyBuf, r: &LogRecord, row: &LogRowRef, tokens: &[i32]) -> bool {
    match &r.env_attrs {
        None => {
            encode_log_row(buf, row, tokens);
            false
        }
        Some(raw) => {
            encode_row(buf, row, tokens, |buf| {
                merged_attrs_field(buf, r.attrs.as_ref(), raw)
            });
            true
        }
    }
}

/// An ingested record as the log row the encoder takes.
pub fn log_row(r: &LogRecord) -> LogRowRef<'_> {
    LogRowRef {
        ts: r.ts,
        level: r.level,
        service: &r.service,
        host: r.host.as_deref(),
        message: &r.message,
        trace_id: r.trace_id.as_deref(),
        span_id: r.span_id.as_deref(),
        request_id: r.request_id.as_deref(),
        user_id: r.user_id.as_deref(),
        route: r.route.as_deref(),
        method: r.method.as_deref(),
        status: r.status,
        duration_ms: r.duration_ms,
        ip: r.ip.as_deref(),
        user_agent: r.user_agent.as_deref(),
        error_type: r.error_type.as_deref(),
        attrs: r.attrs.as_ref(),
        fingerprint: r.fingerprint.as_deref(),
        repeat_count: r.repeat_count,
        last_seen: r.last_seen,
    }
}

/// One log row in `LOG_COPY_COLUMNS` order, with its search tokens (`r.tokens()`, computed once
/// by the caller, which also puts them in the block's keys): the only encoder of the log row
/// (the demo writes through it too, by `log_batch::LogBuf`).
pub fn encode_log_row(buf: &mut CopyBuf, r: &LogRowRef, tokens: &[i32]) {
    encode_row(buf, r, tokens, |buf| match r.attrs {
        // Serialized as is: the row holds no NUL (jsonb rejects `\u0000`; see `LogRowRef`), so
        // the text needs no rewriting.
        Some(a) => attrs_field(buf, a),
        None => buf.null(),
    })
}

/// `encode_log_row` with the attrs field written by `attrs`.
fn encode_row(buf: &mut CopyBuf, r: &LogRowRef, tokens: &[i32], attrs: impl FnOnce(&mut CopyBuf)) {
    let mut ts = [0u8; 32];
    buf.plain(format_copy(r.ts, &mut ts));
    buf.int(r.level.as_i16());
    buf.text(r.service);
    buf.opt_text(r.host);
    buf.text(r.message);
    buf.opt_text(r.trace_id);
    buf.opt_text(r.span_id);
    buf.opt_text(r.request_id);
    buf.opt_text(r.user_id);
    buf.opt_text(r.route);
    buf.opt_text(r.method);
    buf.opt_int(r.status);
    buf.opt_plain(r.duration_ms);
    buf.opt_text(r.ip);
    buf.opt_text(r.user_agent);
    buf.opt_text(r.error_type);
    attrs(buf);
    buf.opt_text(r.fingerprint);
    buf.int(r.repeat_count);
    match r.last_seen {
        Some(t) => buf.plain(format_copy(t, &mut ts)),
        None => buf.null(),
    }
    buf.int_array(tokens);
    buf.end_row();
}

pub fn encode_request(buf: &mut CopyBuf, r: &RequestRecord) {
    let mut ts = [0u8; 32];
    buf.plain(format_copy(r.ts, &mut ts));
    buf.text(&r.service);
    buf.text(&r.method);
    buf.text(&r.route);
    buf.int(r.status);
    buf.plain(r.duration_ms);
    buf.opt_int(r.bytes);
    buf.opt_text(r.user_id.as_deref());
    buf.opt_text(r.trace_id.as_deref());
    buf.opt_text(r.request_id.as_deref());
    buf.opt_text(r.ip.as_deref());
    buf.opt_text(r.user_agent.as_deref());
    buf.opt_text(r.error_code.as_deref());
    buf.text(r.direction.as_str());
    buf.opt_text(r.integration.as_deref());
    buf.end_row();
}

pub fn encode_query(buf: &mut CopyBuf, r: &QueryRecord) {
    let mut ts = [0u8; 32];
    buf.plain(format_copy(r.ts, &mut ts));
    buf.text(&r.service);
    buf.opt_text(r.database.as_deref());
    buf.text(&r.query);
    buf.text(&r.fingerprint);
    buf.plain(r.duration_ms);
    buf.opt_int(r.rows);
    buf.opt_text(r.trace_id.as_deref());
    buf.end_row();
}

fn opt_json(buf: &mut CopyBuf, v: &Option<serde_json::Value>) {
    match v {
        Some(v) => buf.text(&v.to_string()),
        None => buf.null(),
    }
}

pub fn encode_audit(buf: &mut CopyBuf, r: &AuditRecord) {
    let mut ts = [0u8; 32];
    buf.plain(format_copy(r.ts, &mut ts));
    buf.text(&r.actor);
    buf.opt_text(r.actor_role.as_deref());
    buf.text(&r.action);
    buf.opt_text(r.resource_type.as_deref());
    buf.opt_text(r.resource_id.as_deref());
    opt_json(buf, &r.before);
    opt_json(buf, &r.after);
    opt_json(buf, &r.changes);
    buf.text(&r.outcome);
    buf.opt_text(r.ip.as_deref());
    buf.opt_text(r.session_id.as_deref());
    buf.opt_text(r.request_id.as_deref());
    buf.opt_text(r.trace_id.as_deref());
    buf.opt_text(r.host.as_deref());
    // Written from an application's log (the trigger and opsdash's own actions say otherwise).
    buf.text("app");
    buf.end_row();
}

/// A repeat of a row written by an earlier batch (`seq`), resolved to its transaction here.
/// `row` is the event (identical to the stored row but for its times), `ts` the stored row's
/// time and `last` the latest repeat's.
#[derive(Debug, Clone)]
pub struct Repeat {
    pub seq: u64,
    pub ts: chrono::DateTime<Utc>,
    pub last: chrono::DateTime<Utc>,
    pub row: LogRecord,
    pub add: i32,
}

/// Everything one flush writes, encoded and ready.
pub struct Batch {
    pub seq: u64,
    pub logs: super::log_batch::LogBuf,
    pub requests: CopyBuf,
    pub queries: CopyBuf,
    pub audits: CopyBuf,
    pub days: Vec<NaiveDate>,
    pub repeats: Vec<Repeat>,
    pub groups: Vec<ErrorGroupDelta>,
    pub group_users: Vec<(String, String)>,
    pub rejected: u64,
    pub folded: u64,
    /// Input lines of this batch: `events + joined + folded + rejected + blank`.
    pub lines: u64,
    pub events: u64,
    pub blank: u64,
    /// Continuation lines joined into the batch's multi-line events.
    pub joined: u64,
    /// Rows already outside their table's retention period (see `Options::keep_days`).
    pub old_logs: u64,
    pub old_requests: u64,
    /// Partitions of those rows to hold (`--keep`), and until when.
    pub holds: Vec<(&'static str, String)>,
    pub hold_until: Option<chrono::DateTime<Utc>>,
    /// Read positions of followed files after the batch's last line, saved in its transaction.
    pub positions: Vec<crate::query::checkpoint::Checkpoint>,
    /// Input lines of the run up to the batch's last line.
    pub lines_through: u64,
    /// Told when the batch is committed (for `Pipeline::flush`).
    pub done: Option<oneshot::Sender<()>>,
}

impl Batch {
    fn has_rows(&self) -> bool {
        !self.logs.is_empty()
            || !self.requests.is_empty()
            || !self.queries.is_empty()
            || !self.audits.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.has_rows()
            && self.repeats.is_empty()
            && self.groups.is_empty()
            && self.rejected == 0
            && self.folded == 0
            && self.lines == 0
            && self.positions.is_empty()
    }
}

/// Rows committed so far, readable while the writer runs.
#[derive(Debug, Default)]
pub struct Committed {
    pub logs: AtomicU64,
    pub requests: AtomicU64,
    pub queries: AtomicU64,
    pub audits: AtomicU64,
    pub events: AtomicU64,
    pub old_logs: AtomicU64,
    pub old_requests: AtomicU64,
    /// Input lines covered by committed batches, and lines handed to the pipeline (the
    /// difference is what an abort loses).
    pub lines: AtomicU64,
    pub read: AtomicU64,
}

pub struct Writer {
    db: Db,
    source: String,
    conn: Option<PoolConnection<Postgres>>,
    ensured: HashSet<NaiveDate>,
    /// Writing transaction of recent batches with log rows, for repeat counts.
    txs: BTreeMap<u64, String>,
    committed: Arc<Committed>,
    partition_warning_shown: bool,
    /// How long a failing batch is retried at most (see [`Writer::retry_for`]); None: up to
    /// [`MAX_ATTEMPTS`].
    retry_for: Option<Duration>,
}

/// Transaction ids remembered for repeat counts; far more batches than a dedup window spans.
const TX_MEMORY: usize = 100_000;

/// Whether retrying the batch on a fresh connection may succeed.
fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_))
        | Some(sqlx::Error::PoolTimedOut)
        | Some(sqlx::Error::Protocol(_))
        | Some(sqlx::Error::Tls(_)) => true,
        Some(sqlx::Error::Database(d)) => d.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "40001" | "40P01" | "53300")
                // A row routed to the DEFAULT partition while another session was creating
                // its day's partition fails the default's new constraint (seen with two
                // ingests at once): the batch rolled back, and again it goes to the new day.
                || (code == "23514" && d.table().is_some_and(|t| t.ends_with("_default")))
        }),
        _ => false,
    })
}

const MAX_ATTEMPTS: u32 = 8;

/// A connection not had within the retry time (see [`Writer::retry_for`]).
#[derive(Debug)]
struct NoConnection(Duration);

impl std::fmt::Display for NoConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no database connection within {:?}", self.0)
    }
}

impl std::error::Error for NoConnection {}

impl Writer {
    pub fn new(db: Db, source: String, committed: Arc<Committed>) -> Writer {
        Writer {
            db,
            source,
            conn: None,
            ensured: HashSet::new(),
            txs: BTreeMap::new(),
            committed,
            partition_warning_shown: false,
            retry_for: None,
        }
    }

    /// Caps the time a failing batch is retried: no attempt starts, and no connection is
    /// waited for, past `limit` after its first failure; the run then ends with the error. A
    /// receiver sets it so that a client whose request is under way when the database goes
    /// away is answered within seconds, before it gives up and sends the records again (which
    /// would store them twice if a late retry then committed them). An attempt already under
    /// way is not cut short: stopped during its COMMIT, it could have committed, and its
    /// client would be told otherwise. None (file ingest): up to [`MAX_ATTEMPTS`] attempts,
    /// ~20 s, enough to ride out a restart.
    pub fn retry_for(mut self, limit: Option<Duration>) -> Writer {
        self.retry_for = limit;
        self
    }

    /// Writes batches until the channel closes. A batch that fails is retried on a fresh
    /// connection (the database may be restarting); a batch that cannot be written ends the run.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Batch>) -> Result<()> {
        while let Some(mut batch) = rx.recv().await {
            if !batch.is_empty() {
                let mut attempt = 0;
                let mut failing_since: Option<Instant> = None;
                loop {
                    attempt += 1;
                    let e = match self.write(&batch, failing_since).await {
                        Ok(()) => break,
                        Err(e) => e,
                    };
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    let wait = Duration::from_millis(100 << attempt.min(6));
                    let in_time = match self.retry_for {
                        Some(limit) => since.elapsed() + wait < limit,
                        None => attempt < MAX_ATTEMPTS,
                    };
                    if in_time && transient(&e) {
                        self.conn = None;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(e.context(format!(
                        "writing batch {} ({} log rows, {} request rows)",
                        batch.seq,
                        batch.logs.rows(),
                        batch.requests.rows()
                    )));
                }
            }
            if let Some(done) = batch.done.take() {
                let _ = done.send(());
            }
        }
        Ok(())
    }

    /// The writer's connection, made when there is none. While a batch is being retried
    /// (`failing_since`) under a retry cap, waiting for one stops when the cap is reached.
    async fn connection(
        &mut self,
        failing_since: Option<Instant>,
    ) -> Result<&mut PoolConnection<Postgres>> {
        if self.conn.is_none() {
            let acquire = self.db.write.acquire();
            let c = match (self.retry_for, failing_since) {
                (Some(limit), Some(since)) => {
                    let left = limit.saturating_sub(since.elapsed());
                    match tokio::time::timeout(left, acquire).await {
                        Ok(c) => c,
                        Err(_) => return Err(NoConnection(limit).into()),
                    }
                }
                _ => acquire.await,
            }
            .with_context(|| format!("connecting to {}", self.db.target))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no database connection"))
    }

    /// Makes the partitions for the batch's days. Failing here is not fatal: rows then land in
    /// the DEFAULT partition, and the worker's partition job catches up.
    async fn ensure_partitions(
        &mut self,
        days: &[NaiveDate],
        failing_since: Option<Instant>,
    ) -> Result<()> {
        let today = Utc::now().date_naive();
        let wanted: Vec<NaiveDate> = days
            .iter()
            .copied()
            .filter(|d| !self.ensured.contains(d))
            .filter(|d| {
                let off = (*d - today).num_days();
                (-PARTITION_DAYS_BACK..=PARTITION_DAYS_AHEAD).contains(&off)
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let conn = self.connection(failing_since).await?;
        match q::ensure_partitions(
            conn,
            &["log_event", "request_log", "query_log", "audit_event"],
            &wanted,
        )
        .await
        {
            Ok(()) => self.ensured.extend(wanted),
            Err(e) if transient(&e) => return Err(e),
            Err(e) => {
                if !self.partition_warning_shown {
                    self.partition_warning_shown = true;
                    eprintln!("opsdash ingest: warning: {e:#}; rows go to the default partition");
                }
                // Do not try these days again on every batch.
                self.ensured.extend(wanted);
            }
        }
        Ok(())
    }

    async fn write(&mut self, batch: &Batch, failing_since: Option<Instant>) -> Result<()> {
        self.ensure_partitions(&batch.days, failing_since).await?;
        let repeats: Vec<RepeatDelta> = batch
            .repeats
            .iter()
            .filter_map(|r| {
                Some(RepeatDelta {
                    ts: r.ts,
                    last: r.last,
                    tx: self.txs.get(&r.seq)?.clone(),
                    row: r.row.clone(),
                    add: r.add,
                })
            })
            .collect();
        let source = self.source.clone();
        let conn = self.connection(failing_since).await?;
        let mut tx = conn.begin().await.context("starting a transaction")?;
        // The embedded cluster runs with synchronous_commit off; a batch acknowledged here is
        // never written again, so its commit must survive a server crash (one WAL flush per
        // batch). Found by the crash fault test: lines committed just before
        // `pg_ctl stop -m immediate` were gone after the restart.
        q::durable_commit(&mut tx).await?;
        let log_rows = batch.logs.send(&mut tx, LOG_TABLE).await?;
        let request_rows = batch
            .requests
            .send(&mut tx, REQUEST_TABLE, REQUEST_COLUMNS)
            .await?;
        let query_rows = batch
            .queries
            .send(&mut tx, QUERY_TABLE, QUERY_COLUMNS)
            .await?;
        let audit_rows = batch
            .audits
            .send(&mut tx, AUDIT_TABLE, AUDIT_COLUMNS)
            .await?;
        q::add_repeats(&mut tx, &repeats).await?;
        q::upsert_error_groups(&mut tx, &batch.groups).await?;
        q::add_error_group_users(&mut tx, &batch.group_users).await?;
        if let Some(until) = batch.hold_until {
            q::hold_partitions(&mut tx, &batch.holds, until, &source).await?;
        }
        let stat = q::IngestStat {
            lines: batch.lines as i64,
            events: batch.events as i64,
            folded: batch.folded as i64,
            rejected: batch.rejected as i64,
            blank: batch.blank as i64,
            joined: batch.joined as i64,
            log_rows: log_rows as i64,
            request_rows: request_rows as i64,
            other_rows: (query_rows + audit_rows) as i64,
            old_rows: (batch.old_logs + batch.old_requests) as i64,
        };
        q::record_stat(&mut tx, &source, &stat).await?;
        crate::query::checkpoint::save(&mut tx, &batch.positions).await?;
        let xid = if log_rows > 0 {
            Some(q::notify_logs(&mut tx, &log_rows.to_string()).await?)
        } else {
            None
        };
        tx.commit().await.context("committing the batch")?;
        if let Some(xid) = xid {
            self.txs.insert(batch.seq, xid);
            while self.txs.len() > TX_MEMORY {
                self.txs.pop_first();
            }
        }
        self.committed.logs.fetch_add(log_rows, Ordering::Relaxed);
        self.committed
            .requests
            .fetch_add(request_rows, Ordering::Relaxed);
        let c = &self.committed;
        c.queries.fetch_add(query_rows, Ordering::Relaxed);
        c.audits.fetch_add(audit_rows, Ordering::Relaxed);
        c.events.fetch_add(batch.events, Ordering::Relaxed);
        c.old_logs.fetch_add(batch.old_logs, Ordering::Relaxed);
        c.old_requests
            .fetch_add(batch.old_requests, Ordering::Relaxed);
        self.committed
            .lines
            .fetch_max(batch.lines_through, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json_value() -> impl Strategy<Value = Value> {
        let text = "[a-z\\\\\"/\t\n\r\u{0}\u{1}\u{1b}\u{7f}\u{85}é€ 🙂]{0,12}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(text, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The attrs field written escaped as it is serialized is the JSON text escaped by
        /// `CopyBuf::text`, byte for byte.
        #[test]
        fn attrs_written_escaped_are_the_escaped_json_text(v in json_value()) {
            let mut want = CopyBuf::default();
            want.text(&serde_json::to_string(&v).unwrap_or_default());
            let mut got = CopyBuf::default();
            attrs_field(&mut got, &v);
            prop_assert_eq!(got.as_bytes(), want.as_bytes());
        }
    }
}
