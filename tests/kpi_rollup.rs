//! The KPI counters read the worker's rollups up to its last run and raw rows after it: they
//! must equal the same counters computed over raw rows only, before the rollup job ever ran,
//! after it ran with newer rows on top, and after late rows landed in covered minutes. So must
//! the top failing endpoints (exactly) and the p95 latency (within the histograms' 2%).

use chrono::{DateTime, Duration, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::db::Db;
use opsdash::model::histogram::MAX_RELATIVE_ERROR;
use opsdash::model::TimeRange;
use opsdash::query::kpi::{self, Window};

/// Rows over the last 50 hours: requests (inbound and outbound, 5xx, slow, users), queries
/// (some slow) and log lines (errors, repeats).
async fn rows(db: &Db, from_min: i32, to_min: i32, seed: i32) {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, user_id, direction)
         SELECT now() - make_interval(mins => m) - make_interval(secs => (i * 7) % 59),
                'svc' || (m % 2), CASE WHEN i = 2 THEN 'POST' ELSE 'GET' END, '/r' || ((m + i) % 3),
                CASE WHEN (m * 3 + i) % 7 = 0 THEN 503 ELSE 200 END,
                CASE WHEN (m + i) % 11 = 0 THEN 1500 ELSE 20 + (m * 13 + i * 7) % 300 END,
                CASE WHEN (m + i) % 5 = 0 THEN NULL ELSE 'u' || ((m * 7 + i * $3) % 97) END,
                CASE WHEN (m + i) % 4 = 0 THEN 'outbound' ELSE 'inbound' END
           FROM generate_series($1, $2) m, generate_series(1, 3) i",
    )
    .bind(from_min)
    .bind(to_min)
    .bind(seed)
    .execute(&db.write)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms)
         SELECT now() - make_interval(mins => m) - interval '3 seconds', 'svc', 'SELECT 1', 'fp',
                CASE WHEN m % 3 = 0 THEN 900 ELSE 10 END
           FROM generate_series($1, $2) m",
    )
    .bind(from_min)
    .bind(to_min)
    .execute(&db.write)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message, repeat_count)
         SELECT now() - make_interval(mins => m) - interval '5 seconds', (m % 6)::int2, 'svc', 'line',
                1 + m % 3
           FROM generate_series($1, $2) m",
    )
    .bind(from_min)
    .bind(to_min)
    .execute(&db.write)
    .await
    .unwrap();
}

async fn scalar(db: &Db, sql: &str, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    sqlx::query_scalar(sql)
        .bind(a)
        .bind(b)
        .fetch_one(&db.read)
        .await
        .unwrap()
}

/// `value` (an expression of the bucket start `g`) for every `step` of window `w`, in order.
async fn per_bucket<T>(db: &Db, value: &str, step: &str, w: Window) -> Vec<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(&format!(
        "SELECT {value} FROM generate_series($1, $2 - interval '{step}', interval '{step}') g ORDER BY g"
    ))
    .bind(w.start)
    .bind(w.end)
    .fetch_all(&db.read)
    .await
    .unwrap()
}

/// The counters as the raw rows say, written independently of `query::kpi`.
async fn exact(db: &Db, now: DateTime<Utc>) -> Vec<i64> {
    let d = Window::of(TimeRange::H24, now);
    let h = Window::of(TimeRange::H1, now);
    let mut out = Vec::new();
    for (a, b) in [(d.start, d.end), (d.previous().start, d.start)] {
        out.push(
            scalar(
                db,
                "SELECT count(*) FROM opsdash.log_event WHERE level >= 4 AND ts >= $1 AND ts < $2",
                a,
                b,
            )
            .await,
        );
        out.push(scalar(db, "SELECT count(*) FROM opsdash.request_log WHERE duration_ms > 1000 AND ts >= $1 AND ts < $2", a, b).await);
        out.push(scalar(db, "SELECT count(*) FROM opsdash.query_log WHERE duration_ms > 500 AND ts >= $1 AND ts < $2", a, b).await);
        out.push(scalar(db, "SELECT count(DISTINCT user_id) FROM opsdash.request_log WHERE ts >= $1 AND ts < $2", a, b).await);
        out.push(scalar(db, "SELECT count(*) FROM opsdash.request_log WHERE direction = 'inbound' AND ts >= $1 AND ts < $2", a, b).await);
        out.push(scalar(db, "SELECT count(*) FROM opsdash.request_log WHERE direction = 'inbound' AND status >= 500 AND ts >= $1 AND ts < $2", a, b).await);
        out.push(scalar(db, "SELECT coalesce(sum(repeat_count), 0)::int8 FROM opsdash.log_event WHERE ts >= $1 AND ts < $2", a, b).await);
    }
    for (a, b) in [(h.start, h.end), (h.start - Duration::hours(1), h.start)] {
        out.push(scalar(db, "SELECT count(DISTINCT user_id) FROM opsdash.request_log WHERE ts >= $1 AND ts < $2", a, b).await);
    }
    let hourly: Vec<i64> = per_bucket(
        db,
        "(SELECT count(*) FROM opsdash.log_event WHERE level >= 4 AND ts >= g AND ts < g + interval '1 hour')",
        "1 hour",
        d,
    )
    .await;
    out.extend(hourly);
    out
}

