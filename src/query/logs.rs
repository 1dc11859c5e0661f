//! SQL for the Logs tab: the live-tail cursor reads, pages of lines for a filter (newest first,
//! keyset pagination), the stats line and the error/line counts.
//!
//! ## The tail cursor
//! Sequence ids commit out of order, so the tail never reads `id > last`. Each row records its
//! writing transaction (`tx xid8`). Before each read the tail takes a snapshot (its `xmax` and
//! the list `xip` of transactions in progress) and reads rows with `(tx, id) > cursor`,
//! `tx < xmax` and `tx` not in `xip`: all from finished transactions, visible to the read
//! (which runs later, with a newer snapshot). Transactions that were in progress below the
//! cursor are remembered (at most one per open transaction on the server) and their rows are
//! read by `tx` once they have finished. Compared with reading only below the snapshot's
//! xmin, an unrelated long or idle-in-transaction session does not freeze the tail.
//!
//! ## Why the tail reads are bounded by `ts >= floor`
//! `(tx, id)` has an index on every daily partition, but the parent has no global index: an
//! unbounded `ORDER BY tx, id` is a Merge Append that descends the index of every partition
//! (30-90 with retention) on every wake-up, and plans over all of them. The tail therefore adds
//! `ts >= floor`, where `floor` is fixed when the tail starts (start time minus a margin,
//! default 24 h): run-time partition pruning keeps only the partitions from the session's
//! start onward (2-3 on a normal day), each read is one index descent per kept partition.
//! The floor is fixed rather than sliding with the cursor because `ts` is the event's own
//! time, not the insert time: a late-arriving line (a collector catching up after an hour) has
//! an old `ts` and a new `tx`; a sliding bound would skip it. Lines stamped before the floor
//! (an import of last week's file) are history, found by search, not by the live tail.
//! With a range selected (the Logs tab's), the bound is the later of the floor and the range's
//! start at each read: a late line stamped before the range is outside what the tab shows.
//! The fill reads the whole range by event time (`TailOrder::Newest`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};

use crate::filter::Filter;
use crate::model::Level;

/// One row of `opsdash.log_event`, as every view and the export use it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LogLine {
    pub id: i64,
    /// Writing transaction id (xid8 as a number).
    pub tx: i64,
    pub ts: DateTime<Utc>,
    pub level: Level,
    pub service: String,
    pub host: Option<String>,
    pub message: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    pub status: Option<i16>,
    pub duration_ms: Option<f64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_type: Option<String>,
    pub attrs: Option<serde_json::Value>,
    pub fingerprint: Option<String>,
    pub repeat_count: i32,
    /// Read by the live tail with only `TAIL_COLUMNS` (what the list, the jumps and the trace
    /// pivot use); every other field is empty, and the detail pane reads the whole line by id.
    #[serde(skip)]
    pub partial: bool,
}

impl LogLine {
    /// A line with only the `TAIL_COLUMNS` fields (`partial`), the rest empty.
    pub fn partial(
        id: i64,
        tx: i64,
        ts: DateTime<Utc>,
        level: Level,
        service: String,
        message: String,
        trace_id: Option<String>,
    ) -> LogLine {
        LogLine {
            id,
            tx,
            ts,
            level,
            service,
            message,
            trace_id,
            host: None,
            span_id: None,
            request_id: None,
            user_id: None,
            route: None,
            method: None,
            status: None,
            duration_ms: None,
            ip: None,
            user_agent: None,
            error_type: None,
            attrs: None,
            fingerprint: None,
            repeat_count: 0,
            partial: true,
        }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    pub fn cursor(&self) -> TailCursor {
        TailCursor {
            tx: self.tx,
            id: self.id,
        }
    }
}

/// The select list of a whole line (`model::log_row`, one declaration with the writer, the
/// demo and export). Note: it exposes `tx` as a bigint under the same name, so the tail queries
/// order by `log_event.tx` (the xid8 column, in index order), never by the output alias.
pub use crate::model::log_row::LINE_COLUMNS;

/// What the live tail reads of each line. At 10,000 lines a second, decoding every field of
/// every line (a dozen strings and the attrs JSON of an ingested line) was half of the
/// dashboard's CPU while tailing; only the few lines an operator opens need them.
pub const TAIL_COLUMNS: &str = "id, tx::text::bigint AS tx, ts, level, service, message, trace_id";

/// A row of `TAIL_COLUMNS`, decoded by position into a `partial` line.
struct TailRow(LogLine);

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for TailRow {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        let row = Unchecked(row);
        Ok(TailRow(LogLine::partial(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            Level::from_i16(row.try_get(3)?),
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
        )))
    }
}

