//! Least-privilege roles on a real PostgreSQL: login roles granted opsdash_reader, _operator,
//! _ingest (and pg_monitor) connect as themselves; a reader cannot acknowledge from the CLI or
//! the dashboard (one "read-only" line, nothing written), an operator's acknowledgement is
//! audited with the database role and its context, an ingest role stores lines it cannot read
//! back, a role with pg_monitor sees the whole database panel, and a non-owner on an older
//! schema is told to migrate instead of meeting "permission denied".

mod common;

use std::process::Output;
use std::time::Duration;

use common::roles::{connect_as, login_role};
use common::tui::{buffer_text, open, press, render};
use crossterm::event::KeyCode;
use opsdash::alerts::operator::{self, Operator};
use opsdash::alerts::{engine, RuleConfig};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::AlertState;
use opsdash::query::rules;

/// The test database's URL with `role` as the user, for the real binary.
fn url_as(t: &TestDb, role: &str) -> String {
    let url = t.url().unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{role}@{host}")
}

fn run_cli(url: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let config = common::procs::write_config(home.path(), "");
    common::procs::opsdash(url, &config)
        .args(args)
        .env("HOME", home.path())
        .env("OPSDASH_DATA_DIR", home.path().join("data"))
        .env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

/// One firing alert of rule `api-errors` (evaluated once by the owner); returns its id and the
/// config that defines the rule.
async fn firing_alert(t: &TestDb) -> (i64, Config) {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status)
         SELECT now() - interval '5 seconds', 'api', '/x', 500 FROM generate_series(1, 5)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![RuleConfig {
        name: "api-errors".into(),
        severity: opsdash::model::Severity::Critical,
        measure: "error_rate".into(),
        threshold: 10.0,
        min_count: Some(1),
        ..RuleConfig::default()
    }];
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, "api-errors")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM opsdash.alert WHERE state = 'firing'")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    (id, cfg)
}

