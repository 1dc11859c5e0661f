//! History benchmark (#17): on N log lines spread over 30 daily partitions and M audit rows,
//! a page at a random point of history (p50/p99), the 24 h volume histogram, each filter form's
//! first page over the 30 days, and the audit trail filtered by actor; each beside the same
//! question answered by a sequential scan (index scans turned off) in the same run. Then the
//! same questions asked of lnav (Debian's `lnav`, headless), the peer an operator would pick
//! instead, on the same lines written as JSON lines with an lnav format file: lnav reads the
//! whole file into memory on every start, so it gets the first `--lnav-rows` lines of the
//! table (spread over the same 30 days), and its times print beside ours at the end.
//!
//! cargo bench --bench history -- [--rows 1000000] [--audit-rows 1000000] [--pages 200]
//!                                [--explain] [--lnav-rows 1000000] [--lnav-pages 5]
//! `--lnav-rows 0` skips lnav; without `lnav` on PATH the bench says so and skips it.
//! The database is a throwaway embedded cluster (or OPSDASH_TEST_DATABASE_URL). Rows are made
//! by the server (`generate_series`) into the migrated tables with every production index.
//! `--keep-in URL` uses that database instead and keeps it: the tables are migrated, and a
//! table already holding its rows is not loaded again, so a 10M-row load (~40 minutes) is paid
//! once and the questions can be asked again on a quiet machine or after a new index.

use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use opsdash::db::testkit::TestDb;
use opsdash::filter;
use opsdash::query::{audit, histogram, history};
use rand::{Rng, SeedableRng};
use sqlx::{PgPool, Postgres, QueryBuilder};

#[path = "common/report.rs"]
mod report;
use report::Aim;

struct Opts {
    rows: i64,
    audit_rows: i64,
    pages: usize,
    explain: bool,
    lnav_rows: i64,
    lnav_pages: usize,
    keep_in: Option<String>,
}

/// Each filter form the bench times: our filter, and the same question in lnav's words (a
/// SQLite expression over the format's fields, or a regular expression on the line).
/// lnav has no CIDR match: a /24 is a prefix of the dotted address.
const FILTER_FORMS: &[(&str, &str)] = &[
    (
        "attrs.order_id:4242",
        ":filter-expr jget(:attrs, '/order_id') = 4242",
    ),
    (
        "attrs.http.method:PUT",
        ":filter-expr jget(:attrs, '/http/method') = 'PUT'",
    ),
    (
        "has:attrs.user",
        ":filter-expr jget(:attrs, '/user') IS NOT NULL",
    ),
    (
        "attrs.latency>490",
        ":filter-expr jget(:attrs, '/latency') > 490",
    ),
    ("status>=500", ":filter-expr :status >= 500"),
    ("duration>2990ms", ":filter-expr :duration_ms > 2990"),
    ("repeat>25", ":filter-expr :repeat > 25"),
    ("ip:10.3.7.0/24", ":filter-expr :ip LIKE '10.3.7.%'"),
    ("host:web-7", ":filter-expr :host = 'web-7'"),
    ("status:5xx", ":filter-expr :status BETWEEN 500 AND 599"),
    (
        r#"re:"timeout after 5\d s""#,
        r":filter-in timeout after 5\d s",
    ),
];

/// One question's figures on our side, for the table beside lnav's.
struct Ours {
    question: String,
    ms: f64,
    seq_ms: f64,
}

fn opts() -> Opts {
    let mut o = Opts {
        rows: 1_000_000,
        audit_rows: 1_000_000,
        pages: 200,
        explain: false,
        lnav_rows: 1_000_000,
        lnav_pages: 5,
        keep_in: None,
    };
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match a.as_str() {
            "--rows" => o.rows = next.parse().unwrap_or(o.rows),
            "--audit-rows" => o.audit_rows = next.parse().unwrap_or(o.audit_rows),
            "--pages" => o.pages = next.parse().unwrap_or(o.pages),
            "--explain" => o.explain = true,
            "--lnav-rows" => o.lnav_rows = next.parse().unwrap_or(o.lnav_rows),
            "--lnav-pages" => o.lnav_pages = next.parse().unwrap_or(o.lnav_pages),
            "--keep-in" => o.keep_in = Some(next),
            _ => {}
        }
    }
    o
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `qb` once with index scans off: the sequential scan of the same question.
async fn seq_scan_ms(pool: &PgPool, mut qb: QueryBuilder<'_, Postgres>) -> Result<f64> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(
        "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
         SET LOCAL enable_indexonlyscan = off; SET LOCAL jit = off; SET LOCAL statement_timeout = 0",
    )
    .execute(&mut *tx)
    .await?;
    let t = Instant::now();
    qb.build().fetch_all(&mut *tx).await?;
    let d = ms(t);
    tx.rollback().await?;
    Ok(d)
}

