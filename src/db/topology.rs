//! What stands between opsdash and its data, and where each kind of session goes:
//!
//! - **Poolers.** The database URL may point at PgBouncer. Statement and transaction work goes
//!   through it; what needs a backend of its own for longer than a transaction (LISTEN,
//!   migrations under sqlx's session advisory lock, the worker, the live tail's reader) goes to
//!   `database.direct_url` when one is given. Without one, behind a transaction-mode pooler,
//!   LISTEN cannot work (a notification is delivered to the backend that listened, which by
//!   then serves another client), so the live tail and the worker's wake-ups poll every
//!   [`DEGRADED_POLL`] instead, and the Health tab says "no LISTEN through the pooler".
//!   Session mode keeps one backend per client connection: everything works with one URL.
//! - **Read replica.** With `read_url`, the dashboard's reads go to the replica; a watch
//!   measures its replay lag every second and, when it cannot be reached, points the read pool
//!   at the primary until it answers again (the header shows lag or the fallback).
//!
//! How a transaction-mode pooler is recognised: client connection A asks for its backend's pid;
//! then, one after the other, up to a few connections B each open a transaction (which pins a
//! server connection to that B), ask for their own, and A asks again. On a real backend and
//! through a session-mode pooler A always has the same pid and no B has A's. Through
//! transaction pooling, a B is handed the server A released or A is moved to another one:
//! either shows. One B was not enough: with other clients busy through the same pooler, the
//! server released just before B asked could be another one, and A kept its own.
//! This tests the very property LISTEN and session state need (a session keeps its backend),
//! needs no timeout (a LISTEN that waits for its own NOTIFY would have to give up after some
//! delay, paid at every start), works with any pooler and any credentials (no admin console),
//! and uses only the simple query protocol, which every pooler mode carries.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{Connection, PgConnection};

use crate::query::topology as q;

/// How often the live tail and the worker look for new work when LISTEN is impossible.
pub const DEGRADED_POLL: Duration = Duration::from_millis(250);

/// What the Health tab shows in degraded mode.
pub const NO_LISTEN_NOTE: &str = "no LISTEN through the pooler";

/// How often the replica watch looks.
const REPLICA_WATCH_EVERY: Duration = Duration::from_secs(1);

const UNKNOWN: u8 = 0;
const SESSION: u8 = 1;
const TRANSACTION: u8 = 2;

/// What the primary URL leads to, found out once at connect time (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Not probed (tests' databases, or the probe could not run).
    Unknown,
    /// Each client connection keeps one backend: a server, or a session-mode pooler.
    Session,
    /// Backends change between transactions: a transaction- or statement-mode pooler.
    Transaction,
}

/// A read replica and what the watch last saw of it.
pub struct Replica {
    /// Connect options of the replica (already tuned by the pool).
    pub options: PgConnectOptions,
    down: AtomicBool,
    /// Replay lag in milliseconds, -1 before the first look.
    lag_ms: AtomicI64,
    paused: AtomicBool,
}

/// The replica as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicaStatus {
    /// Reads go to the replica; it is this far behind.
    Serving { lag: Duration, paused: bool },
    /// Not reachable: reads go to the primary.
    Down,
    /// Not looked at yet.
    Unknown,
}

pub struct Topology {
    /// `database.direct_url` was given (else the direct options are the primary URL's).
    pub has_direct: bool,
    pooling: AtomicU8,
    pub replica: Option<Replica>,
}

impl std::fmt::Debug for Topology {
    // The replica's connect options hold its password: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("has_direct", &self.has_direct)
            .field("pooling", &self.pooling())
            .field("replica", &self.replica_status())
            .finish()
    }
}

impl Topology {
    pub fn new(has_direct: bool, replica: Option<PgConnectOptions>) -> Topology {
        Topology {
            has_direct,
            pooling: AtomicU8::new(UNKNOWN),
            replica: replica.map(|options| Replica {
                options,
                down: AtomicBool::new(false),
                lag_ms: AtomicI64::new(-1),
                paused: AtomicBool::new(false),
            }),
        }
    }

    pub fn pooling(&self) -> Pooling {
        match self.pooling.load(Ordering::SeqCst) {
            SESSION => Pooling::Session,
            TRANSACTION => Pooling::Transaction,
            _ => Pooling::Unknown,
        }
    }

    pub fn set_pooling(&self, p: Pooling) {
        let v = match p {
            Pooling::Unknown => UNKNOWN,
            Pooling::Session => SESSION,
            Pooling::Transaction => TRANSACTION,
        };
        self.pooling.store(v, Ordering::SeqCst);
    }

