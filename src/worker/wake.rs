//! Wake-ups for worker jobs that tick every 250 ms (alert evaluation, notification delivery) so
//! that a tick with nothing to do costs no database round trip: an idle dashboard used to spend
//! most of its CPU asking "anything due?" four times a second per job.
//!
//! Triggers (migration 0012) send `NOTIFY opsdash_worker, '<topic>'` when a row that may need a
//! job sooner than it planned is written: a message put into the outbox, a rule added, enabled
//! or made due earlier. One listener per process (its own connection, like the tail's) marks
//! the topic; each job keeps, in a [`Lookout`], when it next has to look anyway (its own next
//! due time, and at most [`FALLBACK`] from the last look, in case a notification is lost).
//! While the listener is not connected every tick looks, as before.
//!
//! The listener uses the direct URL when one is given (`db::topology`). Behind a transaction
//! pooler without one LISTEN cannot work, so no listener starts and every tick looks: the jobs
//! poll every 250 ms, their tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;

use crate::db::listen::{Listen, ListenEvent};
use crate::db::Db;

/// The channel the triggers of migration 0012 notify; the payload names the topic.
pub const CHANNEL: &str = "opsdash_worker";

/// Longest a job goes without looking at the database, whatever the notifications say.
pub const FALLBACK: Duration = Duration::from_secs(5);

const APP_NAME: &str = "opsdash worker wake";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// A message entered the outbox (or became due sooner).
    Outbox,
    /// A rule was added, enabled or made due sooner.
    Rules,
}

impl Topic {
    const ALL: [Topic; 2] = [Topic::Outbox, Topic::Rules];

    fn payload(self) -> &'static str {
        match self {
            Topic::Outbox => "outbox",
            Topic::Rules => "rules",
        }
    }
}

/// The process's wake-up flags, shared by the jobs that use them. The listener starts with the
/// first job run that asks for it and stops when the last clone is dropped (the worker stopped).
#[derive(Clone, Default)]
pub struct Wake {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    outbox: AtomicBool,
    rules: AtomicBool,
    /// LISTEN is active: a clear flag means "nothing happened".
    listening: AtomicBool,
    /// Set once the listener runs; dropping it (with the last `Wake`) stops the listener.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Inner {
    fn flag(&self, topic: Topic) -> &AtomicBool {
        match topic {
            Topic::Outbox => &self.outbox,
            Topic::Rules => &self.rules,
        }
    }

    fn mark(&self, payload: &str) {
        let known = Topic::ALL.into_iter().find(|t| t.payload() == payload);
        for t in Topic::ALL {
            if known.is_none() || known == Some(t) {
                self.flag(t).store(true, Ordering::SeqCst);
            }
        }
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("listening", &self.inner.listening.load(Ordering::Relaxed))
            .finish()
    }
}

impl Wake {
    /// Starts the listener unless it runs already.
    pub fn start(&self, db: &Db) {
        let mut stop = self.inner.stop.lock().unwrap_or_else(|e| e.into_inner());
        if stop.is_some() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        *stop = Some(tx);
        if db.topology.degraded() {
            // Keeps `stop` set, so no later run tries again; `listening` stays false.
            return;
        }
        tokio::spawn(listen(
            Arc::downgrade(&self.inner),
            db.direct_options.clone(),
            rx,
        ));
    }

    /// Whether something may have happened on `topic` since the last call: a notification
    /// came, or the listener is not connected (then nothing can be ruled out). Clears the flag.
    pub fn take(&self, topic: Topic) -> bool {
        let marked = self.inner.flag(topic).swap(false, Ordering::SeqCst);
        marked || !self.inner.listening.load(Ordering::SeqCst)
    }

    /// Whether LISTEN is active (tests).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }
}

/// Keeps LISTEN open (`db::listen`) until `stop` fires or the flags are gone; marks every topic
/// on each (re)connect, since anything before it was not heard.
async fn listen(inner: Weak<Inner>, opts: PgConnectOptions, mut stop: oneshot::Receiver<()>) {
    let mut listen = Listen::new(opts, APP_NAME, &[CHANNEL])
        .connect_timeout(CONNECT_TIMEOUT)
        .backoff(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        let event = tokio::select! {
            e = listen.next() => e,
            _ = &mut stop => return,
        };
        let Some(i) = inner.upgrade() else { return };
        match event {
            ListenEvent::Connected { .. } => {
                i.mark("");
                i.listening.store(true, Ordering::SeqCst);
            }
            ListenEvent::Notification { payload, .. } => i.mark(&payload),
            ListenEvent::Lost { why } => {
                let was = i.listening.swap(false, Ordering::SeqCst);
                match why {
                    Some(e) => tracing::warn!("worker wake-up listener: {e}"),
                    None if was => tracing::warn!(
                        "worker wake-up listener lost its connection: polling meanwhile"
                    ),
                    None => {}
                }
            }
        }
    }
}

/// When one job next has to look at the database for `topic`.
#[derive(Debug)]
pub struct Lookout {
    wake: Wake,
    topic: Topic,
    /// (lease epoch of the last look, no need to look before this instant)
    quiet: Mutex<Option<(i64, Instant)>>,
}

impl Lookout {
    pub fn new(wake: Wake, topic: Topic) -> Lookout {
        Lookout {
            wake,
            topic,
            quiet: Mutex::new(None),
        }
    }

    /// Whether this run must look: woken, a new lease epoch (another instance worked
    /// meanwhile), never looked, or the quiet time is over. Starts the listener.
    pub fn must_look(&self, db: &Db, epoch: i64) -> bool {
        self.wake.start(db);
        let woken = self.wake.take(self.topic);
        let quiet = *self.quiet.lock().unwrap_or_else(|e| e.into_inner());
        woken || !matches!(quiet, Some((e, until)) if e == epoch && Instant::now() < until)
    }

    /// After a look: nothing is due for `due_in` (None: nothing planned), so no need to look
    /// again before then less `lead` (a job that waits within its tick for what comes due wants
    /// to look one tick early), nor later than [`FALLBACK`].
    pub fn looked(&self, epoch: i64, due_in: Option<Duration>, lead: Duration) {
        let wait = due_in
            .unwrap_or(FALLBACK)
            .min(FALLBACK)
            .saturating_sub(lead);
        *self.quiet.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((epoch, Instant::now() + wait));
    }

    /// The look failed: look again on the next run.
    pub fn forget(&self) {
        *self.quiet.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
