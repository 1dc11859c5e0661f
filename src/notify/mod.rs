//! Delivery of the outbox (`opsdash.notification`): claim due messages with `FOR UPDATE SKIP
//! LOCKED`, send each through its channel with a timeout, record every attempt, and retry
//! transient failures (5xx, 429, network errors) with capped, jittered backoff that honours
//! Retry-After. Other 4xx answers go to the dead-letter state at once.

pub mod command;
pub mod email;
pub mod payload;
pub mod webhook;

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::alerts::ChannelConfig;
use crate::config::Config;
use crate::db::Db;
use crate::query::outbox;
use crate::query::outbox::Claimed;
use crate::query::outbox::Outcome;
use crate::worker::wake::{Lookout, Topic, Wake};
use crate::worker::{Job, JobContext};

pub const JOB: &str = "alerts.notify";

/// Messages claimed per round.
const BATCH: i64 = 50;

/// The delivery job: every `alert.tick_ms` it sends what is due, but looks at the outbox only
/// when a message entered it (`wake`), when the next retry or group wait it knows of comes due,
/// or every few seconds in case a wake-up was lost.
pub fn job(cfg: &Config, wake: &Wake) -> Job {
    let lookout = std::sync::Arc::new(Lookout::new(wake.clone(), Topic::Outbox));
    Job::new(
        JOB,
        Duration::from_millis(cfg.alert.tick_ms.max(1)),
        move |ctx: JobContext| {
            let lookout = lookout.clone();
            async move {
                if !lookout.must_look(&ctx.db, ctx.epoch) {
                    return Ok(());
                }
                let looked = async {
                    let sent = deliver_due(&ctx.db, &ctx.cfg).await?;
                    // A full batch may have left more due: look again on the next tick.
                    if sent as i64 >= BATCH {
                        return Ok(Some(Duration::ZERO));
                    }
                    crate::query::outbox::next_due_in(&ctx.db.write).await
                };
                match looked.await {
                    Ok(due_in) => {
                        lookout.looked(ctx.epoch, due_in, Duration::ZERO);
                        Ok(())
                    }
                    Err(e) => {
                        lookout.forget();
                        Err(e)
                    }
                }
            }
        },
    )
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status: Option<i32>,
    },
    /// Worth retrying: 5xx, 429, network error, timeout, a command that failed.
    Transient {
        status: Option<i32>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (4xx other than 429, no such channel).
    Permanent {
        status: Option<i32>,
        error: String,
    },
}

impl Attempt {
    fn status(&self) -> Option<i32> {
        match self {
            Attempt::Delivered { status }
            | Attempt::Transient { status, .. }
            | Attempt::Permanent { status, .. } => *status,
        }
    }
    fn error(&self) -> Option<&str> {
        match self {
            Attempt::Delivered { .. } => None,
            Attempt::Transient { error, .. } | Attempt::Permanent { error, .. } => Some(error),
        }
    }
}

pub fn channel_timeout(c: &ChannelConfig) -> Duration {
    crate::alerts::config::duration(&c.timeout).unwrap_or(Duration::from_secs(10))
}

/// Retry delay after `attempts` attempts: exponential from `initial`, capped at `max`, with
/// jitter (between half and all of it) so many receivers recovering at once are not hit in
/// step; never sooner than the receiver's Retry-After (itself capped at an hour).
pub fn backoff(
    attempts: u32,
    initial: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let jittered = capped.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0));
    match retry_after {
        Some(ra) => jittered.max(ra.min(Duration::from_secs(3600))),
        None => jittered,
    }
}

/// Sends every due message once. Returns how many were attempted.
pub async fn deliver_due(db: &Db, cfg: &Config) -> Result<usize> {
    let longest = cfg
        .alert
        .channels
        .iter()
        .map(channel_timeout)
        .max()
        .unwrap_or(Duration::from_secs(10));
    let claimed = outbox::claim(&db.write, BATCH, longest + Duration::from_secs(30)).await?;
    let n = claimed.len();
    let sends = claimed.into_iter().map(|m| deliver_one(db, cfg, m));
    for r in futures::future::join_all(sends).await {
        r?;
    }
    Ok(n)
}

async fn deliver_one(db: &Db, cfg: &Config, m: Claimed) -> Result<()> {
    let started = Instant::now();
    let attempt = match cfg.alert.channel(&m.channel) {
        None => Attempt::Permanent {
            status: None,
            error: format!("no channel named {:?} in this opsdash's config", m.channel),
        },
        Some(ch) => {
            let limit = channel_timeout(ch);
            match tokio::time::timeout(limit, send(ch, &m)).await {
                Ok(a) => a,
                Err(_) => Attempt::Transient {
                    status: None,
                    error: format!("timed out after {limit:?}"),
                    retry_after: None,
                },
            }
        }
    };
    let elapsed = started.elapsed();
    let outcome = match &attempt {
        Attempt::Delivered { .. } => Outcome::Delivered,
        Attempt::Permanent { .. } => Outcome::Dead,
        Attempt::Transient { .. } if m.attempts as u32 >= cfg.alert.max_attempts => Outcome::Dead,
        Attempt::Transient { retry_after, .. } => Outcome::Retry {
            after: backoff(
                m.attempts as u32,
                cfg.alert.retry_initial(),
                cfg.alert.retry_max(),
                *retry_after,
            ),
        },
    };
    match &outcome {
        Outcome::Delivered => {
            tracing::info!(id = m.id, channel = %m.channel, kind = %m.kind, "notification delivered")
        }
        Outcome::Retry { after } => {
            tracing::warn!(id = m.id, channel = %m.channel, "attempt {} failed ({}), retry in {after:?}", m.attempts, attempt.error().unwrap_or(""))
        }
        Outcome::Dead => {
            tracing::warn!(id = m.id, channel = %m.channel, "dead-lettered after attempt {}: {}", m.attempts, attempt.error().unwrap_or(""))
        }
    }
    outbox::record_attempt(
        &db.write,
        m.id,
        attempt.status(),
        attempt.error(),
        elapsed,
        &outcome,
    )
    .await
}

async fn send(ch: &ChannelConfig, m: &Claimed) -> Attempt {
    match ch.kind.as_str() {
        "command" => command::send(ch, m).await,
        "email" => email::send(ch, m).await,
        _ => webhook::send(ch, m).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_jittered_and_honours_retry_after() {
        let i = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..30 {
            let d = backoff(attempt, i, max, None);
            let full = i.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert_eq!(
            backoff(1, i, max, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            backoff(1, i, max, Some(Duration::from_secs(999_999))),
            Duration::from_secs(3600)
        );
    }
}
