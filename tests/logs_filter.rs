//! The filter language against a real PostgreSQL: generated filters always give SQL the server
//! accepts and runs; documented filters select exactly the expected rows; text search uses the
//! GIN index expression.

use opsdash::db::testkit::TestDb;
use opsdash::filter;
use proptest::prelude::*;
use sqlx::{PgPool, Postgres, QueryBuilder};

async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO opsdash.log_event (id, ts, level, service, message, route, status, trace_id, user_id) VALUES
         (1, now() - interval '1 minute', 2, 'api', 'GET /api/payments ok', '/api/payments', 200, 't1', '42'),
         (2, now() - interval '2 minutes', 4, 'api', 'payment failed: connection reset by peer', '/api/pay', 502, 't1', '42'),
         (3, now() - interval '3 hours', 3, 'web', 'slow render 100% CPU', '/home', 200, 't2', '7'),
         (4, now() - interval '10 minutes', 5, 'worker', 'Timeout waiting for lock_row', NULL, NULL, NULL, NULL),
         (5, '2026-01-01T00:00:00Z', 1, 'api', 'debug payload {\"a\":1}', '/api/payments', 404, 't3', '42')",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn ids(pool: &PgPool, f: &str) -> anyhow::Result<Vec<i64>> {
    let f = filter::parse(f).map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
    let mut qb = QueryBuilder::<Postgres>::new("SELECT id FROM opsdash.log_event");
    f.push_where(&mut qb);
    qb.push(" ORDER BY id");
    Ok(qb.build_query_scalar().fetch_all(pool).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_filters_select_the_expected_rows() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.read;
    seed(pool).await?;
    let cases: &[(&str, &[i64])] = &[
        ("", &[1, 2, 3, 4, 5]),
        ("level:warn+", &[2, 3, 4]),
        ("level:error", &[2]),
        ("level:error,fatal", &[2, 4]),
        ("service:api", &[1, 2, 5]),
        ("service:api,web", &[1, 2, 3, 5]),
        ("-service:api", &[3, 4]),
        ("route:/api/pay*", &[1, 2, 5]),
        ("route:/api/pay", &[2]),
        ("status:5xx", &[2]),
        ("status:404,5xx", &[2, 5]),
        ("-status:2xx", &[2, 4, 5]),
        ("trace:t1", &[1, 2]),
        ("-trace:t1", &[3, 4, 5]),
        ("user:42", &[1, 2, 5]),
        ("since:1h", &[1, 2, 4]),
        ("until:2026-06-01", &[5]),
        ("since:2025-12-31T00:00 until:2026-01-02", &[5]),
        // Words: whole tokens through the index, case-insensitive.
        ("payment", &[2]),
        ("PAYMENT", &[2]),
        // Words inside paths are words too (PostgreSQL's parser alone keeps `/api/payments` as
        // one token; the index splits it, migration 0010).
        ("payments", &[1]),
        ("api", &[1]),
        ("\"api payments\"", &[]),
        ("pay*", &[1, 2, 5]),
        ("*payments*", &[1]),
        ("timeout", &[4]),
        ("-timeout", &[1, 2, 3, 5]),
        ("\"connection reset\"", &[2]),
        ("\"reset connection\"", &[]),
        ("-\"connection reset\" service:api", &[1, 5]),
        ("100%", &[3]),
        ("lock_row", &[4]),
        ("\"{\\\"a\\\":1}\"", &[5]),
        ("*ayment*", &[1, 2]),
        ("msg:render level:warn", &[3]),
        (
            "failed service:api level:error+ status:502 trace:t1 user:42 since:1d",
            &[2],
        ),
    ];
    for (f, want) in cases {
        assert_eq!(&ids(pool, f).await?, want, "filter {f:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_search_uses_the_text_index() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let mut conn = t.db.write.acquire().await?;
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await?;
    for text in ["timeout", "\"connection reset\"", "orders"] {
        let f = filter::parse(text)?;
        let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN SELECT id FROM opsdash.log_event");
        f.push_where(&mut qb);
        let plan: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        let plan = plan.join("\n");
        assert!(
            plan.contains("Bitmap Index Scan on log_event") && plan.contains("search_tokens @>"),
            "{text}: {plan}"
        );
    }
    Ok(())
}

/// Rows written by the ingest writer carry tokens computed in Rust; rows written any other way
/// get them from `opsdash.search_tokens` by trigger. A word must find both kinds alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_rust_and_from_sql_are_the_same() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let messages = [
        "GET /api/Users/42/orders?page=2 200 5120B",
        "db.pool_size=17 waiting=2 acquired connection in 1.94ms",
        "upstream TIMEOUT after 1200 ms calling payments for order 4242",
        "café crème: ошибка 42 — Ünïcode\ttab\\back\"quote'",
        "",
        "!!! ---",
        "x_y-z.w=v:u@t#s",
        &"A1b2".repeat(40),
    ];
    for m in messages {
        let sql: Vec<i32> = sqlx::query_scalar("SELECT opsdash.search_tokens($1)")
            .bind(m)
            .fetch_one(&t.db.read)
            .await?;
        let mut sql = sql;
        sql.sort_unstable();
        assert_eq!(
            sql,
            opsdash::model::search_tokens::search_tokens(m),
            "{m:?}"
        );
    }
    // The trigger fills the tokens of a row inserted without them, and refreshes them when the
    // message is rewritten.
    sqlx::query(
        "INSERT INTO opsdash.log_event (id, ts, message) VALUES (9, now(), 'GET /api/orders/7')",
    )
    .execute(&t.db.write)
    .await?;
    assert_eq!(ids(&t.db.read, "orders").await?, vec![9]);
    sqlx::query("UPDATE opsdash.log_event SET message = 'refund 7 done' WHERE id = 9")
        .execute(&t.db.write)
        .await?;
    assert!(ids(&t.db.read, "orders").await?.is_empty());
    assert_eq!(ids(&t.db.read, "refund").await?, vec![9]);
    Ok(())
}

