//! TUI figures on demo-sized data (release build): first full paint, idle CPU, resident memory,
//! bytes written to the terminal per second (idle and while data changes), each beside a
//! baseline measured in the same run. First paint is measured in process (all panel queries
//! concurrently on an open pool, results applied, one frame drawn) before and after the KPI
//! rollups exist, and end to end: the real binary launched in tmux until every KPI counter shows
//! a value (process start, connecting, migrations check, the in-process worker starting too).
//!
//!   cargo bench --bench tui                   # 1,000,000 request rows
//!   TUI_BENCH_ROWS=100000 cargo bench --bench tui
//!   TUI_BENCH_SECS=10 (measurement window for CPU and bytes, default 10)
//!   TUI_BENCH_COMPARE_BIN=/path/to/other/opsdash [TUI_BENCH_COMPARE_MIGRATIONS=11]: also the
//!     idle CPU of another build (before/after a change) in the same run, see `compare_idle`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdash::config::Config;
use opsdash::db::testkit::TestCluster;
use opsdash::tui::app::{update, App, AppOptions, Effect};
use opsdash::tui::event::Event;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

#[path = "common/report.rs"]
mod report;
use report::Aim;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn generate(db: &opsdash::db::Db, rows: u64) -> anyhow::Result<()> {
    // Requests spread over the last 48 h (so the 1 h range holds rows/48), 2% 5xx, 1% slow;
    // log lines and queries in proportion.
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, user_id, direction, integration)
         SELECT now() - (i * (172800.0 / $1)) * interval '1 second',
                'svc' || (i % 8), CASE WHEN i % 5 = 0 THEN 'POST' ELSE 'GET' END,
                '/api/r' || (i % 40),
                CASE WHEN i % 50 = 0 THEN 503 WHEN i % 23 = 0 THEN 404 ELSE 200 END,
                CASE WHEN i % 100 = 0 THEN 1500 + i % 900 ELSE 5 + (i % 300) END,
                'user' || (i % 5000),
                CASE WHEN i % 20 = 0 THEN 'outbound' ELSE 'inbound' END,
                CASE WHEN i % 20 = 0 THEN 'partner' || (i % 3) END
           FROM generate_series(1, $1::int8) i",
    )
    .bind(rows as i64)
    .execute(&db.write)
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now() - (i * (172800.0 / $1)) * interval '1 second', (i % 6)::int2,
                'svc' || (i % 8), 'message number ' || i
           FROM generate_series(1, $1::int8) i",
    )
    .bind((rows / 4) as i64)
    .execute(&db.write)
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms)
         SELECT now() - (i * (172800.0 / $1)) * interval '1 second', 'svc' || (i % 8),
                'SELECT * FROM t WHERE id = $1', 'fp' || (i % 50), (i % 900)::float8
           FROM generate_series(1, $1::int8) i",
    )
    .bind((rows / 10) as i64)
    .execute(&db.write)
    .await?;
    sqlx::query("ANALYZE").execute(&db.write).await?;
    Ok(())
}

/// Runs the start effects concurrently (as the runner does), feeds the results back, draws.
async fn first_paint(db: &opsdash::db::Db, tab_key: Option<char>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut app = App::new(
        db.clone(),
        Arc::new(Config::default()),
        AppOptions {
            no_color: false,
            instance: "bench".into(),
            config_dir: None,
        },
    );
    let mut effects = app.start();
    if let Some(c) = tab_key {
        effects = update(
            &mut app,
            Event::Input(ratatui::crossterm::event::Event::Key(
                ratatui::crossterm::event::KeyEvent::new(
                    ratatui::crossterm::event::KeyCode::Char(c),
                    ratatui::crossterm::event::KeyModifiers::NONE,
                ),
            )),
        );
    }
    let timeout = Duration::from_secs(60);
    let futs = effects.into_iter().filter_map(|e| match e {
        Effect::Query(q) => Some(opsdash::tui::runner::run_inline(q, timeout)),
        _ => None,
    });
    let timed = futs.map(|f| async move {
        let t = Instant::now();
        let d = f.await;
        (t.elapsed(), d)
    });
    for (took, done) in futures::future::join_all(timed).await {
        match done.data.error() {
            Some(e) => eprintln!("  query {} failed: {e}", done.panel),
            None => println!("    panel {:<13} {}", done.panel, ms(took)),
        }
        update(&mut app, Event::Query(done));
    }
    let mut term = Terminal::new(TestBackend::new(120, 40))?;
    term.draw(|f| opsdash::tui::draw::draw(&app, f))?;
    Ok(started.elapsed())
}

