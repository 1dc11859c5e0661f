//! The alert state machine as a pure function, so every rule about states can be tested without
//! a database: pending -> firing -> acknowledged -> resolved, suppressed while a silence matches.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::model::AlertState;

/// An open alert as the state machine needs to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    pub state: AlertState,
    pub pending_since: DateTime<Utc>,
    pub condition_false_since: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
}

/// One evaluation of one label set.
#[derive(Debug, Clone)]
pub struct Input {
    pub now: DateTime<Utc>,
    /// The condition holds (a label set absent from the measure counts as false).
    pub condition: bool,
    pub silenced: bool,
    pub for_: Duration,
    pub auto_resolve: bool,
    pub resolve_after: Duration,
    pub repeat_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Firing,
    Repeat,
    Resolved,
}

impl Notify {
    pub fn kind(self) -> &'static str {
        match self {
            Notify::Firing => "firing",
            Notify::Repeat => "repeat",
            Notify::Resolved => "resolved",
        }
    }
}

/// What to do with the label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// A new alert row is created (there was no open one).
    pub create: bool,
    /// New state; `None` keeps the current one.
    pub to: Option<AlertState>,
    pub condition_false_since: Option<DateTime<Utc>>,
    pub notify: Option<Notify>,
}

fn elapsed(now: DateTime<Utc>, since: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// Decides the next step of one (rule, label set). `None`: nothing to do (no open alert and the
/// condition is false).
pub fn decide(open: Option<&Open>, i: &Input) -> Option<Step> {
    let firing_or_suppressed = if i.silenced {
        AlertState::Suppressed
    } else {
        AlertState::Firing
    };
    let notify_if_firing = |s: AlertState| (s == AlertState::Firing).then_some(Notify::Firing);
    let Some(open) = open.filter(|o| o.state != AlertState::Resolved) else {
        if !i.condition {
            return None;
        }
        let to = if i.for_.is_zero() {
            firing_or_suppressed
        } else {
            AlertState::Pending
        };
        return Some(Step {
            create: true,
            to: Some(to),
            condition_false_since: None,
            notify: notify_if_firing(to),
        });
    };
    let keep = |notify| Step {
        create: false,
        to: None,
        condition_false_since: None,
        notify,
    };
    if i.condition {
        return Some(match open.state {
            AlertState::Pending if elapsed(i.now, open.pending_since) >= i.for_ => Step {
                to: Some(firing_or_suppressed),
                notify: notify_if_firing(firing_or_suppressed),
                ..keep(None)
            },
            AlertState::Pending | AlertState::Acknowledged => keep(None),
            AlertState::Firing if i.silenced => Step {
                to: Some(AlertState::Suppressed),
                ..keep(None)
            },
            AlertState::Firing => {
                let due = open
                    .last_notified_at
                    .is_none_or(|t| elapsed(i.now, t) >= i.repeat_interval);
                keep(due.then_some(if open.last_notified_at.is_some() {
                    Notify::Repeat
                } else {
                    Notify::Firing
                }))
            }
            // The silence ended (or was expired) while the condition still holds: tell again.
            AlertState::Suppressed if !i.silenced => Step {
                to: Some(AlertState::Firing),
                notify: Some(Notify::Firing),
                ..keep(None)
            },
            AlertState::Suppressed | AlertState::Resolved => keep(None),
        });
    }
    if open.state == AlertState::Pending {
        // Never fired: it goes away quietly.
        return Some(Step {
            to: Some(AlertState::Resolved),
            ..keep(None)
        });
    }
    let since = open.condition_false_since.unwrap_or(i.now);
    if i.auto_resolve && elapsed(i.now, since) >= i.resolve_after {
        return Some(Step {
            to: Some(AlertState::Resolved),
            condition_false_since: Some(since),
            notify: open.last_notified_at.map(|_| Notify::Resolved),
            create: false,
        });
    }
    Some(Step {
        condition_false_since: Some(since),
        to: (open.state == AlertState::Firing && i.silenced).then_some(AlertState::Suppressed),
        ..keep(None)
    })
}

/// When an open alert will resolve if nothing changes: at the first evaluation once its
/// condition has been false for the resolve period. None while the condition holds (or no
/// evaluation saw it false yet), for a pending alert (it goes at its next false evaluation),
/// and when the rule does not resolve by itself.
pub fn resolves_at(
    state: AlertState,
    condition_false_since: Option<DateTime<Utc>>,
    auto_resolve: bool,
    resolve_after: Duration,
) -> Option<DateTime<Utc>> {
    if !auto_resolve || matches!(state, AlertState::Pending | AlertState::Resolved) {
        return None;
    }
    let since = condition_false_since?;
    Some(since + chrono::Duration::from_std(resolve_after).unwrap_or(chrono::Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Event {
        Eval {
            condition: bool,
            silenced: bool,
            advance_s: u32,
        },
        Ack,
        Resolve,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (any::<bool>(), prop::bool::weighted(0.2), 0u32..120)
                .prop_map(|(condition, silenced, advance_s)| Event::Eval { condition, silenced, advance_s }),
            1 => Just(Event::Ack),
            1 => Just(Event::Resolve),
        ]
    }

    proptest! {
        /// Whatever the values and operator actions: only legal transitions happen, nothing is
        /// sent while pending, suppressed or acknowledged, a firing notification is sent exactly
        /// when an alert enters firing, a repeat never comes sooner than the repeat interval,
        /// and a resolved notification only follows an alert someone was told about.
        #[test]
        fn any_sequence_keeps_the_invariants(
            events in prop::collection::vec(event(), 1..80),
            for_s in 0u64..120,
            resolve_s in 0u64..300,
            repeat_s in 1u64..600,
            auto_resolve in any::<bool>(),
        ) {
            let mut now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
            let mut open: Option<Open> = None;
            for ev in events {
                match ev {
                    Event::Ack | Event::Resolve => {
                        let Some(o) = open.as_mut() else { continue };
                        let to = if matches!(ev, Event::Ack) { AlertState::Acknowledged } else { AlertState::Resolved };
                        if o.state.may_become(to) {
                            o.state = to;
                        }
                        if o.state == AlertState::Resolved {
                            open = None;
                        }
                    }
                    Event::Eval { condition, silenced, advance_s } => {
                        now += chrono::Duration::seconds(advance_s as i64);
                        let input = Input {
                            now, condition, silenced,
                            for_: Duration::from_secs(for_s),
                            auto_resolve,
                            resolve_after: Duration::from_secs(resolve_s),
                            repeat_interval: Duration::from_secs(repeat_s),
                        };
                        let before = open.clone();
                        let Some(step) = decide(open.as_ref(), &input) else {
                            prop_assert!(!condition && before.is_none());
                            continue;
                        };
                        prop_assert_eq!(step.create, before.is_none());
                        let from = before.as_ref().map(|o| o.state);
                        let to = step.to.or(from).unwrap();
                        if let (Some(f), Some(t)) = (from, step.to) {
                            prop_assert!(f.may_become(t), "{:?} -> {:?}", f, t);
                        }
                        if step.create {
                            prop_assert!(condition);
                            prop_assert!(to != AlertState::Resolved && to != AlertState::Acknowledged);
                        }
                        match step.notify {
                            Some(Notify::Firing) => prop_assert_eq!(to, AlertState::Firing),
                            Some(Notify::Repeat) => {
                                prop_assert_eq!(from, Some(AlertState::Firing));
                                let last = before.as_ref().unwrap().last_notified_at.unwrap();
                                prop_assert!((now - last).num_seconds() as u64 >= repeat_s);
                            }
                            Some(Notify::Resolved) => {
                                prop_assert_eq!(to, AlertState::Resolved);
                                prop_assert!(before.as_ref().unwrap().last_notified_at.is_some());
                            }
                            None => {}
                        }
                        if to == AlertState::Firing && from != Some(AlertState::Firing) {
                            prop_assert_eq!(step.notify, Some(Notify::Firing));
                        }
                        if matches!(to, AlertState::Pending | AlertState::Suppressed | AlertState::Acknowledged) {
                            prop_assert!(step.notify.is_none() || to == AlertState::Firing);
                            prop_assert!(step.notify.is_none());
                        }
                        if to == AlertState::Resolved && from != Some(AlertState::Pending) {
                            prop_assert!(!condition && auto_resolve);
                        }
                        if silenced && to == AlertState::Firing {
                            prop_assert!(false, "firing while a silence matches");
                        }
                        if to == AlertState::Resolved {
                            open = None;
                        } else {
                            let mut o = before.unwrap_or(Open {
                                state: to,
                                pending_since: now,
                                condition_false_since: None,
                                last_notified_at: None,
                            });
                            o.state = to;
                            o.condition_false_since = step.condition_false_since;
                            if step.notify.is_some() {
                                o.last_notified_at = Some(now);
                            }
                            open = Some(o);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pending_fires_after_for_and_resolves_after_the_resolve_period() {
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let input = |s: i64, condition| Input {
            now: t0 + chrono::Duration::seconds(s),
            condition,
            silenced: false,
            for_: Duration::from_secs(60),
            auto_resolve: true,
            resolve_after: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(3600),
        };
        let s = decide(None, &input(0, true)).unwrap();
        assert_eq!(s.to, Some(AlertState::Pending));
        let mut o = Open {
            state: AlertState::Pending,
            pending_since: t0,
            condition_false_since: None,
            last_notified_at: None,
        };
        assert_eq!(decide(Some(&o), &input(30, true)).unwrap().to, None);
        let s = decide(Some(&o), &input(60, true)).unwrap();
        assert_eq!(
            (s.to, s.notify),
            (Some(AlertState::Firing), Some(Notify::Firing))
        );
        o.state = AlertState::Firing;
        o.last_notified_at = Some(t0 + chrono::Duration::seconds(60));
        let s = decide(Some(&o), &input(100, false)).unwrap();
        assert_eq!(s.to, None);
        o.condition_false_since = s.condition_false_since;
        let s = decide(Some(&o), &input(400, false)).unwrap();
        assert_eq!(
            (s.to, s.notify),
            (Some(AlertState::Resolved), Some(Notify::Resolved))
        );
    }
}