/// The same counters through `query::kpi`.
async fn shown(db: &Db, now: DateTime<Utc>) -> Vec<i64> {
    let daily = kpi::daily(db, now).await.unwrap();
    let users = kpi::users(db, now).await.unwrap();
    let t = kpi::traffic(db, TimeRange::H24, now).await.unwrap();
    let i = kpi::ingest(db, TimeRange::H24, now).await.unwrap();
    let mut out = vec![
        daily.errors_24h,
        daily.slow_requests_24h,
        daily.slow_queries_24h,
        users.users_24h,
        t.requests,
        t.errors,
        i.total,
        daily.prev_errors_24h,
        daily.prev_slow_requests_24h,
        daily.prev_slow_queries_24h,
        users.prev_users_24h,
        t.prev_requests,
        t.prev_errors,
        i.prev_total,
        users.users_1h,
        users.prev_users_1h,
    ];
    out.extend(daily.errors_hourly);
    out
}

type Endpoint = (String, String, String, i64, i64, f64);

/// Top failing endpoints over each range and p95 latency (last hour, hour before, per minute)
/// from raw rows with independent SQL (`percentile_disc` is the nearest rank), against
/// `query::kpi`.
async fn panels_match(db: &Db, now: DateTime<Utc>) {
    for range in [TimeRange::H1, TimeRange::H24, TimeRange::D7] {
        let w = Window::of(range, now);
        let want: Vec<Endpoint> = sqlx::query_as(
            "SELECT service, method, route, count(*),
                    count(*) FILTER (WHERE status >= 500), avg(duration_ms)
               FROM opsdash.request_log
              WHERE direction = 'inbound' AND ts >= $1 AND ts < $2
              GROUP BY 1, 2, 3
             HAVING count(*) FILTER (WHERE status >= 500) > 0
              ORDER BY 5 DESC, 1, 3, 2 LIMIT 4",
        )
        .bind(w.start)
        .bind(w.end)
        .fetch_all(&db.read)
        .await
        .unwrap();
        assert!(
            !want.is_empty(),
            "{range:?}: no failing endpoint in the data"
        );
        let got = kpi::top_failing(db, range, now, 4).await.unwrap();
        assert_eq!(got.len(), want.len(), "{range:?}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (&g.service, &g.method, &g.route, g.requests, g.errors),
                (&w.0, &w.1, &w.2, w.3, w.4),
                "{range:?}"
            );
            assert!(
                (g.avg_ms - w.5).abs() <= w.5 * 1e-9,
                "{range:?}: {g:?} vs {w:?}"
            );
        }
    }

    let h = Window::of(TimeRange::H1, now);
    let p95 = |a: DateTime<Utc>, b: DateTime<Utc>| {
        sqlx::query_scalar::<_, Option<f64>>(
            "SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)
               FROM opsdash.request_log WHERE direction = 'inbound' AND ts >= $1 AND ts < $2",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&db.read)
    };
    let want_now = p95(h.start, h.end).await.unwrap();
    let want_prev = p95(h.start - Duration::hours(1), h.start).await.unwrap();
    let want_series: Vec<Option<f64>> = per_bucket(
        db,
        "(SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)
            FROM opsdash.request_log
           WHERE direction = 'inbound' AND ts >= g AND ts < g + interval '1 minute')",
        "1 minute",
        h,
    )
    .await;
    let got = kpi::latency(db, now).await.unwrap();
    let close = |got: Option<f64>, want: Option<f64>| match (got, want) {
        (Some(g), Some(w)) => (g - w).abs() <= w * MAX_RELATIVE_ERROR + 1e-9,
        (None, None) => true,
        _ => false,
    };
    assert!(want_now.is_some() && want_prev.is_some());
    assert!(
        close(got.p95_ms, want_now),
        "{:?} vs {want_now:?}",
        got.p95_ms
    );
    assert!(
        close(got.prev_p95_ms, want_prev),
        "{:?} vs {want_prev:?}",
        got.prev_p95_ms
    );
    assert_eq!(got.series.len(), want_series.len());
    for (i, (g, w)) in got.series.iter().zip(&want_series).enumerate() {
        assert!(
            close(Some(*g), Some(w.unwrap_or(0.0))),
            "minute {i}: {g} vs {w:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpi_counters_from_rollups_equal_raw_counts() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    rows(db, 0, 50 * 60, 3).await;
    let now = Utc::now();
    let raw = exact(db, now).await;
    assert!(
        raw[0] > 0 && raw[1] > 0 && raw[2] > 0 && raw[3] > 0,
        "{raw:?}"
    );

    // The rollup job never ran: everything from raw rows.
    assert_eq!(kpi::rolled_until(db).await.unwrap(), None);
    assert_eq!(shown(db, now).await, raw);
    panels_match(db, now).await;

    // After a run: rollups up to it, then newer rows read raw.
    opsdash::worker::rollup::run_once(db, Utc::now())
        .await
        .unwrap();
    let covered = kpi::rolled_until(db)
        .await
        .unwrap()
        .expect("coverage recorded");
    assert!(covered <= Utc::now() && covered > Utc::now() - Duration::minutes(2));
    let rolled: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.rollup_users_1h")
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert!(rolled > 0);
    // Newer rows: stamped after the covered minutes (a row stamped before them but written
    // after the run is a late row, folded in by the next run: the case below).
    for table in [
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms, user_id)
         SELECT now() + make_interval(secs => i), 'svc', '/r', 503, 2000, 'new' || i
           FROM generate_series(1, 3) i",
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now() + make_interval(secs => i), 5, 'svc', 'new' FROM generate_series(1, 3) i",
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms)
         SELECT now() + make_interval(secs => i), 'svc', 'q', 'fp', 800 FROM generate_series(1, 3) i",
    ] {
        sqlx::query(table).execute(&db.write).await.unwrap();
    }
    let now = Utc::now();
    assert_eq!(shown(db, now).await, exact(db, now).await);
    panels_match(db, now).await;

    // Late rows in minutes the rollups already cover: the next run folds them in.
    rows(db, 300, 320, 7).await;
    opsdash::worker::rollup::run_once(db, Utc::now())
        .await
        .unwrap();
    let now = Utc::now();
    assert_eq!(shown(db, now).await, exact(db, now).await);
    panels_match(db, now).await;
}

#[test]
fn windows_split_between_rollups_and_raw_rows() {
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let (a, b) = (t("2026-11-21T09:30:00Z"), t("2026-11-22T09:30:00Z"));
    assert_eq!(kpi::split_at(a, b, None), a, "never rolled: all raw");
    assert_eq!(kpi::split_at(a, b, Some(t("2026-11-20T00:00:00Z"))), a);
    assert_eq!(kpi::split_at(a, b, Some(t("2026-11-23T00:00:00Z"))), b);
    let s = t("2026-11-22T09:12:00Z");
    assert_eq!(kpi::split_at(a, b, Some(s)), s);
    // Users: whole hours inside the window and before the split; the rest raw.
    assert_eq!(
        kpi::user_hours(a, b, Some(s)),
        (t("2026-11-21T10:00:00Z"), t("2026-11-22T09:00:00Z"))
    );
    assert_eq!(kpi::user_hours(a, b, None), (a, a));
    let (h0, h1) = (t("2026-11-22T08:13:00Z"), t("2026-11-22T09:13:00Z"));
    assert_eq!(kpi::user_hours(h0, h1, Some(s)), (h0, h0), "no whole hour");
}