async fn fetch_tail<'c>(
    ex: impl PgExecutor<'c>,
    mut qb: QueryBuilder<'_, Postgres>,
) -> sqlx::Result<Vec<LogLine>> {
    let rows: Vec<TailRow> = qb.build_query_as().fetch_all(ex).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Decodes a row of `LINE_COLUMNS` by position, in the order written there, without sqlx's
/// per-value type check (the columns' types are fixed by the select list; the test
/// `every_line_field_is_read_from_its_own_column` reads each field back from its own column).
/// The live tail decodes every line it follows, 10,000 a second and more: looking 21 columns
/// up by name and checking each value's type was most of its decoding time.
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for LogLine {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        let row = Unchecked(row);
        Ok(LogLine {
            id: row.try_get(0)?,
            tx: row.try_get(1)?,
            ts: row.try_get(2)?,
            level: Level::from_i16(row.try_get(3)?),
            service: row.try_get(4)?,
            host: row.try_get(5)?,
            message: row.try_get(6)?,
            trace_id: row.try_get(7)?,
            span_id: row.try_get(8)?,
            request_id: row.try_get(9)?,
            user_id: row.try_get(10)?,
            route: row.try_get(11)?,
            method: row.try_get(12)?,
            status: row.try_get(13)?,
            duration_ms: row.try_get(14)?,
            ip: row.try_get(15)?,
            user_agent: row.try_get(16)?,
            error_type: row.try_get(17)?,
            attrs: row.try_get(18)?,
            fingerprint: row.try_get(19)?,
            repeat_count: row.try_get(20)?,
            partial: false,
        })
    }
}

/// `try_get` by position without the type check (see `LogLine`'s `FromRow`).
struct Unchecked<'r>(&'r sqlx::postgres::PgRow);

impl<'r> Unchecked<'r> {
    fn try_get<T: sqlx::Decode<'r, Postgres>>(&self, index: usize) -> sqlx::Result<T> {
        sqlx::Row::try_get_unchecked(self.0, index)
    }
}

/// Position of the live tail: every row at or before `(tx, id)` has been delivered, except
/// rows of the transactions the engine keeps as pending (in progress when it passed them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TailCursor {
    pub tx: i64,
    pub id: i64,
}

/// What the tail needs of a snapshot: transactions at or above `xmax` had not started, those
/// in `xip` were in progress; every other transaction below `xmax` had finished.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TailSnapshot {
    pub xmax: i64,
    pub xip: Vec<i64>,
}

pub async fn snapshot<'c>(ex: impl PgExecutor<'c>) -> sqlx::Result<TailSnapshot> {
    let (xmax, xip): (i64, Vec<i64>) = sqlx::query_as(
        "SELECT pg_snapshot_xmax(s)::text::bigint,
                ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x)
           FROM pg_current_snapshot() s",
    )
    .fetch_one(ex)
    .await?;
    Ok(TailSnapshot { xmax, xip })
}

