//! Ingest throughput: `opsdash ingest` of N generated JSON log lines next to `psql \copy` of the
//! same rows pre-formatted as CSV, into the same indexed `opsdash.log_event` of a throwaway
//! cluster, in one run.
//!
//!     cargo bench --bench ingest -- --lines 1000000 [--runs 2]
//!     OPSDASH_BENCH_LINES=100000 cargo bench --bench ingest
//!     --insert-rows N: rows for the row-by-row INSERT baseline (default min(lines, 50000))
//!     --cpu-only: stop after the CPU-side figures (JSON, each envelope format, then one row per
//!     line format of tests/fixtures/sources: plain text, PostgreSQL stderr/csvlog/jsonlog...)

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use opsdash::db::testkit::TestCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "common/psql.rs"]
mod psql;
#[path = "common/report.rs"]
mod report;

use psql::{psql, reset, rows};
use report::Aim;

const SERVICES: &[&str] = &["api", "billing", "checkout", "search", "auth", "worker"];
const ROUTES: &[&str] = &[
    "/api/orders/:id",
    "/api/cart",
    "/api/search",
    "/login",
    "/api/users/:id",
];
const CSV_COLUMNS: &str = "ts, level, service, host, message, trace_id, span_id, request_id, user_id, route, duration_ms, error_type, attrs, fingerprint, search_tokens";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn csv_field(out: &mut String, v: Option<&str>) {
    if let Some(v) = v {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
}

/// Writes `n` JSON lines and the same rows as CSV (with the fingerprints opsdash would compute).
fn generate(n: usize, json_path: &Path, csv_path: &Path) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut json = BufWriter::new(std::fs::File::create(json_path)?);
    let mut csv = BufWriter::new(std::fs::File::create(csv_path)?);
    let start: DateTime<Utc> = Utc::now() - chrono::Duration::minutes(90);
    let mut line = String::with_capacity(512);
    for i in 0..n {
        let ts = start + chrono::Duration::microseconds((i as i64) * 3_600_000_000 / n as i64);
        let ts_s = ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let roll: u32 = rng.gen_range(0..100);
        let (level, level_n) = match roll {
            0..=9 => ("debug", 1),
            10..=87 => ("info", 2),
            88..=97 => ("warn", 3),
            _ => ("error", 4),
        };
        let service = SERVICES[rng.gen_range(0..SERVICES.len())];
        let user = format!("u{}", rng.gen_range(0..50_000));
        let trace = format!("{:032x}", rng.gen::<u128>());
        let span = format!("{:016x}", rng.gen::<u64>());
        let request = format!("req-{i}");
        let duration: f64 = (rng.gen_range(1.0f64..5000.0)).round() / 10.0;
        let route = (rng.gen_range(0..10) < 3).then(|| ROUTES[rng.gen_range(0..ROUTES.len())]);
        // Messages as services write them: requests, paths with ids, pool gauges in dotted
        // names, orders, background jobs; numbers and ids make most words rare.
        let (message, error_type) = if level_n >= 4 {
            (
                format!("upstream timeout after {duration} ms calling payments for order {i}"),
                Some("UpstreamTimeout"),
            )
        } else {
            let m = match i % 5 {
                0 => format!(
                    "handled request {i} for {user} in {duration} ms (cache {})",
                    if i % 3 == 0 { "hit" } else { "miss" }
                ),
                1 => format!(
                    "GET /api/users/{}/orders?page={} 200 {}B",
                    rng.gen_range(0..50_000),
                    rng.gen_range(0..9),
                    rng.gen_range(100..99_999)
                ),
                2 => format!(
                    "db.pool.size={} waiting={} acquired connection in {:.2}ms",
                    rng.gen_range(0..50),
                    rng.gen_range(0..9),
                    rng.gen_range(0.0f64..9.0)
                ),
                3 => format!(
                    "order {} created for {user} total={}.{:02} EUR items={}",
                    rng.gen_range(0..1_000_000),
                    rng.gen_range(0..999),
                    rng.gen_range(0..100),
                    rng.gen_range(1..9)
                ),
                _ => format!(
                    "job {:08x} finished: sent {} emails, {} bounced host=mail-{}.example.net",
                    rng.gen::<u32>(),
                    rng.gen_range(0..500),
                    rng.gen_range(0..5),
                    rng.gen_range(0..4)
                ),
            };
            (m, None)
        };
        let host = format!("web-{}", rng.gen_range(1..9));
        let attempt = rng.gen_range(1..4);
        let attrs = format!("{{\"region\": \"eu-{}\", \"attempt\": {attempt}}}", i % 3);

        line.clear();
        line.push_str(&format!(
            "{{\"ts\":\"{ts_s}\",\"level\":\"{level}\",\"service\":\"{service}\",\"host\":\"{host}\",\"msg\":\"{message}\",\"trace_id\":\"{trace}\",\"span_id\":\"{span}\",\"request_id\":\"{request}\",\"user_id\":\"{user}\",\"duration_ms\":{duration},\"region\":\"eu-{}\",\"attempt\":{attempt}",
            i % 3
        ));
        if let Some(r) = route {
            line.push_str(&format!(",\"route\":\"{r}\""));
        }
        if let Some(e) = error_type {
            line.push_str(&format!(",\"error_type\":\"{e}\""));
        }
        line.push_str("}\n");
        json.write_all(line.as_bytes())?;

        let fp = error_type
            .map(|e| opsdash::ingest::fingerprint::fingerprint(service, Some(e), &message));
        line.clear();
        line.push_str(&ts.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string());
        line.push_str(&format!(",{level_n},"));
        csv_field(&mut line, Some(service));
        line.push(',');
        csv_field(&mut line, Some(&host));
        line.push(',');
        csv_field(&mut line, Some(&message));
        line.push(',');
        csv_field(&mut line, Some(&trace));
        line.push(',');
        csv_field(&mut line, Some(&span));
        line.push(',');
        csv_field(&mut line, Some(&request));
        line.push(',');
        csv_field(&mut line, Some(&user));
        line.push(',');
        csv_field(&mut line, route);
        line.push_str(&format!(",{duration},"));
        csv_field(&mut line, error_type);
        line.push(',');
        csv_field(&mut line, Some(&attrs));
        line.push(',');
        csv_field(&mut line, fp.as_deref());
        // The word-search tokens the ingest writer computes (the table's trigger would
        // otherwise compute them on the server, which opsdash ingest does not make it do).
        line.push(',');
        let mut tokens = Vec::new();
        opsdash::model::search_tokens::write_array(
            &mut tokens,
            &opsdash::model::search_tokens::search_tokens(&message),
        );
        csv_field(&mut line, Some(std::str::from_utf8(&tokens)?));
        line.push('\n');
        csv.write_all(line.as_bytes())?;
    }
    json.flush()?;
    csv.flush()?;
    Ok(())
}

