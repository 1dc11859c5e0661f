//! The live-tail engine: follows new `log_event` rows and delivers them, in batches, to a
//! channel the TUI event loop drains.
//!
//! - A dedicated LISTEN connection on `db::LOGS_CHANNEL` only *wakes* the reader; rows are read
//!   by the `(tx, id)` cursor from finished transactions only, and transactions that were still
//!   open when the cursor passed them are read by id when they finish (see `query::logs`), so
//!   rows from transactions that commit out of id order are never skipped nor read twice.
//! - Notifications sent while the listener is reconnecting are lost: after every (re)connect
//!   the listener wakes the reader, which catches up by cursor. A poll every `poll` interval is
//!   the safety net (a half-open listener, a replica, a lost wake-up).
//! - The range: with `TailOptions::range` set (the Logs tab's selected range), the fill reads
//!   the newest `capacity` lines by event time stamped inside the range, and the follow reads
//!   take only lines stamped inside it (and after the floor), so a line that arrives late with
//!   a time before the range is never delivered. A new range refills (`set_range`).
//! - Pause keeps the cursor and only counts the waiting lines. On resume, if more lines wait
//!   than the buffer holds, only the newest `capacity` are read and the rest reported as
//!   skipped (they would scroll out of the ring buffer at once anyway).
//! - Wake-ups are coalesced: reads woken by notifications are at least `coalesce` after the
//!   last read that delivered lines, so a writer notifying per batch costs one read per
//!   interval, not one per batch, and a line after a quiet spell is read at once.
//! - Backpressure: the event channel is bounded, so a slow consumer slows the reader instead
//!   of growing memory.
//! - Where it reads (see `db::topology`): the listener and the reader use the direct URL when
//!   one is given. Behind a transaction pooler without one, there is no listener and the
//!   reader polls every `topology::DEGRADED_POLL`. With a read replica the reader reads from
//!   it, snapshot and rows alike: the replica's snapshot lists as in progress every transaction
//!   whose end it has not replayed, so the cursor never passes what the replica has not
//!   replayed. When the replica is down it reads from the primary (xids are the same on both:
//!   the cursor carries over, and the primary is ahead, so nothing is skipped); it goes back to
//!   the replica only once the replica's snapshot xmin has reached the cursor, so that nothing
//!   the primary showed is taken again for in progress and read twice.
//!
//! One file (~700 lines, half of it comments): the loop, the reads and the choice of source all
//! move the same cursor and set of pending transactions the points above are about; the outbox is
//! apart.

mod outbox;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::db::listen::{Listen, ListenEvent};
use crate::db::topology::DEGRADED_POLL;
use crate::db::{Db, LOGS_CHANNEL};
use crate::filter::Filter;
use crate::query::logs::{self as q, LogLine, TailCursor, TailSnapshot};

use outbox::Outbox;
pub use outbox::Waker;

/// application_name of the listener connection (visible in pg_stat_activity).
pub const LISTENER_APP_NAME: &str = "opsdash-tail";
/// application_name of the reader's own connection.
pub const READER_APP_NAME: &str = "opsdash-tail-reader";

#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Lines kept by the consumer; also the most lines read on resume after a long pause.
    pub capacity: usize,
    /// Rows per read.
    pub batch: i64,
    /// Safety-net poll interval.
    pub poll: Duration,
    /// The tail follows rows stamped at or after `start - floor_margin` (see `query::logs`).
    pub floor_margin: Duration,
    pub filter: Option<Filter>,
    /// Deliver only lines stamped within this long before the read (None: from the floor on).
    pub range: Option<Duration>,
    /// Cut-off for each query (a half-open connection must not hang the tail).
    pub query_timeout: Duration,
    /// Fill the buffer with the newest existing lines at start.
    pub initial_fill: bool,
    /// Wake on NOTIFY (off: poll only; the benchmark's baseline).
    pub listen: bool,
    /// Shortest time between two reads woken by notifications. Writers notify once per batch
    /// (a hundred times a second at 10,000 lines/s); reading at most this often lets one read
    /// take several batches, at the cost of at most this much added delay. A line arriving
    /// after a quiet spell is read at once; only a stream is paced. The default matches the
    /// dashboard's frame pace while lines stream (`tui::FRAME_WHILE_STREAMING`): reading more
    /// often than the screen is drawn costs reads nobody sees.
    pub coalesce: Duration,
    /// Wakes the consumer when an event arrives after it went idle (see `outbox`).
    pub waker: Option<Waker>,
}

