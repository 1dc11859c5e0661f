//! Where received records go: one task that owns an ingest pipeline per source (a token's name,
//! or the protocol when no token is used) and answers each request only once its rows are
//! committed. Requests that arrive while a commit is under way are taken together, so several
//! clients share one commit (one WAL flush) instead of queueing one by one.
//!
//! The queue in front of the task is bounded: when it is full a request is refused at once with
//! 429 (memory stays bounded whatever the clients send); when the database cannot take the rows
//! the request gets 503 and nothing of it is counted as stored.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::reply::Reject;
use crate::config::Config;
use crate::db::Db;
use crate::ingest::record::Parsed;
use crate::ingest::{Format, Options, Pipeline};

/// Seconds a client is told to wait after a 503 or a 429.
const RETRY_AFTER_SECS: u64 = 2;
/// Requests committed together at most.
const GROUP: usize = 64;

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
}

struct Job {
    source: String,
    items: Items,
    reply: oneshot::Sender<Result<Stored, Reject>>,
}

/// The handle routes submit to (cheap to clone).
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Job>,
}

impl Sink {
    /// Starts the sink's task; call inside a tokio runtime.
    pub fn start(db: Db, cfg: Arc<Config>) -> Sink {
        let (tx, rx) = mpsc::channel(cfg.server.queue.max(1));
        tokio::spawn(run(db, cfg, rx));
        Sink { tx }
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
        if items.len() == 0 {
            return Ok(Stored::default());
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            source: source.to_string(),
            items,
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Reject::Busy {
                retry_after: RETRY_AFTER_SECS,
            },
            mpsc::error::TrySendError::Closed(_) => unavailable("the receiver is shutting down"),
        })?;
        answer
            .await
            .unwrap_or_else(|_| Err(unavailable("the writer stopped")))
    }
}

fn unavailable(why: &str) -> Reject {
    Reject::Unavailable {
        retry_after: RETRY_AFTER_SECS,
        why: why.to_string(),
    }
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
        ..Options::default()
    }
}

async fn run(db: Db, cfg: Arc<Config>, mut rx: mpsc::Receiver<Job>) {
    let mut pipelines: HashMap<String, Pipeline> = HashMap::new();
    let mut jobs = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut jobs, GROUP).await > 0 {
        // Jobs of one source go through its pipeline in arrival order, then one flush commits
        // them all; each job's counts are taken as its records are pushed.
        let mut by_source: HashMap<String, Vec<(Job, Stored)>> = HashMap::new();
        for job in jobs.drain(..) {
            by_source
                .entry(job.source.clone())
                .or_default()
                .push((job, Stored::default()));
        }
        for (source, mut group) in by_source {
            let outcome = write_group(&db, &cfg, &mut pipelines, &source, &mut group).await;
            if outcome.is_err() {
                // The pipeline's writer is gone with its batch; a fresh one is made for the
                // next request (the database may be back by then).
                if let Some(p) = pipelines.remove(&source) {
                    let _ = p.finish().await;
                }
            }
            for (job, stored) in group {
                let answer = match &outcome {
                    Ok(()) => Ok(stored),
                    Err(why) => Err(unavailable(why)),
                };
                let _ = job.reply.send(answer);
            }
        }
    }
    for (_, p) in pipelines {
        let _ = p.finish().await;
    }
}

async fn write_group(
    db: &Db,
    cfg: &Config,
    pipelines: &mut HashMap<String, Pipeline>,
    source: &str,
    group: &mut [(Job, Stored)],
) -> Result<(), String> {
    if !pipelines.contains_key(source) {
        let p = Pipeline::new(db.clone(), &cfg.ingest, options(cfg, source))
            .map_err(|e| format!("{e:#}"))?;
        pipelines.insert(source.to_string(), p);
    }
    let Some(pipeline) = pipelines.get_mut(source) else {
        return Err("no pipeline".into());
    };
    for (job, stored) in group.iter_mut() {
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
    }
    pipeline.flush().await.map_err(|e| format!("{e:#}"))
}
