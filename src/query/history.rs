//! All of history for the Logs tab: keyset pages older or newer than a line's (ts, id) within
//! a time range and a filter, across the daily partitions, and the header's count of what the
//! range and filter hold (exact when counting is cheap, otherwise the planner's estimate,
//! flagged).
//!
//! ## Why the pages are cheap at any point of history
//! `log_event` is partitioned by day on `ts` and every partition has a `ts` index. A page is
//! `ORDER BY ts DESC, id DESC LIMIT n` (or ascending) with the range and the key as plain `ts`
//! bounds besides the row comparison: the bounds prune the partitions outside them (at plan
//! time, or at run time for parameters), the remaining ones are read in partition order by an
//! ordered Append of backward (forward) `ts` index scans, and the read stops after `n` rows
//! that pass the filter. The cost is the page plus the lines the filter rejects on the way,
//! never the depth into history. `(ts, id)` is the key because `ts` alone repeats (a batch
//! stamped in one millisecond): the id breaks ties so no line is skipped or shown twice.
//!
//! A filter with a regular expression runs under `filter::REGEX_BUDGET` (statement_timeout for
//! the transaction); `filter::explain_error` turns the cancellation into one clear line.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::filter::{Filter, REGEX_BUDGET};
use crate::query::log_block;
use crate::query::logs::{begin_search, LogLine, LINE_COLUMNS};

/// A half-open time range `[from, until)` of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// The position of a line in history order: event time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryKey {
    pub ts: DateTime<Utc>,
    pub id: i64,
}

impl From<&LogLine> for HistoryKey {
    fn from(l: &LogLine) -> Self {
        HistoryKey { ts: l.ts, id: l.id }
    }
}

/// Which way a page goes from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Lines before the key (scrolling up); with no key, the newest lines of the range.
    Older,
    /// Lines after the key (scrolling down); with no key, the oldest lines of the range.
    Newer,
}

/// Sets the regex budget as the transaction's statement_timeout when the filter has a regular
/// expression (a no-op otherwise). Call inside a transaction.
pub async fn apply_budget(conn: &mut PgConnection, filter: &Filter) -> sqlx::Result<()> {
    if filter.has_regex() {
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(REGEX_BUDGET.as_millis().to_string())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// One page of up to `limit` lines next to `key` in `dir` within the range and the filter,
/// returned oldest first whichever the direction (the list prepends older pages and appends
/// newer ones). Fewer than `limit` lines means the range ends there.
pub async fn page(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    dir: Direction,
    key: Option<HistoryKey>,
    limit: i64,
) -> sqlx::Result<Vec<LogLine>> {
    let mut tx = begin_search(pool).await?;
    let open = log_block::narrowing(
        &mut tx,
        filter,
        Some(range.from),
        Some(range.until),
        Some(limit),
    )
    .await?;
    apply_budget(&mut tx, filter).await?;
    let mut rows: Vec<LogLine> = page_query("", range, filter, open.as_ref(), dir, key, limit)
        .build_query_as()
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    if dir == Direction::Older {
        rows.reverse();
    }
    Ok(rows)
}

/// The lines around an instant (`:goto 2026-12-01 14:00`): up to `before` lines stamped
/// before `at` and up to `after` lines at or after it, oldest first, and the index of the
/// first line at or after `at` (the cursor's place; `None` when no line is at or after it).
pub async fn around(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    at: DateTime<Utc>,
    before: i64,
    after: i64,
) -> sqlx::Result<(Vec<LogLine>, Option<usize>)> {
    let l = load_around(pool, range, filter, at, (before, after), 0).await?;
    Ok((l.lines, l.cursor))
}

/// The statement of `page` after `prefix` (`EXPLAIN ...` in the plan tests and the bench).
pub fn page_query<'a>(
    prefix: &str,
    range: HistoryRange,
    filter: &'a Filter,
    open: Option<&log_block::Narrowing>,
    dir: Direction,
    key: Option<HistoryKey>,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE "
    ));
    push_selection(&mut qb, range, filter, open);
    if let Some(k) = key {
        // The plain `ts` bound beside the row comparison prunes partitions past the key and
        // bounds the index scan; the row comparison then breaks ties by id.
        let (bound, row) = match dir {
            Direction::Older => ("<=", "<"),
            Direction::Newer => (">=", ">"),
        };
        qb.push(format!(" AND ts {bound} "))
            .push_bind(k.ts)
            .push(format!(" AND (ts, id) {row} ("))
            .push_bind(k.ts)
            .push(", ")
            .push_bind(k.id)
            .push(")");
    }
    qb.push(match dir {
        Direction::Older => " ORDER BY ts DESC, id DESC LIMIT ",
        Direction::Newer => " ORDER BY ts ASC, id ASC LIMIT ",
    })
    .push_bind(limit.max(0));
    qb
}

/// The range and the filter: what the pages, the count and the estimate all select; with the
/// blocks' narrowing over the days not indexed yet (`query::log_block`) when there is one.
fn push_selection<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    range: HistoryRange,
    filter: &'a Filter,
    open: Option<&log_block::Narrowing>,
) {
    qb.push("ts >= ")
        .push_bind(range.from)
        .push(" AND ts < ")
        .push_bind(range.until);
    if !filter.is_empty() {
        qb.push(" AND ");
        filter.push_conditions(qb);
    }
    if let Some(n) = open {
        n.push(qb);
    }
}

