//! Where received records go: one task that owns an ingest pipeline per source (a token's name,
//! or the protocol when no token is used) and answers each request only once its rows are
//! committed. Requests that arrive while a commit is under way are taken together, so several
//! clients share one commit (one WAL flush) instead of queueing one by one.
//!
//! Refusals, so that no client is ever told "stored" for rows that were not committed and
//! memory stays bounded whatever the clients send:
//! - the database known to be down (the last write failed, or the probe run every few seconds
//!   got no answer): 503 with Retry-After at once, without queueing behind the writer's retries;
//! - the queue full, or the bytes held by request bodies (or by the records decoded from them)
//!   over [`MEMORY_BUDGET`]: 429 with Retry-After;
//! - a token over its `rate`: 429 with Retry-After.
//!
//! The sink also holds what SIGHUP reloads (the tokens) and the receiver's counters.
//!
//! One file: the queue, the grouping into commits, the refusals and the memory budgets are one
//! state machine in which each request is answered exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::reply::Reject;
use crate::config::{Config, ServerToken};
use crate::db::Db;
use crate::ingest::record::Parsed;
use crate::ingest::{Format, Options, Pipeline};

/// Seconds a client is told to wait after a 503 or a 429.
const RETRY_AFTER_SECS: u64 = 2;
/// Requests committed together at most.
const GROUP: usize = 64;
/// Bytes that request bodies as sent may hold at once; a request that would go over is
/// answered 429. Counted in KiB (semaphore permits).
pub const MEMORY_BUDGET: usize = 16 << 20;
/// Bytes that records decoded from bodies may hold at once, from their decoding until their
/// commit (queued, then in the pipeline's batch); a request that would go over is answered 429.
pub const RECORDS_BUDGET: usize = 16 << 20;
/// Bytes counted for a record already parsed by a protocol decoder: what one OTLP log record
/// of a few attributes takes once decoded (its row, its attrs as JSON, the strings of each,
/// and the allocator's rounding), measured with heaptrack under the serve bench.
const PARSED_ROW_BYTES: usize = 2048;
/// Spare memory is handed back to the system once the writer has been idle this long after
/// work (see [`release_memory`]).
const TRIM_AFTER: Duration = Duration::from_millis(500);
/// How often the database is probed while it answers, and while it does not.
const PROBE_UP: Duration = Duration::from_secs(2);
const PROBE_DOWN: Duration = Duration::from_millis(500);
/// A failing batch is retried this long at most, then its requests are answered 503: clients
/// hear within seconds, before they give up on their own (the OpenTelemetry SDKs after 10 s)
/// and send again what a late retry might still commit (see `Writer::retry_for`).
const WRITE_RETRY: Duration = Duration::from_secs(3);
/// A probe slower than this counts as no answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request's records became, once committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Records taken (stored as rows, or folded into an identical earlier one).
    pub accepted: u64,
    /// Records that could not be read; the others of the same request are stored.
    pub rejected: u64,
    /// Why, for the first of them (`record N: reason`).
    pub rejects: Vec<String>,
}

enum Items {
    Lines(Vec<Vec<u8>>),
    Parsed(Vec<Parsed>),
}

impl Items {
    fn len(&self) -> u64 {
        match self {
            Items::Lines(v) => v.len() as u64,
            Items::Parsed(v) => v.len() as u64,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Items::Lines(v) => v.iter().map(|l| l.len() + 24).sum(),
            Items::Parsed(v) => v.len() * PARSED_ROW_BYTES,
        }
    }
}

struct Job {
    source: String,
    /// The source is a token's name (recorded on each log row).
    token: bool,
    items: Items,
    reply: oneshot::Sender<Result<Stored, Reject>>,
}

/// The handle routes submit to (cheap to clone).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Why the database is thought unreachable; None while it answers.
    down: Mutex<Option<String>>,
    /// Request bodies as sent ([`Sink::hold`]), and the records decoded from them.
    bodies: Arc<Semaphore>,
    records: Arc<Semaphore>,
    queue: usize,
    seq: AtomicU64,
    /// When each request still waiting for its commit was queued (writer lag).
    waiting: Mutex<BTreeMap<u64, Instant>>,
    tokens: RwLock<Arc<Vec<ServerToken>>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    metrics: Metrics,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Told by [`Sink::close`]: take no more requests, commit the queued ones, stop.
    closing: tokio::sync::Notify,
}