fn push_tail_bounds<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    snap: &TailSnapshot,
    floor: DateTime<Utc>,
    filter: Option<&'a Filter>,
) {
    qb.push(" AND tx < ")
        .push_bind(snap.xmax)
        .push("::text::xid8 AND tx <> ALL(")
        .push_bind(snap.xip.clone())
        .push("::bigint[]::text[]::xid8[]) AND ts >= ")
        .push_bind(floor);
    if let Some(f) = filter.filter(|f| !f.is_empty()) {
        qb.push(" AND ");
        f.push_conditions(qb);
    }
}

/// The next rows after `cursor` in (tx, id) order, all from transactions `snap` saw finished.
pub async fn tail_after<'c>(
    ex: impl PgExecutor<'c>,
    cursor: TailCursor,
    snap: &TailSnapshot,
    floor: DateTime<Utc>,
    filter: Option<&Filter>,
    limit: i64,
) -> sqlx::Result<Vec<LogLine>> {
    fetch_tail(
        ex,
        tail_query("", cursor, snap, floor, filter, TailOrder::Oldest, limit),
    )
    .await
}

/// Which end of the rows after a cursor a tail read takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TailOrder<'n> {
    /// The next rows in (tx, id) order: following the stream (`tail_after`).
    Oldest,
    /// The newest rows by event time (`ts`, then `id`), newest first: the initial fill and
    /// the catch-up (`tail_last`), narrowed over the days not indexed yet when the filter
    /// allows (`query::log_block`).
    Newest(Option<&'n crate::query::log_block::Narrowing>),
}

/// The statement of `tail_after` (`Oldest`) and `tail_last` (`Newest`) after `prefix`
/// (`EXPLAIN ...` in the plan test and the logs benchmark): rows after `cursor` from
/// transactions `snap` saw finished, the first `limit` in `order`.
pub fn tail_query<'a>(
    prefix: &str,
    cursor: TailCursor,
    snap: &TailSnapshot,
    floor: DateTime<Utc>,
    filter: Option<&'a Filter>,
    order: TailOrder,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    // Following takes rows in commit order (the cursor's); the fill takes the newest by event
    // time, so the lines the tab shows are the newest of the range whatever order they were
    // committed in (a fill in commit order kept rows committed last, however old their time).
    let order_by = match order {
        TailOrder::Oldest => "log_event.tx ASC, log_event.id ASC",
        TailOrder::Newest(_) => "ts DESC, id DESC",
    };
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT {TAIL_COLUMNS} FROM opsdash.log_event WHERE (tx, id) > ("
    ));
    qb.push_bind(cursor.tx)
        .push("::text::xid8, ")
        .push_bind(cursor.id)
        .push(")");
    push_tail_bounds(&mut qb, snap, floor, filter);
    if let TailOrder::Newest(Some(n)) = order {
        n.push(&mut qb);
    }
    qb.push(format!(" ORDER BY {order_by} LIMIT "))
        .push_bind(limit);
    qb
}

/// Rows of one finished transaction after `after_id`, in id order (a transaction that was in
/// progress when the cursor passed it).
pub async fn tail_of_tx<'c>(
    ex: impl PgExecutor<'c>,
    tx: i64,
    after_id: i64,
    floor: DateTime<Utc>,
    filter: Option<&Filter>,
    limit: i64,
) -> sqlx::Result<Vec<LogLine>> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "SELECT {TAIL_COLUMNS} FROM opsdash.log_event WHERE tx = "
    ));
    qb.push_bind(tx)
        .push("::text::xid8 AND id > ")
        .push_bind(after_id)
        .push(" AND ts >= ")
        .push_bind(floor);
    if let Some(f) = filter.filter(|f| !f.is_empty()) {
        qb.push(" AND ");
        f.push_conditions(&mut qb);
    }
    qb.push(" ORDER BY log_event.tx, log_event.id LIMIT ")
        .push_bind(limit);
    fetch_tail(ex, qb).await
}

