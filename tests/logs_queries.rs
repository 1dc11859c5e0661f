//! The Logs tab's queries against a real PostgreSQL: keyset pages, the stats line, the trace
//! view, error group triage (with its audit rows) and the audit quick filters.

use chrono::{Duration, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::query::audit::{self, AuditQuery};
use opsdash::query::error_groups::{self, GroupQuery, GroupStatus, TransitionError};
use opsdash::query::logs::{self, PageKey};
use opsdash::query::trace::{self, TraceKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_every_matching_line_once_newest_first() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    // Equal timestamps on purpose: the id breaks ties so no line is skipped between pages.
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now() - (g / 3) * interval '1 second', (g % 5)::smallint, 'api', 'line ' || g
           FROM generate_series(1, 250) g",
    )
    .execute(pool)
    .await?;
    let f = filter::parse("level:warn+")?;
    let want: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM opsdash.log_event WHERE level >= 3 ORDER BY ts DESC, id DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut got = Vec::new();
    let mut key = None;
    loop {
        let page = logs::page(pool, &f, key, 40).await?;
        if page.is_empty() {
            break;
        }
        let last = page.last().expect("non-empty");
        key = Some(PageKey {
            ts: last.ts,
            id: last.id,
        });
        got.extend(page.iter().map(|l| l.id));
    }
    assert_eq!(got, want);

    let stats = logs::stats(pool, &filter::parse("")?, Utc::now() - Duration::hours(1)).await?;
    assert_eq!(stats.in_range, 250);
    assert_eq!(stats.last_24h, 250);
    assert_eq!(stats.by_level[3], 50);
    assert_eq!(stats.by_level.iter().sum::<i64>(), 250);
    let narrow = logs::stats(pool, &f, Utc::now() - Duration::seconds(10)).await?;
    assert!(
        narrow.in_range < 100 && narrow.last_24h == 100,
        "{narrow:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_view_merges_every_source_in_time_order() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    sqlx::raw_sql(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
           VALUES (now() - interval '10 seconds', 'api', 'POST', '/api/pay', 502, 850, 'tr-1'),
                  (now(), 'api', 'GET', '/other', 200, 5, 'tr-2');
         INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms, trace_id)
           VALUES (now() - interval '9.9 seconds', 'api', 'SELECT * FROM pay WHERE id = $1', 'q1', 600, 'tr-1');
         INSERT INTO opsdash.log_event (ts, level, service, message, trace_id)
           VALUES (now() - interval '9.2 seconds', 4, 'api', 'payment failed', 'tr-1');
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, trace_id)
           VALUES (now() - interval '9.5 seconds', 'alice', 'payment.retry', 'payment', '77', 'tr-1');",
    )
    .execute(pool)
    .await?;
    let items = trace::trace(pool, "tr-1", 1000).await?;
    let kinds: Vec<TraceKind> = items.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        vec![
            TraceKind::Request,
            TraceKind::Query,
            TraceKind::Audit,
            TraceKind::Log
        ]
    );
    assert_eq!(items[0].summary, "POST /api/pay");
    assert_eq!(items[2].summary, "alice payment.retry payment 77");
    let (bars, span) = trace::waterfall(&items);
    assert_eq!(bars[0].duration_ms, 850.0);
    assert!((bars[1].offset_ms - 100.0).abs() < 1.0, "{:?}", bars[1]);
    assert!((span - 850.0).abs() < 1.0, "{span}");
    assert!(trace::trace(pool, "nope", 10).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_group_triage_is_audited() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    sqlx::raw_sql(
        "INSERT INTO opsdash.error_group (fingerprint, service, sample_message, first_seen, last_seen, count, affected_users)
           VALUES ('fp1', 'api', 'payment failed', now() - interval '2 hours', now(), 3, 2),
                  ('fp2', 'web', 'render crashed', now() - interval '3 days', now() - interval '2 days', 1, 0);
         INSERT INTO opsdash.log_event (ts, level, service, message, fingerprint, user_id)
           VALUES (now() - interval '90 minutes', 4, 'api', 'payment failed', 'fp1', 'u1'),
                  (now() - interval '5 minutes', 4, 'api', 'payment failed', 'fp1', 'u2'),
                  (now() - interval '1 minute', 4, 'api', 'payment failed again', 'fp1', 'u2');",
    )
    .execute(pool)
    .await?;
    let groups =
        error_groups::list(pool, &GroupQuery::default(), 50, Duration::hours(2), 12).await?;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].fingerprint, "fp1");
    assert_eq!(groups[0].sparkline.iter().sum::<u64>(), 3);
    assert_eq!(groups[0].sparkline[11], 2, "{:?}", groups[0].sparkline);
    let sample = error_groups::sample(pool, "fp1").await?.expect("sample");
    assert_eq!(sample.message, "payment failed again");

    let g = error_groups::transition(
        pool,
        "fp1",
        GroupStatus::Acknowledged,
        "alice",
        Some("looking"),
    )
    .await?;
    assert_eq!(g.status, GroupStatus::Acknowledged);
    let g = error_groups::transition(pool, "fp1", GroupStatus::InProgress, "bob", None).await?;
    assert_eq!(g.assignee.as_deref(), Some("bob"));
    assert_eq!(g.note.as_deref(), Some("looking"));
    let g = error_groups::transition(
        pool,
        "fp1",
        GroupStatus::Resolved,
        "bob",
        Some("fixed in 1.2"),
    )
    .await?;
    assert_eq!(g.status, GroupStatus::Resolved);
    let refused = error_groups::transition(pool, "fp1", GroupStatus::InProgress, "bob", None).await;
    assert!(
        matches!(refused, Err(TransitionError::NotAllowed { .. })),
        "{refused:?}"
    );
    let missing = error_groups::transition(pool, "nope", GroupStatus::Resolved, "bob", None).await;
    assert!(matches!(missing, Err(TransitionError::NotFound(_))));

    let only_new = GroupQuery {
        statuses: vec![GroupStatus::New],
        ..Default::default()
    };
    let l = error_groups::list(pool, &only_new, 50, Duration::hours(1), 0).await?;
    assert_eq!(
        l.iter().map(|g| g.fingerprint.as_str()).collect::<Vec<_>>(),
        vec!["fp2"]
    );

    let trail = audit::trail(
        pool,
        &AuditQuery {
            resource_id: Some("fp1".into()),
            ..Default::default()
        },
        None,
        10,
    )
    .await?;
    let actions: Vec<&str> = trail.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "error_group.resolved",
            "error_group.in-progress",
            "error_group.acknowledged"
        ]
    );
    assert!(trail.iter().all(|a| a.source == "opsdash"));
    // The database role acts; the name given (the OS user) is the context.
    let role: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(pool)
        .await?;
    assert_eq!(trail[0].actor, role);
    assert!(
        trail[0]
            .session_id
            .as_deref()
            .is_some_and(|s| s.starts_with("bob@")),
        "{:?}",
        trail[0].session_id
    );
    let d = audit::diff(trail[0].before.as_ref(), trail[0].after.as_ref());
    assert!(d
        .iter()
        .any(|l| matches!(l, audit::DiffLine::Changed { key, .. } if key == "status")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_quick_filters_find_deleters_and_mass_deletes() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    sqlx::raw_sql(
        "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, before)
           VALUES (now() - interval '1 hour', 'carol', 'user.delete', 'user', '42', '{\"name\":\"Zed\"}'),
                  (now() - interval '50 minutes', 'dave', 'user.undelete', 'user', '42', NULL),
                  (now() - interval '40 minutes', 'erin', 'DELETE', 'invoice', '42', NULL),
                  (now() - interval '30 minutes', 'erin', 'UPDATE', 'user', '42', NULL);
         -- mallory: 12 deletes within 2 minutes; trent: 12 deletes spread over an hour
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id)
           SELECT now() - interval '20 minutes' + g * interval '10 seconds', 'mallory', 'file.deleted', 'file', g::text
             FROM generate_series(1, 12) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id)
           SELECT now() - interval '70 minutes' + g * interval '5 minutes', 'trent', 'file.deleted', 'file', 'x' || g
             FROM generate_series(1, 12) g;",
    )
    .execute(pool)
    .await?;
    let who = audit::who_deleted(pool, "42", 10).await?;
    assert_eq!(
        who.iter().map(|a| a.actor.as_str()).collect::<Vec<_>>(),
        vec!["erin", "carol"]
    );
    let who = audit::who_deleted(pool, "user:42", 10).await?;
    assert_eq!(
        who.iter().map(|a| a.actor.as_str()).collect::<Vec<_>>(),
        vec!["carol"]
    );

    let mass = audit::mass_deletes(
        pool,
        Utc::now() - Duration::hours(2),
        Duration::minutes(5),
        10,
    )
    .await?;
    assert_eq!(mass.len(), 1, "{mass:?}");
    assert_eq!(mass[0].actor, "mallory");
    assert_eq!(mass[0].peak, 12);
    assert_eq!(mass[0].total, 12);

    let prefix = AuditQuery {
        action: Some("file.*".into()),
        actor: Some("trent".into()),
        ..Default::default()
    };
    assert_eq!(audit::trail(pool, &prefix, None, 100).await?.len(), 12);
    Ok(())
}