/// A token bucket: `rate` requests a second, bursts of up to `rate`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Bytes held for a request until it is answered (see [`MEMORY_BUDGET`]).
pub struct Held(#[allow(dead_code)] OwnedSemaphorePermit);

impl Sink {
    /// Starts the sink's task and its database probe; call inside a tokio runtime.
    pub fn start(db: Db, cfg: Arc<Config>) -> Sink {
        let queue = cfg.server.queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        let shared = Arc::new(Shared {
            down: Mutex::new(None),
            bodies: Arc::new(Semaphore::new(MEMORY_BUDGET >> 10)),
            records: Arc::new(Semaphore::new(RECORDS_BUDGET >> 10)),
            queue,
            seq: AtomicU64::new(0),
            waiting: Mutex::new(BTreeMap::new()),
            tokens: RwLock::new(Arc::new(cfg.server.token.clone())),
            buckets: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            task: Mutex::new(None),
            closing: tokio::sync::Notify::new(),
        });
        let task = tokio::spawn(run(db.clone(), cfg, rx, shared.clone()));
        *lock(&shared.task) = Some(task);
        tokio::spawn(probe(db, Arc::downgrade(&shared)));
        Sink { tx, shared }
    }

    /// Stores records already parsed by a protocol decoder. Ok means committed.
    pub async fn submit_parsed(&self, source: &str, rows: Vec<Parsed>) -> Result<Stored, Reject> {
        self.submit(source, Items::Parsed(rows)).await
    }

    /// Stores raw log lines, read by the same detector and parsers as `opsdash ingest`. Ok
    /// means committed.
    pub async fn submit_lines(&self, source: &str, lines: Vec<Vec<u8>>) -> Result<Stored, Reject> {
        self.submit(source, Items::Lines(lines)).await
    }

    async fn submit(&self, source: &str, items: Items) -> Result<Stored, Reject> {
        let n = items.len();
        if n == 0 {
            return Ok(Stored::default());
        }
        let route = super::metrics::current_route();
        let m = &self.shared.metrics;
        m.rows(&route, source, |c| c.received += n);
        let answer = self.submit_counted(source, items).await;
        match &answer {
            Ok(s) => m.rows(&route, source, |c| {
                c.stored += s.accepted;
                c.rejected += s.rejected;
            }),
            Err(_) => m.rows(&route, source, |c| c.refused += n),
        }
        answer
    }

    async fn submit_counted(&self, source: &str, items: Items) -> Result<Stored, Reject> {
        if let Some(why) = self.down() {
            return Err(unavailable(&why));
        }
        let _held =
            take_of(&self.shared.records, RECORDS_BUDGET, items.bytes()).ok_or(Reject::Busy {
                retry_after: RETRY_AFTER_SECS,
            })?;
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let token = self.tokens().iter().any(|t| t.name == source);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            source: source.to_string(),
            token,
            items,
            reply,
        };
        lock(&self.shared.waiting).insert(seq, Instant::now());
        let _waiting = Waiting(&self.shared, seq);
        let sent = self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Reject::Busy {
                retry_after: RETRY_AFTER_SECS,
            },
            mpsc::error::TrySendError::Closed(_) => unavailable("the receiver is shutting down"),
        });
        let answer = match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(unavailable("the writer stopped"))),
            Err(e) => Err(e),
        };
        answer
    }

    /// Reserves `bytes` of the memory budget for a request, None when it is used up (the
    /// caller answers 429). A request larger than the whole budget takes all of it.
    pub fn hold(&self, bytes: usize) -> Option<Held> {
        take_of(&self.shared.bodies, MEMORY_BUDGET, bytes)
    }

    /// Why the database is thought unreachable, None while it answers.
    pub fn down(&self) -> Option<String> {
        lock(&self.shared.down).clone()
    }

    /// The tokens in force (reloaded on SIGHUP).
    pub fn tokens(&self) -> Arc<Vec<ServerToken>> {
        match self.shared.tokens.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts new tokens in force (SIGHUP); rate buckets of tokens that are gone are dropped.
    pub fn set_tokens(&self, tokens: Vec<ServerToken>) {
        lock(&self.shared.buckets).retain(|name, _| tokens.iter().any(|t| &t.name == name));
        match self.shared.tokens.write() {
            Ok(mut t) => *t = Arc::new(tokens),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(tokens),
        }
    }

    /// Takes one request from `token`'s allowance of `rate` a second; Err(seconds to wait)
    /// when it is used up.
    pub fn take_rate(&self, token: &str, rate: u32) -> Result<(), u64> {
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let now = Instant::now();
        let mut buckets = lock(&self.shared.buckets);
        let b = buckets.entry(token.to_string()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Requests queued or being written, and how long the oldest of them has waited.
    pub fn lag(&self) -> (usize, Duration) {
        let waiting = lock(&self.shared.waiting);
        let oldest = waiting
            .values()
            .next()
            .map(Instant::elapsed)
            .unwrap_or_default();
        (waiting.len(), oldest)
    }

    /// Requests the queue in front of the writer holds at most.
    pub fn queue_capacity(&self) -> usize {
        self.shared.queue
    }

    /// Whether the queue in front of the writer is full.
    pub fn saturated(&self) -> bool {
        self.tx.capacity() == 0
    }

    /// Stops taking requests and waits (at most `limit`) until what is queued is committed and
    /// the pipelines are finished. Call once the listener has stopped.
    pub async fn close(self, limit: Duration) {
        let task = lock(&self.shared.task).take();
        // Other clones (a reload task, a syslog listener) may still hold senders: the task is
        // told directly rather than waiting for every sender to go.
        self.shared.closing.notify_one();
        if let Some(task) = task {
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!("the sink did not finish within {limit:?}");
            }
        }
    }
}

/// `bytes` of a budget, None when it is used up; a request larger than the whole budget takes
/// all of it.
fn take_of(budget: &Arc<Semaphore>, whole: usize, bytes: usize) -> Option<Held> {
    let kib = (bytes.div_ceil(1024)).clamp(1, whole >> 10) as u32;
    budget.clone().try_acquire_many_owned(kib).ok().map(Held)
}

/// Takes a request off the writer-lag list when it is answered, or dropped (its client gone).
struct Waiting<'a>(&'a Shared, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.waiting).remove(&self.1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unavailable(why: &str) -> Reject {
    Reject::Unavailable {
        retry_after: RETRY_AFTER_SECS,
        why: why.to_string(),
    }
}

/// Keeps `down` current: a cheap query every few seconds (more often while it fails), so
/// that requests are refused at once while the database is away and taken again as soon as it
/// is back.
async fn probe(db: Db, shared: std::sync::Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let was_down = lock(&s.down).is_some();
        drop(s);
        tokio::time::sleep(if was_down { PROBE_DOWN } else { PROBE_UP }).await;
        let q = crate::query::serve_metrics::ping(&db.write);
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, q).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(crate::sanitize::clean(&format!("{e:#}"))),
            Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        let Some(s) = shared.upgrade() else { return };
        set_down(&s, outcome);
    }
}

