//! Forensics against a real PostgreSQL: the row-level audit trigger records before/after, the
//! changed columns and the actor; audit rows are append-only.

use opsdash::cli::audit;
use opsdash::db::testkit::TestDb;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trigger_records_before_after_changes_and_actor() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    sqlx::query("CREATE TABLE public.account (id int PRIMARY KEY, email text, plan text)")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        audit::install(pool, "account").await.unwrap(),
        vec!["id".to_string()]
    );
    // Installing twice is harmless.
    audit::install(pool, "public.account").await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL opsdash.actor = 'alice'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO account VALUES (7, 'a@x.io', 'free')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE account SET plan = 'pro' WHERE id = 7")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // No actor set: the database user is recorded.
    sqlx::query("DELETE FROM account WHERE id = 7")
        .execute(pool)
        .await
        .unwrap();
    let db_user: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(pool)
        .await
        .unwrap();

    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT action, actor, resource_type, resource_id, before, after, changes, source \
           FROM opsdash.audit_event ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    let row = json!({"id": 7, "email": "a@x.io", "plan": "free"});
    let updated = json!({"id": 7, "email": "a@x.io", "plan": "pro"});
    assert_eq!(
        rows[0],
        (
            "insert".into(),
            "alice".into(),
            Some("public.account".into()),
            Some("7".into()),
            None,
            Some(row.clone()),
            None,
            "trigger".into()
        )
    );
    assert_eq!(rows[1].0, "update");
    assert_eq!(rows[1].4, Some(row));
    assert_eq!(rows[1].5, Some(updated.clone()));
    assert_eq!(rows[1].6, Some(json!(["plan"])));
    assert_eq!(rows[2].0, "delete");
    assert_eq!(rows[2].1, db_user);
    assert_eq!(rows[2].4, Some(updated));
    assert_eq!(rows[2].5, None);
    // The insert and the update ran in one transaction: same transaction time.
    let same_ts: bool = sqlx::query_scalar(
        "SELECT count(DISTINCT ts) = 1 FROM opsdash.audit_event WHERE action IN ('insert', 'update')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(same_ts);
    // "Who deleted it" finds the delete through the index's predicate.
    let who: String = sqlx::query_scalar(
        "SELECT actor FROM opsdash.audit_event WHERE resource_id = $1 AND action = 'delete' \
          ORDER BY ts DESC LIMIT 1",
    )
    .bind("7")
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(who, db_user);

    // Uninstalled: no more audit rows.
    assert!(audit::uninstall(pool, "account").await.unwrap());
    assert!(!audit::uninstall(pool, "account").await.unwrap());
    sqlx::query("INSERT INTO account VALUES (8, 'b@x.io', 'free')")
        .execute(pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 3);

    // Bad names are refused with a clear error, opsdash's own tables too.
    let err = audit::install(pool, "no_such_table").await.unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    let err = audit::install(pool, "opsdash.alert").await.unwrap_err();
    assert!(format!("{err:#}").contains("refusing"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_are_append_only() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    sqlx::query("INSERT INTO opsdash.audit_event (actor, action, resource_id) VALUES ('bob', 'delete', 'r1')")
        .execute(pool)
        .await
        .unwrap();
    for sql in [
        "UPDATE opsdash.audit_event SET actor = 'mallory'",
        "DELETE FROM opsdash.audit_event",
        "TRUNCATE opsdash.audit_event",
    ] {
        let err = sqlx::query(sql)
            .execute(pool)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let actor: String = sqlx::query_scalar("SELECT actor FROM opsdash.audit_event")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(actor, "bob");
    // Rows in the default partition still move into a new day partition (the retention bypass).
    sqlx::query(
        "INSERT INTO opsdash.audit_event (ts, actor, action) VALUES (now() - interval '50 days', 'old', 'x')",
    )
    .execute(pool)
    .await
    .unwrap();
    let day = (chrono::Utc::now() - chrono::Duration::days(50)).date_naive();
    opsdash::query::retention::ensure_partition(pool, "audit_event", day)
        .await
        .unwrap();
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event_default")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(in_default, 0);
    // And the bypass did not leak into the session.
    let err = sqlx::query("DELETE FROM opsdash.audit_event")
        .execute(pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("append-only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_cut_is_24_or_48_bits_and_idempotent() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    for (ip, cut) in [
        (Some("10.1.2.3"), Some("10.1.2.0")),
        (Some("2001:db8:1234:5678::1"), Some("2001:db8:1234::")),
        (Some("::ffff:10.1.2.3"), Some("::")),
        (Some("not an ip"), None),
        (Some("10.1.2.3; DROP"), None),
        (Some(""), Some("")),
        (None, None),
    ] {
        let (once, twice): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT opsdash.cut_ip($1), opsdash.cut_ip(opsdash.cut_ip($1))")
                .bind(ip)
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(once.as_deref(), cut, "{ip:?}");
        assert_eq!(twice, once, "{ip:?}");
    }
}

/// Scans of the partitions' copies of `audit_event_deleted_resource`, as the statistics
/// collector counted them.
async fn deleted_index_scans(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(s.idx_scan), 0)::bigint FROM pg_stat_user_indexes s \
           JOIN pg_inherits i ON i.inhrelid = s.indexrelid \
          WHERE i.inhparent = 'opsdash.audit_event_deleted_resource'::regclass",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// "Who deleted X" must be answered from the partial index (migration 0014): its predicate has
/// to be implied by the query's own delete test, or the planner reads every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_deleted_reads_the_deleted_resource_index() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let today = chrono::Utc::now().date_naive();
    opsdash::query::retention::ensure_partitions(pool, today - chrono::Duration::days(2), today)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id) \
         SELECT now() - (i % 172800) * interval '1 second', 'user-' || i % 50, \
                (ARRAY['read', 'update', 'user.delete', 'delete', 'undelete'])[1 + i % 5], \
                'doc', 'doc-' || i % 3001 \
           FROM generate_series(1, 30000) i",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE opsdash.audit_event")
        .execute(pool)
        .await
        .unwrap();
    // One connection, so the statistics it flushes are those of the query below.
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(t.options.clone())
        .await
        .unwrap();
    let before = deleted_index_scans(pool).await;
    let rows = opsdash::query::audit::who_deleted(&one, "doc-42", 100)
        .await
        .unwrap();
    // doc-42 is written by i = 42 + 3001k, k = 0..9, with action (2 + k) % 5: each action
    // twice; the deletes are 'user.delete' and 'delete', not 'undelete'.
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.action == "user.delete" || r.action == "delete"),
        "{rows:?}"
    );
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&one)
        .await
        .unwrap();
    // The flush happens when that session goes idle; give it a moment.
    let mut after = before;
    for _ in 0..50 {
        after = deleted_index_scans(pool).await;
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        after > before,
        "who_deleted did not use audit_event_deleted_resource"
    );
}
