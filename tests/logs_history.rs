//! All of history against a real PostgreSQL with several daily partitions: keyset pages older
//! and newer return every line of a range and filter once and in order (ties of one timestamp
//! included), `:goto` lands between the right lines, the header count is exact or flagged
//! estimated, the volume histogram matches `count(*)` per bucket and level, and every filter
//! form's page reads only the partitions of its range (its plan, by EXPLAIN).

use chrono::{DateTime, Days, Duration, NaiveDate, TimeZone, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::query::histogram;
use opsdash::query::history::{self, Direction, HistoryKey, HistoryRange};
use sqlx::PgPool;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()
}

/// 1,000 lines over five daily partitions (2026-11-01 .. 05), four lines per timestamp, ids
/// deliberately not in time order (inserted newest first).
async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    opsdash::query::retention::ensure_partitions(
        pool,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(),
    )
    .await?;
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, level, service, message, status, duration_ms, ip, attrs)
         SELECT '2026-11-01T00:00:00Z'::timestamptz + (g / 4) * interval '28 minutes',
                (g % 6)::smallint, (ARRAY['api', 'web'])[1 + g % 2], 'line ' || g,
                (ARRAY[200, 500, 404])[1 + g % 3]::smallint, (g % 700)::float8,
                '10.' || (g % 3) || '.0.' || (g % 250),
                CASE WHEN g % 5 = 0 THEN jsonb_build_object('order_id', g % 7, 'user', 'u') END
           FROM generate_series(999, 0, -1) g",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(pool)
        .await?;
    Ok(())
}

async fn reference(
    pool: &PgPool,
    range: HistoryRange,
    where_: &str,
    order: &str,
) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM opsdash.log_event WHERE ts >= $1 AND ts < $2 AND ({where_})
          ORDER BY ts {order}, id {order}"
    ))
    .bind(range.from)
    .bind(range.until)
    .fetch_all(pool)
    .await?)
}