fn set_down(s: &Shared, why: Option<String>) {
    let mut down = lock(&s.down);
    match (&*down, &why) {
        (None, Some(w)) => tracing::warn!("database unavailable, refusing records: {w}"),
        (Some(_), None) => tracing::info!("database reachable again, taking records"),
        _ => {}
    }
    *down = why;
}

fn options(cfg: &Config, source: &str) -> Options {
    Options {
        format: Format::Auto,
        service: source.to_string(),
        source: format!("serve:{source}"),
        log_keep_days: cfg.retention.log_event.keep_days,
        request_keep_days: cfg.retention.request_log.keep_days,
        log_compact_days: cfg.retention.log_non_error_keep_days,
        collect_rejects: true,
        write_retry: Some(WRITE_RETRY),
        ..Options::default()
    }
}

/// A group of requests whose rows were sent to their source's writer: answered when the
/// writer says they are committed, or 503 when it fails first.
struct InFlight {
    source: String,
    /// Which pipeline of the source took them ([`Source::generation`]): a failed pipeline is
    /// replaced, and only its own groups fail with it.
    generation: u64,
    done: oneshot::Receiver<()>,
    jobs: Vec<(Job, Stored)>,
}

/// Requests of one source already pushed into its pipeline (parsed, redacted, encoded) while
/// an earlier group of the source commits; sent to the writer as one commit as soon as that
/// one is done. So the parse of the next requests overlaps the commit of the last ones, as in
/// the file ingest, and a busy receiver commits in large groups.
struct Building {
    generation: u64,
    records: u64,
    jobs: Vec<(Job, Stored)>,
}

/// Groups sent to the writers and not yet answered, at most; then requests wait in the queue.
const IN_FLIGHT: usize = 4;

