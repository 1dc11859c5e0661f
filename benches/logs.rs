//! Logs benchmark: live-tail latency (line stored -> line delivered) at fixed write rates with
//! the CPU the tail costs, against a poll-only tail; and filtered searches on N rows against a
//! sequential ILIKE scan of the same search, two ways:
//! - the Logs tab's filtered view as the product runs it: the filter goes to a running tail
//!   engine (`TailHandle::set_filter`, as the tab does), which refills its buffer
//!   (`query::logs::tail_last` over the tail window, newest `ui.tail_buffer` lines, on the
//!   reader's own connection without JIT); timed from the call to the `Reset` with the lines;
//! - `query::logs::page`, the first 100 lines newest first (the query shape; no screen calls it).
//!
//! cargo bench --bench logs -- [--rows 1000000] [--secs 5] [--rates 5000,20000]
//!                             [--skip-tail] [--skip-search] [--explain] [--open-day]
//! The database is a throwaway embedded cluster (or OPSDASH_TEST_DATABASE_URL). The search rows
//! are loaded as the ingest writer writes them (a COPY and its block summary per batch of
//! `ingest.batch_size` rows), then the worker's seal job builds the ended days' search indexes,
//! as in production (today's rows are searched through their blocks); 10M rows (`--rows 10000000 --skip-tail`) take about 10 minutes on
//! 2 cores, with progress printed every million.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::Utc;
use opsdash::config::Config;
use opsdash::db::copy::CopyBuf;
use opsdash::db::testkit::TestDb;
use opsdash::db::{Db, LOGS_CHANNEL};
use opsdash::filter::{self, Filter};
use opsdash::ingest::log_batch::LogBuf;
use opsdash::model::log_row::LogRowRef;
use opsdash::query::logs::{self, TailCursor};
use opsdash::tail::{self, TailEvent, TailHandle, TailOptions};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use tokio::sync::mpsc;

#[path = "common/report.rs"]
mod report;
use report::Aim;

struct Opts {
    rows: usize,
    secs: u64,
    rates: Vec<usize>,
    tail: bool,
    search: bool,
    /// Print each search's plan (EXPLAIN ANALYZE) after its timings.
    explain: bool,
    /// Every row in today's partition (stamped since midnight), which has no search index
    /// until the day ends: the worst case for the blocks (a big file ingested during the day).
    open_day: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        rows: 1_000_000,
        secs: 5,
        rates: vec![5_000, 20_000],
        tail: true,
        search: true,
        explain: false,
        open_day: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rows" => o.rows = next.parse().unwrap_or(o.rows),
            "--secs" => o.secs = next.parse().unwrap_or(o.secs),
            "--rates" => {
                o.rates = next.split(',').filter_map(|r| r.parse().ok()).collect();
            }
            "--skip-tail" => o.tail = false,
            "--skip-search" => o.search = false,
            "--explain" => o.explain = true,
            "--open-day" => o.open_day = true,
            _ => {}
        }
        i += 1;
    }
    o
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Writes `rate` lines/s for `secs` in batches every 10 ms (one NOTIFY per batch).
async fn writer(db: Db, rate: usize, secs: u64) -> Result<usize> {
    let per_batch = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut written = 0;
    // A connection of its own: a pooled one may have been opened by the tail thread's runtime,
    // which shuts down once the tail has seen `rate * secs` lines, possibly before this writer's
    // last batch ("A Tokio 1.x context was found, but it is being shutdown").
    let mut conn = PgConnection::connect_with(&db.write.connect_options()).await?;
    let mut buf = CopyBuf::with_capacity(per_batch * 120);
    while Instant::now() < end {
        tick.tick().await;
        buf.clear();
        let now = Utc::now();
        for k in 0..per_batch {
            buf.ts(now);
            buf.plain(2);
            buf.text("bench");
            buf.text(&format!("tail bench line {}", written + k));
            buf.end_row();
        }
        sqlx::query("BEGIN").execute(&mut conn).await?;
        buf.send(
            &mut conn,
            "opsdash.log_event",
            &["ts", "level", "service", "message"],
        )
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(LOGS_CHANNEL)
            .execute(&mut conn)
            .await?;
        sqlx::query("COMMIT").execute(&mut conn).await?;
        written += per_batch;
    }
    Ok(written)
}

