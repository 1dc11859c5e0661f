//! The `pg_stat_statements` sampler: every interval, reads the extension's cumulative counters
//! in the opsdash database and in each monitored one (`[[database.monitor]]`), and stores what
//! each statement did since the last sample (calls, mean time, rows) as `query_log` rows, so
//! the Performance tab's slow queries show the real databases' statements without enabling
//! statement logging. Extension absent in opsdash's database: nothing to do. A monitored
//! database that cannot be read (unreachable, extension absent or not loaded) is reported once
//! in the worker's log, and again only when that changes; the others are sampled meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::config::{DatabaseConfig, MonitorConfig};
use crate::db::Db;
use crate::query::statements::{self as q, Availability, StatementCounters, StatementDelta};
use crate::worker::Job;

/// How often the counters are sampled (each sample is one row per active statement).
pub const INTERVAL: Duration = Duration::from_secs(60);

/// How long a monitored database may take to connect or to answer one query before the sample
/// of it is given up (a half-open connection would otherwise hang the job: sqlx sets no TCP
/// keepalive).
pub const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);

/// The last counters seen in one database, per (database, user, query id).
#[derive(Debug, Default)]
struct Baseline {
    last: HashMap<(i64, i64, i64), StatementCounters>,
    primed: bool,
}

impl Baseline {
    /// The deltas of `current` against the last counters, which `current` then replaces; the
    /// first call only takes the baseline (counters since the last reset are not one
    /// interval's work).
    fn advance(
        &mut self,
        current: Vec<StatementCounters>,
        now: DateTime<Utc>,
    ) -> Vec<StatementDelta> {
        let mut deltas = Vec::new();
        let mut next = HashMap::with_capacity(current.len());
        for c in current {
            let key = (c.dbid, c.userid, c.queryid);
            if self.primed {
                if let Some(d) = delta(self.last.get(&key), &c, now) {
                    deltas.push(d);
                }
            }
            next.insert(key, c);
        }
        self.last = next;
        self.primed = true;
        deltas
    }

    fn forget(&mut self) {
        self.last.clear();
        self.primed = false;
    }
}

/// One `[[database.monitor]]`: its connection (made on first use, dropped when it fails) and
/// what was last reported about it.
struct Monitor {
    cfg: MonitorConfig,
    conn: Option<PgConnection>,
    baseline: Baseline,
    problem: Option<String>,
}

/// A change in a monitored database's state, for the worker's log: it cannot be sampled
/// (`problem`), or it can again (`problem` None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub monitor: String,
    pub problem: Option<String>,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = crate::sanitize::sanitize(&self.monitor);
        match &self.problem {
            Some(p) => write!(
                f,
                "pg_stat_statements of monitored database {name} not sampled: {}",
                crate::sanitize::sanitize(p)
            ),
            None => write!(
                f,
                "pg_stat_statements of monitored database {name} sampled again"
            ),
        }
    }
}

/// The sampler's state between runs: the baselines of opsdash's own database and of each
/// monitored one.
#[derive(Default)]
pub struct Sampler {
    own: Baseline,
    monitors: Vec<Monitor>,
    notices: Vec<Notice>,
}

pub fn job() -> Job {
    let sampler = Arc::new(Mutex::new(None::<Sampler>));
    Job::new("pg_stat_statements", INTERVAL, move |ctx| {
        let sampler = sampler.clone();
        async move {
            let configured = &ctx.cfg.database.monitor;
            let taken = sampler.lock().map_err(|_| poisoned())?.take();
            // A reloaded config with other monitors starts them afresh.
            let mut s = match taken {
                Some(s) if s.monitor_configs() == *configured => s,
                _ => Sampler::new(configured),
            };
            let r = s.sample(&ctx.db).await;
            for n in s.take_notices() {
                match n.problem {
                    Some(_) => tracing::warn!("{n}"),
                    None => tracing::info!("{n}"),
                }
            }
            *sampler.lock().map_err(|_| poisoned())? = Some(s);
            r.map(|_| ())
        }
    })
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("pg_stat_statements sampler state poisoned")
}

