//! SQL of the block summaries (migration 0063, `model::log_block`): writing a transaction's
//! block, narrowing a search over the days whose search indexes are not built yet, and sealing
//! days (the worker's `log_seal` job builds their indexes, then forgets their blocks).
//!
//! ## Narrowing a search
//! Within the span of the unsealed days, a row can match only if its block (a run of its
//! transaction's rows) may hold the filter's keys: the search adds `ts < from OR ts >= to OR
//! <sealed days inside> OR (tx = X AND id BETWEEN a AND b) OR ...` for the candidate runs. On a
//! sealed day the row passes by its time; on an unsealed one only the candidates' rows are
//! read, through the (tx, id) index (a BitmapOr of the arms). The blocks
//! are tested on the server (`opsdash.log_block_match`), in the caller's transaction, which
//! must be REPEATABLE READ so the day list, the blocks and the rows are one snapshot: a day
//! sealed (and its blocks forgotten) between two of them would otherwise lose its rows.
//!
//! When the candidates hold a large share of the span's rows (a common word), reading them all
//! costs more than walking the newest rows until a page is found: the narrowing is left out
//! (see `narrowing`'s estimate).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::filter::Filter;
use crate::query::retention::{day_range, parse_partition_name};

/// Reading the candidates must cost less than this share of what walking the rows newest first
/// would read (both read rows at about the same cost; the walk stops at a full page).
const READ_SHARE: f64 = 0.8;
/// More candidate runs than this make the statement slow to plan (one index scan per run and
/// partition): the walk is taken instead.
const MAX_RUNS: usize = 400;

/// Blocks of the rows the calling transaction has just written, noted at once.
#[derive(Debug, Default)]
pub struct Notes {
    counts: Vec<i32>,
    lo: Vec<DateTime<Utc>>,
    hi: Vec<DateTime<Utc>>,
    blooms: Vec<Vec<u8>>,
}

impl Notes {
    /// The next `rows` rows written, stamped in `[lo, hi]`, with their filter.
    pub fn push(&mut self, rows: usize, lo: DateTime<Utc>, hi: DateTime<Utc>, bloom: Vec<u8>) {
        self.counts.push(i32::try_from(rows).unwrap_or(i32::MAX));
        self.lo.push(lo);
        self.hi.push(hi);
        self.blooms.push(bloom);
    }
}

/// Records the blocks of the rows the calling transaction has just written (right after its
/// COPY): the server numbers them by their ids (see migration 0063).
pub async fn note(conn: &mut PgConnection, n: &Notes) -> sqlx::Result<()> {
    let (Some(lo), Some(hi)) = (n.lo.iter().min(), n.hi.iter().max()) else {
        return Ok(());
    };
    sqlx::query("SELECT opsdash.log_block_note($1, $2, $3, $4, $5, $6)")
        .bind(lo)
        .bind(hi)
        .bind(&n.counts)
        .bind(&n.lo)
        .bind(&n.hi)
        .bind(&n.blooms)
        .execute(conn)
        .await
        .map(|_| ())
}

/// log_event's partitions by day, and whether each is sealed (its search indexes built).
/// The DEFAULT partition is left out (always sealed).
pub async fn partition_days(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<(NaiveDate, String, bool)>> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text,
                to_regclass(format('opsdash.%I', c.relname || '_tokens')) IS NOT NULL
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'opsdash.log_event'::regclass",
    )
    .fetch_all(conn)
    .await?;
    let mut days: Vec<(NaiveDate, String, bool)> = rows
        .into_iter()
        .filter_map(|(name, sealed)| {
            let (table, day) = parse_partition_name(&name)?;
            (table == "log_event").then_some((day, name, sealed))
        })
        .collect();
    days.sort();
    Ok(days)
}

/// What a search adds over the unsealed days (see the module's notes).
#[derive(Debug, Clone, PartialEq)]
pub struct Narrowing {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Days inside `[from, to)` that are sealed (or have no partition: their rows, in the
    /// DEFAULT partition, are indexed there), as `[start, end)` runs.
    pub sealed: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Candidate runs of rows: a transaction (xid8 as a number) and an id range, inclusive
    /// (adjacent candidate blocks of one transaction merged).
    pub runs: Vec<(i64, i64, i64)>,
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    day_range(d).0
}

impl Narrowing {
    /// ` AND (...)`: the times and transaction ids are values computed here (no user text),
    /// written as constants so the planner sees them (with parameters, a cached generic plan
    /// cannot tell one candidate list from another).
    pub fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        let t = |x: DateTime<Utc>| format!("'{}'::timestamptz", x.to_rfc3339());
        let mut sql = format!(" AND (ts < {} OR ts >= {}", t(self.from), t(self.to));
        for (a, b) in &self.sealed {
            sql.push_str(&format!(" OR (ts >= {} AND ts < {})", t(*a), t(*b)));
        }
        for (tx, a, b) in &self.runs {
            sql.push_str(&format!(
                " OR (tx = '{tx}'::xid8 AND id BETWEEN {a} AND {b})"
            ));
        }
        sql.push(')');
        qb.push(sql);
    }
}

