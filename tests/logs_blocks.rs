//! Searches over days whose search indexes are not built yet (issue 19): rows written by the
//! writer's path (`LogBuf`, with its block filter), by plain SQL (a block without a filter) and
//! rewritten afterwards (the filter voided) are found by every narrowed filter exactly as a
//! plain scan finds them; after the seal job builds the ended day's indexes and forgets its
//! blocks, the same searches still agree.

use chrono::{DateTime, Duration, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::ingest::log_batch::LogBuf;
use opsdash::model::log_row::LogRowRef;
use opsdash::model::Level;
use opsdash::query::history::{self, Direction, HistoryRange};
use opsdash::query::log_block;
use serde_json::json;
use sqlx::PgPool;

fn row<'a>(
    ts: DateTime<Utc>,
    message: &'a str,
    trace: Option<&'a str>,
    user: Option<&'a str>,
    attrs: Option<&'a serde_json::Value>,
) -> LogRowRef<'a> {
    LogRowRef {
        host: Some("web-1"),
        trace_id: trace,
        user_id: user,
        attrs,
        ..LogRowRef::new(ts, Level::Info, "api", message)
    }
}

/// 24 writer transactions of 50 rows over yesterday and today, each with its own rare
/// values, then rows from plain SQL and one rewritten message.
async fn seed(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<()> {
    let today = now.date_naive();
    opsdash::query::retention::ensure_partitions(
        pool,
        today - Duration::days(2),
        today + Duration::days(1),
    )
    .await?;
    for block in 0..24i64 {
        let mut buf = LogBuf::default();
        for i in 0..50i64 {
            let n = block * 50 + i;
            let ts = now - Duration::hours(30) + Duration::minutes(n);
            let msg = match n {
                707 | 1111 => format!("payment {n} timeout talking to ledger"),
                808 => format!("card declined for order {n}"),
                // The same words apart, in another block: the phrase check drops it.
                95 => format!("declined card for order {n}"),
                _ => format!("request {n} served common"),
            };
            let trace = format!("{:032x}", n * 7919);
            let user = format!("user{}", n % 50);
            let attrs = json!({
                "order_id": n,
                "amount": (n as f64) + 0.5,
                "items": [format!("sku{n}")],
                "order": {"id": n % 13, "region": if n % 2 == 0 { "eu" } else { "us" }},
                "flag": n % 3 == 0,
            });
            buf.push_row(&row(ts, &msg, Some(&trace), Some(&user), Some(&attrs)));
        }
        let mut tx = pool.begin().await?;
        buf.send(&mut tx, "opsdash.log_event").await?;
        tx.commit().await?;
    }
    // Written by something else: no tokens sent, so the trigger fills them and notes a block
    // without a filter.
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id, user_id, attrs)
         SELECT $1::timestamptz - g * interval '1 minute', 2, 'psql', 'manual entry ' || g || ' zebra',
                'feedbeef' || g, 'operator', jsonb_build_object('ticket', 'OPS-' || g)
           FROM generate_series(1, 40) g",
    )
    .bind(now)
    .execute(pool)
    .await?;
    // A writer row rewritten (as anonymization does): its block may no longer hold its keys.
    sqlx::query(
        "UPDATE opsdash.log_event SET message = 'rewritten quokka', user_id = 'anon:1'
          WHERE message = 'request 450 served common'",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(pool)
        .await?;
    Ok(())
}

/// Ids of every line of `range` matching `text`, walking the pages (narrowed) newest first.
async fn paged(pool: &PgPool, range: HistoryRange, text: &str) -> anyhow::Result<Vec<i64>> {
    let f = filter::parse(text)?;
    let mut ids = Vec::new();
    let mut key = None;
    loop {
        let page = history::page(pool, range, &f, Direction::Older, key, 50).await?;
        let n = page.len();
        ids.extend(page.iter().rev().map(|l| l.id));
        key = page
            .first()
            .map(|l| history::HistoryKey { ts: l.ts, id: l.id });
        if n < 50 {
            return Ok(ids);
        }
    }
}

/// The same lines by the filter alone (no narrowing).
async fn plain(pool: &PgPool, range: HistoryRange, text: &str) -> anyhow::Result<Vec<i64>> {
    let f = filter::parse(text)?;
    let rows: Vec<opsdash::query::logs::LogLine> =
        history::page_query("", range, &f, None, Direction::Older, None, 100_000)
            .build_query_as()
            .fetch_all(pool)
            .await?;
    Ok(rows.iter().map(|l| l.id).collect())
}

const FILTERS: &[(&str, bool)] = &[
    // (filter, narrowed: the blocks leave some transactions out)
    ("timeout", true),
    ("\"card declined\"", true),
    ("trace:0000000000000000000000000085c37d", true),
    ("user:user7", false),
    ("user:user7 timeout", true),
    ("attrs.order_id:1107", true),
    ("attrs.amount:1107.5", false),
    ("attrs.items.0:sku1107", false),
    ("attrs.order.id:5 attrs.order_id:5", true),
    ("attrs.flag:true attrs.order_id:9", true),
    ("attrs.order.region:eu attrs.order_id:10", true),
    ("zebra", true),
    ("attrs.ticket:OPS-3", true),
    ("quokka", true),
    ("common", false),
    ("level:info", false),
];