impl Sampler {
    /// A sampler of opsdash's own database and of `monitors`.
    pub fn new(monitors: &[MonitorConfig]) -> Sampler {
        Sampler {
            monitors: monitors
                .iter()
                .map(|cfg| Monitor {
                    cfg: cfg.clone(),
                    conn: None,
                    baseline: Baseline::default(),
                    problem: None,
                })
                .collect(),
            ..Sampler::default()
        }
    }

    fn monitor_configs(&self) -> Vec<MonitorConfig> {
        self.monitors.iter().map(|m| m.cfg.clone()).collect()
    }

    /// Reads the counters of opsdash's database and of each monitored one, and stores the
    /// deltas since the previous call. A monitored database that cannot be read is skipped
    /// (and noticed); an error reaching opsdash's own database is the job's error. Returns the
    /// rows stored.
    pub async fn sample(&mut self, db: &Db) -> Result<u64> {
        let mut deltas = Vec::new();
        {
            let mut conn = db.write.acquire().await?;
            if q::availability(&mut conn).await? == Availability::Ready {
                let current = q::counters(&mut conn).await?;
                deltas.extend(self.own.advance(current, Utc::now()));
            } else {
                self.own.forget();
            }
        }
        for m in &mut self.monitors {
            let problem = match m.read().await {
                Ok(current) => {
                    deltas.extend(m.baseline.advance(current, Utc::now()));
                    None
                }
                Err(problem) => {
                    m.baseline.forget();
                    Some(problem)
                }
            };
            if problem != m.problem {
                // A first success is no news; a recovery from a reported problem is.
                if problem.is_some() || m.problem.is_some() {
                    self.notices.push(Notice {
                        monitor: m.cfg.name.clone(),
                        problem: problem.clone(),
                    });
                }
                m.problem = problem;
            }
        }
        q::store(&db.write, &deltas).await
    }

    /// What changed in the monitored databases' state since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// The monitored databases that cannot be sampled now, with why.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.monitors
            .iter()
            .filter_map(|m| Some((m.cfg.name.clone(), m.problem.clone()?)))
            .collect()
    }
}