/// The header's count of the lines the range and filter hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderCount {
    pub lines: i64,
    /// The planner's estimate (shown as `~N`): counting exactly would have read more than the
    /// cap or taken longer than the budget.
    pub estimated: bool,
}

impl std::fmt::Display for HeaderCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.estimated {
            write!(f, "~{}", self.lines)
        } else {
            write!(f, "{}", self.lines)
        }
    }
}

/// Counts the lines of the range and filter: exactly when there are at most `cap` of them and
/// counting takes less than `budget`; otherwise the planner's row estimate (at least `cap + 1`
/// when the capped count reached the cap), flagged `estimated`.
pub async fn count(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    cap: i64,
    budget: std::time::Duration,
) -> sqlx::Result<HeaderCount> {
    let mut tx = begin_search(pool).await?;
    // Before the budget: it bounds the count, not this (a few milliseconds).
    let open = log_block::narrowing(
        &mut tx,
        filter,
        Some(range.from),
        Some(range.until),
        Some(cap.saturating_add(1)),
    )
    .await?;
    let budget = if filter.has_regex() {
        budget.min(REGEX_BUDGET)
    } else {
        budget
    };
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(budget.as_millis().max(1).to_string())
        .execute(&mut *tx)
        .await?;
    // Counting stops at cap + 1 rows, so a huge range costs at most cap rows read (and the
    // budget bounds a slow filter whatever the rows).
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT count(*) FROM (SELECT 1 FROM opsdash.log_event WHERE ",
    );
    push_selection(&mut qb, range, filter, open.as_ref());
    qb.push(" LIMIT ")
        .push_bind(cap.saturating_add(1))
        .push(") c");
    let capped: Option<i64> = match qb.build_query_scalar().fetch_one(&mut *tx).await {
        Ok(n) => Some(n),
        Err(e) if is_timeout(&e) => None,
        Err(e) => return Err(e),
    };
    // A cancelled statement aborts the transaction; the estimate needs a fresh one.
    drop(tx);
    if let Some(n) = capped.filter(|n| *n <= cap) {
        return Ok(HeaderCount {
            lines: n,
            estimated: false,
        });
    }
    let estimate = estimate(pool, range, filter).await?;
    Ok(HeaderCount {
        lines: match capped {
            Some(n) => estimate.max(n),
            None => estimate,
        },
        estimated: true,
    })
}

/// The planner's estimate of the rows the range and filter select (`EXPLAIN`, nothing read).
pub async fn estimate(pool: &PgPool, range: HistoryRange, filter: &Filter) -> sqlx::Result<i64> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM opsdash.log_event WHERE ",
    );
    // The rows the filter selects, narrowed or not: the narrowing changes how, not how many.
    push_selection(&mut qb, range, filter, None);
    let plan: serde_json::Value = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(plan
        .pointer("/0/Plan/Plan Rows")
        .and_then(serde_json::Value::as_f64)
        .map_or(0, |r| r.round() as i64))
}

/// Whether the error is a statement_timeout (or other cancellation) of the server.
pub fn is_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "57014")
}

/// What a load of the Logs list brought back: the lines (oldest first), where the cursor goes
/// (`around`), and whether the range holds more lines beyond either end (a page that came back
/// full). `tag` is the caller's, handed back so it can tell a load it still wants from one
/// asked for before its filter or range changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub tag: u64,
    pub lines: Vec<LogLine>,
    pub cursor: Option<usize>,
    pub older_left: bool,
    pub newer_left: bool,
}

/// A page next to `key` as a `Loaded`: the far side of the page is open when it came back
/// full; the near side is the caller's to know.
pub async fn load_page(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    dir: Direction,
    key: Option<HistoryKey>,
    limit: i64,
    tag: u64,
) -> sqlx::Result<Loaded> {
    let lines = page(pool, range, filter, dir, key, limit).await?;
    let full = lines.len() as i64 >= limit;
    Ok(Loaded {
        tag,
        cursor: None,
        older_left: dir == Direction::Older && full,
        newer_left: dir == Direction::Newer && full,
        lines,
    })
}

/// `around` as a `Loaded`: up to `before` lines stamped before `at` and `after` from it on,
/// the cursor on the first line at or after `at`.
pub async fn load_around(
    pool: &PgPool,
    range: HistoryRange,
    filter: &Filter,
    at: DateTime<Utc>,
    (before, after): (i64, i64),
    tag: u64,
) -> sqlx::Result<Loaded> {
    // Keys just below `at`: every id of a line stamped at `at` is above i64::MIN.
    let pivot = HistoryKey {
        ts: at,
        id: i64::MIN,
    };
    let mut lines = page(pool, range, filter, Direction::Older, Some(pivot), before).await?;
    let older_left = lines.len() as i64 >= before;
    let newer = page(pool, range, filter, Direction::Newer, Some(pivot), after).await?;
    let newer_left = newer.len() as i64 >= after;
    let cursor = (!newer.is_empty()).then_some(lines.len());
    lines.extend(newer);
    Ok(Loaded {
        tag,
        lines,
        cursor,
        older_left,
        newer_left,
    })
}
