//! History benchmark (#17): on N log lines spread over 30 daily partitions and M audit rows,
//! a page at a random point of history (p50/p99), the 24 h volume histogram, each filter form's
//! first page over the 30 days, and the audit trail filtered by actor; each beside the same
//! question answered by a sequential scan (index scans turned off) in the same run.
//!
//! cargo bench --bench history -- [--rows 1000000] [--audit-rows 1000000] [--pages 200]
//!                                [--explain]
//! The database is a throwaway embedded cluster (or OPSDASH_TEST_DATABASE_URL). Rows are made
//! by the server (`generate_series`) into the migrated tables with every production index.

use std::time::Instant;

use anyhow::Result;
use chrono::{Duration, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::query::{audit, histogram, history};
use rand::{Rng, SeedableRng};
use sqlx::{PgPool, Postgres, QueryBuilder};

#[path = "common/report.rs"]
mod report;
use report::Aim;

struct Opts {
    rows: i64,
    audit_rows: i64,
    pages: usize,
    explain: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        rows: 1_000_000,
        audit_rows: 1_000_000,
        pages: 200,
        explain: false,
    };
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match a.as_str() {
            "--rows" => o.rows = next.parse().unwrap_or(o.rows),
            "--audit-rows" => o.audit_rows = next.parse().unwrap_or(o.audit_rows),
            "--pages" => o.pages = next.parse().unwrap_or(o.pages),
            "--explain" => o.explain = true,
            _ => {}
        }
    }
    o
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `qb` once with index scans off: the sequential scan of the same question.
async fn seq_scan_ms(pool: &PgPool, mut qb: QueryBuilder<'_, Postgres>) -> Result<f64> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(
        "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
         SET LOCAL enable_indexonlyscan = off; SET LOCAL jit = off; SET LOCAL statement_timeout = 0",
    )
    .execute(&mut *tx)
    .await?;
    let t = Instant::now();
    qb.build().fetch_all(&mut *tx).await?;
    let d = ms(t);
    tx.rollback().await?;
    Ok(d)
}

async fn explain(pool: &PgPool, mut qb: QueryBuilder<'_, Postgres>) -> Result<()> {
    let plan: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
    for l in plan {
        println!("    {l}");
    }
    Ok(())
}

