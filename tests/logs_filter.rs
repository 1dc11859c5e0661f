//! The filter language against a real PostgreSQL: generated filters always give SQL the server
//! accepts and runs; documented filters select exactly the expected rows; text search uses the
//! GIN index expression; the forms of #17 (JSON attributes, comparisons, IP networks, regular
//! expressions, `has:`) select the same rows as a hand-written reference query, both in the
//! Logs tab's history pages and as an alert rule's `log_count`.

use std::time::Duration;

use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::query::history;
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
        "level",
        "service",
        "route",
        "status",
        "trace",
        "user",
        "since",
        "until",
        "host",
        "method",
        "fp",
        "type",
        "msg",
        "bogus",
        "",
        "has",
        "ip",
        "re",
        "attrs.http.method",
        "attrs.n",
        "status>=",
        "duration<",
        "repeat>",
        "attrs.n>",
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
            "attrs.user",
            "attrs.a..b",
            "trace",
            "10.1.0.0/16",
            "10.1.2.3/16",
            "::1,10.0.0.0/8",
            "2001:db8::/129",
            "\"timeout after \\d+\"",
            "a(b",
            "(?i)x+",
            "[[:digit:]]{2,}",
            "250ms",
            "1.5s",
            "-3",
            "NaN",
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
            if !k.ends_with(['=', '<', '>']) {
                s.push(':');
            }
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