/// Runs the tail on a thread of its own (so its CPU time is measurable) while the writer runs;
/// returns per-line latencies in ms and the tail thread's CPU time.
fn tail_run(
    db: &Db,
    rate: usize,
    secs: u64,
    listen: bool,
    coalesce: Duration,
) -> Result<(Vec<f64>, usize, Duration)> {
    let tail_db = db.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let expected = rate * secs as usize;
    let tail_thread = std::thread::spawn(move || -> Result<(Vec<f64>, Duration)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut opts = TailOptions::new(10_000);
            opts.initial_fill = false;
            opts.listen = listen;
            opts.coalesce = coalesce;
            let (_h, mut rx) = tail::spawn(&tail_db, opts);
            // Wait for the start (and the listener) before the writer begins.
            let (mut filled, mut listening) = (false, !listen);
            while !(filled && listening) {
                match rx.recv().await {
                    Some(TailEvent::Reset(_)) => filled = true,
                    Some(TailEvent::Listening { .. }) => listening = true,
                    Some(_) => {}
                    None => break,
                }
            }
            let _ = ready_tx.send(());
            let cpu0 = thread_cpu();
            let mut lat = Vec::with_capacity(expected + 1000);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs + 5);
            while lat.len() < expected {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(TailEvent::Lines(lines))) => {
                        let now = Utc::now();
                        for l in lines {
                            lat.push((now - l.ts).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            Ok((lat, thread_cpu() - cpu0))
        })
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let written = rt.block_on(writer(db.clone(), rate, secs))?;
    let (mut lat, cpu) = tail_thread
        .join()
        .map_err(|_| anyhow::anyhow!("tail thread panicked"))??;
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((lat, written, cpu))
}

fn bench_tail(o: &Opts) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "== live tail: line stored -> line delivered (ms), {} s per rate",
        o.secs
    );
    println!(
        "{:>8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "rate/s", "mode", "lines", "p50", "p99", "max", "tail CPU"
    );
    // (rate, p50, p99, CPU %) per run, for the report: per rate the first run is the tail as
    // shipped, the last the poll-only baseline.
    let mut figures: Vec<(usize, f64, f64, f64)> = Vec::new();
    for &rate in &o.rates {
        // notify: as shipped (reads coalesced 25 ms apart); notify/0: a read per wake-up (as
        // before the coalescing); poll 1s: no LISTEN at all.
        let coalesced = TailOptions::new(1).coalesce;
        for (mode, listen, coalesce) in [
            ("notify", true, coalesced),
            ("notify/0", true, Duration::ZERO),
            ("poll 1s", false, coalesced),
        ] {
            let t = rt.block_on(TestDb::new())?;
            let (lat, written, cpu) = tail_run(&t.db, rate, o.secs, listen, coalesce)?;
            println!(
                "{:>8} {:>10} {:>9} {:>9.1} {:>9.1} {:>10.1} {:>9.1}%",
                rate,
                mode,
                format!("{}/{}", lat.len(), written),
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                lat.last().copied().unwrap_or(f64::NAN),
                cpu.as_secs_f64() * 100.0 / o.secs as f64,
            );
            figures.push((
                rate,
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                cpu.as_secs_f64() * 100.0 / o.secs as f64,
            ));
        }
    }
    for &rate in &o.rates {
        let runs: Vec<_> = figures.iter().filter(|f| f.0 == rate).copied().collect();
        if let [(_, p50, p99, cpu), .., (_, poll50, poll99, poll_cpu)] = runs[..] {
            let at = format!("at {} lines/s", report::size(rate as u64));
            let base = "poll every 1 s";
            let tail = "live tail";
            report::figure(
                tail,
                &format!("stored -> delivered p50 {at}"),
                p50,
                "ms",
                Some((base, poll50)),
                &[Aim::AtMost(50.0)],
            );
            report::figure(
                tail,
                &format!("stored -> delivered p99 {at}"),
                p99,
                "ms",
                Some((base, poll99)),
                &[Aim::AtMost(150.0)],
            );
            let cpu_aim: &[Aim] = if rate == 10_000 {
                &[Aim::AtMost(5.0)]
            } else {
                &[]
            };
            report::figure(
                tail,
                &format!("tail engine CPU {at}"),
                cpu,
                "% of a core",
                Some((base, poll_cpu)),
                cpu_aim,
            );
        }
    }
    Ok(())
}