async fn state_and_acks(t: &TestDb, id: i64) -> (String, i64) {
    let state: String = sqlx::query_scalar("SELECT state FROM opsdash.alert WHERE id = $1")
        .bind(id)
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.audit_event WHERE action = 'alert.acknowledge'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    (state, audited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_lists_but_cannot_acknowledge_from_the_cli() {
    let t = TestDb::new().await.unwrap();
    let (id, _) = firing_alert(&t).await;
    let alice = login_role(&t, "alice", &["opsdash_reader"]).await;
    let url = url_as(&t, &alice);

    // Before: "applying database migrations: permission denied" for anyone but the owner.
    let list = run_cli(&url, &["alerts", "list"]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && out.contains("api-errors"),
        "{out}\n{}",
        String::from_utf8_lossy(&list.stderr)
    );

    let ack = run_cli(&url, &["alerts", "ack", &id.to_string(), "--note", "mine"]);
    let err = String::from_utf8_lossy(&ack.stderr);
    assert!(!ack.status.success(), "{err}");
    let want =
        format!("read-only: role {alice} has opsdash_reader, acknowledging needs opsdash_operator");
    assert!(err.contains(&want), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("permission denied"), "{err}");
    assert_eq!(state_and_acks(&t, id).await, ("firing".into(), 0));

    // --read-only holds back even the owner.
    let owner_url = t.url().unwrap();
    let ack = run_cli(
        &owner_url,
        &["--read-only", "alerts", "ack", &id.to_string()],
    );
    let err = String::from_utf8_lossy(&ack.stderr);
    assert!(!ack.status.success() && err.contains("read-only"), "{err}");
    assert_eq!(state_and_acks(&t, id).await, ("firing".into(), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_operator_keys_unavailable_in_the_dashboard() {
    let t = TestDb::new().await.unwrap();
    let (id, cfg) = firing_alert(&t).await;
    let alice = login_role(&t, "alice", &["opsdash_reader"]).await;
    let db = connect_as(&t, &alice, false).await.unwrap();
    assert!(!db.access.can_operate() && !db.access.can_work());
    let mut app = open(&db, cfg, "tui-test:roles:1", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    let text = buffer_text(&render(&app, 100, 30));
    assert!(text.contains("api-errors"), "{text}");
    assert!(text.contains("a read-only"), "status-bar hint:\n{text}");
    assert!(
        text.contains("│ read-only │ range"),
        "header badge:\n{text}"
    );

    press(&mut app, KeyCode::Char('a')).await;
    let msg = app.message.clone().expect("a status-line message");
    assert!(msg.error, "{msg:?}");
    assert_eq!(
        msg.text,
        format!("read-only: role {alice} has opsdash_reader, acknowledging needs opsdash_operator")
    );
    // No prompt opened: the next keys are not a note, Enter sends nothing.
    press(&mut app, KeyCode::Char('x')).await;
    press(&mut app, KeyCode::Enter).await;
    assert_eq!(state_and_acks(&t, id).await, ("firing".into(), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_acknowledgement_is_audited_with_the_database_role_and_context() {
    let t = TestDb::new().await.unwrap();
    let (id, _) = firing_alert(&t).await;
    let bob = login_role(&t, "bob", &["opsdash_operator"]).await;
    let db = connect_as(&t, &bob, false).await.unwrap();
    assert!(db.access.can_operate() && !db.access.owner);
    let op = Operator::from_env(|k| match k {
        "SSH_CONNECTION" => Some("203.0.113.9 50022 10.0.0.1 22".into()),
        _ => None,
    });
    let a = operator::acknowledge(&db, &op, id, Some("looking"))
        .await
        .unwrap();
    assert_eq!(a.state, AlertState::Acknowledged);
    let (actor, role, session, ip, host): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT actor, actor_role, session_id, ip, host FROM opsdash.audit_event
              WHERE action = 'alert.acknowledge' AND resource_id = $1",
        )
        .bind(id.to_string())
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(actor, bob, "session_user is the actor");
    assert_eq!(role, "operator");
    assert_eq!(session, format!("{}@{}", op.user, op.host));
    assert_eq!(ip, "203.0.113.9");
    assert_eq!(host, op.host);

    // Silences and rule changes are the operator's too; a reader's pool is refused before SQL.
    let sid = operator::silence(
        &db,
        &op,
        &[opsdash::alerts::Matcher {
            name: "service".into(),
            op: "=".into(),
            value: "api".into(),
        }],
        Duration::from_secs(600),
        "deploy",
    )
    .await
    .unwrap();
    operator::expire_silence(&db, &op, sid).await.unwrap();
    operator::set_rule_status(&db, &op, "api-errors", "testing")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_role_stores_lines_it_cannot_read() {
    let t = TestDb::new().await.unwrap();
    let carol = login_role(&t, "carol", &["opsdash_ingest"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    // Today and a day with no partition yet (created through ensure_partition), an error for
    // the error groups, and a repeat folded into the first line's row.
    let today = chrono::Utc::now();
    let old = today - chrono::Duration::days(3);
    let mut body = String::new();
    for (ts, level, msg) in [
        (today, "info", "user logged in"),
        (today, "info", "user logged in"),
        (old, "error", "db timeout after 30s"),
        (today, "warn", "slow request"),
    ] {
        body.push_str(&format!(
            "{{\"ts\":\"{}\",\"level\":\"{level}\",\"service\":\"api\",\"msg\":\"{msg}\"}}\n",
            ts.to_rfc3339()
        ));
    }
    std::fs::write(&file, body).unwrap();
    let out = run_cli(&url_as(&t, &carol), &["ingest", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rows, repeats): (i64, i64) =
        sqlx::query_as("SELECT count(*), sum(repeat_count) FROM opsdash.log_event")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(repeats, 4, "every line counted ({rows} rows)");
    let groups: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.error_group")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(groups, 1);

    let db = connect_as(&t, &carol, false).await.unwrap();
    assert!(db.access.privileges.ingest && !db.access.privileges.read_logs);
    let read = sqlx::query("SELECT message FROM opsdash.log_event LIMIT 1")
        .fetch_all(&db.write)
        .await
        .unwrap_err();
    assert!(read.to_string().contains("permission denied"), "{read}");
    let export = run_cli(&url_as(&t, &carol), &["export", "--format", "json"]);
    assert!(!export.status.success());

    // A reader is told what it lacks before anything is parsed or written.
    let alice = login_role(&t, "alice", &["opsdash_reader"]).await;
    let out = run_cli(&url_as(&t, &alice), &["ingest", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs opsdash_ingest"),
        "{err}"
    );
    let after: i64 = sqlx::query_scalar("SELECT sum(repeat_count) FROM opsdash.log_event")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(after, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_panel_works_with_pg_monitor_and_says_what_a_reader_cannot_see() {
    let t = TestDb::new().await.unwrap();
    let mon = login_role(&t, "mon", &["opsdash_reader", "pg_monitor"]).await;
    let db = connect_as(&t, &mon, false).await.unwrap();
    let h = opsdash::query::health::database(&db).await.unwrap();
    assert_eq!(h.limited, None);
    assert!(h.connections_total() >= 1 && !h.version.is_empty());
    assert!(h.largest_tables.iter().any(|(t, _)| t == "log_event"));

    let alice = login_role(&t, "alice", &["opsdash_reader"]).await;
    let db = connect_as(&t, &alice, false).await.unwrap();
    let h = opsdash::query::health::database(&db).await.unwrap();
    assert!(h
        .limited
        .as_deref()
        .is_some_and(|l| l.contains("pg_monitor")));
    let mut app = open(&db, Config::default(), "tui-test:roles:2", false, 2).await;
    press(&mut app, KeyCode::Char('5')).await;
    // Services, Integrations, Database.
    press(&mut app, KeyCode::Char('l')).await;
    press(&mut app, KeyCode::Char('l')).await;
    let text = buffer_text(&render(&app, 120, 40));
    assert!(text.contains("grant pg_monitor"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_on_an_older_schema_is_told_to_migrate() {
    let t = TestDb::new().await.unwrap();
    let alice = login_role(&t, "alice", &["opsdash_reader"]).await;
    // The owner has not applied this build's newest migration yet.
    let latest = opsdash::db::migrate::latest();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(latest)
        .execute(&t.db.write)
        .await
        .unwrap();
    let behind: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    let want = format!(
        "schema at {behind}, this build needs {latest}: run `opsdash migrate` as the owner"
    );
    let err = connect_as(&t, &alice, false).await.unwrap_err();
    assert_eq!(err.to_string(), want);
    let out = run_cli(&url_as(&t, &alice), &["alerts", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&want), "{stderr}");
    assert!(!stderr.contains("permission denied"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_grant_makes_a_login_role_a_member() {
    let t = TestDb::new().await.unwrap();
    let dave = login_role(&t, "dave", &[]).await;
    let out = run_cli(
        &t.url().unwrap(),
        &["db", "grant", "opsdash_operator", &dave],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = connect_as(&t, &dave, false).await.unwrap();
    assert!(db.access.can_operate());
    assert_eq!(
        db.access.privileges.groups,
        vec!["opsdash_operator".to_string(), "opsdash_reader".to_string()]
    );
    // Names are identifiers, never SQL.
    let out = run_cli(
        &t.url().unwrap(),
        &[
            "db",
            "grant",
            "opsdash_reader",
            "x; DROP TABLE opsdash.alert",
        ],
    );
    assert!(!out.status.success());
    let still: bool = sqlx::query_scalar("SELECT to_regclass('opsdash.alert') IS NOT NULL")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert!(still);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_role_runs_the_jobs_but_may_not_operate() {
    let t = TestDb::new().await.unwrap();
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status)
         SELECT now() - interval '5 seconds', 'api', '/x', 500 FROM generate_series(1, 5)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let erin = login_role(&t, "erin", &["opsdash_worker"]).await;
    let db = connect_as(&t, &erin, false).await.unwrap();
    assert!(db.access.can_work() && !db.access.can_operate());

    // Leases, rollups and the alert engine, each as the worker role.
    let epoch = opsdash::query::lease::acquire(&db.write, "rollup", "w:1", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(epoch.is_some());
    opsdash::query::lease::heartbeat(&db.write, "w:1")
        .await
        .unwrap();
    opsdash::worker::rollup::run_once(&db, chrono::Utc::now())
        .await
        .unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![RuleConfig {
        name: "api-errors".into(),
        measure: "error_rate".into(),
        threshold: 10.0,
        min_count: Some(1),
        ..RuleConfig::default()
    }];
    rules::sync_config_rules(&db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&db.read, "api-errors")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&db, &cfg, &rule, None).await.unwrap();
    let firing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.alert WHERE state = 'firing'")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(firing, 1);

    // The worker's rights are not an operator's.
    let run = run_cli(&url_as(&t, &erin), &["alerts", "ack", "1"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("acknowledging needs opsdash_operator"),
        "{err}"
    );
}

/// Each SECURITY DEFINER function pins its search_path with pg_temp named last: left out, pg_temp
/// is searched first for tables, and a caller's temporary table could stand in for ours.
#[tokio::test]
async fn every_security_definer_function_searches_pg_temp_last() {
    let t = TestDb::new().await.unwrap();
    let rows: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, p.proconfig
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'opsdash' AND p.prosecdef ORDER BY 1",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert!(
        rows.len() >= 4,
        "expected the schema's definer functions, got {rows:?}"
    );
    let bad: Vec<_> = rows
        .iter()
        .filter(|(_, config)| {
            let path = config
                .iter()
                .flatten()
                .find_map(|c| c.strip_prefix("search_path="));
            !path.is_some_and(|p| p.replace(' ', "").ends_with(",pg_temp"))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "definer functions without pg_temp last: {bad:?}"
    );
}
