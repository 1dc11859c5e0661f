//! One LISTEN connection that comes back by itself: the live tail and the worker's wake-ups both
//! need a session of their own that hears NOTIFY, says when it is (again) listening, and
//! reconnects with backoff when the connection is lost, so that the caller can catch up on what
//! it missed meanwhile (a notification sent while nobody listened is gone for good).
//!
//! `Listen::next` is cancel-safe: a caller may `select!` it against its own stop signal.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

/// What the listener has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// LISTEN is active on every channel; `reconnects` counts the re-establishments before it.
    /// Anything committed before this moment was not heard: catch up now.
    Connected { reconnects: u64 },
    /// A notification on one of the channels.
    Notification { channel: String, payload: String },
    /// Not listening any more (or not yet): `why` is the error, or None for a connection that
    /// just went away. The next call waits out the backoff, then reconnects.
    Lost { why: Option<String> },
}

/// A self-reconnecting LISTEN session (see the module comment).
pub struct Listen {
    opts: PgConnectOptions,
    channels: Vec<&'static str>,
    connect_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    backoff: Duration,
    live: Option<(PgPool, PgListener)>,
    /// A connection was tried before, so the next attempt waits out the backoff first.
    retrying: bool,
    reconnects: u64,
}

impl Listen {
    /// A listener on `channels` under `app_name` (shown in pg_stat_activity). Nothing connects
    /// before the first `next`.
    pub fn new(opts: PgConnectOptions, app_name: &str, channels: &[&'static str]) -> Listen {
        Listen {
            opts: opts.application_name(app_name),
            channels: channels.to_vec(),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            backoff: Duration::from_millis(100),
            live: None,
            retrying: false,
            reconnects: 0,
        }
    }

    /// How long one connection attempt may take.
    pub fn connect_timeout(mut self, t: Duration) -> Listen {
        self.connect_timeout = t;
        self
    }

    /// The first wait after a loss; it doubles on each failed attempt up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Listen {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self.backoff = min;
        self
    }

    /// Whether LISTEN is active right now.
    pub fn is_listening(&self) -> bool {
        self.live.is_some()
    }

    /// The next event: a notification while connected; otherwise (after the backoff) a new
    /// connection attempt, reported as `Connected` or `Lost`.
    pub async fn next(&mut self) -> ListenEvent {
        if let Some((_, listener)) = self.live.as_mut() {
            // try_recv gives None when the connection was lost (recv would reconnect silently,
            // hiding the gap in which notifications were missed).
            let event = match listener.try_recv().await {
                Ok(Some(n)) => {
                    return ListenEvent::Notification {
                        channel: n.channel().to_string(),
                        payload: n.payload().to_string(),
                    }
                }
                Ok(None) => ListenEvent::Lost { why: None },
                Err(e) => ListenEvent::Lost {
                    why: Some(e.to_string()),
                },
            };
            self.drop_connection().await;
            return event;
        }
        if self.retrying {
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(self.backoff_max);
            self.reconnects += 1;
        }
        self.retrying = true;
        // A pool of one so the listener has its own backend (LISTEN is per session).
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.connect_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.opts.clone());
        let channels = self.channels.clone();
        let connect = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen_all(channels).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(listener)) => {
                self.backoff = self.backoff_min;
                self.live = Some((pool, listener));
                ListenEvent::Connected {
                    reconnects: self.reconnects,
                }
            }
            Ok(Err(e)) => {
                pool.close().await;
                ListenEvent::Lost {
                    why: Some(e.to_string()),
                }
            }
            Err(_) => {
                pool.close().await;
                ListenEvent::Lost {
                    why: Some("timed out connecting".into()),
                }
            }
        }
    }

    async fn drop_connection(&mut self) {
        if let Some((pool, listener)) = self.live.take() {
            drop(listener);
            pool.close().await;
        }
    }
}