/// Every line once, by walking pages from no key in `dir` until a short page.
async fn walk(
    pool: &PgPool,
    range: HistoryRange,
    f: &filter::Filter,
    dir: Direction,
    mut key: Option<HistoryKey>,
    size: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    loop {
        let page = history::page(pool, range, f, dir, key, size).await?;
        // Each page comes oldest first; a page older than the key ends just before it.
        let mut ids: Vec<i64> = page.iter().map(|l| l.id).collect();
        if dir == Direction::Older {
            ids.reverse();
        }
        key = match dir {
            Direction::Older => page.first(),
            Direction::Newer => page.last(),
        }
        .map(HistoryKey::from);
        let short = (page.len() as i64) < size;
        out.extend(ids);
        if short {
            return Ok(out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_up_and_down_return_every_line_once_in_order_across_partitions() -> anyhow::Result<()>
{
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    // The lines really are spread over the daily partitions, not in the default one.
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tableoid::regclass::text FROM opsdash.log_event ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    assert_eq!(parts.len(), 5, "{parts:?}");
    assert!(parts.iter().all(|p| p.contains("log_event_p202611")));

    // A range that starts and ends inside partitions.
    let range = HistoryRange {
        from: day(1) + Duration::hours(13),
        until: day(5) + Duration::hours(2),
    };
    for (text, sql) in [
        ("", "TRUE"),
        ("level:warn+", "level >= 3"),
        (
            "status>=500 service:api",
            "status >= 500 AND service = 'api'",
        ),
        (
            "has:attrs.user -attrs.order_id:3",
            "attrs ? 'user' AND attrs->>'order_id' <> '3'",
        ),
        ("ip:10.1.0.0/16", "ip LIKE '10.1.%'"),
    ] {
        let f = filter::parse(text)?;
        let newest_first = reference(pool, range, sql, "DESC").await?;
        let oldest_first = reference(pool, range, sql, "ASC").await?;
        assert!(newest_first.len() > 40, "{text}: {}", newest_first.len());
        for size in [1, 7, 50] {
            let up = walk(pool, range, &f, Direction::Older, None, size).await?;
            assert_eq!(up, newest_first, "{text} older pages of {size}");
            let down = walk(pool, range, &f, Direction::Newer, None, size).await?;
            assert_eq!(down, oldest_first, "{text} newer pages of {size}");
        }
        // From a line in the middle (one of four sharing its timestamp): up and down meet at
        // it without a gap or a repeat.
        let mid_id = oldest_first[oldest_first.len() / 2 + 1];
        let (ts, id): (DateTime<Utc>, i64) =
            sqlx::query_as("SELECT ts, id FROM opsdash.log_event WHERE id = $1")
                .bind(mid_id)
                .fetch_one(pool)
                .await?;
        let key = Some(HistoryKey { ts, id });
        let mut up = walk(pool, range, &f, Direction::Older, key, 9).await?;
        up.reverse();
        let down = walk(pool, range, &f, Direction::Newer, key, 9).await?;
        let mut all = up;
        all.push(mid_id);
        all.extend(down);
        assert_eq!(all, oldest_first, "{text} around a middle key");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goto_lands_between_the_lines_before_and_at_the_instant() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    let range = HistoryRange {
        from: day(1),
        until: day(6),
    };
    let f = filter::parse("")?;
    let at =
        opsdash::model::parse_goto("2026-11-03 14:00", Utc::now()).map_err(anyhow::Error::msg)?;
    let (lines, cursor) = history::around(pool, range, &f, at, 10, 10).await?;
    assert_eq!(lines.len(), 20);
    let cursor = cursor.expect("lines after the instant");
    assert_eq!(cursor, 10);
    assert!(lines[..cursor].iter().all(|l| l.ts < at));
    assert!(lines[cursor..].iter().all(|l| l.ts >= at));
    // Nothing between them: the line before is the newest before `at`.
    let newest_before: i64 = sqlx::query_scalar(
        "SELECT id FROM opsdash.log_event WHERE ts < $1 ORDER BY ts DESC, id DESC LIMIT 1",
    )
    .bind(at)
    .fetch_one(pool)
    .await?;
    assert_eq!(lines[cursor - 1].id, newest_before);
    // Past the last line: no cursor, the last lines of the range.
    let (lines, cursor) = history::around(pool, range, &f, day(6), 5, 5).await?;
    assert_eq!((lines.len(), cursor), (5, None));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_count_is_exact_when_cheap_and_flagged_when_estimated() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    let range = HistoryRange {
        from: day(2),
        until: day(4),
    };
    let budget = std::time::Duration::from_secs(5);
    for text in ["", "level:error+", "attrs.order_id:3"] {
        let f = filter::parse(text)?;
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT count(*) FROM opsdash.log_event WHERE ts >= ",
        );
        qb.push_bind(range.from)
            .push(" AND ts < ")
            .push_bind(range.until)
            .push(" AND ");
        f.push_conditions(&mut qb);
        let exact: i64 = qb.build_query_scalar().fetch_one(pool).await?;
        let c = history::count(pool, range, &f, 100_000, budget).await?;
        assert_eq!((c.lines, c.estimated), (exact, false), "{text}");
        assert_eq!(c.to_string(), exact.to_string());
        // A cap below the true count: the planner's estimate, at least above the cap.
        let c = history::count(pool, range, &f, 3, budget).await?;
        assert!(c.estimated && c.lines > 3, "{text}: {c:?}");
        assert!(c.to_string().starts_with('~'));
    }
    // With fresh statistics the estimate of a plain range is close to the truth.
    let est = history::estimate(pool, range, &filter::parse("")?).await?;
    assert!((300..=500).contains(&est), "{est}");
    Ok(())
}

/// Checks every bucket of `got` against a count of the rows per level (inside the range only,
/// also in the edge buckets); returns the lines counted.
async fn assert_counted(
    pool: &PgPool,
    range: HistoryRange,
    f: &filter::Filter,
    bucket: Duration,
    got: &[histogram::VolumeBucket],
    text: &str,
) -> anyhow::Result<i64> {
    assert!(got.windows(2).all(|w| w[1].start - w[0].start == bucket));
    assert_eq!(
        got.first().map(|b| b.start),
        Some(histogram::bucket_start(range.from, bucket))
    );
    let mut total = 0;
    for b in got {
        for level in 0..6i16 {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT count(*) FROM opsdash.log_event WHERE ts >= greatest(",
            );
            qb.push_bind(b.start)
                .push(", ")
                .push_bind(range.from)
                .push(") AND ts < least(")
                .push_bind(b.start + bucket)
                .push(", ")
                .push_bind(range.until)
                // Level::from_i16: below trace counts as trace, above fatal as fatal.
                .push(") AND CASE WHEN level <= 0 THEN 0 WHEN level >= 5 THEN 5 ELSE level END = ")
                .push_bind(level);
            if !f.is_empty() {
                qb.push(" AND ");
                f.push_conditions(&mut qb);
            }
            let want: i64 = qb.build_query_scalar().fetch_one(pool).await?;
            assert_eq!(
                b.by_level[level as usize], want,
                "{text}: bucket {} level {level}",
                b.start
            );
        }
        total += b.total();
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_buckets_match_count_per_bucket_and_level() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    // Edges off the bucket grid: the edge buckets count only lines inside the range.
    let range = HistoryRange {
        from: day(1) + Duration::minutes(97),
        until: day(4) + Duration::minutes(13),
    };
    for text in ["", "service:api", "duration>300 -level:info"] {
        let f = filter::parse(text)?;
        let bucket = histogram::bucket_for(range.until - range.from, 60);
        assert_eq!(bucket, Duration::hours(2));
        let got = histogram::volume(pool, range, &f, bucket).await?;
        assert_eq!(got.len(), 37, "{text}");
        let total = assert_counted(pool, range, &f, bucket, &got, text).await?;
        let c = history::count(pool, range, &f, 100_000, std::time::Duration::from_secs(5)).await?;
        assert_eq!(total, c.lines, "{text}");
        assert!(total > 0, "{text}");
    }
    Ok(())
}

/// For each range: the rollup answers for part of it, and the buckets match the rows.
async fn check_rolled(pool: &PgPool, ranges: &[HistoryRange], stage: &str) -> anyhow::Result<()> {
    let empty = filter::parse("")?;
    for &range in ranges {
        let bucket = histogram::bucket_for(range.until - range.from, 60);
        let mut conn = pool.acquire().await?;
        let src = histogram::sources(range, &histogram::coverage(&mut conn).await?);
        drop(conn);
        assert!(!src.rolled.is_empty(), "{stage}: {src:?}");
        let got = histogram::volume(pool, range, &empty, bucket).await?;
        let total = assert_counted(pool, range, &empty, bucket, &got, stage).await?;
        assert!(total > 0, "{stage}");
    }
    Ok(())
}

/// The unfiltered histogram sums the rollup's per-minute counts where it can; it must give what
/// the rows give, also once the rows changed under the rollup: a row landing in a minute
/// already rolled (after the job's next run), a compacted day, a dropped day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_from_the_rollup_matches_the_rows() -> anyhow::Result<()> {
    use opsdash::query::retention;
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    retention::ensure_partitions(pool, today - Days::new(5), today + Days::new(1)).await?;
    // 3,000 lines over the last four days, levels -1 .. 6 (the ends count as trace and fatal),
    // most of them inside a minute, not on its start.
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT $1::timestamptz - g * interval '113.25 seconds', (g % 8 - 1)::smallint, 'api',
                'line ' || g
           FROM generate_series(0, 2999) g",
    )
    .bind(now)
    .execute(pool)
    .await?;
    opsdash::worker::rollup::run_once(&t.db, Utc::now()).await?;

    let ranges = [
        HistoryRange {
            from: now - Duration::days(3) - Duration::seconds(17),
            until: now + Duration::minutes(1),
        },
        HistoryRange {
            from: now - Duration::hours(6) + Duration::seconds(7),
            until: now,
        },
        HistoryRange {
            from: now - Duration::days(5),
            until: now - Duration::days(1),
        },
    ];
    check_rolled(pool, &ranges, "rolled").await?;

    // A line in a minute the job rolled two days ago: counted once the job has run again.
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         VALUES ($1, 4, 'api', 'late line')",
    )
    .bind(now - Duration::days(2))
    .execute(pool)
    .await?;
    opsdash::worker::rollup::run_once(&t.db, Utc::now()).await?;
    check_rolled(pool, &ranges, "late line").await?;

    // Compaction keeps a day's error rows only; the rollup still counts the others until the
    // day is read from its rows.
    let parts = retention::partitions(pool).await?;
    let named = |day: chrono::NaiveDate| {
        let name = retention::partition_name("log_event", day);
        parts.iter().find(|p| p.name == name).cloned()
    };
    let compacted = named(today - Days::new(2)).expect("partition of two days ago");
    let (kept, removed) = retention::compact_log_partition(pool, &compacted, 5_000).await?;
    assert!(kept > 0 && removed > 0, "{kept} {removed}");
    check_rolled(pool, &ranges, "compacted").await?;

    // A dropped day: no rows, whatever the rollup holds.
    let dropped = named(today - Days::new(3)).expect("partition of three days ago");
    retention::detach_partition(pool, &dropped, false, 5_000, true).await?;
    sqlx::query(&format!("DROP TABLE opsdash.{}", dropped.name))
        .execute(pool)
        .await?;
    check_rolled(pool, &ranges, "dropped").await?;
    Ok(())
}

/// Relations a plan reads (`... on opsdash.log_event_p20261102 ...`).
fn scanned(plan: &str) -> Vec<String> {
    let mut out: Vec<String> = plan
        .split_whitespace()
        .filter(|w| w.starts_with("log_event_"))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_form_reads_only_the_partitions_of_its_range() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    let range = HistoryRange {
        from: day(3) + Duration::hours(1),
        until: day(3) + Duration::hours(5),
    };
    let key = Some(HistoryKey {
        ts: day(3) + Duration::hours(3),
        id: 500,
    });
    for text in [
        "",
        "attrs.order_id:3",
        "attrs.http.method:POST",
        "has:attrs.user",
        "attrs.latency>100",
        "status>=500",
        "duration>250ms",
        "repeat>10",
        "ip:10.1.0.0/16",
        "host:web-1",
        "status:5xx",
        r#"re:"line \d+7""#,
        "level:error+ service:api",
        "timeout",
    ] {
        let f = filter::parse(text)?;
        for dir in [Direction::Older, Direction::Newer] {
            let mut conn = pool.acquire().await?;
            let plan: Vec<String> = history::page_query("EXPLAIN ", range, &f, None, dir, key, 100)
                .build_query_scalar()
                .fetch_all(&mut *conn)
                .await?;
            let plan = plan.join("\n");
            // Only the partition of 2026-11-03 (plus its own index names) is read: the default
            // partition and the other days are pruned.
            let rels = scanned(&plan);
            assert!(
                !rels.is_empty() && rels.iter().all(|r| r.starts_with("log_event_p20261103")),
                "{text} {dir:?}: {rels:?}\n{plan}"
            );
            assert!(plan.starts_with("Limit"), "{text}: {plan}");
        }
        let plan: Vec<String> =
            histogram::volume_query("EXPLAIN ", range, &f, Duration::minutes(5))
                .build_query_scalar()
                .fetch_all(pool)
                .await?;
        let rels = scanned(&plan.join("\n"));
        assert!(
            rels.iter().all(|r| r.starts_with("log_event_p20261103")),
            "histogram {text}: {rels:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_filter_runs_in_a_parallel_scan() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    // Make every scan parallel, as a large table's sequential scan is: the IP reader
    // (opsdash.try_inet, a subtransaction per call) must keep such a query serial instead of
    // failing it ("cannot start subtransactions during a parallel operation").
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
         SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
         SET enable_indexscan = off; SET enable_bitmapscan = off",
    )
    .execute(&mut *conn)
    .await?;
    let plain: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT count(*) FROM opsdash.log_event WHERE status >= 500")
            .fetch_all(&mut *conn)
            .await?;
    let plain = plain.join("\n");
    assert!(
        plain.contains("Gather"),
        "the settings make scans parallel: {plain}"
    );
    let f = filter::parse("ip:10.1.0.0/16 -ip:10.1.0.7")?;
    let mut qb =
        sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT count(*) FROM opsdash.log_event WHERE ");
    f.push_conditions(&mut qb);
    let n: i64 = qb.build_query_scalar().fetch_one(&mut *conn).await?;
    let want: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.log_event WHERE ip LIKE '10.1.%' AND ip <> '10.1.0.7'",
    )
    .fetch_one(&mut *conn)
    .await?;
    assert_eq!(n, want);
    assert!(n > 0);
    Ok(())
}