/// Tables beside the shipped one, for the baselines: `log_event_bare` (`LIKE log_event`, no
/// index: what writing the rows alone costs, the limit) and `log_event_0026` (the indexes
/// log_event had before migration 0027: seven btrees and the to_tsvector GIN).
const BASELINE_TABLES: &str = "\
    CREATE TABLE opsdash.log_event_bare (LIKE opsdash.log_event INCLUDING DEFAULTS); \
    CREATE TABLE opsdash.log_event_0026 (LIKE opsdash.log_event INCLUDING DEFAULTS); \
    CREATE INDEX ON opsdash.log_event_0026 (ts); \
    CREATE INDEX ON opsdash.log_event_0026 (tx, id); \
    CREATE INDEX ON opsdash.log_event_0026 (level, ts); \
    CREATE INDEX ON opsdash.log_event_0026 (service, ts); \
    CREATE INDEX ON opsdash.log_event_0026 (trace_id) WHERE trace_id IS NOT NULL; \
    CREATE INDEX ON opsdash.log_event_0026 (user_id, ts) WHERE user_id IS NOT NULL; \
    CREATE INDEX ON opsdash.log_event_0026 (fingerprint, ts) WHERE fingerprint IS NOT NULL; \
    CREATE INDEX ON opsdash.log_event_0026 USING gin \
        (to_tsvector('simple', opsdash.search_text(message))) WITH (fastupdate = on)";