/// First full paint of the KPI tab with the shared range set to `range` (24h, 7d...).
async fn range_paint(db: &opsdash::db::Db, range: &str) -> anyhow::Result<Duration> {
    let mut cfg = Config::default();
    cfg.ui.range = range.into();
    let started = Instant::now();
    let mut app = App::new(db.clone(), Arc::new(cfg), AppOptions::default());
    let effects = app.start();
    let futs = effects.into_iter().filter_map(|e| match e {
        Effect::Query(q) => Some(opsdash::tui::runner::run_inline(q, Duration::from_secs(60))),
        _ => None,
    });
    for done in futures::future::join_all(futs).await {
        if let Some(e) = done.data.error() {
            anyhow::bail!("query {} failed at range {range}: {e}", done.panel);
        }
        update(&mut app, Event::Query(done));
    }
    let mut term = Terminal::new(TestBackend::new(120, 40))?;
    term.draw(|f| opsdash::tui::draw::draw(&app, f))?;
    Ok(started.elapsed())
}

/// The KPI ranges whose paint is reported beside the raw-only path.
const LONG_RANGES: [&str; 2] = ["24h", "7d"];

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Tmux(String);
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `cmd` in a fresh 120x40 tmux session with its output also piped to `log`.
fn start_in_tmux(name: &str, cmd: &str, log: &std::path::Path) -> Tmux {
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", name])
        .output();
    let guard = Tmux(name.to_string());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "120",
        "-y",
        "40",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        name,
        &format!("cat >> {}", log.display()),
    ]);
    tmux(&["send-keys", "-t", name, "-l", cmd]);
    tmux(&["send-keys", "-t", name, "Enter"]);
    guard
}

