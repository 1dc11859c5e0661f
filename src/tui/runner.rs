//! Runs the queries tabs ask for, as tasks, so drawing never waits on the database.
//!
//! Each panel (an owner plus a panel name) has at most one query in flight. A request for a busy
//! panel is queued, and a newer request replaces a queued one (only the latest parameters
//! matter). A result is delivered only if no newer request was made for its panel meanwhile;
//! older results are dropped as stale. Every query runs under the database query timeout.

use std::collections::HashMap;
use std::time::Duration;

use crate::tui::msg::{Event, Owner, QueryDone, QueryRequest, Sender};

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
    let (owner, panel, fut) = req.run(timeout);
    tokio::spawn(async move {
        let data = fut.await;
        let _ = tx.send(Event::Query(QueryDone {
            owner,
            panel,
            generation,
            data,
        }));
    });
}

/// Runs a query inline and returns its result as the runner would deliver it: for tests that
/// drive `update` without the event loop.
pub async fn run_inline(req: QueryRequest, timeout: Duration) -> QueryDone {
    let (owner, panel, fut) = req.run(timeout);
    QueryDone {
        owner,
        panel,
        generation: 0,
        data: fut.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::msg::{AlertsData, Data};
    use tokio::sync::mpsc::unbounded_channel;

    /// The text an `Action` result carries (the simplest typed result to fabricate).
    fn action_text(done: QueryDone) -> Result<String, String> {
        match done.data {
            Data::Alerts(AlertsData::Action(r)) => r,
            _ => Err("unexpected result".into()),
        }
    }

    #[tokio::test]
    async fn newest_request_replaces_queued_and_stale_results_are_dropped() {
        let (tx, mut rx) = unbounded_channel();
        let mut r = QueryRunner::new(tx, Duration::from_secs(5));
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        r.submit(QueryRequest::new(
            "p",
            async move {
                let _ = gate_rx.await;
                Ok("1".to_string())
            },
            AlertsData::Action,
        ));
        r.submit(QueryRequest::new(
            "p",
            async { Ok("2".to_string()) },
            AlertsData::Action,
        ));
        r.submit(QueryRequest::new(
            "p",
            async { Ok("3".to_string()) },
            AlertsData::Action,
        ));
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
            action_text(delivered).unwrap(),
            "3",
            "request 2 was replaced"
        );
        assert_eq!(r.busy(), 0);
    }

    #[tokio::test]
    async fn timeout_becomes_an_error() {
        let (tx, mut rx) = unbounded_channel();
        let mut r = QueryRunner::new(tx, Duration::from_millis(50));
        r.submit(QueryRequest::new(
            "slow",
            async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(String::new())
            },
            AlertsData::Action,
        ));
        let Some(Event::Query(done)) = rx.recv().await else {
            panic!("expected a query result")
        };
        let done = r.complete(done).unwrap();
        assert!(action_text(done).unwrap_err().contains("timed out"));
    }
}