/// `LogLine` is decoded by column position (the live tail decodes thousands a second): every
/// field must come from its own column. Each text column holds its own name, so a swap shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_field_is_read_from_its_own_column() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO opsdash.log_event (ts, level, service, host, message, trace_id, span_id,
             request_id, user_id, route, method, status, duration_ms, ip, user_agent, error_type,
             attrs, fingerprint, repeat_count)
         VALUES ('2026-11-21T10:00:00Z', 4, 'service', 'host', 'message', 'trace_id', 'span_id',
             'request_id', 'user_id', 'route', 'method', 503, 12.5, 'ip', 'user_agent',
             'error_type', '{\"k\": \"attrs\"}', 'fingerprint', 7)
         RETURNING id",
    )
    .fetch_one(pool)
    .await?;
    let tx: i64 =
        sqlx::query_scalar("SELECT tx::text::bigint FROM opsdash.log_event WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    let l = logs::line(pool, id).await?.expect("the line just written");
    let own = |s: &Option<String>, name: &str| assert_eq!(s.as_deref(), Some(name), "{name}");
    assert_eq!(
        (l.id, l.tx, l.level, l.status),
        (id, tx, opsdash::model::Level::Error, Some(503))
    );
    assert_eq!(
        l.ts,
        "2026-11-21T10:00:00Z".parse::<chrono::DateTime<Utc>>()?
    );
    assert_eq!(
        (l.service.as_str(), l.message.as_str()),
        ("service", "message")
    );
    own(&l.host, "host");
    own(&l.trace_id, "trace_id");
    own(&l.span_id, "span_id");
    own(&l.request_id, "request_id");
    own(&l.user_id, "user_id");
    own(&l.route, "route");
    own(&l.method, "method");
    own(&l.ip, "ip");
    own(&l.user_agent, "user_agent");
    own(&l.error_type, "error_type");
    own(&l.fingerprint, "fingerprint");
    assert_eq!(l.duration_ms, Some(12.5));
    assert_eq!(l.attrs, Some(serde_json::json!({"k": "attrs"})));
    assert_eq!(l.repeat_count, 7);
    Ok(())
}