fn child_pid(name: &str) -> Option<u32> {
    let shell = tmux(&["display-message", "-p", "-t", name, "#{pane_pid}"]);
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// CPU % of one core and bytes/s written to the terminal over `secs`.
fn measure(pid: u32, log: &std::path::Path, secs: u64) -> (f64, f64) {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (t0, b0, i0) = (cpu_ticks(pid).unwrap_or(0), file_len(log), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, b1) = (cpu_ticks(pid).unwrap_or(0), file_len(log));
    let el = i0.elapsed().as_secs_f64();
    ((t1 - t0) as f64 / hz / el * 100.0, (b1 - b0) as f64 / el)
}

fn main() -> anyhow::Result<()> {
    let rows = env_num("TUI_BENCH_ROWS", 1_000_000);
    let secs = env_num("TUI_BENCH_SECS", 10);
    let cluster = TestCluster::start("bench-tui")?;
    let url = cluster.url();
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    let rt = tokio::runtime::Runtime::new()?;
    let db = rt.block_on(opsdash::db::Db::from_options(
        opts.clone(),
        None,
        opsdash::db::DbTarget::External {
            redacted_url: "bench".into(),
        },
        8,
        Duration::from_secs(10),
        Duration::from_secs(60),
    ))?;
    let t = Instant::now();
    rt.block_on(generate(&db, rows))?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("machine load average at start: {}", load.trim());
    println!(
        "data: {rows} request rows, {} log lines, {} queries over 48 h (generated in {:.1} s)",
        rows / 4,
        rows / 10,
        t.elapsed().as_secs_f64()
    );

    // In-process first full paint (all panels answered, frame drawn): first with the rollup
    // job never run (every counter from raw rows: the baseline, as before the KPI rollups),
    // then after one rollup run (what the worker, running in the dashboard's own process,
    // keeps up to date), with raw rows only for the tail after it.
    rt.block_on(async {
        let base = Instant::now();
        sqlx::query("SELECT count(*) FROM opsdash.request_log")
            .execute(&db.read)
            .await?;
        let base = base.elapsed();
        let base_p = Instant::now();
        sqlx::query("SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM opsdash.request_log")
            .execute(&db.read)
            .await?;
        let base_p = base_p.elapsed();
        println!("baseline: count(*) over all request rows {}; p95 over all rows {}", ms(base), ms(base_p));
        // Warm the cache once, as a running database would be.
        let _ = first_paint(&db, None).await;
        println!("  raw rows only (rollup job never ran):");
        let raw = first_paint(&db, None).await?;
        println!("first full paint, KPI tab, raw rows only (baseline): {}", ms(raw));
        let mut raw_ranges = Vec::new();
        for range in LONG_RANGES {
            let _ = range_paint(&db, range).await?;
            let took = range_paint(&db, range).await?;
            println!("first full paint, KPI tab at range {range}, raw rows only (baseline): {}", ms(took));
            raw_ranges.push(took);
        }
        let t = Instant::now();
        let r = opsdash::worker::rollup::run_once(&db, chrono::Utc::now()).await?;
        println!(
            "rollup job, first run over all rows (not timed below; the worker does it): {:.1} s, {} minutes",
            t.elapsed().as_secs_f64(),
            r.minutes
        );
        let _ = first_paint(&db, None).await;
        println!("  rollups up to the last run, raw rows after it:");
        let kpi = first_paint(&db, None).await?;
        println!("first full paint, KPI tab (range 1h, 12 counters + chart + top endpoints), from rollups: {} (raw rows only: {})", ms(kpi), ms(raw));
        let health = first_paint(&db, Some('5')).await?;
        println!("first full paint, Health tab: {}", ms(health));
        let size = report::size(rows);
        let count_base = ("count(*) over all request rows", base.as_secs_f64() * 1000.0);
        let paint = |d: Duration| d.as_secs_f64() * 1000.0;
        report::figure("dashboard", &format!("first full paint, KPI tab, {size} requests"), paint(kpi), "ms", Some(("the same from raw rows only (no rollups)", paint(raw))), &[Aim::AtMost(300.0)]);
        report::figure("dashboard", &format!("first full paint, Health tab, {size} requests"), paint(health), "ms", Some(count_base), &[]);
        for (key, tab) in [('2', "Logs"), ('3', "Alerts"), ('4', "Performance")] {
            let took = first_paint(&db, Some(key)).await?;
            println!("first full paint, {tab} tab: {}", ms(took));
            let base = if tab == "Performance" {
                ("p95 percentile_cont over all rows", paint(base_p))
            } else {
                count_base
            };
            report::figure("dashboard", &format!("first full paint, {tab} tab, {size} requests"), paint(took), "ms", Some(base), &[]);
        }
        for (range, raw) in LONG_RANGES.into_iter().zip(raw_ranges) {
            // Warm, as the 1h paint above was.
            let _ = range_paint(&db, range).await?;
            let took = range_paint(&db, range).await?;
            println!("first full paint, KPI tab at range {range}, from rollups: {} (raw rows only: {})", ms(took), ms(raw));
            report::figure("dashboard", &format!("first full paint, KPI tab at range {range}, {size} requests"), paint(took), "ms", Some(("the same from raw rows only (no rollups)", paint(raw))), &[]);
        }
        anyhow::Ok(())
    })?;

    // The real binary in a real terminal.
    let dir = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_opsdash");
    let log = dir.path().join("opsdash.out");
    let name = format!("opsdash-bench-{}", std::process::id());
    let launched = Instant::now();
    let _s = start_in_tmux(
        &name,
        &format!("HOME={} {bin} --database-url '{url}'", dir.path().display()),
        &log,
    );
    wait_painted(&name)?;
    println!(
        "binary: launch to first full paint (process start, connect, migrations check, all KPI panels, via tmux polling every 10 ms): {}",
        ms(launched.elapsed())
    );
    report::figure(
        "dashboard",
        &format!(
            "binary: launch to first full paint, {} requests",
            report::size(rows)
        ),
        launched.elapsed().as_secs_f64() * 1000.0,
        "ms",
        None,
        &[Aim::AtMost(300.0)],
    );
    let pid = child_pid(&name).ok_or_else(|| anyhow::anyhow!("no opsdash pid"))?;
    std::thread::sleep(Duration::from_secs(2));
    // Right after the paint the in-process worker makes its first runs (rollup catch-up,
    // retention, health checks): measured apart from the settled idle that follows.
    let (cpu_start, bytes_start) = measure(pid, &log, secs);
    std::thread::sleep(Duration::from_secs(10));
    let (cpu_idle, bytes_idle) = measure(pid, &log, secs);
    let rss = rss_kb(pid).unwrap_or(0);
    // Data changing: a writer adds requests and log lines 10 times a second.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = sqlx::query(
                        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms)
                         SELECT now(), 'svc1', '/api/live', CASE WHEN g % 3 = 0 THEN 500 ELSE 200 END, g
                           FROM generate_series(1, 50) g",
                    )
                    .execute(&db.write)
                    .await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
    };
    let (cpu_busy, bytes_busy) = measure(pid, &log, secs);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    let rss_busy = rss_kb(pid).unwrap_or(0);
    let (cpu_tail, bytes_tail, tail_seen) = tailing(&db, &name, pid, &log, secs, BARE_LINES);
    let (cpu_full, _, full_seen) = tailing(&db, &name, pid, &log, secs, FULL_LINES);
    let cpu_full = if full_seen { cpu_full } else { f64::NAN };
    // A tail that never showed the lines measured nothing: its figures read n/a.
    let (cpu_tail, bytes_tail) = if tail_seen {
        (cpu_tail, bytes_tail)
    } else {
        eprintln!("the written log lines never reached the Logs tab's screen");
        (f64::NAN, f64::NAN)
    };
    let rss_tail = rss_kb(pid).unwrap_or(0);
    let quiet = after_quiet(&db, &[&log], 7).remove(0);
    tmux(&["send-keys", "-t", &name, "q"]);
    std::thread::sleep(Duration::from_millis(500));

    // Baseline: `top -d 1` in the same kind of terminal, the classic refresh-every-second TUI.
    let top_log = dir.path().join("top.out");
    let top_name = format!("opsdash-bench-top-{}", std::process::id());
    let _t = start_in_tmux(&top_name, "top -d 1", &top_log);
    std::thread::sleep(Duration::from_secs(2));
    let top_pid = child_pid(&top_name).ok_or_else(|| anyhow::anyhow!("no top pid"))?;
    let (top_cpu, top_bytes) = measure(top_pid, &top_log, secs);
    let top_rss = rss_kb(top_pid).unwrap_or(0);

    println!("after start ({secs} s, 120x40):  opsdash CPU {cpu_start:.2}% of a core, {bytes_start:.0} B/s to the terminal (the worker's first runs)");
    println!("idle ({secs} s, 120x40):         opsdash CPU {cpu_idle:.2}% of a core, {bytes_idle:.0} B/s to the terminal, RSS {:.1} MB", rss as f64 / 1024.0);
    println!("data changing ({secs} s):        opsdash CPU {cpu_busy:.2}% of a core, {bytes_busy:.0} B/s to the terminal, RSS {:.1} MB", rss_busy as f64 / 1024.0);
    println!("baseline `top -d 1` ({secs} s):  CPU {top_cpu:.2}% of a core, {top_bytes:.0} B/s to the terminal, RSS {:.1} MB", top_rss as f64 / 1024.0);
    println!("Logs tab tailing {TAIL_RATE} lines/s ({secs} s): opsdash CPU {cpu_tail:.2}% of a core, {bytes_tail:.0} B/s to the terminal (lines on screen: {tail_seen})");
    println!("Logs tab tailing {TAIL_RATE} lines/s of ingest-shaped lines, every field and attrs ({secs} s): opsdash CPU {cpu_full:.2}% of a core");
    println!(
        "Logs tab, one line after a quiet spell, stored -> in the terminal's output (real binary, its raw output read every 0.5 ms): {}",
        fmt_samples(&quiet)
    );
    let compared = match std::env::var("TUI_BENCH_COMPARE_BIN") {
        Ok(other) if !other.is_empty() => Some(compare_other(&rt, &db, &other, &url, secs)?),
        _ => None,
    };
    if let Some(o) = &compared {
        println!("{}, same data, same windows:", o.bin);
        println!(
            "  idle ({secs} s, 120x40): CPU {:.2}% of a core (this build: {cpu_idle:.2}%)",
            o.cpu_idle
        );
        println!("  Logs tab tailing {TAIL_RATE} lines/s ({secs} s): CPU {:.2}% of a core (this build: {cpu_tail:.2}%)", o.cpu_tail);
        println!("  Logs tab tailing {TAIL_RATE} lines/s of ingest-shaped lines ({secs} s): CPU {:.2}% of a core (this build: {cpu_full:.2}%)", o.cpu_full);
        println!(
            "  one line after a quiet spell: {} (this build: {})",
            fmt_samples(&o.quiet),
            fmt_samples(&quiet)
        );
        let (this, other) = &o.paired;
        // Signed: this build's time minus the other's on the same write.
        let mut diff: Vec<f64> = this
            .iter()
            .zip(other)
            .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
            .collect();
        diff.sort_by(f64::total_cmp);
        let this_first = diff.iter().filter(|d| **d < 0.0).count();
        println!(
            "  paired, both open on the same writes: this build {}; other {}; this minus other p50 {:+.1} ms; this build first in {this_first} of {}",
            fmt_samples(this),
            fmt_samples(other),
            diff.get(diff.len() / 2).copied().unwrap_or(f64::NAN),
            this.len()
        );
    }
    let top = "`top -d 1`";
    let d = "dashboard";
    report::figure(
        d,
        "CPU idle",
        cpu_idle,
        "% of a core",
        Some((top, top_cpu)),
        &[Aim::AtMost(0.5)],
    );
    report::figure(
        d,
        "CPU while data changes",
        cpu_busy,
        "% of a core",
        Some((top, top_cpu)),
        &[],
    );
    report::figure(
        d,
        &format!("CPU tailing {} lines/s (Logs tab)", report::size(TAIL_RATE)),
        cpu_tail,
        "% of a core",
        Some((top, top_cpu)),
        &[Aim::AtMost(5.0)],
    );
    report::figure(
        d,
        &format!(
            "CPU tailing {} lines/s (Logs tab), every field and attrs set",
            report::size(TAIL_RATE)
        ),
        cpu_full,
        "% of a core",
        Some((top, top_cpu)),
        &[Aim::AtMost(5.0)],
    );
    let other = |f: fn(&Other) -> f64| compared.as_ref().map(|o| (o.bin.as_str(), f(o)));
    report::figure(
        d,
        "Logs tab: a line after a quiet spell, stored -> terminal output, p50 (real binary)",
        median_ms(&quiet),
        "ms",
        other(|o| median_ms(&o.quiet)),
        &[Aim::AtMost(50.0)],
    );
    if compared.is_some() {
        report::figure(
            d,
            &format!(
                "CPU tailing {} lines/s (Logs tab), against another build",
                report::size(TAIL_RATE)
            ),
            cpu_tail,
            "% of a core",
            other(|o| o.cpu_tail),
            &[Aim::AtMost(5.0)],
        );
        report::figure(
            d,
            &format!(
                "CPU tailing {} lines/s (Logs tab), every field and attrs set, against another build",
                report::size(TAIL_RATE)
            ),
            cpu_full,
            "% of a core",
            other(|o| o.cpu_full),
            &[Aim::AtMost(5.0)],
        );
    }
    report::figure(
        d,
        "resident memory (largest of idle, changing, tailing)",
        rss.max(rss_busy).max(rss_tail) as f64 / 1024.0,
        "MB",
        Some((top, top_rss as f64 / 1024.0)),
        &[],
    );
    report::figure(
        d,
        "bytes to the terminal, idle",
        bytes_idle,
        "B/s",
        Some((top, top_bytes)),
        &[],
    );
    report::figure(
        d,
        "bytes to the terminal, data changing",
        bytes_busy,
        "B/s",
        Some((top, top_bytes)),
        &[],
    );
    report::figure(
        d,
        &format!(
            "bytes to the terminal, tailing {} lines/s",
            report::size(TAIL_RATE)
        ),
        bytes_tail,
        "B/s",
        Some((top, top_bytes)),
        &[],
    );
    Ok(())
}