async fn check_all(pool: &PgPool, range: HistoryRange, sealed: bool) -> anyhow::Result<()> {
    for (text, narrowed) in FILTERS {
        let got = paged(pool, range, text).await?;
        let want = plain(pool, range, text).await?;
        assert_eq!(got, want, "{text} (sealed: {sealed})");
        assert!(!want.is_empty(), "{text}: no rows");
        let mut conn = pool.acquire().await?;
        let f = filter::parse(text)?;
        let n = log_block::narrowing(&mut conn, &f, Some(range.from), Some(range.until), Some(50))
            .await?;
        if *narrowed && !sealed {
            let n = n.unwrap_or_else(|| panic!("{text}: not narrowed"));
            assert!(n.runs.len() < 6, "{text}: {} candidate runs", n.runs.len());
        }
    }
    Ok(())
}

#[tokio::test]
async fn narrowed_searches_find_what_a_plain_scan_finds_before_and_after_the_seal(
) -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let now = Utc::now();
    seed(pool, now).await?;
    let range = HistoryRange {
        from: now - Duration::days(3),
        until: now + Duration::hours(1),
    };
    // The trace id of row 1107 (1107 * 7919, hex).
    assert_eq!(
        format!("{:032x}", 1107i64 * 7919),
        "0000000000000000000000000085c37d"
    );
    check_all(pool, range, false).await?;

    // A day that received rows within the grace is left open: a block written into yesterday
    // just now keeps it from being sealed.
    let mut late = LogBuf::default();
    let y = now - Duration::days(1);
    late.push_row(&row(y, "late line", None, None, None));
    let mut tx = pool.begin().await?;
    late.send(&mut tx, "opsdash.log_event").await?;
    tx.commit().await?;
    let yesterday = format!("log_event_p{}", y.format("%Y%m%d"));
    let report = opsdash::worker::seal::run_once(&t.db, opsdash::worker::seal::GRACE).await?;
    assert!(!report.sealed.contains(&yesterday), "{report:?}");

    // Yesterday has ended: the job (no grace) seals it and forgets the blocks that lie before
    // today; today stays open.
    let report = opsdash::worker::seal::run_once(&t.db, std::time::Duration::ZERO).await?;
    assert!(report.sealed.contains(&yesterday), "{report:?}");
    let days = log_block::partition_days(&mut *pool.acquire().await?).await?;
    let today = days
        .iter()
        .find(|d| d.0 == now.date_naive())
        .expect("today's partition");
    assert!(!today.2, "today is not sealed");
    check_all(pool, range, true).await?;
    Ok(())
}

/// A restored log day keeps the transaction ids its rows were written by, which no block of
/// this database describes: the restore builds the day's search indexes in its own
/// transaction, so a search finds the restored rows at once.
#[tokio::test]
async fn a_restored_log_day_is_sealed_and_searchable() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let day = Utc::now().date_naive() - Duration::days(10);
    let part = opsdash::query::retention::ensure_partition(pool, "log_event", day).await?;
    let at = opsdash::query::retention::day_range(day).0 + Duration::hours(3);
    let mut buf = LogBuf::default();
    let msgs: Vec<String> = (0..500)
        .map(|i| format!("restored entry {i} wombat{}", i % 50))
        .collect();
    for (i, m) in msgs.iter().enumerate() {
        buf.push_row(&row(at + Duration::seconds(i as i64), m, None, None, None));
    }
    let mut tx = pool.begin().await?;
    buf.send(&mut tx, "opsdash.log_event").await?;
    tx.commit().await?;
    let range = HistoryRange {
        from: at - Duration::days(1),
        until: at + Duration::days(1),
    };
    let before = paged(pool, range, "wombat7").await?;
    assert_eq!(before.len(), 10);

    let dir = tempfile::tempdir()?;
    let relid = opsdash::query::retention::relid(pool, &part).await?;
    let stem = opsdash::archive::stem(&part, 0);
    opsdash::archive::write(pool, dir.path(), "log_event", &part, &stem, day, relid).await?;
    sqlx::query(&format!("DROP TABLE opsdash.{part}"))
        .execute(pool)
        .await?;
    // The day's blocks outlive its rows; they describe nothing restored.
    sqlx::query("DELETE FROM opsdash.log_block")
        .execute(pool)
        .await?;
    let data = opsdash::archive::data_path(dir.path(), "log_event", &stem);
    let (_, rows) = opsdash::archive::restore(pool, &data, 7).await?;
    assert_eq!(rows, 500);

    let mut conn = pool.acquire().await?;
    let days = log_block::partition_days(&mut conn).await?;
    drop(conn);
    assert!(days.iter().any(|d| d.1 == part && d.2), "{days:?}");
    assert_eq!(
        paged(pool, range, "wombat7").await?,
        plain(pool, range, "wombat7").await?
    );
    assert_eq!(paged(pool, range, "wombat7").await?.len(), 10);
    Ok(())
}
