//! The `pg_stat_statements` sampler: every interval, reads the extension's cumulative counters
//! in the opsdash database and stores what each statement did since the last sample (calls,
//! mean time, rows) as `query_log` rows, so the Performance tab's slow queries show the real
//! database's statements without enabling statement logging. Absent extension: nothing to do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::query::statements::{self as q, StatementCounters, StatementDelta};
use crate::worker::Job;

/// How often the counters are sampled (each sample is one row per active statement).
pub const INTERVAL: Duration = Duration::from_secs(60);

/// The last counters seen, per (database, user, query id).
#[derive(Debug, Default)]
pub struct Sampler {
    last: HashMap<(i64, i64, i64), StatementCounters>,
    primed: bool,
}

pub fn job() -> Job {
    let sampler = Arc::new(Mutex::new(Sampler::default()));
    Job::new("pg_stat_statements", INTERVAL, move |ctx| {
        let sampler = sampler.clone();
        async move {
            let mut s = std::mem::take(&mut *sampler.lock().map_err(|_| poisoned())?);
            let r = s.sample(&ctx.db).await;
            *sampler.lock().map_err(|_| poisoned())? = s;
            r.map(|_| ())
        }
    })
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("pg_stat_statements sampler state poisoned")
}

impl Sampler {
    /// Reads the counters and stores the deltas since the previous call; the first call only
    /// takes the baseline (counters since the last reset are not one interval's work).
    /// Returns the rows stored.
    pub async fn sample(&mut self, db: &Db) -> Result<u64> {
        if !q::available(&db.write).await? {
            self.last.clear();
            self.primed = false;
            return Ok(0);
        }
        let now = Utc::now();
        let current = q::counters(&db.write).await?;
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
        q::store(&db.write, &deltas).await
    }
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
