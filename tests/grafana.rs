//! What a Grafana data source sees with the read-only role (as the README sets it up), on a
//! real PostgreSQL: every opsdash view is readable by opsdash_reader and carries a COMMENT, the
//! series views have the `time` column Grafana's time-series panels look for, and the window
//! functions answer Grafana's macros' shape of query.

use std::time::Duration;

use opsdash::db::testkit::TestDb;
use opsdash::db::{Db, DbTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_role_reads_every_view_with_comments_and_time_columns() {
    let t = TestDb::new().await.unwrap();
    let grafana = format!("grafana_{}", std::process::id());
    sqlx::query(&format!("CREATE ROLE {grafana} LOGIN"))
        .execute(&t.db.write)
        .await
        .unwrap();
    sqlx::query(&format!("GRANT opsdash_reader TO {grafana}"))
        .execute(&t.db.write)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO opsdash.rollup_1m (bucket, service, route, direction, requests, err_5xx)
         VALUES (date_bin('1 minute', now(), timestamptz '1970-01-01'), 'api', '/x', 'inbound', 10, 2)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let db = Db::from_options(
        t.options.clone().username(&grafana),
        None,
        DbTarget::External {
            redacted_url: "grafana".into(),
        },
        2,
        Duration::from_secs(10),
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    let views: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, obj_description(c.oid, 'pg_class')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'opsdash' AND c.relkind = 'v' ORDER BY 1",
    )
    .fetch_all(&db.read)
    .await
    .unwrap();
    assert!(views.len() >= 15, "{views:?}");
    for (view, comment) in &views {
        assert!(
            comment.as_deref().is_some_and(|c| c.len() > 20),
            "view {view} has no COMMENT"
        );
        sqlx::query(&format!("SELECT * FROM opsdash.{view} LIMIT 1"))
            .fetch_all(&db.read)
            .await
            .unwrap_or_else(|e| panic!("the reader cannot read {view}: {e}"));
    }

    for view in [
        "error_heatmap",
        "error_trend",
        "latency_trend",
        "slow_requests",
    ] {
        let ty: Option<String> = sqlx::query_scalar(
            "SELECT data_type::text FROM information_schema.columns
              WHERE table_schema = 'opsdash' AND table_name = $1 AND column_name = 'time'",
        )
        .bind(view)
        .fetch_optional(&db.read)
        .await
        .unwrap();
        assert_eq!(
            ty.as_deref(),
            Some("timestamp with time zone"),
            "{view}.time"
        );
    }
    let (time, errors): (chrono::DateTime<chrono::Utc>, i64) =
        sqlx::query_as("SELECT time, errors FROM opsdash.error_heatmap ORDER BY time DESC LIMIT 1")
            .fetch_one(&db.read)
            .await
            .unwrap();
    assert_eq!(errors, 2);
    assert!(chrono::Utc::now() - time < chrono::Duration::minutes(2));

    // The shape Grafana's $__timeFrom()/$__timeTo() macros expand to.
    let rows: Vec<(chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(
        "SELECT bucket AS time, sum(errors)::int8 FROM opsdash.error_heatmap(
                '2000-01-01T00:00:00Z'::timestamptz, now() + interval '1 minute', '1 minute')
          GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.read)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), 2);

    // Look, never touch.
    let write = sqlx::query("DELETE FROM opsdash.alert_rule")
        .execute(&db.write)
        .await
        .unwrap_err();
    assert!(write.to_string().contains("permission denied"), "{write}");
}