impl TailOptions {
    pub fn new(capacity: usize) -> Self {
        TailOptions {
            capacity: capacity.max(1),
            batch: 2000,
            poll: Duration::from_secs(1),
            floor_margin: Duration::from_secs(24 * 3600),
            filter: None,
            range: None,
            query_timeout: Duration::from_secs(5),
            initial_fill: true,
            listen: true,
            coalesce: Duration::from_millis(50),
            waker: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TailEvent {
    /// Replace the buffer with these lines (start, or a new filter).
    Reset(Vec<LogLine>),
    /// New lines, oldest first, each delivered once.
    Lines(Vec<LogLine>),
    /// Lines passed over on resume after a pause longer than the buffer.
    Skipped(u64),
    /// While paused: lines waiting after the cursor (capped at `WAITING_CAP`). The first one
    /// after `pause()` acknowledges the pause: no line is delivered after it until `resume()`.
    Waiting(u64),
    /// The listener connection is up (again); `reconnects` counts the re-establishments.
    Listening { reconnects: u64 },
    /// A query or the listener failed; the tail retries on its own.
    Error(String),
    /// The filter or range command numbered so (see [`TailHandle::set_filter`]) is in force:
    /// every `Lines` and `Reset` after this one was read under it, those before it under an
    /// older one (still queued in the channel when the consumer changed its filter).
    Applied(u64),
}

pub const WAITING_CAP: i64 = 1_000_000;

#[derive(Debug)]
enum Command {
    Pause,
    Resume,
    SetFilter(Option<Filter>, u64),
    SetRange(Option<Duration>, u64),
}

/// Controls a running tail; dropping it stops the engine.
pub struct TailHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// The number of the last filter or range command sent (echoed by `TailEvent::Applied`).
    issued: std::sync::atomic::AtomicU64,
    reader: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl TailHandle {
    pub fn pause(&self) {
        let _ = self.commands.send(Command::Pause);
    }
    pub fn resume(&self) {
        let _ = self.commands.send(Command::Resume);
    }
    /// Applies a new filter: the engine answers with `Applied` of the returned number as soon
    /// as it takes the command, then a `Reset` of matching lines.
    pub fn set_filter(&self, filter: Option<Filter>) -> u64 {
        let n = self.next_number();
        let _ = self.commands.send(Command::SetFilter(filter, n));
        n
    }
    /// Applies a new range: the engine answers with `Applied` of the returned number, then a
    /// `Reset` of the lines inside it.
    pub fn set_range(&self, range: Option<Duration>) -> u64 {
        let n = self.next_number();
        let _ = self.commands.send(Command::SetRange(range, n));
        n
    }
    fn next_number(&self) -> u64 {
        self.issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }
}

impl Drop for TailHandle {
    fn drop(&mut self) {
        self.reader.abort();
        self.listener.abort();
    }
}

/// Starts the tail. Events arrive on the returned receiver until the handle is dropped.
pub fn spawn(db: &Db, opts: TailOptions) -> (TailHandle, mpsc::Receiver<TailEvent>) {
    let (tx, rx) = mpsc::channel(256);
    let events = Outbox::new(tx, opts.waker.clone());
    let (commands, cmd_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let listener = if opts.listen && !db.topology.degraded() {
        tokio::spawn(listen_loop(
            db.clone(),
            wake.clone(),
            events.clone(),
            opts.query_timeout,
        ))
    } else {
        tokio::spawn(async {})
    };
    let reader = tokio::spawn(
        Reader {
            db: db.clone(),
            on_replica: db.topology.replica.is_some() && !db.topology.replica_down(),
            replica_tried: None,
            conn: None,
            floor: floor(opts.floor_margin),
            cursor: TailCursor::default(),
            pending: BTreeMap::new(),
            paused: false,
            last_waiting: None,
            delivered: 0,
            opts,
            events,
        }
        .run(wake, cmd_rx),
    );
    (
        TailHandle {
            commands,
            issued: std::sync::atomic::AtomicU64::new(0),
            reader,
            listener,
        },
        rx,
    )
}

/// How the reader connects. No JIT: a filtered initial fill over a day of partitions can cost
/// just above `jit_above_cost`, and compiling it takes longer than the read (see
/// `query::logs::no_jit`). Public so the logs benchmark explains the fill on a connection
/// like this one.
pub fn reader_options(db: &Db) -> PgConnectOptions {
    db.direct_options
        .clone()
        .application_name(READER_APP_NAME)
        .options([("jit", "off")])
}

/// Opens a reader connection: on the replica or on the direct URL (else the primary URL).
/// JIT is turned off with `SET`, not the startup `options` PgBouncer refuses, and not through
/// a transaction pooler (the setting would stay with a server connection others get next).
async fn connect_reader(db: &Db, replica: bool) -> sqlx::Result<PgConnection> {
    let (opts, session_ok) = match (&db.topology.replica, replica) {
        (Some(r), true) => (r.options.clone(), true),
        _ => (
            db.direct_options.clone(),
            db.topology.has_direct || db.topology.session_state_ok(),
        ),
    };
    let mut conn = PgConnection::connect_with(&opts.application_name(READER_APP_NAME)).await?;
    if session_ok {
        crate::query::topology::set_session(&mut conn, "jit", "off").await?;
    }
    Ok(conn)
}

fn floor(margin: Duration) -> DateTime<Utc> {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::hours(24));
    Utc::now()
        .checked_sub_signed(margin)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Keeps a LISTEN connection open (`db::listen`) and turns each notification into a wake-up.
/// After every (re)connect it wakes the reader once so rows whose notification was lost are read;
/// while it is away the reader's poll keeps the tail going.
async fn listen_loop(db: Db, wake: Arc<Notify>, events: Outbox, connect_timeout: Duration) {
    let mut listen = Listen::new(
        db.direct_options.clone(),
        LISTENER_APP_NAME,
        &[LOGS_CHANNEL],
    )
    .connect_timeout(connect_timeout)
    .backoff(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match listen.next().await {
            ListenEvent::Connected { reconnects } => {
                if !events.send(TailEvent::Listening { reconnects }).await {
                    return;
                }
                // LISTEN is active: anything committed from now on wakes us, anything before
                // is caught up by this wake-up.
                wake.notify_one();
            }
            ListenEvent::Notification { .. } => wake.notify_one(),
            ListenEvent::Lost { why } => {
                if let Some(why) = why {
                    let _ = events
                        .send(TailEvent::Error(format!("live tail listener: {why}")))
                        .await;
                }
                if events.is_closed() {
                    return;
                }
                wake.notify_one();
            }
        }
    }
}

/// Runs one statement on the reader's own connection (`checkout`, then `checkin`): `$stmt`
/// is built with the connection bound to `$c`. A macro rather than a closure because the
/// statement borrows the reader's cursor and filter beside the connection.
macro_rules! on_conn {
    ($self:ident, $what:expr, |$c:ident| $stmt:expr) => {
        match $self.checkout().await {
            Ok(mut $c) => {
                let r = $self.timed($what, $stmt).await;
                $self.checkin($c, &r);
                r
            }
            Err(e) => Err(e),
        }
    };
}

struct Reader {
    db: Db,
    /// The connection is (or will be) to the read replica.
    on_replica: bool,
    /// When the reader, back on the primary, last tried the replica again.
    replica_tried: Option<tokio::time::Instant>,
    /// The reader keeps one connection of its own, opened on first use and again after any
    /// failure. Through the pool each statement cost two more round trips (sqlx tests a
    /// connection when it is taken and when it is given back): at 20 reads a second that was
    /// more than the reads themselves.
    conn: Option<PgConnection>,
    opts: TailOptions,
    floor: DateTime<Utc>,
    cursor: TailCursor,
    /// Transactions below the cursor that were in progress when it passed them, with the last
    /// id delivered of each: their rows are read when they finish. At most one entry per open
    /// transaction on the server.
    pending: BTreeMap<i64, i64>,
    paused: bool,
    last_waiting: Option<u64>,
    /// Batches of lines delivered so far (tells a read that found lines from one that did not).
    delivered: u64,
    events: Outbox,
}

/// What the reader does next.
enum Outcome {
    /// The consumer is gone.
    Stop,
    /// Done; look again after this long (or on a wake-up).
    Next(Duration),
    /// The error was reported; retry after the poll interval.
    Failed,
}

impl Reader {
    async fn run(mut self, wake: Arc<Notify>, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut needs_fill = true;
        let mut next = Duration::ZERO;
        let mut last_count: Option<tokio::time::Instant> = None;
        let mut last_lines_read: Option<tokio::time::Instant> = None;
        loop {
            if !needs_fill {
                // Commands first, so a pause is acknowledged before another read starts.
                tokio::select! {
                    biased;
                    cmd = commands.recv() => match cmd {
                        None => return,
                        Some(Command::Pause) => {
                            self.paused = true;
                            self.last_waiting = None;
                            last_count = None;
                        }
                        Some(Command::Resume) => {
                            if self.paused {
                                self.paused = false;
                                self.choose_source(false).await;
                                match self.resume().await {
                                    Outcome::Stop => return,
                                    Outcome::Next(d) => next = d,
                                    Outcome::Failed => next = self.poll(),
                                }
                                continue;
                            }
                        }
                        Some(Command::SetFilter(f, n)) => {
                            self.opts.filter = f;
                            needs_fill = true;
                            if !self.send(TailEvent::Applied(n)).await {
                                return;
                            }
                        }
                        Some(Command::SetRange(r, n)) => {
                            self.opts.range = r;
                            needs_fill = true;
                            if !self.send(TailEvent::Applied(n)).await {
                                return;
                            }
                        }
                    },
                    _ = wake.notified() => {
                        // Too soon after the last read that found lines: let the burst of
                        // notifications (and their rows) gather, then wake again, so commands
                        // that came meanwhile still go first. After a read that found
                        // nothing (a poll, a quiet spell) there is no stream to pace: a
                        // line that comes then is read at once.
                        if let Some(due) = last_lines_read.map(|t| t + self.opts.coalesce) {
                            if tokio::time::Instant::now() < due {
                                tokio::time::sleep_until(due).await;
                                wake.notify_one();
                                continue;
                            }
                        }
                    }
                    _ = tokio::time::sleep(next) => {}
                }
            }
            self.choose_source(needs_fill).await;
            let read_at = tokio::time::Instant::now();
            let delivered_before = self.delivered;
            let outcome = if needs_fill {
                let o = self.fill().await;
                if matches!(o, Outcome::Next(_)) {
                    needs_fill = false;
                }
                o
            } else if self.paused {
                // Counting is not free on a busy table: at most twice a second, whatever
                // the notification rate.
                let due = last_count.is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
                if due {
                    last_count = Some(tokio::time::Instant::now());
                    self.count_waiting().await
                } else {
                    Outcome::Next(Duration::from_millis(500))
                }
            } else {
                self.read_new().await
            };
            last_lines_read =
                (self.delivered > delivered_before && !self.paused).then_some(read_at);
            match outcome {
                Outcome::Stop => return,
                Outcome::Next(d) => next = d,
                Outcome::Failed => next = self.poll(),
            }
        }
    }

    /// The safety-net poll, or the short one when no LISTEN can wake the reader.
    fn poll(&self) -> Duration {
        if self.db.topology.degraded() {
            self.opts.poll.min(DEGRADED_POLL)
        } else {
            self.opts.poll
        }
    }

    /// Moves the reader between the replica and the primary (see the module comment).
    /// `refill`: the next read starts afresh, so any server will do.
    async fn choose_source(&mut self, refill: bool) {
        let topology = self.db.topology.clone();
        if topology.replica.is_none() {
            return;
        }
        if self.on_replica {
            if topology.replica_down() {
                self.conn = None;
                self.on_replica = false;
            }
            return;
        }
        if topology.replica_down()
            || self
                .replica_tried
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.replica_tried = Some(tokio::time::Instant::now());
        let cursor_tx = self.cursor.tx;
        let tried = self
            .timed("replica", async {
                let mut c = connect_reader(&self.db, true).await?;
                let xmin = crate::query::topology::snapshot_xmin(&mut c).await?;
                Ok((c, xmin))
            })
            .await;
        if let Ok((c, xmin)) = tried {
            if refill || xmin >= cursor_tx {
                self.conn = Some(c);
                self.on_replica = true;
            }
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = sqlx::Result<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.opts.query_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("live tail {what}: {e}")),
            Err(_) => Err(format!("live tail {what}: timed out")),
        }
    }

    /// The reader's connection, (re)opened if there is none. Give it back with `checkin`.
    async fn checkout(&mut self) -> Result<PgConnection, String> {
        if let Some(c) = self.conn.take() {
            return Ok(c);
        }
        let db = self.db.clone();
        self.timed("connect", connect_reader(&db, self.on_replica))
            .await
    }

    /// Keeps the connection for the next statement if this one succeeded. After a failure
    /// (or a timeout that dropped the statement half-way) its state is unknown: it is closed
    /// and the next statement opens a new one.
    fn checkin<T>(&mut self, conn: PgConnection, result: &Result<T, String>) {
        if result.is_ok() {
            self.conn = Some(conn);
        }
    }

    async fn send(&mut self, ev: TailEvent) -> bool {
        if matches!(ev, TailEvent::Lines(_)) {
            self.delivered += 1;
        }
        self.events.send(ev).await
    }

    async fn report(&mut self, msg: String) -> Outcome {
        if self.send(TailEvent::Error(msg)).await {
            Outcome::Failed
        } else {
            Outcome::Stop
        }
    }

    async fn snapshot(&mut self) -> Result<TailSnapshot, String> {
        on_conn!(self, "snapshot", |c| q::snapshot(&mut c))
    }

    /// The start of the selected range at this instant (None: no range).
    fn range_start(&self) -> Option<DateTime<Utc>> {
        let r = chrono::Duration::from_std(self.opts.range?).ok()?;
        Utc::now().checked_sub_signed(r)
    }

    /// The oldest time a followed line may have: inside the range, and never before the
    /// floor (which keeps the follow reads on the partitions of the session's days).
    fn bound(&self) -> DateTime<Utc> {
        self.range_start().map_or(self.floor, |s| s.max(self.floor))
    }

    /// Every transaction of `snap` still in progress below the cursor becomes pending.
    fn remember_in_progress(&mut self, snap: &TailSnapshot) {
        for &x in &snap.xip {
            if x < self.cursor.tx {
                self.pending.entry(x).or_insert(0);
            }
        }
    }

    /// Start (or new filter or range): the newest lines by event time inside the range (the
    /// whole range, even past the floor) from finished transactions, then follow.
    async fn fill(&mut self) -> Outcome {
        let snap = match self.snapshot().await {
            Ok(s) => s,
            Err(e) => return self.report(e).await,
        };
        let since = self.range_start().unwrap_or(self.floor);
        let lines = if self.opts.initial_fill {
            let r = on_conn!(self, "initial read", |c| q::tail_last(
                &mut c,
                TailCursor::default(),
                &snap,
                since,
                self.opts.filter.as_ref(),
                self.opts.capacity as i64,
            ));
            match r {
                Ok(l) => l,
                Err(e) => return self.report(e).await,
            }
        } else {
            Vec::new()
        };
        // Every finished transaction below xmax is history now; the open ones are pending.
        self.cursor = TailCursor {
            tx: snap.xmax,
            id: 0,
        };
        self.pending.clear();
        self.remember_in_progress(&snap);
        if !self.send(TailEvent::Reset(lines)).await {
            return Outcome::Stop;
        }
        self.read_new().await
    }

    async fn read_new(&mut self) -> Outcome {
        let snap = match self.snapshot().await {
            Ok(s) => s,
            Err(e) => return self.report(e).await,
        };
        // Pending transactions that have finished since: read their rows by id. One at or
        // above xmax has not even started as this server sees it (a replica behind the
        // primary the cursor came from): not finished.
        let open: HashSet<i64> = snap.xip.iter().copied().collect();
        let finished: Vec<(i64, i64)> = self
            .pending
            .iter()
            .filter(|(tx, _)| **tx < snap.xmax && !open.contains(tx))
            .map(|(&tx, &last)| (tx, last))
            .collect();
        for (tx, mut last) in finished {
            loop {
                let r = on_conn!(self, "read", |c| q::tail_of_tx(
                    &mut c,
                    tx,
                    last,
                    self.bound(),
                    self.opts.filter.as_ref(),
                    self.opts.batch,
                ));
                let rows = match r {
                    Ok(r) => r,
                    Err(e) => return self.report(e).await,
                };
                let full = rows.len() as i64 >= self.opts.batch;
                if let Some(l) = rows.last() {
                    last = l.id;
                    self.pending.insert(tx, last);
                    if !self.send(TailEvent::Lines(rows)).await {
                        return Outcome::Stop;
                    }
                }
                if !full {
                    break;
                }
            }
            self.pending.remove(&tx);
        }
        loop {
            let r = on_conn!(self, "read", |c| q::tail_after(
                &mut c,
                self.cursor,
                &snap,
                self.bound(),
                self.opts.filter.as_ref(),
                self.opts.batch,
            ));
            let rows = match r {
                Ok(r) => r,
                Err(e) => return self.report(e).await,
            };
            let full = rows.len() as i64 >= self.opts.batch;
            if let Some(last) = rows.last() {
                self.cursor = last.cursor();
                self.remember_in_progress(&snap);
                if !self.send(TailEvent::Lines(rows)).await {
                    return Outcome::Stop;
                }
            }
            if !full {
                break;
            }
        }
        Outcome::Next(self.poll())
    }

    async fn waiting(
        &mut self,
        readable_in: Option<&TailSnapshot>,
        cap: i64,
    ) -> Result<i64, String> {
        on_conn!(self, "count", |c| q::tail_waiting(
            &mut c,
            self.cursor,
            readable_in,
            self.bound(),
            self.opts.filter.as_ref(),
            cap,
        ))
    }

    async fn count_waiting(&mut self) -> Outcome {
        match self.waiting(None, WAITING_CAP).await {
            Ok(n) => {
                let n = n.max(0) as u64;
                if self.last_waiting != Some(n) {
                    self.last_waiting = Some(n);
                    if !self.send(TailEvent::Waiting(n)).await {
                        return Outcome::Stop;
                    }
                }
                Outcome::Next(self.poll())
            }
            Err(e) => self.report(e).await,
        }
    }

    /// After a pause: if more lines wait than the buffer holds, read only the newest
    /// `capacity` and report the rest as skipped; otherwise read them all in order.
    async fn resume(&mut self) -> Outcome {
        let cap = self.opts.capacity as i64;
        let snap = match self.snapshot().await {
            Ok(s) => s,
            Err(e) => return self.report(e).await,
        };
        let readable = match self.waiting(Some(&snap), WAITING_CAP).await {
            Ok(n) => n,
            Err(e) => return self.report(e).await,
        };
        if readable <= cap {
            return self.read_new().await;
        }
        let r = on_conn!(self, "read", |c| q::tail_last(
            &mut c,
            self.cursor,
            &snap,
            self.bound(),
            self.opts.filter.as_ref(),
            cap,
        ));
        let rows = match r {
            Ok(r) => r,
            Err(e) => return self.report(e).await,
        };
        // Every finished transaction after the old cursor was either read now or skipped;
        // the open ones become pending.
        self.cursor = TailCursor {
            tx: snap.xmax,
            id: 0,
        };
        self.remember_in_progress(&snap);
        let skipped = (readable - rows.len() as i64).max(0) as u64;
        if skipped > 0 && !self.send(TailEvent::Skipped(skipped)).await {
            return Outcome::Stop;
        }
        if !rows.is_empty() && !self.send(TailEvent::Lines(rows)).await {
            return Outcome::Stop;
        }
        self.read_new().await
    }
}