async fn explain(pool: &PgPool, mut qb: QueryBuilder<'_, Postgres>) -> Result<()> {
    let plan: Vec<String> = qb.build_query_scalar().fetch_all(pool).await?;
    for l in plan {
        println!("    {l}");
    }
    Ok(())
}

async fn load(pool: &PgPool, o: &Opts) -> Result<()> {
    let today = Utc::now().date_naive();
    opsdash::query::retention::ensure_partitions(
        pool,
        today - Duration::days(31),
        today + Duration::days(1),
    )
    .await?;
    let t = Instant::now();
    let step = 1_000_000;
    // A kept database is loaded only where a table lacks its rows (an interrupted load is
    // topped up from where it stopped: `g` goes on from the count).
    let mut done: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(pool)
        .await?;
    let loaded_before = done >= o.rows;
    while done < o.rows {
        let n = step.min(o.rows - done);
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, host, message, status, duration_ms,
                                            ip, attrs, repeat_count)
             SELECT now() - (random() * 30 * 86400) * interval '1 second',
                    (CASE WHEN random() < 0.02 THEN 4 WHEN random() < 0.1 THEN 3 ELSE 2 END)::smallint,
                    (ARRAY['api', 'web', 'worker', 'billing'])[1 + g % 4],
                    'web-' || (g % 20),
                    (ARRAY['request done in ' || (g % 900) || 'ms', 'timeout after ' || (g % 60) || ' s',
                           'cache miss key=' || g, 'payment accepted order ' || g])[1 + g % 4],
                    (ARRAY[200, 200, 200, 201, 302, 404, 500, 503])[1 + g % 8]::smallint,
                    (g % 3000)::float8,
                    '10.' || (g % 4) || '.' || (g % 256) || '.' || (g % 251),
                    jsonb_build_object('order_id', g % 100000, 'http', jsonb_build_object('method',
                        (ARRAY['GET', 'POST', 'PUT'])[1 + g % 3]), 'latency', g % 500)
                      || CASE WHEN g % 10 = 0 THEN jsonb_build_object('user', 'u' || g % 1000) ELSE '{}' END,
                    1 + (g % 97 = 0)::int * (g % 30)
               FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done)
        .bind(done + n - 1)
        .execute(pool)
        .await?;
        done += n;
        eprintln!("  {done} log lines ({:.0} s)", t.elapsed().as_secs_f64());
    }
    let mut done: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event")
        .fetch_one(pool)
        .await?;
    if loaded_before && done >= o.audit_rows {
        eprintln!(
            "  kept database: {} log lines and {done} audit rows already loaded",
            o.rows
        );
        return Ok(());
    }
    while done < o.audit_rows {
        let n = step.min(o.audit_rows - done);
        sqlx::query(
            "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome, ip)
             SELECT now() - (random() * 30 * 86400) * interval '1 second',
                    'user' || (g % 5000), (ARRAY['login', 'user.update', 'order.delete'])[1 + g % 3],
                    'order', (g % 200000)::text, 'success', '10.9.' || (g % 256) || '.1'
               FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done)
        .bind(done + n - 1)
        .execute(pool)
        .await?;
        done += n;
        eprintln!("  {done} audit rows ({:.0} s)", t.elapsed().as_secs_f64());
    }
    // One statement each: several in one simple query run as one transaction block.
    for table in ["log_event", "audit_event"] {
        sqlx::raw_sql(&format!("VACUUM ANALYZE opsdash.{table}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (_throwaway, owned);
        let db = match &o.keep_in {
            Some(url) => {
                owned = opsdash::db::Db::from_options(
                    opsdash::db::pool::parse_url(url)?,
                    None,
                    opsdash::db::pool::DbTarget::External {
                        redacted_url: "kept database".into(),
                    },
                    4,
                    std::time::Duration::from_secs(10),
                    std::time::Duration::from_secs(600),
                )
                .await?;
                opsdash::db::migrate::run(&owned.write).await?;
                &owned
            }
            None => {
                _throwaway = TestDb::new().await?;
                &_throwaway.db
            }
        };
        let pool = &db.write;
        load(pool, &o).await?;
        // The worker's rollup job, as a running dashboard or worker keeps it: the unfiltered
        // histogram sums its minutes. The first run over a fresh load rolls all of it.
        let s = Instant::now();
        let rolled = opsdash::worker::rollup::run_once(db, Utc::now()).await?;
        println!(
            "rollup job: {} minutes rolled in {:.1} s",
            rolled.minutes,
            s.elapsed().as_secs_f64()
        );
        // The seal job, as the worker runs it: every ended day gets its search indexes (the
        // rows were written by SQL, so their blocks have no filter: today's rows are read
        // whole by a narrowed search, as rows written by psql would be).
        let s = Instant::now();
        let sealed = opsdash::worker::seal::run_once(db, std::time::Duration::ZERO).await?;
        println!(
            "seal job: {} days sealed in {:.1} s",
            sealed.sealed.len(),
            s.elapsed().as_secs_f64()
        );
        // The newest line, not the clock: each load step spread its rows back from its own
        // start, and a 10M-row load takes long enough that pages newer than the clock-at-end
        // minus the load time would be empty.
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT max(ts) FROM opsdash.log_event")
            .fetch_one(pool)
            .await?;
        let all = history::HistoryRange {
            from: now - Duration::days(31),
            until: now + Duration::minutes(1),
        };
        let empty = filter::parse("")?;
        let mut ours = Vec::new();
        println!(
            "history bench: {} log lines over 30 days, {} audit rows",
            o.rows, o.audit_rows
        );

        // Pages at random points of history, older and newer.
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut times = Vec::new();
        for i in 0..o.pages {
            let at = now - Duration::seconds(rng.gen_range(0..30 * 86400));
            let key = Some(history::HistoryKey {
                ts: at,
                id: i64::MAX,
            });
            let dir = if i % 2 == 0 {
                history::Direction::Older
            } else {
                history::Direction::Newer
            };
            let s = Instant::now();
            let page = history::page(pool, all, &empty, dir, key, 100).await?;
            times.push(ms(s));
            anyhow::ensure!(!page.is_empty(), "an empty page at {at}");
        }
        times.sort_by(f64::total_cmp);
        let at = now - Duration::days(15);
        let key = Some(history::HistoryKey {
            ts: at,
            id: i64::MAX,
        });
        let seq = seq_scan_ms(
            pool,
            history::page_query("", all, &empty, None, history::Direction::Older, key, 100),
        )
        .await?;
        let (p50, p99) = (pct(&times, 0.5), pct(&times, 0.99));
        println!(
            "page of 100 at a random point: p50 {p50:.1} ms, p99 {p99:.1} ms; seq scan {seq:.0} ms"
        );
        ours.push(Ours {
            question: "page of 100 at a random point (p50)".into(),
            ms: p50,
            seq_ms: seq,
        });
        report::figure(
            "history",
            "page at random point p50",
            p50,
            "ms",
            Some(("seq scan", seq)),
            &[],
        );
        report::figure(
            "history",
            "page at random point p99",
            p99,
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );

        // The 24 h histogram.
        let day = history::HistoryRange {
            from: now - Duration::hours(24),
            until: now,
        };
        let bucket = histogram::bucket_for(Duration::hours(24), 60);
        let mut h = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            histogram::volume(pool, day, &empty, bucket).await?;
            h.push(ms(s));
        }
        h.sort_by(f64::total_cmp);
        let seq = seq_scan_ms(pool, histogram::volume_query("", day, &empty, bucket)).await?;
        // The same count from the rows alone (what the histogram did before the rollup held
        // its minutes, and still does for filtered ones).
        let mut rows_only = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            let _: Vec<histogram::BucketRow> = histogram::volume_query("", day, &empty, bucket)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            rows_only.push(ms(s));
        }
        rows_only.sort_by(f64::total_cmp);
        let mut conn = pool.acquire().await?;
        let src = histogram::sources(day, &histogram::coverage(&mut conn).await?);
        drop(conn);
        println!(
            "24 h histogram ({} s buckets): median {:.1} ms ({} rolled spans, {} raw); \
             from the rows only {:.1} ms; seq scan {seq:.0} ms",
            bucket.num_seconds(),
            pct(&h, 0.5),
            src.rolled.len(),
            src.raw.len(),
            pct(&rows_only, 0.5)
        );
        ours.push(Ours {
            question: "24 h histogram".into(),
            ms: pct(&h, 0.5),
            seq_ms: seq,
        });
        report::figure(
            "history",
            "24h histogram",
            pct(&h, 0.5),
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );
        if o.explain {
            explain(
                pool,
                histogram::sourced_query("EXPLAIN (ANALYZE, BUFFERS) ", &src, bucket),
            )
            .await?;
        }

        // Each filter form's first page over the whole 30 days, newest first.
        for (text, _) in FILTER_FORMS {
            let f = filter::parse(text)?;
            let s = Instant::now();
            let n = history::page(pool, all, &f, history::Direction::Older, None, 100)
                .await?
                .len();
            let first = ms(s);
            let seq = seq_scan_ms(
                pool,
                history::page_query("", all, &f, None, history::Direction::Older, None, 100),
            )
            .await?;
            println!(
                "first page of {text:<28} {n:>3} lines {first:>8.1} ms; seq scan {seq:>8.0} ms"
            );
            ours.push(Ours {
                question: format!("first page {text}"),
                ms: first,
                seq_ms: seq,
            });
            report::figure(
                "history",
                &format!("first page {text}"),
                first,
                "ms",
                Some(("seq scan", seq)),
                &[Aim::AtMost(200.0)],
            );
            if o.explain {
                let mut conn = pool.acquire().await?;
                let open = opsdash::query::log_block::narrowing(
                    &mut conn,
                    &f,
                    Some(all.from),
                    Some(all.until),
                    Some(100),
                )
                .await?;
                drop(conn);
                explain(
                    pool,
                    history::page_query(
                        "EXPLAIN (ANALYZE, BUFFERS) ",
                        all,
                        &f,
                        open.as_ref(),
                        history::Direction::Older,
                        None,
                        100,
                    ),
                )
                .await?;
            }
        }

        // The audit trail filtered by actor.
        let f = filter::audit::parse_audit("actor:user42")?;
        let mut a = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            audit::search(pool, &f, None, 100).await?;
            a.push(ms(s));
        }
        a.sort_by(f64::total_cmp);
        let seq = seq_scan_ms(pool, audit::search_query("", &f, None, 100)).await?;
        println!(
            "audit by actor, first page: median {:.1} ms; seq scan {seq:.0} ms",
            pct(&a, 0.5)
        );
        report::figure(
            "history",
            "audit by actor",
            pct(&a, 0.5),
            "ms",
            Some(("seq scan", seq)),
            &[Aim::AtMost(100.0)],
        );
        ours.push(Ours {
            question: "audit by actor:user42".into(),
            ms: pct(&a, 0.5),
            seq_ms: seq,
        });

        // lnav last: its failure (or absence) must not cost the figures above.
        if o.lnav_rows > 0 {
            if let Err(e) = lnav::compare(pool, &o, now, bucket, &ours).await {
                println!("lnav comparison not made: {e:#}");
            }
        }
        anyhow::Ok(())
    })
}

