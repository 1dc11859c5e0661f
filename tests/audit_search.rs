//! `opsdash audit search` and its queries against a real PostgreSQL: the filter line selects
//! the rows a reference query selects, pages walk all of them once newest first across daily
//! partitions, an exact actor is served by its index, `--who-deleted TABLE ID` finds the delete
//! the row trigger recorded, and text output is escaped.

use chrono::NaiveDate;
use opsdash::db::testkit::TestDb;
use opsdash::filter::audit::parse_audit;
use opsdash::query::audit::{self, AuditKey};
use sqlx::PgPool;

/// 1,200 audit rows over four days (2026-11-01 .. 04), several per timestamp, plus one actor
/// name carrying a terminal escape sequence.
async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    opsdash::query::retention::ensure_partitions(
        pool,
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 4).unwrap(),
    )
    .await?;
    sqlx::raw_sql(
        "INSERT INTO opsdash.audit_event (ts, actor, actor_role, action, resource_type, resource_id,
                                          outcome, ip, source)
         SELECT '2026-11-01T00:00:00Z'::timestamptz + (g / 3) * interval '17 minutes',
                (ARRAY['alice', 'bob', 'deploy-bot', 'carol'])[1 + g % 4],
                (ARRAY['admin', 'dev'])[1 + g % 2],
                (ARRAY['user.delete', 'user.update', 'order_deleted', 'login', 'undelete'])[1 + g % 5],
                (ARRAY['user', 'public.orders', NULL])[1 + g % 3],
                (g % 40)::text,
                (ARRAY['success', 'failure', 'denied'])[1 + g % 3],
                (ARRAY['10.1.0.7', '10.2.3.4', '192.168.9.1', 'n/a', NULL])[1 + g % 5],
                'app'
           FROM generate_series(1, 1200) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id)
         VALUES ('2026-11-02T12:00:00Z', E'mallory\\x1b]0;pwned\\x07', 'login', 'session', 's1');",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn reference(pool: &PgPool, where_: &str) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM opsdash.audit_event WHERE {where_} ORDER BY ts DESC, id DESC"
    ))
    .fetch_all(pool)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_line_pages_through_the_rows_of_a_reference_query() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    for (line, sql) in [
        ("", "TRUE"),
        ("actor:alice", "actor = 'alice'"),
        (
            "actor:alice,bob -outcome:success",
            "actor IN ('alice', 'bob') AND outcome <> 'success'",
        ),
        ("action:*delete*", "action LIKE '%delete%'"),
        (
            "type:public.orders id:7",
            "resource_type = 'public.orders' AND resource_id = '7'",
        ),
        (
            "role:admin outcome:denied",
            "actor_role = 'admin' AND outcome = 'denied'",
        ),
        (
            "since:2026-11-02 until:2026-11-03T06:00",
            "ts >= '2026-11-02T00:00Z' AND ts < '2026-11-03T06:00Z'",
        ),
        ("ip:10.0.0.0/8", "ip LIKE '10.%'"),
        ("-ip:10.1.0.0/16", "ip IS DISTINCT FROM '10.1.0.7'"),
        (
            "orders",
            "resource_type ILIKE '%orders%' OR action ILIKE '%orders%'",
        ),
        (
            "DELETE -undelete",
            "action ILIKE '%delete%' AND action NOT ILIKE '%undelete%'",
        ),
        ("source:app host:nowhere", "FALSE"),
    ] {
        let f = parse_audit(line).map_err(|e| anyhow::anyhow!("{line}: {e}"))?;
        let want = reference(pool, sql).await?;
        let mut got = Vec::new();
        let mut key = None;
        loop {
            let page = audit::search(pool, &f, key, 37).await?;
            got.extend(page.iter().map(|r| r.id));
            match page.last() {
                Some(last) if page.len() == 37 => {
                    key = Some(AuditKey {
                        ts: last.ts,
                        id: last.id,
                    })
                }
                _ => break,
            }
        }
        assert_eq!(got, want, "{line}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_actor_is_read_through_its_index() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    let mut conn = pool.acquire().await?;
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await?;
    let f = parse_audit("actor:alice since:2026-11-02")?;
    let plan: Vec<String> = audit::search_query("EXPLAIN ", &f, None, 100)
        .build_query_scalar()
        .fetch_all(&mut *conn)
        .await?;
    let plan = plan.join("\n");
    assert!(plan.contains("actor_ts_idx"), "{plan}");
    // Days before `since` are pruned.
    assert!(!plan.contains("p20261101"), "{plan}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_searches_pages_and_finds_who_deleted_a_row() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let pool = &t.db.write;
    seed(pool).await?;
    // A real application table with the row trigger: bob deletes invoice 7.
    sqlx::raw_sql("CREATE TABLE public.invoices (id int PRIMARY KEY, note text)")
        .execute(pool)
        .await?;
    audit::install_trigger(pool, "public.invoices").await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL opsdash.actor = 'alice'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO public.invoices VALUES (7, 'x'), (8, 'y')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL opsdash.actor = 'bob'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM public.invoices WHERE id = 7")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let bin = env!("CARGO_BIN_EXE_opsdash");
    let url = t.url()?;
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(["--database-url", &url, "audit", "search"])
            .args(args)
            .output()
    };
    // All of it, through several pages of 500.
    let o = run(&["--format", "json"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event")
        .fetch_one(pool)
        .await?;
    assert_eq!(
        o.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as i64,
        all
    );
    let o = run(&["actor:alice", "action:user.*", "--limit", "5"])?;
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout)?;
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().all(|l| l.contains("  alice  user.")), "{text}");

    let o = run(&["--who-deleted", "invoices", "7"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout)?;
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("  bob  delete  public.invoices/7  success"),
        "{text}"
    );
    let o = run(&["--who-deleted", "public.invoices", "8"])?;
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no delete of public.invoices/8"));

    // Escaped text: the escape sequence in an actor's name is inert.
    let o = run(&["actor:mallory*"])?;
    let text = String::from_utf8(o.stdout)?;
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains('\x1b') && text.contains("mallory^["),
        "{text}"
    );
    // --raw to a pipe keeps the bytes.
    let o = run(&["actor:mallory*", "--raw"])?;
    assert!(String::from_utf8(o.stdout)?.contains('\x1b'));

    // A mistake is one line with its column, before any query.
    let o = run(&["actor:alice", "level:error"])?;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("at column 13")
            && err.contains("unknown audit field")
            && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