/// Pieces a filter is made of, valid and not: the parser must accept or refuse each mix
/// cleanly, and what it accepts must run.
fn piece() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "level", "service", "route", "status", "trace", "user", "since", "until", "host", "method",
        "fp", "type", "msg", "bogus", "",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "warn+",
            "error",
            "info,debug",
            "5xx",
            "404",
            "4xx,200",
            "15m",
            "2h",
            "7d",
            "2026-11-21T10:00",
            "2026-11-21",
            "now",
            "/api/pay*",
            "a*b",
            "*",
            "42",
            "x,y",
            "%_\\",
            "'; DROP TABLE x; --",
            "é",
            "+",
            "1e9",
            "999999999999d",
        ])
        .prop_map(String::from),
        "[a-z0-9*%_'\\\\]{1,8}",
        "\"[ a-z'%_\\\\]{0,10}\"",
    ];
    (any::<bool>(), key, value).prop_map(|(neg, k, v)| {
        let mut s = String::new();
        if neg {
            s.push('-');
        }
        if !k.is_empty() {
            s.push_str(k);
            s.push(':');
        }
        s.push_str(&v);
        s
    })
}

fn filter_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(piece(), 0..5).prop_map(|v| v.join(" ")),
        1 => any::<String>(),
    ]
}

#[test]
fn every_accepted_filter_runs_on_postgres() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t = rt.block_on(TestDb::new()).expect("test database");
    rt.block_on(seed(&t.db.write)).expect("seed");
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    };
    proptest!(config, |(text in filter_text())| {
        if let Ok(f) = filter::parse(&text) {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut qb = QueryBuilder::<Postgres>::new(
                "SELECT count(*) FROM (SELECT 1 FROM opsdash.log_event",
            );
            f.push_where(&mut qb);
            qb.push(" LIMIT 100) s");
            let res: Result<i64, _> = rt.block_on(qb.build_query_scalar().fetch_one(&t.db.write));
            prop_assert!(res.is_ok(), "{text:?} -> {}: {:?}", qb.sql(), res.err());
        }
    });
    let accepted = accepted.into_inner();
    assert!(
        accepted > 50,
        "the generator should produce mostly valid filters ({accepted})"
    );
}