impl Monitor {
    /// The monitored database's counters, renamed to the monitor's name (`query_log.database`),
    /// or one line saying why they cannot be read. The connection is dropped on any failure
    /// and made again next time.
    async fn read(&mut self) -> std::result::Result<Vec<StatementCounters>, String> {
        let r = tokio::time::timeout(MONITOR_TIMEOUT, self.read_within()).await;
        let r =
            r.unwrap_or_else(|_| Err(format!("no answer within {} s", MONITOR_TIMEOUT.as_secs())));
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn read_within(&mut self) -> std::result::Result<Vec<StatementCounters>, String> {
        if self.cfg.name.trim().is_empty() {
            return Err("database.monitor has no name".into());
        }
        let conn = match self.conn.take() {
            Some(c) => c,
            None => connect(&self.cfg).await?,
        };
        let conn = self.conn.insert(conn);
        match q::availability(conn).await.map_err(|e| format!("{e:#}"))? {
            Availability::Ready => {}
            Availability::NotInstalled => {
                return Err(
                    "the extension is not installed there (CREATE EXTENSION pg_stat_statements)"
                        .into(),
                )
            }
            Availability::NotLoaded => {
                return Err(
                    "the server did not load the extension (add pg_stat_statements to \
                            shared_preload_libraries and restart it)"
                        .into(),
                )
            }
        }
        let mut current = q::counters(conn).await.map_err(|e| format!("{e:#}"))?;
        for c in &mut current {
            c.database.clone_from(&self.cfg.name);
        }
        Ok(current)
    }
}

/// A connection to a monitored database (TLS as its URL says), or why there is none.
async fn connect(cfg: &MonitorConfig) -> std::result::Result<PgConnection, String> {
    let url = cfg.url.expose();
    if url.trim().is_empty() {
        return Err("database.monitor has no url".into());
    }
    let opts = crate::db::pool::parse_url(url)
        .and_then(|o| crate::db::tls::apply(o, url, &DatabaseConfig::default()))
        .map_err(|e| format!("{e:#}"))?
        .application_name("opsdash")
        .disable_statement_logging();
    PgConnection::connect_with(&opts).await.map_err(|e| {
        crate::db::tls::explain(&e, &opts).unwrap_or_else(|| format!("connecting: {e}"))
    })
}

/// What `cur` did since `prev`. A statement new since the last sample, or whose counters went
/// back (`pg_stat_statements_reset()`, eviction), counts from zero.
fn delta(
    prev: Option<&StatementCounters>,
    cur: &StatementCounters,
    ts: chrono::DateTime<Utc>,
) -> Option<StatementDelta> {
    let (calls, total_ms, rows) = match prev {
        Some(p) if cur.calls >= p.calls => (
            cur.calls - p.calls,
            cur.total_ms - p.total_ms,
            cur.rows - p.rows,
        ),
        _ => (cur.calls, cur.total_ms, cur.rows),
    };
    if calls <= 0 {
        return None;
    }
    Some(StatementDelta {
        ts,
        service: cur.role.clone(),
        database: cur.database.clone(),
        query: cur.query.clone(),
        fingerprint: fingerprint(&cur.database, &cur.query),
        calls,
        mean_ms: (total_ms / calls as f64).max(0.0),
        rows: rows.max(0),
    })
}

/// The statement's text is already normalized by the extension (`$1` for literals).
fn fingerprint(database: &str, query: &str) -> String {
    let mut h = Sha256::new();
    h.update(database.as_bytes());
    h.update([0]);
    h.update(query.as_bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(calls: i64, total_ms: f64, rows: i64) -> StatementCounters {
        StatementCounters {
            dbid: 1,
            userid: 2,
            queryid: 3,
            database: "app".into(),
            role: "web".into(),
            query: "SELECT * FROM t WHERE id = $1".into(),
            calls,
            total_ms,
            rows,
        }
    }

    #[test]
    fn the_commented_monitor_example_of_the_sample_config_parses() {
        let example = include_str!("../../config.example.toml");
        let block: String = example
            .lines()
            .skip_while(|l| *l != "# [[database.monitor]]")
            .take(3)
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let cfg = crate::config::Config::parse(&block, std::path::Path::new("example")).unwrap();
        assert_eq!(cfg.database.monitor.len(), 1, "{block}");
        assert_eq!(cfg.database.monitor[0].name, "billing");
        assert!(cfg.database.monitor[0]
            .url
            .expose()
            .starts_with("postgres://"));
    }

    #[test]
    fn notices_name_the_monitor_and_escape_server_text() {
        let n = Notice {
            monitor: "billing".into(),
            problem: Some("connecting: refused \u{1b}[31m".into()),
        };
        let line = n.to_string();
        assert!(line.starts_with("pg_stat_statements of monitored database billing not sampled"));
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }

    #[test]
    fn deltas_per_interval_and_after_a_reset() {
        let ts = Utc::now();
        let d = delta(Some(&c(10, 100.0, 10)), &c(14, 180.0, 14), ts).unwrap();
        assert_eq!((d.calls, d.mean_ms, d.rows), (4, 20.0, 4));
        assert!(delta(Some(&c(10, 100.0, 10)), &c(10, 100.0, 10), ts).is_none());
        let reset = delta(Some(&c(10, 100.0, 10)), &c(2, 6.0, 2), ts).unwrap();
        assert_eq!((reset.calls, reset.mean_ms), (2, 3.0));
        assert_eq!(d.fingerprint, reset.fingerprint);
    }
}