async fn load(pool: &PgPool, o: &Opts) -> Result<()> {
    let today = Utc::now().date_naive();
    opsdash::query::retention::ensure_partitions(
        pool,
        today - Duration::days(31),
        today + Duration::days(1),
    )
    .await?;
    let t = Instant::now();
    let step = 1_000_000;
    let mut done = 0;
    while done < o.rows {
        let n = step.min(o.rows - done);
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, host, message, status, duration_ms,
                                            ip, attrs, repeat_count)
             SELECT now() - (random() * 30 * 86400) * interval '1 second',
                    (CASE WHEN random() < 0.02 THEN 4 WHEN random() < 0.1 THEN 3 ELSE 2 END)::smallint,
                    (ARRAY['api', 'web', 'worker', 'billing'])[1 + g % 4],
                    'web-' || (g % 20),
                    (ARRAY['request done in ' || (g % 900) || 'ms', 'timeout after ' || (g % 60) || ' s',
                           'cache miss key=' || g, 'payment accepted order ' || g])[1 + g % 4],
                    (ARRAY[200, 200, 200, 201, 302, 404, 500, 503])[1 + g % 8]::smallint,
                    (g % 3000)::float8,
                    '10.' || (g % 4) || '.' || (g % 256) || '.' || (g % 251),
                    jsonb_build_object('order_id', g % 100000, 'http', jsonb_build_object('method',
                        (ARRAY['GET', 'POST', 'PUT'])[1 + g % 3]), 'latency', g % 500)
                      || CASE WHEN g % 10 = 0 THEN jsonb_build_object('user', 'u' || g % 1000) ELSE '{}' END,
                    1 + (g % 97 = 0)::int * (g % 30)
               FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done)
        .bind(done + n - 1)
        .execute(pool)
        .await?;
        done += n;
        eprintln!("  {done} log lines ({:.0} s)", t.elapsed().as_secs_f64());
    }
    let mut done = 0;
    while done < o.audit_rows {
        let n = step.min(o.audit_rows - done);
        sqlx::query(
            "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome, ip)
             SELECT now() - (random() * 30 * 86400) * interval '1 second',
                    'user' || (g % 5000), (ARRAY['login', 'user.update', 'order.delete'])[1 + g % 3],
                    'order', (g % 200000)::text, 'success', '10.9.' || (g % 256) || '.1'
               FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done)
        .bind(done + n - 1)
        .execute(pool)
        .await?;
        done += n;
        eprintln!("  {done} audit rows ({:.0} s)", t.elapsed().as_secs_f64());
    }
    // One statement each: several in one simple query run as one transaction block.
    for table in ["log_event", "audit_event"] {
        sqlx::raw_sql(&format!("VACUUM ANALYZE opsdash.{table}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let t = TestDb::new().await?;
        let pool = &t.db.write;
        load(pool, &o).await?;
        let now = Utc::now();
        let all = history::HistoryRange {
            from: now - Duration::days(31),
            until: now + Duration::minutes(1),
        };
        let empty = filter::parse("")?;
        println!(
            "history bench: {} log lines over 30 days, {} audit rows",
            o.rows, o.audit_rows
        );

        // Pages at random points of history, older and newer.
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut times = Vec::new();
        for i in 0..o.pages {
            let at = now - Duration::seconds(rng.gen_range(0..30 * 86400));
            let key = Some(history::HistoryKey {
                ts: at,
                id: i64::MAX,
            });
            let dir = if i % 2 == 0 {
                history::Direction::Older
            } else {
                history::Direction::Newer
            };
            let s = Instant::now();
            let page = history::page(pool, all, &empty, dir, key, 100).await?;
            times.push(ms(s));
            anyhow::ensure!(!page.is_empty(), "an empty page at {at}");
        }
        times.sort_by(f64::total_cmp);
        let at = now - Duration::days(15);
        let key = Some(history::HistoryKey {
            ts: at,
            id: i64::MAX,
        });
        let seq = seq_scan_ms(
            pool,
            history::page_query("", all, &empty, history::Direction::Older, key, 100),
        )
        .await?;
        let (p50, p99) = (pct(&times, 0.5), pct(&times, 0.99));
        println!(
            "page of 100 at a random point: p50 {p50:.1} ms, p99 {p99:.1} ms; seq scan {seq:.0} ms"
        );
        report::figure(
            "history",
            "page at random point p50",
            p50,
            "ms",
            Some(("seq scan", seq)),
            &[],
        );
        report::figure(
            "history",
            "page at random point p99",
            p99,
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );

        // The 24 h histogram.
        let day = history::HistoryRange {
            from: now - Duration::hours(24),
            until: now,
        };
        let bucket = histogram::bucket_for(Duration::hours(24), 60);
        let mut h = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            histogram::volume(pool, day, &empty, bucket).await?;
            h.push(ms(s));
        }
        h.sort_by(f64::total_cmp);
        let seq = seq_scan_ms(pool, histogram::volume_query("", day, &empty, bucket)).await?;
        println!(
            "24 h histogram ({} s buckets): median {:.1} ms; seq scan {seq:.0} ms",
            bucket.num_seconds(),
            pct(&h, 0.5)
        );
        report::figure(
            "history",
            "24h histogram",
            pct(&h, 0.5),
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );
        if o.explain {
            explain(
                pool,
                histogram::volume_query("EXPLAIN (ANALYZE, BUFFERS) ", day, &empty, bucket),
            )
            .await?;
        }

        // Each filter form's first page over the whole 30 days, newest first.
        for text in [
            "attrs.order_id:4242",
            "attrs.http.method:PUT",
            "has:attrs.user",
            "attrs.latency>490",
            "status>=500",
            "duration>2990ms",
            "repeat>25",
            "ip:10.3.7.0/24",
            "host:web-7",
            "status:5xx",
            r#"re:"timeout after 5\d s""#,
        ] {
            let f = filter::parse(text)?;
            let s = Instant::now();
            let n = history::page(pool, all, &f, history::Direction::Older, None, 100)
                .await?
                .len();
            let first = ms(s);
            let seq = seq_scan_ms(
                pool,
                history::page_query("", all, &f, history::Direction::Older, None, 100),
            )
            .await?;
            println!(
                "first page of {text:<28} {n:>3} lines {first:>8.1} ms; seq scan {seq:>8.0} ms"
            );
            report::figure(
                "history",
                &format!("first page {text}"),
                first,
                "ms",
                Some(("seq scan", seq)),
                &[Aim::AtMost(200.0)],
            );
            if o.explain {
                explain(
                    pool,
                    history::page_query(
                        "EXPLAIN (ANALYZE, BUFFERS) ",
                        all,
                        &f,
                        history::Direction::Older,
                        None,
                        100,
                    ),
                )
                .await?;
            }
        }

        // The audit trail filtered by actor.
        let f = filter::audit::parse_audit("actor:user42")?;
        let mut a = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            audit::search(pool, &f, None, 100).await?;
            a.push(ms(s));
        }
        a.sort_by(f64::total_cmp);
        let seq = seq_scan_ms(pool, audit::search_query("", &f, None, 100)).await?;
        println!(
            "audit by actor, first page: median {:.1} ms; seq scan {seq:.0} ms",
            pct(&a, 0.5)
        );
        report::figure(
            "history",
            "audit by actor",
            pct(&a, 0.5),
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );
        anyhow::Ok(())
    })
}
