//! Retention against a real PostgreSQL: a simulated 100 days of back-dated partitions, what each
//! policy keeps and drops, anonymization, and a second run that changes nothing.

use chrono::{Duration, NaiveDate};
use opsdash::config::{RetentionConfig, Secret};
use opsdash::query::retention as q;
use sqlx::PgPool;

#[path = "common/retention.rs"]
mod fixture;
use fixture::{day_start, exists, Fixture};

const DAYS: i64 = 100;

/// Partitions for today-days..today and rows on every day: log_event one info + one error row,
/// one row in every other partitioned table, rollups and alert history on the same days.
async fn simulate(pool: &PgPool, today: NaiveDate, days: i64) -> anyhow::Result<()> {
    let first = today - Duration::days(days);
    q::ensure_partitions(pool, first, today).await?;
    let from = day_start(first) + Duration::hours(1);
    let to = day_start(today) + Duration::hours(1);
    let series = "generate_series($1::timestamptz, $2::timestamptz, interval '1 day') d";
    for sql in [
        format!(
            "INSERT INTO opsdash.log_event (ts, level, service, message, user_id, ip, attrs) \
             SELECT d, lvl, 'api', 'm', 'user-1', '10.1.2.3', '{{\"email\": \"a@b.c\", \"k\": 1}}' \
               FROM {series}, unnest(ARRAY[2, 4]::smallint[]) lvl"
        ),
        format!(
            "INSERT INTO opsdash.request_log (ts, service, route, status, user_id, ip) \
             SELECT d, 'api', '/x', 200, 'user-1', '2001:db8:1234:5678::1' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.query_log (ts, query, fingerprint) SELECT d, 'select 1', 'f' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, ip, after) \
             SELECT d, 'alice', 'delete', 'doc', 'doc-' || extract(doy FROM d), '10.9.8.7', \
                    '{{\"email\": \"a@b.c\", \"title\": \"t\"}}' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.health_check (ts, service, status) SELECT d, 'api', 'healthy' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.rollup_1m (bucket, service, route) SELECT d, 'api', '/x' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.rollup_5m (bucket, service, route) SELECT d, 'api', '/x' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.rollup_30m (bucket, service, route) SELECT d, 'api', '/x' FROM {series}"
        ),
        format!(
            "INSERT INTO opsdash.rollup_1h (bucket, service, route) SELECT d, 'api', '/x' FROM {series}"
        ),
        format!("INSERT INTO opsdash.ingest_stat (ts, source, rows) SELECT d, 's', 1 FROM {series}"),
    ] {
        sqlx::query(&sql).bind(from).bind(to).execute(pool).await?;
    }
    Ok(())
}

async fn days_of(pool: &PgPool, sql: &str) -> Vec<NaiveDate> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