async fn run(db: Db, cfg: Arc<Config>, mut rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut w = Writers {
        batch: cfg.ingest.batch_size.max(1) as u64,
        db,
        cfg,
        shared: shared.clone(),
        pipelines: HashMap::new(),
        made: 0,
        in_flight: VecDeque::new(),
        building: HashMap::new(),
    };
    let mut jobs = Vec::with_capacity(GROUP);
    let mut closing = false;
    let mut received_all = false;
    // Whether the writer has done work since memory was last handed back.
    let mut worked = false;
    loop {
        if received_all && w.in_flight.is_empty() && w.building.is_empty() {
            break;
        }
        let idle = tokio::time::sleep(TRIM_AFTER);
        let (flying, room) = (!w.in_flight.is_empty(), w.in_flight.len() < IN_FLIGHT);
        let n = tokio::select! {
            // Answers first: they free the clients (and the memory budget) soonest.
            biased;
            committed = async {
                match w.in_flight.front_mut() {
                    Some(f) => (&mut f.done).await.is_ok(),
                    None => std::future::pending().await,
                }
            }, if flying => {
                w.settle(committed).await;
                continue;
            }
            n = rx.recv_many(&mut jobs, GROUP), if !received_all && room => n,
            _ = idle, if worked && !flying => {
                worked = false;
                release_memory();
                continue;
            }
            _ = shared.closing.notified(), if !closing => {
                // Refuse new requests (they get 503); what is queued is still taken.
                closing = true;
                rx.close();
                continue;
            }
        };
        if n == 0 {
            received_all = true;
            continue;
        }
        worked = true;
        for job in jobs.drain(..) {
            w.take(job).await;
        }
    }
    for (_, p) in w.pipelines {
        let _ = p.pipeline.finish().await;
        p.pool.close().await;
    }
}

/// The sink task's state: a pipeline per source, the groups its writer is committing, and the
/// requests pushed meanwhile.
struct Writers {
    db: Db,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    /// Records a commit holds at most (`ingest.batch_size`).
    batch: u64,
    pipelines: HashMap<String, Source>,
    /// Pipelines made so far (each one's generation).
    made: u64,
    in_flight: VecDeque<InFlight>,
    building: HashMap<String, Building>,
}

impl Writers {
    /// Groups of `source` sent and not yet answered.
    fn sent(&self, source: &str) -> usize {
        self.in_flight.iter().filter(|f| f.source == source).count()
    }

    /// Pushes a request's records into its source's pipeline; sends them to the writer at
    /// once when it is idle, else they wait for the commit under way with the others.
    async fn take(&mut self, job: Job) {
        let source = job.source.clone();
        let n = job.items.len();
        // At most one batch of rows per commit: the pipeline would send a full batch on its
        // own, and a commit of part of a group followed by a failure would store records
        // whose request is then answered 503 (and sent again by the client).
        if self
            .building
            .get(&source)
            .is_some_and(|b| !b.jobs.is_empty() && b.records + n > self.batch)
        {
            self.send(&source).await;
        }
        let mut item = (job, Stored::default());
        let made = ensure_source(
            &self.db,
            &self.cfg,
            &mut self.pipelines,
            &source,
            item.0.token,
            &mut self.made,
        );
        let generation = match made {
            Ok(g) => g,
            Err(why) => {
                set_down(&self.shared, Some(why.clone()));
                answer(vec![item], Err(why));
                return;
            }
        };
        let pushed = match self.pipelines.get_mut(&source) {
            Some(s) => push_job(&mut s.pipeline, &mut item).await,
            None => Err("no pipeline".into()),
        };
        if let Err(why) = pushed {
            self.fail_source(&source, generation, why, vec![item]).await;
            return;
        }
        let b = self
            .building
            .entry(source.clone())
            .or_insert_with(|| Building {
                generation,
                records: 0,
                jobs: Vec::new(),
            });
        b.records += n;
        b.jobs.push(item);
        if self.sent(&source) == 0 {
            self.send(&source).await;
        }
    }

    /// Sends the requests pushed for `source` to its writer as one commit.
    async fn send(&mut self, source: &str) {
        let Some(b) = self.building.remove(source) else {
            return;
        };
        if b.jobs.is_empty() {
            return;
        }
        let sent = match self.pipelines.get_mut(source) {
            Some(s) if s.generation == b.generation => {
                s.pipeline.flush_then().await.map_err(|e| format!("{e:#}"))
            }
            _ => Err("the database writer stopped".into()),
        };
        match sent {
            Ok(done) => self.in_flight.push_back(InFlight {
                source: source.to_string(),
                generation: b.generation,
                done,
                jobs: b.jobs,
            }),
            Err(why) => self.fail_source(source, b.generation, why, b.jobs).await,
        }
    }

    /// The oldest group sent is committed (`committed`), or its writer failed first. Then the
    /// requests pushed meanwhile go to the writer.
    async fn settle(&mut self, committed: bool) {
        let Some(f) = self.in_flight.pop_front() else {
            return;
        };
        if committed {
            set_down(&self.shared, None);
            answer(f.jobs, Ok(()));
        } else {
            // A later group of a writer that failed already is answered with the failure it
            // stopped at.
            let why = lock(&self.shared.down)
                .clone()
                .unwrap_or_else(|| "the database writer stopped".into());
            self.fail_source(&f.source, f.generation, why, f.jobs).await;
        }
        if self.sent(&f.source) == 0 {
            self.send(&f.source).await;
        }
    }