const WORDS: &[&str] = &[
    "request",
    "served",
    "user",
    "login",
    "cache",
    "miss",
    "hit",
    "payment",
    "order",
    "created",
    "updated",
    "queue",
    "job",
    "done",
    "retry",
    "connection",
    "pool",
    "slow",
    "query",
    "render",
];

async fn load(db: &Db, rows: usize, open_day: bool) -> Result<()> {
    sqlx::query("SELECT opsdash.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 7, (now() AT TIME ZONE 'UTC')::date)")
        .execute(&db.write)
        .await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut conn = db.write.acquire().await?;
    let now = Utc::now();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let span_ms = if open_day {
        (now - midnight).num_milliseconds().max(1)
    } else {
        7 * 86_400_000i64
    };
    // One transaction per writer batch (`ingest.batch_size`'s default), each with its block
    // summary, as `opsdash ingest` writes.
    let chunk = Config::default().ingest.batch_size;
    let mut done = 0;
    let t0 = Instant::now();
    while done < rows {
        let n = chunk.min(rows - done);
        let mut buf = LogBuf::with_capacity(n * 160);
        for i in 0..n {
            let k = done + i;
            // Spread over 7 days (or today so far), newest rows last.
            let ts =
                now - chrono::Duration::milliseconds(span_ms - (k as i64 * span_ms / rows as i64));
            let level: i16 = match rng.gen_range(0..100) {
                0..=9 => 1,
                10..=84 => 2,
                85..=94 => 3,
                95..=98 => 4,
                _ => 5,
            };
            let mut msg = String::new();
            for w in 0..rng.gen_range(4..10) {
                if w > 0 {
                    msg.push(' ');
                }
                msg.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
            }
            // A rare word (1 in 10,000 rows) and a rare trace id, to search for.
            if k % 10_000 == 7 {
                msg.push_str(" deadlock detected");
            }
            // A rare word that only appears inside a path.
            if k % 10_000 == 3 {
                msg.push_str(" GET /api/users/42/orders");
            }
            let service = format!("svc-{}", rng.gen_range(0..20));
            let trace = format!("{:016x}", rng.gen::<u64>());
            let level = opsdash::model::Level::from_i16(level);
            buf.push_row(&LogRowRef {
                trace_id: Some(&trace),
                ..LogRowRef::new(ts, level, &service, &msg)
            });
        }
        let mut tx = conn.begin().await?;
        buf.send(&mut tx, "opsdash.log_event").await?;
        tx.commit().await?;
        done += n;
        // 10M rows take minutes on a small machine: show that it moves.
        if done % 1_000_000 == 0 && done < rows {
            println!(
                "  loaded {done} of {rows} rows ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "loaded {rows} rows in {:.1} s ({:.0} rows/s, COPY in batches of {chunk})",
        t0.elapsed().as_secs_f64(),
        rows as f64 / t0.elapsed().as_secs_f64()
    );
    // As the worker does in production: the days that have ended get their search indexes;
    // today's rows are searched through their blocks.
    let t1 = Instant::now();
    let sealed = opsdash::worker::seal::run_once(db, Duration::ZERO).await?;
    println!(
        "sealed {} ended days in {:.1} s",
        sealed.sealed.len(),
        t1.elapsed().as_secs_f64()
    );
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn parse(text: &str) -> Result<Filter> {
    filter::parse(text).map_err(|e| anyhow::anyhow!("{text}: {e}"))
}

/// First run and median of timings in ms (`RUNS` of them), with the rows of the last run.
struct Timings {
    times: Vec<f64>,
    rows: usize,
}

impl Timings {
    fn new() -> Timings {
        Timings {
            times: Vec::with_capacity(RUNS),
            rows: 0,
        }
    }

    fn add(&mut self, since: Instant, rows: usize) {
        self.times.push(since.elapsed().as_secs_f64() * 1000.0);
        self.rows = rows;
    }

    fn summary(mut self) -> (f64, f64, usize) {
        let first = self.times[0];
        self.times.sort_by(|a, b| a.total_cmp(b));
        (first, self.times[self.times.len() / 2], self.rows)
    }
}

/// Prints the plan of `qb` (built with an `EXPLAIN (ANALYZE, BUFFERS) ` prefix) as run on `conn`.
async fn print_plan(conn: &mut PgConnection, mut qb: QueryBuilder<'_, Postgres>) -> Result<()> {
    let plan: Vec<String> = qb.build_query_scalar().fetch_all(conn).await?;
    println!("    {}", plan.join("\n    "));
    Ok(())
}

const EXPLAIN: &str = "EXPLAIN (ANALYZE, BUFFERS) ";

/// The tail engine as the Logs tab runs it (`tui::tabs::logs`: listening, the configured
/// buffer and floor), opened with no filter.
struct Engine {
    handle: TailHandle,
    events: mpsc::Receiver<TailEvent>,
    opts: TailOptions,
    /// The engine's floor, give or take the instant between this and the engine's own clock.
    floor: chrono::DateTime<Utc>,
}

impl Engine {
    fn spawn(db: &Db) -> Engine {
        let cfg = Config::default();
        let mut opts = TailOptions::new(cfg.ui.tail_buffer.max(100));
        opts.floor_margin = Duration::from_secs(u64::from(cfg.logs.tail_floor_hours) * 3600);
        opts.filter = Some(Filter::default());
        // The tab uses the database's query timeout (5 s by default), after which a fill is
        // an error it retries forever. Here a slow fill is timed whatever it takes.
        opts.query_timeout = Duration::from_secs(120);
        let floor = Utc::now() - chrono::Duration::from_std(opts.floor_margin).unwrap_or_default();
        let (handle, events) = tail::spawn(db, opts.clone());
        Engine {
            handle,
            events,
            opts,
            floor,
        }
    }

    /// The lines of the next fill (the engine's `Reset`).
    async fn next_fill(&mut self) -> Result<Vec<logs::LogLine>> {
        loop {
            match self.events.recv().await {
                Some(TailEvent::Reset(lines)) => return Ok(lines),
                Some(TailEvent::Error(e)) => bail!(e),
                Some(_) => {}
                None => bail!("the tail engine stopped"),
            }
        }
    }

    /// Applies `f` as the tab does and waits for its lines.
    async fn fill(&mut self, f: &Filter) -> Result<usize> {
        self.handle.set_filter(Some(f.clone()));
        Ok(self.next_fill().await?.len())
    }

    /// The fill's plan, on a connection configured like the engine's reader.
    async fn explain(&self, db: &Db, f: &Filter) -> Result<()> {
        let mut conn = PgConnection::connect_with(&tail::reader_options(db)).await?;
        let snap = logs::snapshot(&mut conn).await?;
        // As `tail_last` runs it: with the blocks' narrowing, in one snapshot.
        let mut tx = conn.begin().await?;
        opsdash::query::log_block::one_snapshot(&mut tx).await?;
        let open = opsdash::query::log_block::narrowing(
            &mut tx,
            f,
            Some(self.floor),
            None,
            Some(self.opts.capacity as i64),
        )
        .await?;
        let qb = logs::tail_query(
            EXPLAIN,
            TailCursor::default(),
            &snap,
            self.floor,
            Some(f),
            logs::TailOrder::Newest(open.as_ref()),
            self.opts.capacity as i64,
        );
        print_plan(&mut tx, qb).await?;
        tx.rollback().await?;
        conn.close().await?;
        Ok(())
    }
}

/// Reports each figure of `medians` against the ILIKE scan of the same kind (rare or common
/// word) measured the same way.
fn report_against_scans(what: &str, rows: usize, medians: &[(&str, f64)]) {
    let median_of = |label: &str| {
        medians
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(f64::NAN, |(_, m)| *m)
    };
    let rare_scan = median_of("baseline: rare word, ILIKE scan");
    let common_scan = median_of("baseline: common word, ILIKE scan");
    for (label, median) in medians {
        if label.starts_with("baseline") {
            continue;
        }
        let (base, v) = if label.contains("common") {
            ("ILIKE scan, common word", common_scan)
        } else {
            ("ILIKE scan, rare word", rare_scan)
        };
        report::figure(
            "Logs tab",
            &format!("{what}, {label}, {} rows", report::size(rows as u64)),
            *median,
            "ms",
            Some((base, v)),
            &[Aim::AtMost(200.0)],
        );
    }
}

fn print_row(label: &str, text: &str, (first, median, n): (f64, f64, usize)) {
    println!(
        "{:<44} {:>9.1} {:>9.1} {:>6}",
        if text.is_empty() {
            label.to_string()
        } else {
            format!("{label} ({})", truncate(text, 14))
        },
        first,
        median,
        n
    );
}

const RUNS: usize = 5;

async fn bench_search(o: &Opts) -> Result<()> {
    let t = TestDb::new().await?;
    load(&t.db, o.rows, o.open_day).await?;
    let trace: String = sqlx::query_scalar(
        "SELECT trace_id FROM opsdash.log_event ORDER BY ts LIMIT 1 OFFSET 12345",
    )
    .fetch_one(&t.db.read)
    .await?;
    // The trace id the page finds is a week old, outside the tail's window: the fill looks
    // for one the window holds (the newest row's, so some line matches at any size).
    let recent_trace: String = sqlx::query_scalar(
        "SELECT trace_id FROM opsdash.log_event ORDER BY ts DESC LIMIT 1 OFFSET 12345",
    )
    .fetch_one(&t.db.read)
    .await?;
    let cases = |trace: &str| {
        [
            ("indexed: trace id", format!("trace:{trace}")),
            (
                "indexed: service + level",
                "service:svc-3 level:fatal".to_string(),
            ),
            ("full text: rare word", "deadlock".to_string()),
            (
                "full text: rare phrase",
                "\"deadlock detected\"".to_string(),
            ),
            ("full text: common word", "payment".to_string()),
            ("full text: word inside a path", "orders".to_string()),
            (
                "baseline: word inside a path, ILIKE",
                "*orders*".to_string(),
            ),
            ("baseline: rare word, ILIKE scan", "*deadlock*".to_string()),
            ("baseline: common word, ILIKE scan", "*payment*".to_string()),
        ]
    };

    // The product's path first, on a database no search has warmed yet.
    let mut engine = Engine::spawn(&t.db);
    let t0 = Instant::now();
    let opened = engine.next_fill().await?.len();
    let opened_ms = t0.elapsed().as_secs_f64() * 1000.0;
    println!(
        "== Logs tab filtered view: the tail's fill (newest {} lines of the last {} h), {} rows (ms)",
        engine.opts.capacity,
        engine.opts.floor_margin.as_secs() / 3600,
        o.rows
    );
    println!(
        "{:<44} {:>9} {:>9} {:>6}",
        "filter", "first", "median", "rows"
    );
    print_row(
        "tab opened, no filter (engine start)",
        "",
        (opened_ms, opened_ms, opened),
    );
    let mut fill_medians = Vec::new();
    for (label, text) in cases(&recent_trace) {
        let f = parse(&text)?;
        let mut runs = Timings::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let n = engine.fill(&f).await?;
            runs.add(t, n);
        }
        let timing = runs.summary();
        fill_medians.push((label, timing.1));
        print_row(label, &text, timing);
        if timing.1 > Config::default().database.query_timeout_ms as f64 {
            println!("    slower than the default query timeout: the tab would show an error");
        }
        if o.explain {
            engine.explain(&t.db, &f).await?;
        }
    }
    drop(engine);

    println!(
        "== first page (100 lines, newest first) of a filtered search on {} rows (ms)",
        o.rows
    );
    println!(
        "{:<44} {:>9} {:>9} {:>6}",
        "filter", "first", "median", "rows"
    );
    let mut page_medians = Vec::new();
    for (label, text) in cases(&trace) {
        let f = parse(&text)?;
        let mut runs = Timings::new();
        for _ in 0..RUNS {
            let t0 = Instant::now();
            let n = logs::page(&t.db.read, &f, None, 100).await?.len();
            runs.add(t0, n);
        }
        let timing = runs.summary();
        page_medians.push((label, timing.1));
        print_row(label, &text, timing);
        if o.explain {
            // As `logs::page` runs it: in a transaction without JIT.
            let mut tx = t.db.read.begin().await?;
            opsdash::query::log_block::one_snapshot(&mut tx).await?;
            logs::no_jit(&mut tx).await?;
            let (since, until) = f.time_bounds(chrono::Utc::now());
            let open =
                opsdash::query::log_block::narrowing(&mut tx, &f, since, until, Some(100)).await?;
            print_plan(
                &mut tx,
                logs::page_query(EXPLAIN, &f, open.as_ref(), None, 100),
            )
            .await?;
            tx.rollback().await?;
        }
    }
    let lines = report::size(Config::default().ui.tail_buffer as u64);
    report_against_scans(
        &format!("filtered view (tail fill, {lines} lines)"),
        o.rows,
        &fill_medians,
    );
    report_against_scans("first page", o.rows, &page_medians);
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

fn main() -> Result<()> {
    let o = opts();
    if o.tail {
        bench_tail(&o)?;
    }
    if o.search {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(bench_search(&o))?;
    }
    Ok(())
}