/// Rows that exercise the new forms: JSON attributes of every type (and missing, and JSON
/// null), valid and malformed IP text, IPv6, durations, repeats and messages for regexes.
async fn seed_forms(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        r#"INSERT INTO opsdash.log_event
             (ts, level, service, host, message, trace_id, status, duration_ms, ip, attrs, repeat_count)
           SELECT now() - g * interval '7 seconds',
                  (g % 6)::smallint,
                  (ARRAY['api', 'web', 'worker'])[1 + g % 3],
                  CASE WHEN g % 4 = 0 THEN NULL ELSE 'web-' || (g % 3) END,
                  (ARRAY['timeout after ' || g || ' ms', 'Timeout after x', 'request done in 12ms',
                         'connection reset', 'retry 7 of 9'])[1 + g % 5],
                  CASE WHEN g % 3 = 0 THEN 't' || g END,
                  CASE WHEN g % 5 = 0 THEN NULL ELSE (ARRAY[200, 201, 404, 499, 500, 503, 302])[1 + g % 7] END::smallint,
                  CASE WHEN g % 6 = 0 THEN NULL ELSE (g * 37 % 2000)::float8 + 0.5 END,
                  (ARRAY['10.1.2.3', '10.1.200.9', '10.2.0.1', '192.168.1.1', '2001:db8::5',
                         '2001:db9::1', 'unknown', '-', NULL, '10.1.0.0'])[1 + g % 10],
                  CASE g % 8
                    WHEN 0 THEN NULL
                    WHEN 1 THEN jsonb_build_object('order_id', 123, 'http', jsonb_build_object('method', 'POST'), 'latency', g % 300)
                    WHEN 2 THEN jsonb_build_object('order_id', '123', 'user', 'u' || g, 'latency', 'fast')
                    WHEN 3 THEN jsonb_build_object('order_id', 124, 'http', jsonb_build_object('method', 'GET'), 'user', NULL)
                    WHEN 4 THEN jsonb_build_object('http', 'POST', 'latency', 150.5)
                    WHEN 5 THEN '[1, 2]'::jsonb
                    WHEN 6 THEN jsonb_build_object('user', jsonb_build_object('id', 7), 'latency', g)
                    ELSE '{}'::jsonb
                  END,
                  1 + (g * 13 % 25)
             FROM generate_series(1, 240) g"#,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A form of #17 and a reference predicate for it written independently of src/filter (plain
/// SQL on the columns; IP networks by a regular expression on the seeded text).
fn form() -> impl Strategy<Value = (String, String)> {
    prop::sample::select(vec![
        (
            "attrs.http.method:POST",
            "attrs->'http'->>'method' = 'POST'",
        ),
        ("attrs.http.method:P*", "attrs->'http'->>'method' LIKE 'P%'"),
        ("attrs.order_id:123", "attrs->>'order_id' = '123'"),
        (
            "attrs.order_id:123,124",
            "attrs->>'order_id' IN ('123', '124')",
        ),
        ("attrs.http:POST", "attrs->>'http' = 'POST'"),
        ("has:attrs.user", "attrs ? 'user'"),
        ("has:attrs.user.id", "attrs->'user' ? 'id'"),
        ("has:trace", "trace_id IS NOT NULL"),
        ("has:host", "host IS NOT NULL"),
        (
            "attrs.latency>100",
            "jsonb_typeof(attrs->'latency') = 'number' AND (attrs->>'latency')::numeric > 100",
        ),
        (
            "attrs.latency<=150.5",
            "jsonb_typeof(attrs->'latency') = 'number' AND (attrs->>'latency')::numeric <= 150.5",
        ),
        ("status>=500", "status >= 500"),
        ("status<300", "status < 300"),
        ("status:5xx", "status BETWEEN 500 AND 599"),
        ("duration>250ms", "duration_ms > 250"),
        ("duration>=1.5s", "duration_ms >= 1500"),
        ("duration<100", "duration_ms < 100"),
        ("repeat>10", "repeat_count > 10"),
        ("host:web-1", "host = 'web-1'"),
        ("host:web-1,web-2", "host IN ('web-1', 'web-2')"),
        ("ip:10.1.0.0/16", r"ip ~ '^10\.1\.'"),
        ("ip:10.0.0.0/8,192.168.0.0/16", r"ip ~ '^(10|192\.168)\.'"),
        ("ip:10.1.2.3", "ip = '10.1.2.3'"),
        ("ip:2001:db8::/32", "ip LIKE '2001:db8:%'"),
        (
            r#"re:"timeout after \d+""#,
            r"message ~ 'timeout after [0-9]+'",
        ),
        (r#"re:"(?i)^timeout""#, "lower(message) LIKE 'timeout%'"),
        ("re:[0-9]ms$", r"message ~ '[0-9]ms$'"),
    ])
    .prop_map(|(f, r)| (f.to_string(), r.to_string()))
}

/// Ids the history pages give for `text` over all the seeded rows.
async fn page_ids(pool: &PgPool, f: &filter::Filter) -> anyhow::Result<Vec<i64>> {
    let range = history::HistoryRange {
        from: chrono::Utc::now() - chrono::Duration::days(1),
        until: chrono::Utc::now() + chrono::Duration::minutes(1),
    };
    let mut ids: Vec<i64> = history::page(pool, range, f, history::Direction::Older, None, 10_000)
        .await?
        .iter()
        .map(|l| l.id)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The rule form: `log_count` of the filter per service (sum of repeat_count).
async fn rule_counts(
    pool: &PgPool,
    text: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let rule = opsdash::alerts::RuleConfig {
        name: "forms".into(),
        measure: "log_count".into(),
        filter: text.into(),
        threshold: 1.0,
        window: "1d".into(),
        ..opsdash::alerts::RuleConfig::default()
    };
    let spec = opsdash::alerts::RuleSpec::from_config(&rule).map_err(anyhow::Error::msg)?;
    let samples =
        opsdash::query::alert_metrics::measure(pool, &spec, Duration::from_secs(10)).await?;
    Ok(samples
        .into_iter()
        .map(|s| {
            (
                s.labels.get("service").cloned().unwrap_or_default(),
                s.value,
            )
        })
        .collect())
}

#[test]
fn new_forms_select_the_rows_of_a_reference_query_in_logs_and_rule_form() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t = rt.block_on(TestDb::new()).expect("test database");
    let pool = &t.db.write;
    rt.block_on(seed_forms(pool)).expect("seed");
    let config = ProptestConfig {
        cases: 120,
        ..ProptestConfig::default()
    };
    let nonempty = std::sync::atomic::AtomicUsize::new(0);
    proptest!(config, |(terms in prop::collection::vec((any::<bool>(), form()), 1..4))| {
        let text = terms
            .iter()
            .map(|(neg, (f, _))| format!("{}{f}", if *neg { "-" } else { "" }))
            .collect::<Vec<_>>()
            .join(" ");
        let reference = terms
            .iter()
            .map(|(neg, (_, r))| {
                if *neg {
                    format!("NOT coalesce(({r}), false)")
                } else {
                    format!("coalesce(({r}), false)")
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let f = filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let want: Vec<i64> = rt
            .block_on(
                sqlx::query_scalar(&format!(
                    "SELECT id FROM opsdash.log_event WHERE {reference} ORDER BY id"
                ))
                .fetch_all(pool),
            )
            .map_err(|e| TestCaseError::fail(format!("{reference}: {e}")))?;
        if !want.is_empty() {
            nonempty.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let got = rt
            .block_on(page_ids(pool, &f))
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&got, &want, "Logs form of {}", text);

        let want_counts: Vec<(String, f64)> = rt
            .block_on(
                sqlx::query_as(&format!(
                    "SELECT service, sum(repeat_count)::float8 FROM opsdash.log_event
                      WHERE {reference} GROUP BY service ORDER BY service"
                ))
                .fetch_all(pool),
            )
            .map_err(|e| TestCaseError::fail(format!("{reference}: {e}")))?;
        let got_counts = rt
            .block_on(rule_counts(pool, &text))
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(
            got_counts.into_iter().collect::<Vec<_>>(),
            want_counts,
            "rule form of {}",
            text
        );
    });
    // The seed must make the comparison mean something: most filters select some rows.
    assert!(nonempty.into_inner() > 40);
}

/// `attrs.a.b:v` looks the value up by JSON containment (the GIN index on attrs) before the
/// `#>>` check: the lookup must never hide a row the check alone would show. Values of every
/// JSON type and the spellings that trip a containment lookup (a number and its string, a
/// fraction's scale, a number past f64's precision, booleans, null, objects and arrays, array
/// indexes in the path), each filter against `#>>` alone; and the index must be the one used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_values_looked_up_in_the_index_match_the_text_check() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let values = [
        r#"{"v": 4242}"#,
        r#"{"v": "4242"}"#,
        r#"{"v": 4242.0}"#,
        r#"{"v": 1.50}"#,
        r#"{"v": 1.5}"#,
        r#"{"v": 1e3}"#,
        r#"{"v": -0}"#,
        r#"{"v": 0.1}"#,
        r#"{"v": 12345678901234567890123}"#,
        r#"{"v": 1234567890.12345678}"#,
        r#"{"v": true}"#,
        r#"{"v": "true"}"#,
        r#"{"v": false}"#,
        r#"{"v": null}"#,
        r#"{"v": "null"}"#,
        r#"{"v": {"x": 1}}"#,
        r#"{"v": [1, 2]}"#,
        r#"{"v": ["4242"]}"#,
        r#"{"v": ""}"#,
        r#"{"a": {"b": "PUT"}}"#,
        r#"{"a": {"b": "put"}}"#,
        r#"{"a": [{"b": "PUT"}]}"#,
        r#"{"a": {"0": {"b": "PUT"}}}"#,
        r#"{"a": {"b": {"c": "deep"}}}"#,
        r#"{"v": "quote \" and \\ back"}"#,
        r#"{"v": "ünïcode ☃"}"#,
        r#"[4242]"#,
        r#"{}"#,
    ];
    for (i, v) in values.iter().enumerate() {
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, message, attrs)
             VALUES (now() - make_interval(secs => $1), 2, 'api', 'attr row', $2::jsonb)",
        )
        .bind(i as f64)
        .bind(v)
        .execute(pool)
        .await
        .map_err(|e| anyhow::anyhow!("{v}: {e}"))?;
    }
    // The same values as the ingest writer writes them (with their block's filter: today has
    // no attrs index yet, so the lookup goes through the blocks' attribute keys).
    let parsed: Vec<serde_json::Value> = values
        .iter()
        .map(|v| serde_json::from_str(v))
        .collect::<Result<_, _>>()?;
    let mut buf = opsdash::ingest::log_batch::LogBuf::default();
    let now = chrono::Utc::now();
    for (i, v) in parsed.iter().enumerate() {
        let ts = now - chrono::Duration::milliseconds(500 + i as i64 * 1000);
        let level = opsdash::model::Level::Info;
        buf.push_row(&opsdash::model::log_row::LogRowRef {
            attrs: Some(v),
            ..opsdash::model::log_row::LogRowRef::new(ts, level, "api", "attr row written")
        });
    }
    let mut tx = pool.begin().await?;
    buf.send(&mut tx, "opsdash.log_event").await?;
    tx.commit().await?;
    let cases: &[(&str, &[&str])] = &[
        ("attrs.v:4242", &["v"]),
        ("attrs.v:4242.0", &["v"]),
        ("attrs.v:1.50", &["v"]),
        ("attrs.v:1.5", &["v"]),
        ("attrs.v:1000", &["v"]),
        ("attrs.v:0", &["v"]),
        ("attrs.v:-0", &["v"]),
        ("attrs.v:0.1", &["v"]),
        ("attrs.v:12345678901234567890123", &["v"]),
        ("attrs.v:1234567890.12345678", &["v"]),
        ("attrs.v:true", &["v"]),
        ("attrs.v:false", &["v"]),
        ("attrs.v:null", &["v"]),
        (r#"attrs.v:"{"x": 1}""#, &["v"]),
        (r#"attrs.v:"[1, 2]""#, &["v"]),
        (r#"attrs.v:"""#, &["v"]),
        ("attrs.a.b:PUT", &["a", "b"]),
        ("attrs.a.0.b:PUT", &["a", "0", "b"]),
        (r#"attrs.a.b:"{"c": "deep"}""#, &["a", "b"]),
        (r#"attrs.v:"quote \" and \\ back""#, &["v"]),
        ("attrs.v:ünïcode☃", &["v"]),
    ];
    let mut matched = 0;
    for (text, path) in cases {
        let f = match filter::parse(text) {
            Ok(f) => f,
            // A spelling the lexer refuses has no lookup to check.
            Err(_) => continue,
        };
        let value = match &f.terms()[0].cond {
            filter::Cond::Attr { patterns, .. } => match &patterns[0] {
                filter::Pattern::Exact(v) => v.clone(),
                filter::Pattern::Glob(_) => continue,
            },
            _ => anyhow::bail!("{text}: not an attribute filter"),
        };
        let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
        let want: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM opsdash.log_event WHERE attrs #>> $1::text[] = $2 ORDER BY id",
        )
        .bind(&path)
        .bind(&value)
        .fetch_all(pool)
        .await?;
        matched += usize::from(!want.is_empty());
        let got = ids(pool, text)
            .await
            .map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
        assert_eq!(got, want, "{text}");
        let got = page_ids(pool, &f)
            .await
            .map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
        assert_eq!(got, want, "{text} (history page)");
    }
    assert!(matched >= 12, "the cases must match rows: {matched}");

    // On a table large enough to choose, a rare value is found through the attrs index, which a
    // day gets once it has ended (the seal job).
    let ended = now.date_naive() - chrono::Duration::days(3);
    opsdash::query::retention::ensure_partitions(pool, ended, ended).await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message, attrs)
         SELECT $1::date::timestamp AT TIME ZONE 'UTC' + g * interval '1 second', 2, 'api', 'bulk',
                jsonb_build_object('order_id', g, 'http', jsonb_build_object('method', 'GET'))
           FROM generate_series(1, 20000) g",
    )
    .bind(ended)
    .execute(pool)
    .await?;
    opsdash::worker::seal::run_once(&t.db, Duration::ZERO).await?;
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(pool)
        .await?;
    let f = filter::parse("attrs.order_id:4242")?;
    let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN SELECT id FROM opsdash.log_event");
    f.push_where(&mut qb);
    let plan: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
    let plan = plan.join("\n");
    assert!(plan.contains("_attrs"), "{plan}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_that_runs_out_of_its_budget_says_so_in_one_line() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    // Back-references make PostgreSQL's regex engine backtrack: this pattern takes most of a
    // second per 400-character line here, so 60 lines are far beyond the 5 s budget.
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, service, message)
         SELECT now() - g * interval '1 second', 'api', repeat('ab', 200) || 'c'
           FROM generate_series(1, 60) g",
    )
    .execute(pool)
    .await?;
    let f = filter::parse(r#"re:"^(.*)(.*)(.*)\3\2\1x?$""#)?;
    let range = history::HistoryRange {
        from: chrono::Utc::now() - chrono::Duration::days(1),
        until: chrono::Utc::now() + chrono::Duration::minutes(1),
    };
    let started = std::time::Instant::now();
    let err = history::page(pool, range, &f, history::Direction::Older, None, 100)
        .await
        .expect_err("the scan cannot finish inside the budget");
    let msg = filter::explain_error(&f, &err).expect("a filter error");
    assert!(msg.contains("ran out of its 5 s budget"), "{msg}");
    assert_eq!(msg.lines().count(), 1);
    // The server stopped it at the budget, not after the whole scan.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // A rule with the same filter is held to the same budget (without it the rule's
    // evaluation would hold the worker for the whole scan).
    let started = std::time::Instant::now();
    let err = rule_counts(pool, r#"re:"^(.*)(.*)(.*)\3\2\1x?$""#)
        .await
        .expect_err("the rule's scan cannot finish inside the budget");
    assert!(format!("{err:#}").contains("statement timeout"), "{err:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // PostgreSQL's own refusal (at most 255 repetitions) is explained too.
    let f = filter::parse("re:a{300}")?;
    let err = history::page(pool, range, &f, history::Direction::Older, None, 1)
        .await
        .expect_err("invalid repetition count");
    let msg = filter::explain_error(&f, &err).expect("a filter error");
    assert!(
        msg.contains("not a regular expression PostgreSQL accepts"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_selects_with_the_new_forms_and_explains_a_refused_regex() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed_forms(pool).await?;
    let text = r#"attrs.http.method:POST -status>=500 re:"^timeout after \d+""#;
    let f = filter::parse(text)?;
    let mut out = Vec::new();
    let n =
        opsdash::export::export(pool, &f, opsdash::export::Format::Json, &mut out, |_| {}).await?;
    let rows: Vec<opsdash::export::ExportRow> = serde_json::from_slice(&out)?;
    let want: Vec<i64> = sqlx::query_scalar(
        r"SELECT id FROM opsdash.log_event
           WHERE attrs->'http'->>'method' = 'POST' AND NOT coalesce(status >= 500, false)
             AND message ~ '^timeout after [0-9]+' ORDER BY ts, id",
    )
    .fetch_all(pool)
    .await?;
    assert!(!want.is_empty());
    assert_eq!(n as usize, want.len());
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), want);
    let f = filter::parse("re:x{300}")?;
    let err = opsdash::export::export(
        pool,
        &f,
        opsdash::export::Format::Text,
        &mut Vec::new(),
        |_| {},
    )
    .await
    .expect_err("PostgreSQL refuses more than 255 repetitions");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with("re:\"x{300}\" is not a regular expression PostgreSQL accepts"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1);
    Ok(())
}