/// `psql \copy` of the CSV into `table` (emptied first, with the shipped tables).
fn time_psql_copy(url: &str, csv: &Path, table: &str) -> Result<Duration> {
    reset(url)?;
    psql(
        url,
        "TRUNCATE opsdash.log_event_bare, opsdash.log_event_0026; CHECKPOINT",
    )?;
    let t = Instant::now();
    psql(
        url,
        &format!(
            "\\copy {table} ({CSV_COLUMNS}) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    )?;
    Ok(t.elapsed())
}

/// Bytes on disk per row of `table` (heap, TOAST and every index, all partitions; a plain
/// table has no partition tree).
fn bytes_per_row(url: &str, table: &str) -> Result<f64> {
    let v = psql(
        url,
        &format!(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) \
                                FROM pg_partition_tree('{table}')), \
                             pg_total_relation_size('{table}'))::float8 \
                    / greatest((SELECT count(*) FROM {table}), 1)"
        ),
    )?;
    Ok(v.parse()?)
}

fn time_opsdash(url: &str, json: &Path, config: &Path) -> Result<(Duration, String)> {
    reset(url)?;
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args(["--database-url", url, "--config"])
        .arg(config)
        .args(["ingest", "--format", "json"])
        .arg(json)
        .output()
        .context("running opsdash ingest")?;
    let elapsed = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        bail!("opsdash ingest failed: {stderr}");
    }
    Ok((elapsed, stderr))
}

