//! Retention run by a login role that was only granted opsdash_worker, not the tables' owner, on
//! a real PostgreSQL: expired daily partitions are detached, archived where configured and
//! dropped, old log days compacted and old days anonymized through the owner-defined functions
//! of migrations/0026, and expired silences are trimmed; a reader or an operator may not call
//! those functions, even after `opsdash db grant` re-applied the grants, and the worker may not
//! point them at anything but the daily partitions each step is for.

mod common;

use chrono::{NaiveDate, Utc};
use opsdash::archive;
use opsdash::config::{RetentionConfig, Secret};
use opsdash::db::testkit::TestDb;
use opsdash::query::retention as q;
use opsdash::worker::retention::Retention;

use common::roles::{connect_as, login_role};
use sqlx::PgPool;

/// The SQLSTATE of a failed statement ("" when it succeeded).
async fn sqlstate(pool: &PgPool, sql: &str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(_) => String::new(),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
            .unwrap_or_else(|| format!("not a database error: {e}")),
    }
}

async fn exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass('opsdash.' || $1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn attached(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass('opsdash.' || $1))",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// On each of `days`, written by the owner: `per_day` requests, `per_day` error and `per_day`
/// info log lines (user, address and personal attrs on each), and one audit event of an
/// application user.
async fn rows_on(pool: &PgPool, days: &[NaiveDate], per_day: i32) {
    for day in days {
        let (lo, _) = q::day_range(*day);
        sqlx::query(
            "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms, user_id, ip)
             SELECT $1 + n * interval '1 minute', 'api', '/r/' || n, 200, n, 'user-1', '10.1.2.3'
               FROM generate_series(1, $2) n",
        )
        .bind(lo)
        .bind(per_day)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, message, user_id, ip, attrs)
             SELECT $1 + n * interval '1 minute', level, 'api', 'line ' || n, 'user-1', '10.1.2.3',
                    '{\"email\": \"a@b.c\", \"k\": 1}'
               FROM generate_series(1, $2) n, unnest(ARRAY[2, 4]::int2[]) level",
        )
        .bind(lo)
        .bind(per_day)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO opsdash.audit_event (ts, actor, action, ip, source)
             VALUES ($1 + interval '1 hour', 'alice', 'invoice.delete', '10.9.8.7', 'app')",
        )
        .bind(lo)
        .execute(pool)
        .await
        .unwrap();
    }
}

const SECRET: &str = "roles-retention-secret";

/// Day, user id, address and attrs of a log line.
type LogRow = (
    NaiveDate,
    Option<String>,
    Option<String>,
    Option<serde_json::Value>,
);