    /// The primary URL passes through a transaction pooler.
    pub fn transaction_pooled(&self) -> bool {
        self.pooling() == Pooling::Transaction
    }

    /// LISTEN (and any other session state) is impossible on the sessions that need it: they
    /// would go through a transaction pooler because no direct URL was given.
    pub fn degraded(&self) -> bool {
        self.transaction_pooled() && !self.has_direct
    }

    /// The Health tab's line about it, when there is something to say.
    pub fn note(&self) -> Option<String> {
        self.degraded().then(|| {
            format!(
                "{NO_LISTEN_NOTE}: polling every {} ms",
                DEGRADED_POLL.as_millis()
            )
        })
    }

    /// Sessions through the primary URL may carry `SET` state: not through a transaction
    /// pooler, where a `SET` stays on a server connection other clients get next.
    pub fn session_state_ok(&self) -> bool {
        !self.transaction_pooled()
    }

    pub fn replica_down(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| r.down.load(Ordering::SeqCst))
    }

    pub fn replica_status(&self) -> Option<ReplicaStatus> {
        let r = self.replica.as_ref()?;
        if r.down.load(Ordering::SeqCst) {
            return Some(ReplicaStatus::Down);
        }
        let ms = r.lag_ms.load(Ordering::SeqCst);
        Some(if ms < 0 {
            ReplicaStatus::Unknown
        } else {
            ReplicaStatus::Serving {
                lag: Duration::from_millis(ms as u64),
                paused: r.paused.load(Ordering::SeqCst),
            }
        })
    }
}

/// Finds out whether `options` leads through a transaction-mode pooler (see the module
/// comment). Errors are the caller's to ignore: an unknown answer changes nothing.
pub async fn probe_pooling(options: &PgConnectOptions) -> sqlx::Result<Pooling> {
    let mut a = PgConnection::connect_with(options).await?;
    let first = q::backend_pid(&mut a).await?;
    // Connected all at once: on a plain server (the common case) every one is used, and one
    // after the other they would add a connection set-up each to every start.
    let connected =
        futures::future::join_all((0..PROBE_HOLDERS).map(|_| PgConnection::connect_with(options)))
            .await;
    let mut bs = Vec::with_capacity(connected.len());
    let mut failed = None;
    for b in connected {
        match b {
            Ok(b) => bs.push(b),
            Err(e) => failed = Some(e),
        }
    }
    let seen = match failed {
        Some(e) => Err(e),
        None => hold_until_moved(&mut a, first, &mut bs).await,
    };
    for b in bs {
        let _ = b.close().await;
    }
    let _ = a.close().await;
    Ok(if seen? {
        Pooling::Transaction
    } else {
        Pooling::Session
    })
}

/// Each B in turn opens a transaction and A asks for its backend again: whether a B got A's
/// first backend or A moved. The transactions are ended before returning.
async fn hold_until_moved(
    a: &mut PgConnection,
    first: i32,
    bs: &mut [PgConnection],
) -> sqlx::Result<bool> {
    let mut held_by = 0;
    let mut moved = Ok(false);
    for b in bs.iter_mut() {
        // Every server is held: this B would wait for one. What was seen so far is the answer.
        let Ok(held) =
            tokio::time::timeout(PROBE_HOLD_WAIT, q::backend_pid_in_transaction(b)).await
        else {
            break;
        };
        held_by += 1;
        let step = async {
            let held = held?;
            let second = q::backend_pid(a).await?;
            Ok::<_, sqlx::Error>(held == first || second != first)
        };
        match step.await {
            Ok(false) => continue,
            other => {
                moved = other;
                break;
            }
        }
    }
    for b in bs.iter_mut().take(held_by) {
        let _ = q::end_transaction(b).await;
    }
    moved
}

/// Transactions held open at most by the pooling probe. Through a transaction pooler, A's
/// released server is idle, so it is handed to one of the holders once the idle servers that
/// other clients released after it are taken (or A moves): a few are enough unless many
/// clients are busy through the same pooler at that moment.
const PROBE_HOLDERS: usize = 6;
/// How long a holder may wait for a server before the probe stops with what it saw.
const PROBE_HOLD_WAIT: Duration = Duration::from_secs(1);