    /// `source`'s writer of `generation` failed: `jobs`, and the requests pushed into the same
    /// pipeline to go with the next commit, are answered 503 with why (the writer's own error
    /// when there is one). A fresh pipeline is made for the next request (the database may
    /// be back by then).
    async fn fail_source(
        &mut self,
        source: &str,
        generation: u64,
        why: String,
        mut jobs: Vec<(Job, Stored)>,
    ) {
        let why = fail(&mut self.pipelines, source, generation)
            .await
            .unwrap_or(why);
        if self
            .building
            .get(source)
            .is_some_and(|b| b.generation == generation)
        {
            if let Some(b) = self.building.remove(source) {
                jobs.extend(b.jobs);
            }
        }
        set_down(&self.shared, Some(why.clone()));
        answer(jobs, Err(why));
    }
}

/// Answers each request of a group: what its records became, or 503 with why.
fn answer(jobs: Vec<(Job, Stored)>, outcome: Result<(), String>) {
    for (job, stored) in jobs {
        let reply = match &outcome {
            Ok(()) => Ok(stored),
            Err(why) => Err(unavailable(why)),
        };
        let _ = job.reply.send(reply);
    }
}

/// Drops `source`'s pipeline if it is still the one of `generation` (its writer failed) and
/// says why; None when that pipeline is gone already.
async fn fail(
    pipelines: &mut HashMap<String, Source>,
    source: &str,
    generation: u64,
) -> Option<String> {
    if pipelines.get(source)?.generation != generation {
        return None;
    }
    let p = pipelines.remove(source)?;
    let summary = p.pipeline.finish().await;
    p.pool.close().await;
    Some(
        summary
            .error
            .unwrap_or_else(|| "the database writer stopped".into()),
    )
}

/// Hands the memory freed by the last requests back to the system. glibc's allocator keeps
/// freed memory in its arenas for reuse, so after a burst the process would stay as large as
/// its peak; trimming once the writer is idle brings it back to what is in use, so the next
/// burst starts from there (the receiver's memory bound is on the peak).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists and takes the arena locks; it can
    // be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A source's pipeline, and the connection pool of its writer (its own: the writer holds its
/// one connection for good, and the routes' queries and the probe must not wait behind it).
struct Source {
    pipeline: Pipeline,
    pool: sqlx::PgPool,
    /// Tells this pipeline from the one that replaces it after a failure.
    generation: u64,
}

/// The pipeline of `source`, made on first use with a connection pool of its own; returns its
/// generation (`made` counts the pipelines made so far).
fn ensure_source(
    db: &Db,
    cfg: &Config,
    pipelines: &mut HashMap<String, Source>,
    source: &str,
    token: bool,
    made: &mut u64,
) -> Result<u64, String> {
    if let Some(s) = pipelines.get(source) {
        return Ok(s.generation);
    }
    let pool = db
        .write
        .options()
        .clone()
        .max_connections(1)
        .connect_lazy_with(db.write_options.clone());
    let own = Db {
        write: pool.clone(),
        ..db.clone()
    };
    let mut p =
        Pipeline::new(own, &cfg.ingest, options(cfg, source)).map_err(|e| format!("{e:#}"))?;
    if token {
        p.set_source_attr(source);
    }
    *made += 1;
    pipelines.insert(
        source.to_string(),
        Source {
            pipeline: p,
            pool,
            generation: *made,
        },
    );
    Ok(*made)
}

/// Pushes one request's records into a pipeline, noting what became of them in its `Stored`.
async fn push_job(
    pipeline: &mut Pipeline,
    (job, stored): &mut (Job, Stored),
) -> Result<(), String> {
    let items = std::mem::replace(&mut job.items, Items::Lines(Vec::new()));
    let n = items.len();
    let before = pipeline.rejected();
    let first = pipeline.lines();
    match items {
        Items::Lines(lines) => {
            for line in lines {
                pipeline
                    .push_line(&line)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
        Items::Parsed(rows) => {
            for row in rows {
                pipeline
                    .push_parsed(row)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
    }
    stored.rejected = pipeline.rejected() - before;
    stored.accepted = n.saturating_sub(stored.rejected);
    stored.rejects = pipeline
        .take_rejects()
        .into_iter()
        .map(|r| format!("record {}: {}", r.line.saturating_sub(first), r.reason))
        .collect();
    Ok(())
}
