//! The engine's side of its event channel: sends events and, when the consumer said it stopped
//! waiting for them, wakes it.
//!
//! The dashboard takes the engine's events straight from the channel inside its `update`, then
//! says it went idle; the first event after that wakes it (`Event::Wake`), so a batch after a
//! quiet spell reaches the screen without waiting for a tick, and a stream costs one wake-up
//! per drained batch. Before, a LISTEN of the
//! dashboard's own on the logs channel did that, which cost a notification through the main loop
//! for every batch any writer committed (a hundred a second at 10,000 lines/s) to catch the
//! rare moment after a quiet spell.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::TailEvent;

/// Wakes the consumer of a tail's events after it went idle (see `went_idle`).
#[derive(Clone)]
pub struct Waker {
    wake: Arc<dyn Fn() + Send + Sync>,
    idle: Arc<AtomicBool>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("idle", &self.idle.load(Ordering::SeqCst))
            .finish()
    }
}

impl Waker {
    /// `wake` is called (from the engine's tasks) once per idle spell, on the first event.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Waker {
        Waker {
            wake: Arc::new(wake),
            idle: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The consumer stops waiting: the next event calls `wake`. Call it *before* a last
    /// non-blocking look at the channel, so an event sent meanwhile is either seen by that
    /// look or wakes the consumer (possibly both: a spare wake-up, never a lost one).
    pub fn went_idle(&self) {
        self.idle.store(true, Ordering::SeqCst);
    }

    /// The consumer is reading again (a wake-up it did not need must not fire later).
    pub fn busy(&self) {
        self.idle.store(false, Ordering::SeqCst);
    }

    fn sent(&self) {
        if self.idle.swap(false, Ordering::SeqCst) {
            (self.wake)();
        }
    }
}

/// A sender of tail events that wakes an idle consumer.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<TailEvent>,
    waker: Option<Waker>,
}

impl Outbox {
    pub(super) fn new(tx: mpsc::Sender<TailEvent>, waker: Option<Waker>) -> Outbox {
        Outbox { tx, waker }
    }

    /// False when the consumer is gone.
    pub(super) async fn send(&self, ev: TailEvent) -> bool {
        if self.tx.send(ev).await.is_err() {
            return false;
        }
        if let Some(w) = &self.waker {
            w.sent();
        }
        true
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn wakes_once_per_idle_spell_and_never_while_the_consumer_reads() {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = {
            let woken = woken.clone();
            Waker::new(move || {
                woken.fetch_add(1, Ordering::SeqCst);
            })
        };
        let (tx, mut rx) = mpsc::channel(8);
        let out = Outbox::new(tx, Some(w.clone()));

        assert!(out.send(TailEvent::Waiting(1)).await);
        assert_eq!(woken.load(Ordering::SeqCst), 0, "consumer was reading");

        w.went_idle();
        assert!(out.send(TailEvent::Waiting(2)).await);
        assert!(out.send(TailEvent::Waiting(3)).await);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "one wake per idle spell");

        w.went_idle();
        w.busy();
        assert!(out.send(TailEvent::Waiting(4)).await);
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "back to reading before the event"
        );

        drop(rx.recv().await);
        drop(rx);
        assert!(!out.send(TailEvent::Waiting(5)).await, "consumer gone");
    }
}