/// lnav on the same lines: written as JSON lines its format files describe, asked the same
/// questions headless (`lnav -n -c ...`), one process per question as an operator would run it,
/// so each time includes lnav reading and indexing the file (shown alone as "open the file").
mod lnav {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Instant;

    use anyhow::{bail, Context, Result};
    use chrono::{DateTime, Duration, Utc};
    use futures::TryStreamExt;
    use rand::{Rng, SeedableRng};
    use sqlx::PgPool;

    use super::{ms, pct, Opts, Ours, FILTER_FORMS};

    /// The log lines' format: `ts` ISO 8601 in UTC, lnav's level names, the rest as fields the
    /// filters reach (hidden, so each line prints as one line).
    const LOG_FORMAT: &str = r#"{
  "$schema": "https://lnav.org/schemas/format-v1.schema.json",
  "opsdash_log": {
    "title": "opsdash log lines",
    "description": "opsdash.log_event rows as JSON lines",
    "json": true,
    "file-pattern": "\\.log\\.jsonl$",
    "timestamp-field": "ts",
    "level-field": "level",
    "body-field": "message",
    "value": {
      "ts": { "kind": "string" },
      "level": { "kind": "string" },
      "service": { "kind": "string", "identifier": true },
      "host": { "kind": "string", "identifier": true, "hidden": true },
      "message": { "kind": "string" },
      "status": { "kind": "integer", "hidden": true },
      "duration_ms": { "kind": "float", "hidden": true },
      "ip": { "kind": "string", "hidden": true },
      "repeat": { "kind": "integer", "hidden": true },
      "attrs": { "kind": "json", "hidden": true }
    },
    "line-format": [
      { "field": "ts" }, " ", { "field": "level" }, " ", { "field": "service" }, " ",
      { "field": "message" }
    ]
  }
}
"#;

    const AUDIT_FORMAT: &str = r#"{
  "$schema": "https://lnav.org/schemas/format-v1.schema.json",
  "opsdash_audit": {
    "title": "opsdash audit trail",
    "description": "opsdash.audit_event rows as JSON lines",
    "json": true,
    "file-pattern": "\\.audit\\.jsonl$",
    "timestamp-field": "ts",
    "body-field": "action",
    "value": {
      "ts": { "kind": "string" },
      "actor": { "kind": "string", "identifier": true },
      "action": { "kind": "string" },
      "resource_type": { "kind": "string" },
      "resource_id": { "kind": "string" },
      "outcome": { "kind": "string" },
      "ip": { "kind": "string", "hidden": true }
    },
    "line-format": [
      { "field": "ts" }, " ", { "field": "actor" }, " ", { "field": "action" }, " ",
      { "field": "resource_type" }, "/", { "field": "resource_id" }, " ", { "field": "outcome" }
    ]
  }
}
"#;

    /// lnav's time literal (it reads times in TZ, which the runs set to UTC).
    fn lnav_time(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    struct Lnav {
        home: tempfile::TempDir,
    }

    impl Lnav {
        fn command(&self) -> Command {
            let mut c = Command::new("lnav");
            c.env("HOME", self.home.path()).env("TZ", "UTC");
            c
        }

        /// Runs `lnav -n -c CMD FILE` and returns its wall time (ms) and how many lines it
        /// printed (for a SQL query, without the header line).
        fn time(&self, cmd: &str, file: &Path) -> Result<(f64, usize)> {
            let t = Instant::now();
            let out = self
                .command()
                .arg("-n")
                .arg("-c")
                .arg(cmd)
                .arg(file)
                .output()
                .context("running lnav")?;
            let d = ms(t);
            if !out.status.success() {
                bail!(
                    "lnav {cmd:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
            Ok((d, lines.saturating_sub(usize::from(cmd.starts_with(';')))))
        }
    }

    /// Writes the rows `select` returns (one JSON text each) as lines of `path`.
    async fn write_lines(pool: &PgPool, select: &str, n: i64, path: &Path) -> Result<u64> {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut rows = sqlx::query_scalar::<_, String>(select).bind(n).fetch(pool);
        let mut count = 0;
        while let Some(line) = rows.try_next().await? {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            count += 1;
        }
        out.flush()?;
        Ok(count)
    }

    pub async fn compare(
        pool: &PgPool,
        o: &Opts,
        now: DateTime<Utc>,
        bucket: Duration,
        ours: &[Ours],
    ) -> Result<()> {
        let version = match Command::new("lnav").arg("-V").output() {
            Ok(v) if v.status.success() => String::from_utf8_lossy(&v.stdout).trim().to_string(),
            _ => bail!("lnav is not on PATH (apt-get install lnav)"),
        };
        let lnav = Lnav {
            home: tempfile::tempdir()?,
        };
        let dir = tempfile::tempdir()?;
        for (name, text) in [("log", LOG_FORMAT), ("audit", AUDIT_FORMAT)] {
            let f = dir.path().join(format!("opsdash_{name}.json"));
            std::fs::write(&f, text)?;
            let out = lnav.command().arg("-i").arg(&f).output()?;
            if !out.status.success() {
                bail!(
                    "lnav -i {name} format: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }

        // The first lnav_rows rows by id: the generator spread them over all 30 days.
        let logs: PathBuf = dir.path().join("opsdash.log.jsonl");
        let audit: PathBuf = dir.path().join("opsdash.audit.jsonl");
        let t = Instant::now();
        let n_logs = write_lines(
            pool,
            r#"SELECT json_build_object(
                      'ts', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                      'level', CASE WHEN level <= 0 THEN 'trace' WHEN level = 1 THEN 'debug'
                                    WHEN level = 2 THEN 'info' WHEN level = 3 THEN 'warning'
                                    WHEN level = 4 THEN 'error' ELSE 'fatal' END,
                      'service', service, 'host', host, 'message', message, 'status', status,
                      'duration_ms', duration_ms, 'ip', ip, 'repeat', repeat_count,
                      'attrs', attrs)::text
                 FROM opsdash.log_event
                WHERE id < (SELECT min(id) FROM opsdash.log_event) + $1
                ORDER BY ts, id"#,
            o.lnav_rows,
            &logs,
        )
        .await?;
        let n_audit = write_lines(
            pool,
            r#"SELECT json_build_object(
                      'ts', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                      'actor', actor, 'action', action, 'resource_type', resource_type,
                      'resource_id', resource_id, 'outcome', outcome, 'ip', ip)::text
                 FROM opsdash.audit_event
                WHERE id < (SELECT min(id) FROM opsdash.audit_event) + $1
                ORDER BY ts, id"#,
            o.lnav_rows,
            &audit,
        )
        .await?;
        let size = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.len() / 1_000_000)
                .unwrap_or(0)
        };
        println!(
            "\nlnav ({version}, headless): {n_logs} log lines ({} MB) and {n_audit} audit rows \
             ({} MB) written as JSON lines in {:.0} s",
            size(&logs),
            size(&audit),
            t.elapsed().as_secs_f64()
        );

        let (open, _) = lnav.time(";SELECT 1", &logs)?;
        println!("  open the file (read and index, no question): {open:.0} ms");

        // Rows: question, lnav ms, lines lnav printed.
        let mut rows: Vec<(String, f64, usize)> = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let mut pages = Vec::new();
        let mut page_lines = 0;
        for _ in 0..o.lnav_pages.max(1) {
            let at = now - Duration::seconds(rng.gen_range(0..30 * 86400));
            let (d, n) = lnav.time(
                &format!(
                    ";SELECT log_time, log_level, log_body FROM opsdash_log
                      WHERE log_time >= '{}' LIMIT 100",
                    lnav_time(at)
                ),
                &logs,
            )?;
            pages.push(d);
            page_lines = n;
        }
        pages.sort_by(f64::total_cmp);
        rows.push((
            "page of 100 at a random point (p50)".into(),
            pct(&pages, 0.5),
            page_lines,
        ));
        let minutes = (bucket.num_seconds() / 60).max(1);
        rows.push({
            let (d, n) = lnav.time(
                &format!(
                    ";SELECT timeslice(log_time_msecs, '{minutes}m') AS bucket, log_level,
                             count(*) FROM opsdash_log WHERE log_time >= '{}'
                      GROUP BY bucket, log_level",
                    lnav_time(now - Duration::hours(24))
                ),
                &logs,
            )?;
            ("24 h histogram".into(), d, n)
        });
        for (text, cmd) in FILTER_FORMS {
            let (d, n) = lnav.time(cmd, &logs)?;
            rows.push((format!("first page {text}"), d, n));
        }
        let (d, n) = lnav.time(":filter-expr :actor = 'user42'", &audit)?;
        rows.push(("audit by actor:user42".into(), d, n));

        println!(
            "\n  {:<42} {:>12} {:>12} {:>12} {:>10}",
            "question", "opsdash ms", "seq scan ms", "lnav ms", "lnav lines"
        );
        println!(
            "  {:<42} {:>12} {:>12} {:>12} {:>10}",
            "",
            format!("{} rows", o.rows),
            format!("{} rows", o.rows),
            format!("{n_logs} rows"),
            ""
        );
        for (q, d, n) in &rows {
            let mine = ours.iter().find(|x| &x.question == q);
            let cell = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
            println!(
                "  {q:<42} {:>12} {:>12} {d:>12.0} {n:>10}",
                cell(mine.map(|m| m.ms)),
                cell(mine.map(|m| m.seq_ms)),
            );
            super::report::figure("history", &format!("lnav {q}"), *d, "ms", None, &[]);
        }
        println!(
            "  (lnav prints every matching line of the file, not a page: its \"lines\" are all it \
             found; its audit file holds {n_audit} rows)"
        );
        Ok(())
    }
}