/// The narrowing of `filter` over the unsealed days, for rows stamped in `[lo, hi)`, for a page
/// of `limit` rows (None: a count, which reads every match) (None: nothing to narrow, or not
/// worth it). Call in the search's REPEATABLE READ transaction.
pub async fn narrowing(
    conn: &mut PgConnection,
    filter: &Filter,
    lo: Option<DateTime<Utc>>,
    hi: Option<DateTime<Utc>>,
    limit: Option<i64>,
) -> sqlx::Result<Option<Narrowing>> {
    let groups = filter.block_probes();
    if groups.is_empty() {
        return Ok(None);
    }
    let days = partition_days(&mut *conn).await?;
    let open: Vec<NaiveDate> = days.iter().filter(|d| !d.2).map(|d| d.0).collect();
    let (Some(first), Some(last)) = (open.first(), open.last()) else {
        return Ok(None);
    };
    let (from, to) = (day_start(*first), day_start(*last) + Duration::days(1));
    if lo.is_some_and(|lo| lo >= to) || hi.is_some_and(|hi| hi <= from) {
        return Ok(None);
    }
    let mut sealed: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut d = *first;
    while d <= *last {
        if open.binary_search(&d).is_err() {
            let (a, b) = (day_start(d), day_start(d) + Duration::days(1));
            match sealed.last_mut() {
                Some(run) if run.1 == a => run.1 = b,
                _ => sealed.push((a, b)),
            }
        }
        d += Duration::days(1);
    }
    let mut keys: Vec<i64> = Vec::new();
    let mut group_of: Vec<i32> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for k in group {
            keys.push(*k as i64);
            group_of.push(g as i32);
        }
    }
    // Blocks whose rows may fall in the span and in the searched times.
    let span_lo = lo.map_or(from, |lo| lo.max(from));
    let span_hi = hi.map_or(to, |hi| hi.min(to));
    let mut blocks: Vec<(i64, i64, i64, i32, bool)> = sqlx::query_as(
        "SELECT tx::text::bigint, first_id, last_id, rows,
                opsdash.log_block_match(bloom, $1, $2)
           FROM opsdash.log_block
          WHERE max_ts >= $3 AND min_ts < $4",
    )
    .bind(&keys)
    .bind(&group_of)
    .bind(span_lo)
    .bind(span_hi)
    .fetch_all(&mut *conn)
    .await?;
    blocks.sort_unstable();
    let total: i64 = blocks.iter().map(|b| i64::from(b.3)).sum();
    let mut runs: Vec<(i64, i64, i64)> = Vec::new();
    let (mut read, mut candidates) = (0i64, 0i64);
    let mut previous_matched = false;
    let mut previous_tx = None;
    for (tx, first, last, rows, matched) in blocks {
        if matched {
            read += i64::from(rows);
            candidates += 1;
            match runs.last_mut() {
                Some(run) if previous_matched && previous_tx == Some(tx) => run.2 = last,
                _ => runs.push((tx, first, last)),
            }
        }
        previous_matched = matched;
        previous_tx = Some(tx);
    }
    // What walking newest first would read: everything for a count; for a page, about the
    // share of the rows that holds `limit` matches if each candidate block holds one.
    let walk = match limit {
        None => total as f64,
        Some(l) => total as f64 * (l as f64 / candidates.max(1) as f64).min(1.0),
    };
    if runs.len() > MAX_RUNS || (total > 0 && read as f64 > walk * READ_SHARE) {
        return Ok(None);
    }
    Ok(Some(Narrowing {
        from,
        to,
        sealed,
        runs,
    }))
}

/// Starts the search's transaction as REPEATABLE READ (see the module's notes). First
/// statement of the transaction.
pub async fn one_snapshot(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(conn)
        .await
        .map(|_| ())
}

/// Days ready to seal: ended at least `grace` ago, with no block written into them for `grace`
/// (a day still receiving late lines waits). Oldest first.
pub async fn ready_to_seal(
    conn: &mut PgConnection,
    grace: std::time::Duration,
) -> sqlx::Result<Vec<String>> {
    let grace = Duration::from_std(grace).unwrap_or(Duration::minutes(5));
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let days = partition_days(&mut *conn).await?;
    let mut ready = Vec::new();
    for (day, name, sealed) in days {
        let (a, b) = (day_start(day), day_start(day) + Duration::days(1));
        if sealed || b + grace > now {
            continue;
        }
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM opsdash.log_block
                             WHERE max_ts >= $1 AND min_ts < $2 AND at > now() - $3::interval)",
        )
        .bind(a)
        .bind(b)
        .bind(format!("{} seconds", grace.num_seconds()))
        .fetch_one(&mut *conn)
        .await?;
        if !busy {
            ready.push(name);
        }
    }
    Ok(ready)
}

/// Builds one day's search indexes in one transaction (waiting at most `lock_wait` for rows
/// being written into it: the job tries again next time).
pub async fn seal(
    conn: &mut PgConnection,
    partition: &str,
    lock_wait: std::time::Duration,
) -> sqlx::Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(lock_wait.as_millis().max(1).to_string())
        .execute(&mut *tx)
        .await?;
    seal_in(&mut tx, partition).await?;
    tx.commit().await
}

/// Builds one day's search indexes in the caller's transaction (a restore seals the day it
/// fills: its rows keep their old transaction ids, which no block describes).
pub async fn seal_in(conn: &mut PgConnection, partition: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT opsdash.log_seal($1)")
        .bind(partition)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Forgets the blocks no unsealed day needs: those whose rows all lie before the first
/// unsealed day (every block when no day is unsealed). One statement, so the day list and the
/// blocks are one snapshot: a block committed after a new day's partition is seen with it.
/// Returns the blocks removed.
pub async fn forget_sealed(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM opsdash.log_block
          WHERE max_ts < coalesce(
                (SELECT min(to_date(right(c.relname, 8), 'YYYYMMDD'))::timestamp AT TIME ZONE 'UTC'
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'opsdash.log_event'::regclass
                    AND c.relname ~ '^log_event_p[0-9]{8}$'
                    AND to_regclass(format('opsdash.%I', c.relname || '_tokens')) IS NULL),
                'infinity')",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