/// The newest `limit` rows by event time stamped at or after `since`, after `cursor`, from
/// transactions `snap` saw finished, returned oldest first (by time): the initial fill of the
/// tail (`since` the range's start), and the catch-up after a long pause.
///
/// A filter the block summaries can narrow (`query::log_block`) is read in one REPEATABLE READ
/// transaction with its narrowing: a rare word's fill then reads the candidate rows of the days
/// not indexed yet instead of walking them all.
pub async fn tail_last(
    conn: &mut sqlx::PgConnection,
    after: TailCursor,
    snap: &TailSnapshot,
    since: DateTime<Utc>,
    filter: Option<&Filter>,
    limit: i64,
) -> sqlx::Result<Vec<LogLine>> {
    use crate::query::log_block;
    let mut rows = match filter.filter(|f| !f.block_probes().is_empty()) {
        Some(f) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            log_block::one_snapshot(&mut tx).await?;
            let open = log_block::narrowing(&mut tx, f, Some(since), None, Some(limit)).await?;
            let q = tail_query(
                "",
                after,
                snap,
                since,
                filter,
                TailOrder::Newest(open.as_ref()),
                limit,
            );
            let rows = fetch_tail(&mut *tx, q).await?;
            tx.commit().await?;
            rows
        }
        None => {
            let q = tail_query(
                "",
                after,
                snap,
                since,
                filter,
                TailOrder::Newest(None),
                limit,
            );
            fetch_tail(conn, q).await?
        }
    };
    rows.reverse();
    Ok(rows)
}

/// Rows after the cursor (committed or not yet readable), counted up to `cap`: the "N lines
/// waiting" counter while paused.
pub async fn tail_waiting<'c>(
    ex: impl PgExecutor<'c>,
    cursor: TailCursor,
    readable_in: Option<&TailSnapshot>,
    floor: DateTime<Utc>,
    filter: Option<&Filter>,
    cap: i64,
) -> sqlx::Result<i64> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT count(*) FROM (SELECT 1 FROM opsdash.log_event WHERE (tx, id) > (",
    );
    qb.push_bind(cursor.tx)
        .push("::text::xid8, ")
        .push_bind(cursor.id)
        .push(") AND ts >= ")
        .push_bind(floor);
    if let Some(snap) = readable_in {
        qb.push(" AND tx < ")
            .push_bind(snap.xmax)
            .push("::text::xid8 AND tx <> ALL(")
            .push_bind(snap.xip.clone())
            .push("::bigint[]::text[]::xid8[])");
    }
    if let Some(f) = filter.filter(|f| !f.is_empty()) {
        qb.push(" AND ");
        f.push_conditions(&mut qb);
    }
    qb.push(" LIMIT ").push_bind(cap).push(") w");
    qb.build_query_scalar::<i64>().fetch_one(ex).await
}

/// Where a page of search results continues: the (ts, id) of its last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKey {
    pub ts: DateTime<Utc>,
    pub id: i64,
}

/// One page of lines matching `filter`, newest first, starting after `before` (keyset
/// pagination: constant cost whatever the page number).
pub async fn page(
    pool: &PgPool,
    filter: &Filter,
    before: Option<PageKey>,
    limit: i64,
) -> sqlx::Result<Vec<LogLine>> {
    let mut tx = begin_search(pool).await?;
    let (since, until) = filter.time_bounds(Utc::now());
    let open =
        crate::query::log_block::narrowing(&mut tx, filter, since, until, Some(limit)).await?;
    let rows = page_query("", filter, open.as_ref(), before, limit)
        .build_query_as::<LogLine>()
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Begins a search's transaction: REPEATABLE READ, so the narrowing's day list and blocks and
/// the rows are read in one snapshot (`query::log_block`), and without JIT (`no_jit`).
pub async fn begin_search(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    crate::query::log_block::one_snapshot(&mut tx).await?;
    no_jit(&mut tx).await?;
    Ok(tx)
}

/// Turns JIT compilation off for the rest of the transaction. A search over a partitioned
/// table plans one scan per daily partition; on 10M rows a rare word's plan costs just above
/// `jit_above_cost`, and compiling it took 185 ms of a 265 ms first page (EXPLAIN ANALYZE in
/// `cargo bench --bench logs -- --rows 10000000 --explain`) for rows that took 80 ms to find.
/// A first page reads at most `limit` rows: compiling never pays for itself there.
pub async fn no_jit(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL jit = off")
        .execute(conn)
        .await
        .map(|_| ())
}

/// The statement of `page`, after `prefix` (`EXPLAIN ...` in the logs benchmark).
pub fn page_query<'a>(
    prefix: &str,
    filter: &'a Filter,
    open: Option<&crate::query::log_block::Narrowing>,
    before: Option<PageKey>,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE "
    ));
    filter.push_conditions(&mut qb);
    if let Some(n) = open {
        n.push(&mut qb);
    }
    if let Some(k) = before {
        qb.push(" AND (ts, id) < (")
            .push_bind(k.ts)
            .push(", ")
            .push_bind(k.id)
            .push(")");
    }
    qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .push_bind(limit);
    qb
}

