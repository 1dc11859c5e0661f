//! Runs the queries tabs ask for, as tasks, so drawing never waits on the database.
//!
//! Each panel (an owner plus a panel name) has at most one query in flight. A request for a busy
//! panel is queued, and a newer request replaces a queued one (only the latest parameters
//! matter). A result is delivered only if no newer request was made for its panel meanwhile;
//! older results are dropped as stale. Every query runs under the database query timeout.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::tui::event::{Event, Sender};
use crate::tui::tabs::Tab;

/// A query result of any type; the tab that asked downcasts it (see `QueryDone::take`).
pub type Payload = Box<dyn Any + Send>;
pub type QueryFuture = Pin<Box<dyn Future<Output = anyhow::Result<Payload>> + Send>>;

/// Who asked: the shell (header data) or a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Shell,
    Tab(Tab),
}

/// One query to run for one panel.
pub struct QueryRequest {
    pub owner: Owner,
    pub panel: &'static str,
    pub fut: QueryFuture,
}

impl QueryRequest {
    /// Wraps a typed query future; the result reaches the owner's `on_data` as a `QueryDone`.
    pub fn new<T, F>(owner: Owner, panel: &'static str, fut: F) -> QueryRequest
    where
        T: Send + 'static,
        F: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        QueryRequest {
            owner,
            panel,
            fut: Box::pin(async move { fut.await.map(|v| Box::new(v) as Payload) }),
        }
    }
}

impl std::fmt::Debug for QueryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field("owner", &self.owner)
            .field("panel", &self.panel)
            .finish()
    }
}

/// A finished query: the payload or a one-line error (including "timed out").
pub struct QueryDone {
    pub owner: Owner,
    pub panel: &'static str,
    pub generation: u64,
    pub result: Result<Payload, String>,
}

impl std::fmt::Debug for QueryDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryDone")
            .field("owner", &self.owner)
            .field("panel", &self.panel)
            .field("ok", &self.result.is_ok())
            .finish()
    }
}

impl QueryDone {
    /// The typed result: `Ok(value)`, or `Err(message)` for a failed query or a payload of an
    /// unexpected type.
    pub fn take<T: 'static>(self) -> Result<T, String> {
        match self.result {
            Ok(p) => p
                .downcast::<T>()
                .map(|b| *b)
                .map_err(|_| format!("internal: unexpected result type for {}", self.panel)),
            Err(e) => Err(e),
        }
    }
}

#[derive(Default)]
struct Slot {
    in_flight: bool,
    latest: u64,
    queued: Option<(u64, QueryRequest)>,
}

/// Owned by the main loop; spawns query tasks that report back on the event channel.
pub struct QueryRunner {
    tx: Sender,
    timeout: Duration,
    slots: HashMap<(Owner, &'static str), Slot>,
    next_generation: u64,
}

impl QueryRunner {
    pub fn new(tx: Sender, timeout: Duration) -> QueryRunner {
        QueryRunner {
            tx,
            timeout,
            slots: HashMap::new(),
            next_generation: 0,
        }
    }

    pub fn submit(&mut self, req: QueryRequest) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let slot = self.slots.entry((req.owner, req.panel)).or_default();
        slot.latest = generation;
        if slot.in_flight {
            slot.queued = Some((generation, req));
        } else {
            slot.in_flight = true;
            spawn(self.tx.clone(), self.timeout, generation, req);
        }
    }

    /// Books a finished query: starts the queued one for its panel, and returns the result if
    /// it is still the newest for that panel (None: stale, drop it).
    pub fn complete(&mut self, done: QueryDone) -> Option<QueryDone> {
        let slot = self.slots.entry((done.owner, done.panel)).or_default();
        slot.in_flight = false;
        if let Some((generation, req)) = slot.queued.take() {
            slot.in_flight = true;
            spawn(self.tx.clone(), self.timeout, generation, req);
        }
        (done.generation == slot.latest).then_some(done)
    }

    /// Queries in flight or queued (for tests and the idle check).
    pub fn busy(&self) -> usize {
        self.slots
            .values()
            .map(|s| s.in_flight as usize + s.queued.is_some() as usize)
            .sum()
    }
}

fn spawn(tx: Sender, timeout: Duration, generation: u64, req: QueryRequest) {
    let QueryRequest { owner, panel, fut } = req;
    tokio::spawn(async move {
        // Dropping the future on timeout drops its connection too, so a half-open connection
        // cannot hang this panel forever.
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(crate::tui::event::one_line(&format!("{e:#}"))),
            Err(_) => Err(format!("timed out after {:.1} s", timeout.as_secs_f64())),
        };
        let _ = tx.send(Event::Query(QueryDone {
            owner,
            panel,
            generation,
            result,
        }));
    });
}

/// Runs a query inline and returns its result as the runner would deliver it: for tests that
/// drive `update` without the event loop.
pub async fn run_inline(req: QueryRequest, timeout: Duration) -> QueryDone {
    let QueryRequest { owner, panel, fut } = req;
    let result = match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(crate::tui::event::one_line(&format!("{e:#}"))),
        Err(_) => Err(format!("timed out after {:.1} s", timeout.as_secs_f64())),
    };
    QueryDone {
        owner,
        panel,
        generation: 0,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    #[tokio::test]
    async fn newest_request_replaces_queued_and_stale_results_are_dropped() {
        let (tx, mut rx) = unbounded_channel();
        let mut r = QueryRunner::new(tx, Duration::from_secs(5));
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        r.submit(QueryRequest::new(Owner::Shell, "p", async move {
            let _ = gate_rx.await;
            Ok(1u32)
        }));
        r.submit(QueryRequest::new(Owner::Shell, "p", async { Ok(2u32) }));
        r.submit(QueryRequest::new(Owner::Shell, "p", async { Ok(3u32) }));
        assert_eq!(r.busy(), 2, "one in flight, one queued");
        gate_tx.send(()).unwrap();
        let Some(Event::Query(first)) = rx.recv().await else {
            panic!("expected a query result")
        };
        // The first result is stale (a newer request exists): dropped, the queued one starts.
        assert!(r.complete(first).is_none());
        let Some(Event::Query(second)) = rx.recv().await else {
            panic!("expected a query result")
        };
        let delivered = r.complete(second).expect("newest result delivered");
        assert_eq!(
            delivered.take::<u32>().unwrap(),
            3,
            "request 2 was replaced"
        );
        assert_eq!(r.busy(), 0);
    }

    #[tokio::test]
    async fn timeout_becomes_an_error() {
        let (tx, mut rx) = unbounded_channel();
        let mut r = QueryRunner::new(tx, Duration::from_millis(50));
        r.submit(QueryRequest::new(Owner::Shell, "slow", async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        }));
        let Some(Event::Query(done)) = rx.recv().await else {
            panic!("expected a query result")
        };
        let done = r.complete(done).unwrap();
        assert!(done.take::<()>().unwrap_err().contains("timed out"));
    }
}