/// Requests and logs kept 7 days (requests archived), log lines below error 3 days,
/// anonymization after 5 days, silences 30 days.
fn config() -> RetentionConfig {
    let mut cfg = RetentionConfig {
        log_non_error_keep_days: 3,
        anonymize_after_days: 5,
        anonymize_secret: Secret::new(SECRET),
        ..RetentionConfig::default()
    };
    cfg.request_log.keep_days = 7;
    cfg.request_log.archive = true;
    cfg.log_event.keep_days = 7;
    cfg.silence.keep_days = 30;
    cfg
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_worker_runs_every_retention_step() {
    let t = TestDb::new().await.unwrap();
    let owner = &t.db.write;
    let now = Utc::now();
    let today = now.date_naive();
    let d = |n: i64| today - chrono::Duration::days(n);
    let expired: Vec<NaiveDate> = (8..=11).map(d).collect();
    q::ensure_partitions(owner, d(11), today).await.unwrap();
    rows_on(owner, &expired, 25).await;
    // Day 2 is left alone; days 4-6 lose their info lines; day 6 is also anonymized.
    rows_on(owner, &[d(2), d(4), d(5), d(6)], 25).await;
    sqlx::query(
        "INSERT INTO opsdash.silence (matchers, starts_at, ends_at, created_by)
         VALUES ('{}', now() - interval '60 days', now() - interval '59 days', 'old'),
                ('{}', now(), now() + interval '1 hour', 'current')",
    )
    .execute(owner)
    .await
    .unwrap();

    let role = login_role(&t, "retwork", &["opsdash_worker"]).await;
    let db = connect_as(&t, &role, false).await.unwrap();
    assert!(!db.access.owner && db.access.can_work(), "{:?}", db.access);
    // The DDL and the updates themselves are the owner's: what failed before migrations/0026.
    let first = q::partition_name("request_log", expired[0]);
    let log6 = q::partition_name("log_event", d(6));
    for denied in [
        format!("ALTER TABLE opsdash.request_log DETACH PARTITION opsdash.{first}"),
        format!("UPDATE opsdash.{log6} SET user_id = NULL"),
    ] {
        assert_eq!(sqlstate(&db.write, &denied).await, "42501", "{denied}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = config();
    let report = Retention::new(&db, &cfg, dir.path().to_path_buf())
        .run_job(now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.anonymize_refused.is_none());

    // Expired days: detached, handed off and dropped (the empty days of the other 7-day
    // tables with them), none left pending.
    for day in &expired {
        for table in ["log_event", "request_log"] {
            let name = q::partition_name(table, *day);
            assert!(report.dropped.contains(&name), "{name}: {report:?}");
        }
    }
    assert_eq!(report.freed.len(), report.dropped.len(), "{report:?}");
    for name in &report.dropped {
        assert!(!exists(owner, name).await, "{name} is still there");
    }
    assert!(q::pending_drops(owner).await.unwrap().is_empty());
    assert!(attached(owner, &q::partition_name("request_log", d(2))).await);

    // Each expired request day was archived first, and the archive verifies.
    let want_archived: Vec<String> = expired
        .iter()
        .map(|d| q::partition_name("request_log", *d))
        .collect();
    assert_eq!(sorted(report.archived.clone()), sorted(want_archived));
    let listed = archive::list(dir.path()).unwrap();
    assert_eq!(listed.len(), expired.len());
    for (path, m) in &listed {
        let m = m.as_ref().unwrap();
        assert_eq!((m.table.as_str(), m.rows), ("request_log", 25));
        assert_eq!(archive::verify(path, m).unwrap(), 25);
    }

    // Days 4-6 kept their error lines only (and stay attached); day 2 kept everything.
    // (Day 7 has no rows, but its partitions exist: made ahead by ensure_partitions.)
    let compacted: Vec<String> = sorted(
        (4..=7)
            .map(|n| q::partition_name("log_event", d(n)))
            .collect(),
    );
    assert_eq!(sorted(report.compacted.clone()), compacted);
    let per_day: Vec<(NaiveDate, i16, i64)> = sqlx::query_as(
        "SELECT (ts AT TIME ZONE 'UTC')::date, level, count(*) FROM opsdash.log_event
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    assert_eq!(
        per_day,
        [
            (d(6), 4, 25),
            (d(5), 4, 25),
            (d(4), 4, 25),
            (d(2), 2, 25),
            (d(2), 4, 25)
        ]
    );
    for name in &compacted {
        assert!(attached(owner, name).await, "{name}");
    }

    // Day 6 (older than 5 days) is pseudonymized in all three tables; day 5 is not.
    // Audit events are kept a year: their expired-day partitions are still there and due too.
    let anonymized: Vec<String> = sorted(
        (6..=7)
            .flat_map(|n| {
                ["log_event", "request_log"]
                    .iter()
                    .map(move |t| q::partition_name(t, d(n)))
            })
            .chain((6..=11).map(|n| q::partition_name("audit_event", d(n))))
            .collect(),
    );
    assert_eq!(sorted(report.anonymized.clone()), anonymized);
    let user = q::pseudonym(SECRET.as_bytes(), "user-1");
    let logs: Vec<LogRow> = sqlx::query_as(
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date, user_id, ip, attrs
               FROM opsdash.log_event WHERE ts < $1 ORDER BY 1",
    )
    .bind(q::day_range(d(4)).1)
    .fetch_all(owner)
    .await
    .unwrap();
    let kept_attrs = serde_json::json!({"email": "a@b.c", "k": 1});
    assert_eq!(
        logs,
        [
            (
                d(6),
                Some(user.clone()),
                Some("10.1.2.0".into()),
                Some(serde_json::json!({"k": 1}))
            ),
            (
                d(5),
                Some("user-1".into()),
                Some("10.1.2.3".into()),
                Some(kept_attrs.clone())
            ),
            (
                d(4),
                Some("user-1".into()),
                Some("10.1.2.3".into()),
                Some(kept_attrs)
            ),
        ]
    );
    let requests: Vec<(NaiveDate, Option<String>)> = sqlx::query_as(
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date, user_id FROM opsdash.request_log
          WHERE ts < $1 ORDER BY 1",
    )
    .bind(q::day_range(d(4)).1)
    .fetch_all(owner)
    .await
    .unwrap();
    assert_eq!(
        requests,
        [
            (d(6), Some(user)),
            (d(5), Some("user-1".into())),
            (d(4), Some("user-1".into()))
        ]
    );
    let actors: Vec<(NaiveDate, String, Option<String>)> = sqlx::query_as(
        "SELECT (ts AT TIME ZONE 'UTC')::date, actor, ip FROM opsdash.audit_event
          WHERE ts < $1 AND ts >= $2 ORDER BY 1",
    )
    .bind(q::day_range(d(4)).1)
    .bind(q::day_range(d(6)).0)
    .fetch_all(owner)
    .await
    .unwrap();
    assert_eq!(
        actors,
        [
            (
                d(6),
                q::pseudonym(SECRET.as_bytes(), "alice"),
                Some("10.9.8.0".into())
            ),
            (d(5), "alice".into(), Some("10.9.8.7".into())),
            (d(4), "alice".into(), Some("10.9.8.7".into())),
        ]
    );

    // The trim of unpartitioned tables ran too: the expired silence is gone.
    let silences: Vec<String> =
        sqlx::query_scalar("SELECT created_by FROM opsdash.silence ORDER BY id")
            .fetch_all(owner)
            .await
            .unwrap();
    assert_eq!(silences, ["current"]);
    let failed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT action, error FROM opsdash.retention_run WHERE status <> 'ok'")
            .fetch_all(owner)
            .await
            .unwrap();
    assert!(failed.is_empty(), "{failed:?}");

    // A second run as the worker has nothing left to do.
    let again = Retention::new(&db, &cfg, dir.path().to_path_buf())
        .run_job(now)
        .await
        .unwrap();
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert!(
        again.dropped.is_empty() && again.compacted.is_empty() && again.anonymized.is_empty(),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_worker_may_call_the_retention_functions_and_only_on_daily_partitions() {
    let t = TestDb::new().await.unwrap();
    let owner = &t.db.write;
    let old = Utc::now().date_naive() - chrono::Duration::days(20);
    let part = q::ensure_partition(owner, "request_log", old)
        .await
        .unwrap();
    let reader = login_role(&t, "retread", &["opsdash_reader"]).await;
    let operator = login_role(&t, "retop", &["opsdash_operator"]).await;
    let worker = login_role(&t, "retwk", &["opsdash_worker"]).await;
    let (reader, operator, worker) = (
        connect_as(&t, &reader, false).await.unwrap(),
        connect_as(&t, &operator, false).await.unwrap(),
        connect_as(&t, &worker, false).await.unwrap(),
    );

    let pads = "decode(repeat('36', 64), 'hex'), decode(repeat('5c', 64), 'hex')";
    let calls = [
        format!("SELECT opsdash.retention_detach('{part}')"),
        format!("SELECT opsdash.retention_hand_off('{part}')"),
        format!("SELECT opsdash.retention_drop('{part}_drop1')"),
        format!("SELECT opsdash.retention_compact_log('{part}', 4::int2)"),
        format!("SELECT opsdash.retention_anonymize('{part}', {pads}, '{{}}', false)"),
    ];
    // `opsdash db grant` re-applies the grants (0021 gives readers every function of the
    // schema): the retention functions must stay the worker's.
    for regrant in [false, true] {
        if regrant {
            let applied: bool = sqlx::query_scalar("SELECT opsdash.apply_role_grants()")
                .fetch_one(owner)
                .await
                .unwrap();
            assert!(applied);
        }
        for db in [&reader, &operator] {
            for call in &calls {
                assert_eq!(sqlstate(&db.write, call).await, "42501", "{call}");
            }
        }
    }
    assert!(attached(owner, &part).await);

    // The worker: nothing but opsdash's own daily partitions, each in the state its step needs.
    for bad in [
        "SELECT opsdash.retention_detach('alert')",
        "SELECT opsdash.retention_detach('request_log_default')",
        "SELECT opsdash.retention_detach('request_log_p20261399')",
        "SELECT opsdash.retention_detach('silence_p20260101')",
        "SELECT opsdash.retention_detach('request_log_p20260101; DROP TABLE opsdash.alert')",
        "SELECT opsdash.retention_drop('alert')",
        "SELECT opsdash.retention_drop('request_log')",
    ] {
        assert_eq!(sqlstate(&worker.write, bad).await, "22023", "{bad}");
    }
    // Compaction is for log days only; anonymization needs whole HMAC pads.
    for bad in [
        format!("SELECT opsdash.retention_compact_log('{part}', 4::int2)"),
        format!("SELECT opsdash.retention_anonymize('{part}', '\\x00', '\\x00', '{{}}', false)"),
        format!(
            "SELECT opsdash.retention_anonymize('{}', {pads}, '{{}}', false)",
            part.replace("request_log", "query_log")
        ),
    ] {
        assert_eq!(sqlstate(&worker.write, &bad).await, "22023", "{bad}");
    }
    // An attached partition is neither renamed nor dropped; a detached one is not detached.
    let relid = q::relid(owner, &part).await.unwrap();
    let pending = q::pending_drop_name(&part, relid);
    for bad in [
        format!("SELECT opsdash.retention_hand_off('{part}')"),
        format!("SELECT opsdash.retention_drop('{part}')"),
    ] {
        assert_eq!(sqlstate(&worker.write, &bad).await, "22023", "{bad}");
    }
    assert!(attached(owner, &part).await);
    assert_eq!(sqlstate(&worker.write, &calls[0]).await, "");
    assert!(!attached(owner, &part).await && exists(owner, &part).await);
    assert_eq!(sqlstate(&worker.write, &calls[0]).await, "22023");
    // Only the name the hand-off gave (with the table's own OID) is dropped.
    let named: String = sqlx::query_scalar("SELECT opsdash.retention_hand_off($1)")
        .bind(&part)
        .fetch_one(&worker.write)
        .await
        .unwrap();
    assert_eq!(named, pending);
    let wrong_oid = q::pending_drop_name(&part, relid + 1);
    sqlx::query(&format!(
        "ALTER TABLE opsdash.{pending} RENAME TO {wrong_oid}"
    ))
    .execute(owner)
    .await
    .unwrap();
    assert_eq!(
        sqlstate(
            &worker.write,
            &format!("SELECT opsdash.retention_drop('{wrong_oid}')")
        )
        .await,
        "22023"
    );
    sqlx::query(&format!(
        "ALTER TABLE opsdash.{wrong_oid} RENAME TO {pending}"
    ))
    .execute(owner)
    .await
    .unwrap();
    q::drop_pending(&worker.write, &pending).await.unwrap();
    assert!(!exists(owner, &pending).await);
    // Already gone: nothing to do, no error (a drop phase interrupted after the drop).
    q::drop_pending(&worker.write, &pending).await.unwrap();
}