/// Whether sqlx's prepared statements survive a transaction pooler: client A prepares and runs
/// one, then client B, inside a transaction (so holding the server connection A just released),
/// prepares its own under the same name. PgBouncer before 1.21 (or with
/// `max_prepared_statements = 0`) passes the names through: B fails with "prepared statement
/// sqlx_s_1 already exists", and in real use statements fail at random. PgBouncer 1.21+ with
/// `max_prepared_statements` renames them per server connection and both succeed.
pub async fn probe_prepared_statements(options: &PgConnectOptions) -> sqlx::Result<bool> {
    let mut a = PgConnection::connect_with(options).await?;
    let mut b = PgConnection::connect_with(options).await?;
    let tried = async {
        // A alone may already fail: its bind can reach another server than its prepare.
        let one = q::prepared_echo(&mut a, 1).await?;
        q::backend_pid_in_transaction(&mut b).await?;
        let two = q::prepared_echo(&mut b, 2).await?;
        Ok::<_, sqlx::Error>(one == 1 && two == 2)
    };
    let carried = match tried.await {
        Ok(ok) => ok,
        // 42P05 duplicate_prepared_statement, 26000 invalid_sql_statement_name.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P05" | "26000")) => {
            false
        }
        Err(e) => return Err(e),
    };
    let _ = q::end_transaction(&mut b).await;
    let _ = a.close().await;
    let _ = b.close().await;
    Ok(carried)
}

/// The one line opsdash stops with when the pooler cannot carry its statements.
pub const NO_PREPARED_STATEMENTS: &str = "the database URL leads through a transaction-mode pooler \
    that does not keep prepared statements (PgBouncer before 1.21, or max_prepared_statements = 0): \
    set max_prepared_statements = 200 in pgbouncer.ini, use pool_mode = session, or connect to the \
    server itself";

/// Watches the replica every second: measures its lag and, while it cannot be reached, points
/// `read` at `primary` (connections already open to the replica fail their next ping or query
/// and are replaced). Ends when the last `Db` holding `topology` is gone.
pub fn spawn_replica_watch(
    topology: &Arc<Topology>,
    read: PgPool,
    primary: PgConnectOptions,
    timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Topology> = Arc::downgrade(topology);
    tokio::spawn(async move {
        let mut conn: Option<PgConnection> = None;
        let mut every = tokio::time::interval(REPLICA_WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(topology) = weak.upgrade() else {
                return;
            };
            let Some(replica) = topology.replica.as_ref() else {
                return;
            };
            let looked = tokio::time::timeout(timeout, async {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => conn.insert(PgConnection::connect_with(&replica.options).await?),
                };
                q::replay_state(c).await
            })
            .await;
            match looked {
                Ok(Ok(state)) => {
                    replica
                        .lag_ms
                        .store((state.lag_s * 1000.0) as i64, Ordering::SeqCst);
                    replica.paused.store(state.paused, Ordering::SeqCst);
                    if replica.down.swap(false, Ordering::SeqCst) {
                        tracing::warn!("read replica answers again: dashboard reads go there");
                        read.set_connect_options(replica.options.clone());
                    }
                }
                _ => {
                    // Timed out or failed: the connection's state is unknown; start afresh.
                    conn = None;
                    if !replica.down.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            "read replica unreachable: dashboard reads go to the primary"
                        );
                        read.set_connect_options(primary.clone());
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_only_through_a_transaction_pooler_without_a_direct_url() {
        let t = Topology::new(false, None);
        assert!(!t.degraded(), "unknown pooling must not degrade");
        t.set_pooling(Pooling::Session);
        assert!(!t.degraded() && t.session_state_ok() && t.note().is_none());
        t.set_pooling(Pooling::Transaction);
        assert!(t.degraded() && !t.session_state_ok());
        assert!(t.note().is_some_and(|n| n.starts_with(NO_LISTEN_NOTE)));
        let with_direct = Topology::new(true, None);
        with_direct.set_pooling(Pooling::Transaction);
        assert!(!with_direct.degraded() && !with_direct.session_state_ok());
    }

    #[test]
    fn replica_status_follows_the_watch() {
        let none = Topology::new(false, None);
        assert_eq!(none.replica_status(), None);
        let t = Topology::new(false, Some(PgConnectOptions::new()));
        assert_eq!(t.replica_status(), Some(ReplicaStatus::Unknown));
        let r = t.replica.as_ref().unwrap();
        r.lag_ms.store(1500, Ordering::SeqCst);
        assert_eq!(
            t.replica_status(),
            Some(ReplicaStatus::Serving {
                lag: Duration::from_millis(1500),
                paused: false
            })
        );
        r.down.store(true, Ordering::SeqCst);
        assert!(t.replica_down());
        assert_eq!(t.replica_status(), Some(ReplicaStatus::Down));
    }
}