/// Waits until the dashboard in tmux session `name` shows every KPI panel.
fn wait_painted(name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", name]);
        // All panels in: top endpoints shown, connected, and no counter still "…".
        if screen.contains("/api/r")
            && screen.contains("● ")
            && !screen.split_whitespace().any(|w| w == "…")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("dashboard did not paint:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Figures of another build (`TUI_BENCH_COMPARE_BIN`).
struct Other {
    bin: String,
    cpu_idle: f64,
    cpu_tail: f64,
    cpu_full: f64,
    quiet: Vec<Duration>,
    /// A line after a quiet spell timed in this build and the other at once, on the same
    /// writes (both dashboards open on the Logs tab): (this build, other build) per write.
    paired: (Vec<Duration>, Vec<Duration>),
}

/// Paired quiet-line samples (`TUI_BENCH_PAIRED=N`, 15 by default when comparing builds).
fn paired_samples() -> u64 {
    std::env::var("TUI_BENCH_PAIRED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
}

/// `TUI_BENCH_COMPARE_BIN=/path/to/opsdash` (another build, e.g. the one before a change): its
/// settled idle CPU, its CPU while tailing and its line-after-quiet latency, measured exactly
/// like this build's, on the same database in the same run, for a before/after in the same
/// conditions. An older build refuses a schema with migrations
/// it does not know, so `TUI_BENCH_COMPARE_MIGRATIONS=N` hides the records of migrations above N
/// from it (the schema objects stay; an older build ignores them).
fn compare_other(
    rt: &tokio::runtime::Runtime,
    db: &opsdash::db::Db,
    bin: &str,
    url: &str,
    secs: u64,
) -> anyhow::Result<Other> {
    if let Some(n) = std::env::var("TUI_BENCH_COMPARE_MIGRATIONS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        // Kept aside, and put back before this build starts again for the paired samples
        // (it would take its migrations for pending and apply them again).
        rt.block_on(
            sqlx::raw_sql(&format!(
                "CREATE TABLE public.bench_hidden_migrations AS
                   SELECT * FROM _sqlx_migrations WHERE version > {n};
                 DELETE FROM _sqlx_migrations WHERE version > {n};"
            ))
            .execute(&db.write),
        )?;
    }
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("other.out");
    let name = format!("opsdash-bench-other-{}", std::process::id());
    let _s = start_in_tmux(
        &name,
        &format!("HOME={} {bin} --database-url '{url}'", dir.path().display()),
        &log,
    );
    wait_painted(&name)?;
    let pid = child_pid(&name).ok_or_else(|| anyhow::anyhow!("no pid for {bin}"))?;
    // The same settling as above: 2 s, a window of `secs` (the worker's first runs), 10 s.
    std::thread::sleep(Duration::from_secs(2 + secs + 10));
    let (cpu_idle, _) = measure(pid, &log, secs);
    let (cpu_tail, _, seen) = tailing(db, &name, pid, &log, secs, BARE_LINES);
    let (cpu_full, _, full_seen) = tailing(db, &name, pid, &log, secs, FULL_LINES);
    let quiet = after_quiet(db, &[&log], 7).remove(0);
    // This build again beside the other one, both on the Logs tab, for paired samples: the
    // sequential figures above come from different minutes (the table, autovacuum and the
    // machine's other work differ between them); a paired sample does not.
    rt.block_on(
        sqlx::raw_sql(
            "DO $$ BEGIN
           IF to_regclass('public.bench_hidden_migrations') IS NOT NULL THEN
             INSERT INTO _sqlx_migrations SELECT * FROM public.bench_hidden_migrations;
             DROP TABLE public.bench_hidden_migrations;
           END IF;
         END $$",
        )
        .execute(&db.write),
    )?;
    let this_log = dir.path().join("this-again.out");
    let this_name = format!("opsdash-bench-again-{}", std::process::id());
    let _again = start_in_tmux(
        &this_name,
        &format!(
            "HOME={} {} --database-url '{url}'",
            dir.path().display(),
            env!("CARGO_BIN_EXE_opsdash")
        ),
        &this_log,
    );
    wait_painted(&this_name)?;
    tmux(&["send-keys", "-t", &this_name, "2"]);
    std::thread::sleep(Duration::from_secs(2 + secs));
    let mut both = after_quiet(db, &[&this_log, &log], paired_samples());
    let paired = (both.remove(0), both.remove(0));
    tmux(&["send-keys", "-t", &this_name, "q"]);
    tmux(&["send-keys", "-t", &name, "q"]);
    std::thread::sleep(Duration::from_millis(500));
    Ok(Other {
        bin: bin.to_string(),
        cpu_idle,
        cpu_tail: if seen { cpu_tail } else { f64::NAN },
        cpu_full: if full_seen { cpu_full } else { f64::NAN },
        quiet,
        paired,
    })
}

/// With the Logs tab open and no line written for a while (the tail's reads have gone quiet),
/// one line is written as ingest writes it (a batch and a NOTIFY) and timed from just before
/// the write until its text is in the terminal's output (the pane's raw output, piped to
/// `log`, read every 0.5 ms); `samples` times, 2 to 3 s apart. Polling `capture-pane` instead (it took 3-7 ms
/// a call here) quantised the figure: a line drawn ~4 ms after its commit showed as ~4.5 ms
/// or ~11 ms depending on whether the first capture caught it, so the p50 flipped between
/// the two from run to run. With several dashboards' outputs (`logs`), each write is timed in
/// each of them: the same line, at the same moment, on the same database (a paired sample).
fn after_quiet(
    db: &opsdash::db::Db,
    logs: &[&std::path::Path],
    samples: u64,
) -> Vec<Vec<Duration>> {
    let mut out = vec![Vec::new(); logs.len()];
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return out,
    };
    use sqlx::Connection;
    use std::io::{Read, Seek};
    // A connection of this runtime's own: pooled connections opened on another runtime (the
    // writer threads') die with it, and a write on one fails.
    let mut conn = match rt.block_on(sqlx::PgConnection::connect_with(&db.write_options)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("after_quiet: cannot connect: {e}");
            return out;
        }
    };
    for k in 0..samples {
        // Irregular gaps, so the writes do not fall in step with the tail's 1 s poll or the
        // dashboard's clock tick.
        std::thread::sleep(Duration::from_millis(2000 + 137 * (k % 7)));
        // The renderer writes only the cells that changed: the tag differs from the line
        // before it in every cell (upper case, then lower case) and has no spaces (a blank
        // cell is not rewritten), so it reaches the terminal in one piece.
        // A new tag for every line of the run (this build's and another's write to the same
        // table, and both screens may show the other's lines).
        static SAMPLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAMPLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = if n.is_multiple_of(2) { b'A' } else { b'a' };
        let pid = std::process::id() as u64;
        let tag: String = (0..10u64)
            .map(|i| (base + ((7 * n + 11 * i + pid) % 26) as u8) as char)
            .collect();
        let marker = format!("quiet-line-{k}-{tag}");
        let from: Vec<u64> = logs
            .iter()
            .map(|l| std::fs::metadata(l).map(|m| m.len()).unwrap_or(0))
            .collect();
        // Timed from before the write: on a loaded machine this thread may run again only
        // after the dashboard has drawn the line (timing from the commit's answer then gave
        // 0.0 ms); the write's own round trip (~1 ms) is counted in.
        let t = Instant::now();
        let wrote = rt.block_on(
            sqlx::query(
                "WITH ins AS (
                   INSERT INTO opsdash.log_event (ts, level, service, message)
                   VALUES (clock_timestamp(), 2, 'svc-quiet', $1))
                 SELECT pg_notify($2, '')",
            )
            .bind(&marker)
            .bind(opsdash::db::LOGS_CHANNEL)
            .execute(&mut conn),
        );
        if let Err(e) = wrote {
            eprintln!("after_quiet: write {k} failed: {e}");
            continue;
        }
        let mut seen_at: Vec<Option<Duration>> = vec![None; logs.len()];
        let mut seen = Vec::new();
        while t.elapsed() < Duration::from_secs(5) && seen_at.iter().any(Option::is_none) {
            for (i, log) in logs.iter().enumerate() {
                if seen_at[i].is_some() {
                    continue;
                }
                if let Ok(mut f) = std::fs::File::open(log) {
                    if f.seek(std::io::SeekFrom::Start(from[i])).is_ok() {
                        seen.clear();
                        let _ = f.read_to_end(&mut seen);
                    }
                }
                if seen.windows(tag.len()).any(|w| w == tag.as_bytes()) {
                    seen_at[i] = Some(t.elapsed());
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        // A paired sample counts only when every dashboard showed the line.
        if seen_at.iter().all(Option::is_some) {
            for (i, at) in seen_at.into_iter().enumerate() {
                out[i].extend(at);
            }
        }
    }
    out
}

fn median_ms(samples: &[Duration]) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn fmt_samples(samples: &[Duration]) -> String {
    let max = samples
        .iter()
        .max()
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let mut all: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    all.sort_by(f64::total_cmp);
    let all: Vec<String> = all.iter().map(|v| format!("{v:.1}")).collect();
    format!(
        "p50 {:.1} ms, max {:.1} ms ({} seen within 5 s: {})",
        median_ms(samples),
        max,
        samples.len(),
        all.join(" ")
    )
}

/// Log lines per second written while the dashboard's Logs tab tails (the issue's figure).
const TAIL_RATE: u64 = 10_000;

/// Switches the running dashboard to the Logs tab and writes `TAIL_RATE` log lines/s (a batch
/// and one NOTIFY every 10 ms, as ingest does) for `secs`: CPU % of a core and bytes/s to the
/// terminal, and whether the written lines reached the screen.
/// Tail lines with only the columns the list shows (the others NULL), and the text that shows
/// they reached the screen.
const BARE_LINES: (&str, &str) = (
    "INSERT INTO opsdash.log_event (ts, level, service, message)
    SELECT clock_timestamp(), 2, 'svc-tail', 'bench tail line ' || ($1 + g)
      FROM generate_series(1, $2) g",
    "bench tail line",
);

/// Tail lines shaped like ingest's: every field set, attrs a small JSON object (what the
/// detail pane shows; every one is read and decoded as the tail follows).
const FULL_LINES: (&str, &str) = (
    "INSERT INTO opsdash.log_event (ts, level, service, host, message, trace_id,
      span_id, request_id, user_id, route, method, status, duration_ms, ip, user_agent,
      error_type, attrs, fingerprint)
    SELECT clock_timestamp(), 2, 'svc-tail', 'host-' || (g % 4),
           'bench tail line ' || ($1 + g) || ' GET /api/orders/' || g || ' answered 200',
           md5(($1 + g)::text), left(md5(g::text), 16), 'req-' || ($1 + g), 'user' || (g % 500),
           '/api/orders/:id', 'GET', 200, 12.5 + g % 40, '10.1.' || (g % 250) || '.7',
           'Mozilla/5.0 (X11; Linux x86_64) bench/1.0', NULL,
           jsonb_build_object('db.system', 'postgresql', 'db.name', 'orders', 'rows', g % 17,
                              'cache', jsonb_build_object('hit', g % 2 = 0, 'ms', 0.4)),
           NULL
      FROM generate_series(1, $2) g",
    "answered 200",
);

fn tailing(
    db: &opsdash::db::Db,
    session: &str,
    pid: u32,
    log: &std::path::Path,
    secs: u64,
    (insert, marker): (&'static str, &'static str),
) -> (f64, f64, bool) {
    tmux(&["send-keys", "-t", session, "2"]);
    std::thread::sleep(Duration::from_secs(1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || -> (i64, f64) {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return (0, 0.0);
            };
            rt.block_on(async {
                // Its own connection: pooled ones opened on an earlier writer's runtime are dead.
                use sqlx::Connection;
                let Ok(mut conn) = sqlx::PgConnection::connect_with(&db.write_options).await else {
                    return (0, 0.0);
                };
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let (mut n, mut written) = (0i64, 0i64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tick.tick().await;
                    let batch = (TAIL_RATE / 100) as i64;
                    let r =
                        sqlx::query(&format!("WITH ins AS ({insert}) SELECT pg_notify($3, '')"))
                            .bind(n)
                            .bind(batch)
                            .bind(opsdash::db::LOGS_CHANNEL)
                            .execute(&mut conn)
                            .await;
                    if r.is_ok() {
                        written += batch;
                    }
                    n += batch;
                }
                (written, started.elapsed().as_secs_f64())
            })
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, bytes) = measure(pid, log, secs);
    let seen = tmux(&["capture-pane", "-p", "-t", session]).contains(marker);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (written, took) = writer.join().unwrap_or((0, 0.0));
    println!(
        "  tail writer ({marker:?} lines): {written} lines in {took:.1} s, {:.0} lines/s",
        written as f64 / took.max(0.001)
    );
    (cpu, bytes, seen)
}