/// The stats line: rows matching the filter in the range, rows in the last 24 h, per level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    pub in_range: i64,
    pub last_24h: i64,
    /// Count per level 0..=5 within the range.
    pub by_level: [i64; 6],
}

pub async fn stats(
    pool: &PgPool,
    filter: &Filter,
    range_start: DateTime<Utc>,
) -> sqlx::Result<LogStats> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT level, count(*) FILTER (WHERE ts >= ");
    qb.push_bind(range_start)
        .push(")::bigint, count(*)::bigint FROM opsdash.log_event WHERE ts >= least(")
        .push_bind(range_start)
        .push(", now() - interval '24 hours') AND ");
    filter.push_conditions(&mut qb);
    qb.push(" GROUP BY level");
    let rows: Vec<(i16, i64, i64)> = qb.build_query_as().fetch_all(pool).await?;
    let mut s = LogStats::default();
    for (level, in_range, all) in rows {
        s.in_range += in_range;
        s.by_level[Level::from_i16(level) as usize] += in_range;
        s.last_24h += all;
    }
    // Rows older than 24 h but inside the range were counted in `all` too; the 24 h figure
    // is recomputed only when the range is wider than a day.
    if range_start < Utc::now() - chrono::Duration::hours(24) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT count(*)::bigint FROM opsdash.log_event WHERE ts >= now() - interval '24 hours' AND ",
        );
        filter.push_conditions(&mut qb);
        s.last_24h = qb.build_query_scalar().fetch_one(pool).await?;
    }
    Ok(s)
}

/// One whole line by id (the detail pane of a line the tail read `partial`).
pub async fn line(pool: &PgPool, id: i64) -> sqlx::Result<Option<LogLine>> {
    sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE id = $1 LIMIT 1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Reads every line matching `filter`, oldest first, through a server-side cursor in one
/// read-only transaction: a consistent snapshot, fetched `batch` rows at a time so memory stays
/// constant whatever the size. `each` receives every batch; returning an error stops the read.
pub async fn for_each_batch<E>(
    pool: &PgPool,
    filter: &Filter,
    batch: i64,
    mut each: impl FnMut(Vec<LogLine>) -> Result<(), E>,
) -> Result<u64, E>
where
    E: From<sqlx::Error>,
{
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Exports may run for minutes: no statement timeout inside this transaction.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "DECLARE opsdash_export NO SCROLL CURSOR FOR SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE "
    ));
    filter.push_conditions(&mut qb);
    qb.push(" ORDER BY ts, id");
    qb.build().execute(&mut *tx).await?;
    let fetch = format!("FETCH FORWARD {} FROM opsdash_export", batch.max(1));
    let mut total = 0u64;
    loop {
        let rows: Vec<LogLine> = sqlx::query_as(&fetch).fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            break;
        }
        total += rows.len() as u64;
        each(rows)?;
    }
    tx.commit().await?;
    Ok(total)
}