/// CPU side alone (no database): parse, redact, fingerprint and COPY-encode every line, as the
/// pipeline does, on one thread. Shows how far the database is the bottleneck.
fn time_cpu_side(json: &Path) -> Result<Duration> {
    use opsdash::ingest::{detect, fields::LineContext, redact::Redactor};
    let text = std::fs::read_to_string(json)?;
    let cfg = opsdash::config::IngestConfig::default();
    let redactor = Redactor::new(&cfg)?;
    let mut buf = opsdash::db::copy::CopyBuf::with_capacity(4 << 20);
    let t = Instant::now();
    for line in text.lines() {
        let ctx = LineContext {
            service: "bench",
            now: Utc::now(),
            level: None,
            zone: &opsdash::ingest::timestamp::UTC,
        };
        let parsed = detect::parse_line(detect::Format::Json, line, &ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rest_of_cpu_side(&redactor, &mut buf, parsed);
    }
    Ok(t.elapsed())
}

/// Lines of one envelope format as its writer prints them (journalctl -o json with a unit's
/// usual fields, Docker json-file, CRI, rsyslog's traditional file format), the text inside
/// being a mix of plain text, JSON and logfmt as services write.
fn envelope_lines(format: &str, n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(7);
    let start = Utc::now() - chrono::Duration::minutes(90);
    (0..n)
        .map(|i| {
            let ts = start + chrono::Duration::microseconds(i as i64 * 997);
            let svc = SERVICES[rng.gen_range(0..SERVICES.len())];
            let pid = 1000 + rng.gen_range(0..50);
            let text = match i % 3 {
                0 => format!("order {i} accepted for user u{} in {} ms", rng.gen_range(0..5000), rng.gen_range(1..900)),
                1 => format!(r#"{{"level":"info","msg":"cache refreshed","keys":{},"took_ms":{}}}"#, rng.gen_range(0..9999), rng.gen_range(1..90)),
                _ => format!("level=warn msg=\"slow upstream\" upstream=payments took={}ms", rng.gen_range(100..3000)),
            };
            let json_text = serde_json::to_string(&text).unwrap_or_default();
            match format {
                "journald" => format!(
                    r#"{{"__CURSOR":"s=dc28c875a9f9456c8f662f51641dd37c;i={i:x};b=3f1c2a8e9b7d4c61a0e5f2b3c4d5e6f7;m={:x};t={:x};x=9f0fd9eb36c4f6ac","__REALTIME_TIMESTAMP":"{}","__MONOTONIC_TIMESTAMP":"{}","_BOOT_ID":"3f1c2a8e9b7d4c61a0e5f2b3c4d5e6f7","_MACHINE_ID":"0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f50","_HOSTNAME":"web-1","PRIORITY":"6","SYSLOG_FACILITY":"3","SYSLOG_IDENTIFIER":"{svc}","_PID":"{pid}","_UID":"998","_GID":"998","_COMM":"{svc}","_EXE":"/usr/local/bin/{svc}","_CMDLINE":"/usr/local/bin/{svc} --config /etc/{svc}.toml","_CAP_EFFECTIVE":"0","_SYSTEMD_CGROUP":"/system.slice/{svc}.service","_SYSTEMD_UNIT":"{svc}.service","_SYSTEMD_SLICE":"system.slice","_SYSTEMD_INVOCATION_ID":"5b0a6e1c2d3f4a5b6c7d8e9f0a1b2c3d","_TRANSPORT":"stdout","_STREAM_ID":"a1b2c3d4e5f60718293a4b5c6d7e8f90","MESSAGE":{json_text}}}"#,
                    i * 997,
                    ts.timestamp_micros(),
                    ts.timestamp_micros(),
                    81_234_567 + i * 997
                ),
                "docker" => format!(
                    r#"{{"log":{},"stream":"stdout","time":"{}"}}"#,
                    serde_json::to_string(&format!("{text}\n")).unwrap_or_default(),
                    ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                ),
                "cri" => format!(
                    "{} stdout F {text}",
                    ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                ),
                _ => format!("{} web-1 {svc}[{pid}]: {text}", ts.format("%b %e %H:%M:%S")),
            }
        })
        .collect()
}

/// CPU side of one envelope format: open the envelope, read the text inside, redact,
/// fingerprint and COPY-encode, as the pipeline does; returns lines per CPU-second.
fn envelope_cpu_side(format: &str, n: usize) -> Result<f64> {
    use opsdash::ingest::{envelope, fields::LineContext, redact::Redactor, syslog, Format};
    let lines = envelope_lines(format, n);
    let redactor = Redactor::new(&opsdash::config::IngestConfig::default())?;
    let mut buf = opsdash::db::copy::CopyBuf::with_capacity(4 << 20);
    let cpu_before = cpu_time(libc::RUSAGE_SELF);
    for line in &lines {
        let now = Utc::now();
        let clock = syslog::Clock {
            now,
            zone: opsdash::ingest::timestamp::Zone::Utc,
        };
        let ctx = LineContext {
            service: "bench",
            now,
            level: None,
            zone: &opsdash::ingest::timestamp::UTC,
        };
        let env = envelope::open(Format::Auto, line, &clock).map_err(|e| anyhow::anyhow!("{e}"))?;
        if env.format != format {
            bail!("{format} line read as {:?}: {line}", env.format);
        }
        let parsed = envelope::read(Format::Auto, env, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        rest_of_cpu_side(&redactor, &mut buf, parsed);
    }
    let cpu = cpu_time(libc::RUSAGE_SELF) - cpu_before;
    Ok(n as f64 / cpu.as_secs_f64().max(1e-9))
}

/// CPU side per line format of issue 14 (no database): the committed samples of each format
/// (tests/fixtures/sources, written by the real tools) repeated to `n` lines, read with `auto`
/// as an operator would, then redacted, fingerprinted and COPY-encoded like the JSON row.
fn cpu_side_per_format(n: usize) -> Result<()> {
    use opsdash::ingest::{detect, fields::LineContext, redact::Redactor};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources");
    let cfg = opsdash::config::IngestConfig::default();
    let redactor = Redactor::new(&cfg)?;
    let sets: &[(&str, &[&str])] = &[
        (
            "plain text layouts",
            &["text/samples.log", "python/logging.log"],
        ),
        (
            "PostgreSQL stderr",
            &["postgres/default.log", "postgres/prefixed.log"],
        ),
        ("PostgreSQL csvlog", &["postgres/default.csv"]),
        ("PostgreSQL jsonlog", &["postgres/default.json"]),
        (
            "pino/structlog/loguru JSON",
            &[
                "pino/pino.json",
                "structlog/structlog.json",
                "loguru/loguru.json",
            ],
        ),
        (
            "CLEF/ECS/OTel JSON",
            &["clef/clef.json", "ecs/ecs.json", "otel/otel.json"],
        ),
        ("Heroku router logfmt", &["heroku/router.log"]),
    ];
    for (name, files) in sets {
        let mut sample = Vec::new();
        for f in *files {
            let text = std::fs::read_to_string(root.join(f)).with_context(|| f.to_string())?;
            sample.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
        let mut buf = opsdash::db::copy::CopyBuf::with_capacity(4 << 20);
        let cpu_before = cpu_time(libc::RUSAGE_SELF);
        for line in sample.iter().cycle().take(n) {
            let ctx = LineContext {
                service: "bench",
                now: Utc::now(),
                level: None,
                zone: &opsdash::ingest::timestamp::UTC,
            };
            let Ok(parsed) = detect::parse_line(detect::Format::Auto, line, &ctx) else {
                continue;
            };
            rest_of_cpu_side(&redactor, &mut buf, parsed);
        }
        let cpu = cpu_time(libc::RUSAGE_SELF) - cpu_before;
        let rate = n as f64 / cpu.as_secs_f64().max(1e-9);
        println!("  CPU side, {name}: {rate:.0} lines per CPU-second");
        report::figure(
            "ingest",
            &format!("opsdash CPU side, {name} (auto, 1 thread)"),
            rate,
            "lines/CPU-s",
            None,
            &[],
        );
    }
    Ok(())
}

/// Plain-text lines as an application writes them: mostly one-line events, with a Java stack
/// trace (an error line, its exception, frames, a cause) after every 40 of them.
fn text_corpus(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        i += 1;
        if i.is_multiple_of(40) {
            out.push(format!(
                "2026-12-07 01:00:{:02},{:03} ERROR [http-{}] shop.Api - request {i} failed",
                i % 60,
                i % 1000,
                i % 8
            ));
            out.push(format!(
                "java.lang.IllegalStateException: order {i} not found"
            ));
            for f in 0..8 {
                out.push(format!(
                    "\tat com.shop.Layer{f}.call(Layer{f}.java:{})",
                    10 + f
                ));
            }
            out.push("Caused by: java.io.IOException: connection reset".into());
            out.push("\t... 8 more".into());
        } else {
            out.push(format!(
                "2026-12-07 01:00:{:02},{:03} INFO [http-{}] shop.Api - GET /orders/{i} 200 in {} ms",
                i % 60,
                i % 1000,
                i % 8,
                i % 97
            ));
        }
    }
    out.truncate(n);
    out
}

/// CPU side of plain-text lines (parse + fingerprint of errors), each line read on its own or
/// through the multi-line joiner first (the same lines; a trace is then parsed once). As in the
/// pipeline, the clock is read once per chunk of lines (`CHUNK`), and the joiner gets each
/// event's text buffer back once it is read.
fn time_text(lines: &[String], join: bool) -> Result<(Duration, usize)> {
    use opsdash::ingest::envelope::Envelope;
    use opsdash::ingest::multiline::{Joined, Joiner};
    use opsdash::ingest::{detect, fields::LineContext};
    /// Lines of one 64 KiB read of such a file.
    const CHUNK: usize = 600;
    let cfg = opsdash::config::IngestConfig::default();
    let mut joiner = Joiner::new(
        &cfg.multiline,
        cfg.multiline_max_lines,
        cfg.multiline_max_bytes,
        Duration::from_millis(cfg.multiline_quiet_ms),
    )
    .map_err(anyhow::Error::msg)?;
    let source: std::sync::Arc<str> = std::sync::Arc::from("");
    let mut events = 0usize;
    let read = |text: &str, now: DateTime<Utc>, events: &mut usize| -> Result<()> {
        let ctx = LineContext {
            service: "bench",
            now,
            level: None,
            zone: &opsdash::ingest::timestamp::UTC,
        };
        let parsed = detect::parse_line(detect::Format::Auto, text, &ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(log) = parsed.log {
            if log.level >= opsdash::model::Level::Error {
                std::hint::black_box(opsdash::ingest::fingerprint::fingerprint(
                    &log.service,
                    log.error_type.as_deref(),
                    &log.message,
                ));
            }
        }
        *events += 1;
        Ok(())
    };
    let t = Instant::now();
    for (c, chunk) in lines.chunks(CHUNK).enumerate() {
        let (now, instant) = (Utc::now(), Instant::now());
        for (k, line) in chunk.iter().enumerate() {
            if join {
                let n = (c * CHUNK + k) as u64 + 1;
                let one = Joined::single(Envelope::bare(line), n, false, false);
                for mut ev in joiner
                    .push(&source, "bench", one, None, instant)
                    .into_iter()
                    .flatten()
                {
                    let text = std::mem::take(&mut ev.env.text);
                    read(&text, now, &mut events)?;
                    if let std::borrow::Cow::Owned(s) = text {
                        joiner.recycle(s);
                    }
                }
            } else {
                read(line, now, &mut events)?;
            }
        }
    }
    for ev in joiner.drain(Instant::now(), true) {
        read(&ev.env.text, Utc::now(), &mut events)?;
    }
    Ok((t.elapsed(), events))
}

/// What the pipeline does with a parsed line before the database: redact, fingerprint errors,
/// COPY-encode (the buffer is emptied now and then: only the work counts).
fn rest_of_cpu_side(
    redactor: &opsdash::ingest::redact::Redactor,
    buf: &mut opsdash::db::copy::CopyBuf,
    parsed: opsdash::ingest::record::Parsed,
) {
    use opsdash::ingest::writer;
    if let Some(mut log) = parsed.log {
        redactor.string(&mut log.message);
        if let Some(a) = &mut log.attrs {
            redactor.json(a);
        }
        if log.level >= opsdash::model::Level::Error {
            log.fingerprint = Some(opsdash::ingest::fingerprint::fingerprint(
                &log.service,
                log.error_type.as_deref(),
                &log.message,
            ));
        }
        writer::encode_log(buf, &log);
    }
    if let Some(mut q) = parsed.query {
        redactor.string(&mut q.query);
        writer::encode_query(buf, &q);
    }
    if buf.len_bytes() > 4 << 20 {
        buf.clear();
    }
}

/// The original design's services: one INSERT per log line, each its own transaction (autocommit,
/// prepared statement reused), on one connection, of the first `n` lines of the same JSON file.
fn time_row_by_row(tc: &TestCluster, json: &Path, n: usize) -> Result<Duration> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let text = std::fs::read_to_string(json)?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .take(n)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let opts = tc.cluster.connect_options(opsdash::db::embedded::DATABASE);
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
        let t = Instant::now();
        for v in &rows {
            let s = |k: &str| v.get(k).and_then(|x| x.as_str());
            let ts: DateTime<Utc> = s("ts").unwrap_or_default().parse()?;
            let level = s("level")
                .and_then(opsdash::model::Level::parse_loose)
                .unwrap_or(opsdash::model::Level::Info);
            let attrs = serde_json::json!({"region": v["region"], "attempt": v["attempt"]});
            // The same fingerprints the other two sides store (computed by the service here).
            let fingerprint = s("error_type").map(|e| {
                opsdash::ingest::fingerprint::fingerprint(
                    s("service").unwrap_or_default(),
                    Some(e),
                    s("msg").unwrap_or_default(),
                )
            });
            sqlx::query(
                "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id, span_id, \
                 request_id, user_id, route, duration_ms, error_type, attrs, fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(ts)
            .bind(level.as_i16())
            .bind(s("service"))
            .bind(s("msg"))
            .bind(s("trace_id"))
            .bind(s("span_id"))
            .bind(s("request_id"))
            .bind(s("user_id"))
            .bind(s("route"))
            .bind(v.get("duration_ms").and_then(|x| x.as_f64()))
            .bind(s("error_type"))
            .bind(attrs)
            .bind(fingerprint)
            .execute(&mut conn)
            .await?;
        }
        Ok(t.elapsed())
    })
}

/// CPU time (user + system) of this process (`who` = RUSAGE_SELF) or of its waited-for
/// children (RUSAGE_CHILDREN): on a shared machine wall time says little about our own cost.
fn cpu_time(who: i32) -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() -> Result<()> {
    let lines: usize = arg("--lines")
        .or_else(|| std::env::var("OPSDASH_BENCH_LINES").ok())
        .map(|s| s.replace('_', "").parse())
        .transpose()
        .context("--lines")?
        .unwrap_or(1_000_000);
    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(1);
    let insert_rows: usize = arg("--insert-rows")
        .map(|s| s.replace('_', "").parse())
        .transpose()
        .context("--insert-rows")?
        .unwrap_or(lines.min(50_000));
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("bench.jsonl");
    let csv = dir.path().join("bench.csv");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "")?;
    println!("generating {lines} JSON log lines...");
    generate(lines, &json, &csv)?;
    println!(
        "  {:.1} MiB JSON, {:.1} MiB CSV",
        std::fs::metadata(&json)?.len() as f64 / 1048576.0,
        std::fs::metadata(&csv)?.len() as f64 / 1048576.0
    );
    let cpu_before = cpu_time(libc::RUSAGE_SELF);
    let wall = time_cpu_side(&json)?;
    let cpu = cpu_time(libc::RUSAGE_SELF) - cpu_before;
    println!(
        "CPU side only (parse+redact+fingerprint+encode, 1 thread): {:.2}s wall, {:.2}s CPU = {:.0} lines per CPU-second",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        lines as f64 / cpu.as_secs_f64().max(1e-9)
    );
    report::figure(
        "ingest",
        "opsdash CPU side only (parse+redact+fingerprint+encode, 1 thread)",
        lines as f64 / cpu.as_secs_f64().max(1e-9),
        "lines/CPU-s",
        None,
        &[],
    );
    let envelope_n = lines.min(200_000);
    for format in ["journald", "docker", "cri", "syslog"] {
        let rate = envelope_cpu_side(format, envelope_n)?;
        report::figure(
            "ingest",
            &format!("opsdash CPU side only, {format} lines (auto-detected, 1 thread)"),
            rate,
            "lines/CPU-s",
            None,
            &[Aim::AtLeast(200_000.0)],
        );
    }
    cpu_side_per_format(lines.min(500_000))?;
    let corpus = text_corpus(lines);
    let mut cpu_lines = [0.0f64; 2];
    for (k, join) in [false, true].into_iter().enumerate() {
        let before = cpu_time(libc::RUSAGE_SELF);
        let (_, events) = time_text(&corpus, join)?;
        let cpu = cpu_time(libc::RUSAGE_SELF) - before;
        cpu_lines[k] = lines as f64 / cpu.as_secs_f64().max(1e-9);
        let what = if join {
            "plain text with Java traces, multi-line joining"
        } else {
            "plain text with Java traces, line by line"
        };
        println!(
            "CPU side, {what}: {events} events, {:.2}s CPU = {:.0} lines per CPU-second",
            cpu.as_secs_f64(),
            cpu_lines[k]
        );
        report::figure(
            "ingest",
            &format!("opsdash CPU side, {what} (1 thread)"),
            cpu_lines[k],
            "lines/CPU-s",
            None,
            &[],
        );
    }
    println!(
        "multi-line joining costs {:+.1}% CPU per line over the same lines read one by one",
        (cpu_lines[0] / cpu_lines[1] - 1.0) * 100.0
    );
    if std::env::args().any(|a| a == "--cpu-only") {
        return Ok(());
    }
    let tc = TestCluster::start("bench-ingest")?;
    let url = format!(
        "postgresql://postgres@localhost/{}?host={}&port={}",
        opsdash::db::embedded::DATABASE,
        tc.cluster.socket_dir().display(),
        tc.cluster
            .connect_options(opsdash::db::embedded::DATABASE)
            .get_port()
    );
    psql(&url, BASELINE_TABLES)?;
    // Best of `runs` per target; the four loads of a run follow each other, so their ratios
    // compare figures taken under the same load.
    let mut best = [Duration::MAX; 4];
    let mut size = [0.0f64; 3];
    let targets = [
        ("opsdash.log_event_bare", "psql \\copy, no index (limit)"),
        ("opsdash.log_event_0026", "psql \\copy, indexes of 0026"),
        ("opsdash.log_event", "psql \\copy, shipped table"),
    ];
    for run in 1..=runs {
        for (k, (table, what)) in targets.iter().enumerate() {
            let p = time_psql_copy(&url, &csv, table)?;
            let n: u64 = psql(&url, &format!("SELECT count(*) FROM {table}"))?.parse()?;
            if n != lines as u64 {
                bail!("psql \\copy into {table} stored {n} rows, expected {lines}");
            }
            size[k] = bytes_per_row(&url, table)?;
            println!(
                "run {run}: {what:<32} {:>8.2}s {:>10.0} rows/s {:>7.0} bytes/row",
                p.as_secs_f64(),
                lines as f64 / p.as_secs_f64(),
                size[k]
            );
            best[k] = best[k].min(p);
        }
        let child_cpu_before = cpu_time(libc::RUSAGE_CHILDREN);
        let (o, summary) = time_opsdash(&url, &json, &config)?;
        let child_cpu = cpu_time(libc::RUSAGE_CHILDREN) - child_cpu_before;
        let n = rows(&url)?;
        if n != lines as u64 {
            bail!("opsdash ingest stored {n} rows, expected {lines}: {summary}");
        }
        println!(
            "run {run}: {:<32} {:>8.2}s {:>10.0} rows/s   ({summary})",
            "opsdash ingest",
            o.as_secs_f64(),
            lines as f64 / o.as_secs_f64()
        );
        println!(
            "run {run}: opsdash process CPU {:.2}s = {:.1} us per row (the rest is the server)",
            child_cpu.as_secs_f64(),
            child_cpu.as_secs_f64() * 1e6 / lines as f64
        );
        best[3] = best[3].min(o);
    }
    let rate = |d: Duration| lines as f64 / d.as_secs_f64();
    let [bare_rate, old_rate, psql_rate, ours_rate] = best.map(rate);
    println!("lines:                              {lines}");
    println!(
        "psql \\copy, no index (the limit):  {bare_rate:>10.0} rows/s {:>7.0} bytes/row",
        size[0]
    );
    println!(
        "psql \\copy, indexes of 0026:       {old_rate:>10.0} rows/s {:>7.0} bytes/row",
        size[1]
    );
    println!(
        "psql \\copy, shipped table:         {psql_rate:>10.0} rows/s {:>7.0} bytes/row",
        size[2]
    );
    println!("opsdash ingest:                     {ours_rate:>10.0} rows/s (whole process, incl. start-up)");
    println!(
        "ratio ours/limit:                   {:>10.2}",
        ours_rate / bare_rate
    );
    println!(
        "ratio ours/psql into shipped table: {:>10.2}",
        ours_rate / psql_rate
    );
    println!(
        "ratio 0026 indexes/limit:           {:>10.2}",
        old_rate / bare_rate
    );
    reset(&url)?;
    let rbr = time_row_by_row(&tc, &json, insert_rows)?;
    let n = rows(&url)?;
    if n != insert_rows as u64 {
        bail!("row-by-row INSERT stored {n} rows, expected {insert_rows}");
    }
    let rbr_rate = insert_rows as f64 / rbr.as_secs_f64();
    println!(
        "row-by-row INSERT (baseline, {insert_rows} rows, autocommit): {rbr_rate:>10.0} rows/s"
    );
    let figure = format!("opsdash ingest, {} JSON lines", report::size(lines as u64));
    report::figure(
        "ingest",
        &figure,
        ours_rate,
        "rows/s",
        Some(("psql \\copy into an unindexed copy of the table", bare_rate)),
        &[Aim::AtLeast(110_000.0), Aim::RatioAtLeast(0.5)],
    );
    report::figure(
        "ingest",
        &figure,
        ours_rate,
        "rows/s",
        Some((
            "psql \\copy of the same rows into the shipped table",
            psql_rate,
        )),
        &[],
    );
    report::figure(
        "ingest",
        &format!(
            "psql \\copy into the shipped table, {}",
            report::size(lines as u64)
        ),
        psql_rate,
        "rows/s",
        Some(("the same with the indexes of 0026", old_rate)),
        &[],
    );
    report::figure(
        "ingest",
        "bytes per log row (table + indexes), shipped",
        size[2],
        "bytes",
        Some(("with the indexes of 0026", size[1])),
        &[],
    );
    report::figure(
        "ingest",
        &figure,
        ours_rate,
        "rows/s",
        Some((
            &format!(
                "row-by-row INSERT ({} rows, 1 conn)",
                report::size(insert_rows as u64)
            ),
            rbr_rate,
        )),
        &[],
    );
    Ok(())
}