fn config() -> RetentionConfig {
    RetentionConfig {
        anonymize_secret: Secret::new("test-secret"),
        ..RetentionConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_days_each_policy_keeps_and_drops() {
    let f = Fixture::new().await;
    let (t, pool, now) = (&f.t, f.pool(), f.now);
    simulate(pool, f.today, DAYS).await.unwrap();
    let cfg = config();

    let report = f.run_clean(&cfg).await;
    // Every dropped day's table was freed by the drop phase, none is left pending.
    assert_eq!(report.freed.len(), report.dropped.len());
    assert!(q::pending_drops(pool).await.unwrap().is_empty());

    // log_event: error rows for 90 days, other rows for 7.
    let d = |n: i64| f.d(n);
    let errors = days_of(
        pool,
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM opsdash.log_event WHERE level >= 4 ORDER BY 1",
    )
    .await;
    assert_eq!(errors.first(), Some(&d(90)));
    assert_eq!(errors.len(), 91);
    let info = days_of(
        pool,
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM opsdash.log_event WHERE level < 4 ORDER BY 1",
    )
    .await;
    assert_eq!(info.first(), Some(&d(7)));
    // A compacted day is swapped for a new table, which keeps the day's search indexes (its rows
    // keep their old transaction ids, which no block summary describes).
    assert!(!report.compacted.is_empty(), "{report:?}");
    let days = opsdash::query::log_block::partition_days(&mut pool.acquire().await.unwrap())
        .await
        .unwrap();
    for part in &report.compacted {
        let day = days.iter().find(|d| &d.1 == part);
        assert!(day.is_some_and(|d| d.2), "{part} is not sealed: {day:?}");
    }
    assert_eq!(info.len(), 8);
    // 7-day raw tables.
    for table in ["request_log", "query_log", "health_check"] {
        let days = days_of(
            pool,
            &format!(
                "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM opsdash.{table} ORDER BY 1"
            ),
        )
        .await;
        assert_eq!(days.first(), Some(&d(7)), "{table}");
    }
    let rollup = days_of(
        pool,
        "SELECT DISTINCT (bucket AT TIME ZONE 'UTC')::date FROM opsdash.rollup_1m ORDER BY 1",
    )
    .await;
    assert_eq!(rollup.first(), Some(&d(7)));
    // 5-minute rollups 90 days (trimmed by DELETE on exact time), hourly a year: all 100 days.
    let r5: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.rollup_5m")
        .fetch_one(pool)
        .await
        .unwrap();
    let cutoff = now - Duration::days(90);
    let expected_5m = (0..=DAYS)
        .filter(|n| day_start(d(*n)) + Duration::hours(1) >= cutoff)
        .count() as i64;
    assert_eq!(r5, expected_5m);
    let r30: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.rollup_30m")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        r30, expected_5m,
        "the 30-minute tier follows its own 90-day policy"
    );
    let r1h: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.rollup_1h")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(r1h, DAYS + 1);
    // Audit events: a year minimum, so all 100 days are there.
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(audit, DAYS + 1);
    // Partitions of dropped days are gone from the catalog, not just emptied.
    assert!(!report.dropped.is_empty());
    assert!(!exists(pool, &q::partition_name("request_log", d(8))).await);

    // Anonymized after 30 days, untouched before.
    let pseudo = q::pseudonym(b"test-secret", "user-1");
    type LogRow = (
        NaiveDate,
        Option<String>,
        Option<String>,
        Option<serde_json::Value>,
    );
    let rows: Vec<LogRow> = sqlx::query_as(
        "SELECT (ts AT TIME ZONE 'UTC')::date, user_id, ip, attrs FROM opsdash.log_event",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (day, user, ip, attrs) in &rows {
        let attrs = attrs.clone().unwrap();
        if *day < d(30) {
            assert_eq!(user.as_deref(), Some(pseudo.as_str()), "{day}");
            assert_eq!(ip.as_deref(), Some("10.1.2.0"));
            assert!(attrs.get("email").is_none());
            assert_eq!(attrs["k"], 1);
        } else {
            assert_eq!(user.as_deref(), Some("user-1"), "{day}");
            assert_eq!(ip.as_deref(), Some("10.1.2.3"));
            assert_eq!(attrs["email"], "a@b.c");
        }
    }
    let audit_rows: Vec<(NaiveDate, String, Option<String>, Option<serde_json::Value>)> =
        sqlx::query_as(
            "SELECT (ts AT TIME ZONE 'UTC')::date, actor, ip, after FROM opsdash.audit_event",
        )
        .fetch_all(pool)
        .await
        .unwrap();
    for (day, actor, ip, after) in &audit_rows {
        if *day < d(30) {
            assert_eq!(actor, &q::pseudonym(b"test-secret", "alice"));
            assert_eq!(ip.as_deref(), Some("10.9.8.0"));
            assert_eq!(after.clone().unwrap(), serde_json::json!({"title": "t"}));
        } else {
            assert_eq!(actor, "alice");
        }
    }

    // A second run changes nothing.
    let snapshot = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(l::text, '|' ORDER BY id) FROM opsdash.log_event l",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = snapshot(pool.clone()).await;
    let again = f.run_clean(&cfg).await;
    assert!(again.dropped.is_empty(), "{:?}", again.dropped);
    assert!(again.freed.is_empty(), "{:?}", again.freed);
    assert!(again.compacted.is_empty(), "{:?}", again.compacted);
    assert!(again.anonymized.is_empty(), "{:?}", again.anonymized);
    assert_eq!(snapshot(pool.clone()).await, before);

    // Every step was recorded, and the status rows show it.
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.retention_run WHERE status <> 'ok'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(failed, 0);
    let status = q::retention_status(&t.db, &cfg).await.unwrap();
    let req = status.iter().find(|s| s.table == "request_log").unwrap();
    assert_eq!(req.keep_days, 7);
    assert!(req.last_run.is_some());
    assert_eq!(req.last_error, None);
    assert_eq!(req.oldest.map(|t| t.date_naive()), Some(d(7)), "{status:?}");
    assert_eq!(
        req.next_drop.map(|t| t.date_naive()),
        Some(d(7) + Duration::days(8))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_secret_refuses_anonymization_and_says_so() {
    let f = Fixture::new().await;
    let (t, pool) = (&f.t, f.pool());
    simulate(pool, f.today, 35).await.unwrap();
    let cfg = RetentionConfig::default();
    let report = f.run_clean(&cfg).await;
    assert!(report
        .anonymize_refused
        .as_deref()
        .is_some_and(|m| m.contains("anonymize_secret")));
    assert!(report.anonymized.is_empty());
    let pseudonymous: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE user_id LIKE 'anon:%'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(pseudonymous, 0);
    // Drops still happened; the refusal is what the Health tab shows.
    assert!(!report.dropped.is_empty());
    let status = q::retention_status(&t.db, &cfg).await.unwrap();
    let logs = status.iter().find(|s| s.table == "log_event").unwrap();
    assert!(
        logs.last_error
            .as_deref()
            .is_some_and(|e| e.contains("anonymize_secret")),
        "{logs:?}"
    );
    let err: Option<String> = sqlx::query_scalar(
        "SELECT error FROM opsdash.retention_run \
          WHERE action = 'anonymize' AND status = 'failed' AND table_name = 'audit_event'",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten();
    assert!(err.unwrap().contains("anonymize_secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_partition_rows_are_moved_into_real_partitions() {
    let f = Fixture::new().await;
    let pool = f.pool();
    // A day with no partition yet (10 days ago): rows land in the default partition.
    let day = f.d(10);
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, message) SELECT $1 + n * interval '1 minute', 4, 'x' \
           FROM generate_series(1, 5) n",
    )
    .bind(day_start(day))
    .execute(pool)
    .await
    .unwrap();
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event_default")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(in_default, 5);
    let report = f.run_clean(&config()).await;
    let part = q::partition_name("log_event", day);
    assert!(report.moved_from_default.contains(&part));
    assert_eq!(q::count_rows(pool, &part).await.unwrap(), 5);
    assert_eq!(q::count_rows(pool, "log_event_default").await.unwrap(), 0);
}
