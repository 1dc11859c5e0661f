//! Receiver speed: N concurrent clients posting batches to a real `opsdash serve` against the
//! bench's own cluster, beside `opsdash ingest` of the same records from a file and `psql \copy`
//! of the same rows, in one run. Prints records/s stored, request latency p50/p99 at fixed
//! offered rates (5k and 20k records/s), and the server's peak resident memory (VmHWM) under a
//! burst of 10x the higher rate.
//!
//!     cargo bench --bench serve -- [--records 200000] [--clients 4] [--batch 500]
//!         [--body ndjson|otlp] [--seconds 10] [--rounds 3]
//!     SERVE_BENCH_CONFIG='[ingest]\nbatch_size = 2000' (a config for both opsdash paths)
//!
//! Fairness: the three paths store identical rows (checked after every phase by an md5 over
//! every column the writer sends): `psql \copy` loads the rows `opsdash ingest` stored,
//! exported with the writer's own columns, `search_tokens` included (without them the table's
//! trigger computes them in SQL, which is what a row without them costs, not what a copy costs).
//! Each path runs `--rounds` times, the order rotating from round to round, every phase from
//! the same state (see `prepare`); every run is printed with the load average, and the figures
//! are the medians.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use opsdash::db::testkit::TestCluster;

#[path = "common/psql.rs"]
#[allow(dead_code)]
mod psql;
#[path = "common/report.rs"]
mod report;

use psql::{psql, reset};
use report::Aim;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One generated record, the same for every path into the database.
struct Record {
    ts: String,
    level: &'static str,
    level_n: i16,
    service: &'static str,
    message: String,
    request_id: String,
    user_id: String,
    duration_ms: f64,
}

fn records(n: usize) -> Vec<Record> {
    const SERVICES: &[&str] = &["api", "billing", "checkout", "search", "auth", "worker"];
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    (0..n)
        .map(|i| {
            let ts = start + chrono::Duration::microseconds(i as i64 * 1000);
            let (level, level_n) = match i % 50 {
                0 => ("error", 4),
                1..=5 => ("warn", 3),
                _ => ("info", 2),
            };
            let duration_ms = ((i * 7919) % 50_000) as f64 / 10.0;
            Record {
                ts: ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                level,
                level_n,
                service: SERVICES[i % SERVICES.len()],
                message: format!("handled request {i} in {duration_ms} ms"),
                request_id: format!("req-{i}"),
                user_id: format!("u{}", (i * 31) % 50_000),
                duration_ms,
            }
        })
        .collect()
}

fn json_line(r: &Record) -> String {
    format!(
        "{{\"ts\":\"{}\",\"level\":\"{}\",\"service\":\"{}\",\"host\":\"bench\",\"msg\":\"{}\",\"request_id\":\"{}\",\"user_id\":\"{}\",\"duration_ms\":{}}}\n",
        r.ts, r.level, r.service, r.message, r.request_id, r.user_id, r.duration_ms
    )
}

/// The kinds of request body the bench can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// `POST /ingest`, one JSON record per line.
    Ndjson,
    /// `POST /v1/logs`, OTLP/HTTP protobuf as the OpenTelemetry SDKs send it: one resource per
    /// service, a log record per record with its attributes.
    Otlp,
}

impl BodyKind {
    fn parse(s: &str) -> Result<BodyKind> {
        match s {
            "ndjson" => Ok(BodyKind::Ndjson),
            "otlp" => Ok(BodyKind::Otlp),
            other => bail!("--body {other}: ndjson or otlp"),
        }
    }

    fn route(self) -> &'static str {
        match self {
            BodyKind::Ndjson => "/ingest",
            BodyKind::Otlp => "/v1/logs",
        }
    }
}

/// A request body carrying `records`, with its content type.
fn body(kind: BodyKind, records: &[Record]) -> (Vec<u8>, &'static str) {
    match kind {
        BodyKind::Ndjson => {
            let mut out = Vec::with_capacity(records.len() * 200);
            for r in records {
                out.extend_from_slice(json_line(r).as_bytes());
            }
            (out, "application/x-ndjson")
        }
        BodyKind::Otlp => (otlp_logs(records), "application/x-protobuf"),
    }
}

fn otlp_logs(records: &[Record]) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let text = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let mut by_service: std::collections::BTreeMap<&str, Vec<LogRecord>> = Default::default();
    for r in records {
        let nanos = chrono::DateTime::parse_from_rfc3339(&r.ts)
            .map(|t| t.timestamp_nanos_opt().unwrap_or(0) as u64)
            .unwrap_or(0);
        // OTel severity numbers: 9 info, 13 warn, 17 error.
        let severity = match r.level_n {
            4 => 17,
            3 => 13,
            _ => 9,
        };
        by_service.entry(r.service).or_default().push(LogRecord {
            time_unix_nano: nanos,
            observed_time_unix_nano: nanos,
            severity_number: severity,
            severity_text: r.level.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(r.message.clone())),
            }),
            attributes: vec![
                text("request_id", &r.request_id),
                text("user.id", &r.user_id),
                KeyValue {
                    key: "duration_ms".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::DoubleValue(r.duration_ms)),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
    }
    let req = ExportLogsServiceRequest {
        resource_logs: by_service
            .into_iter()
            .map(|(service, logs)| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![text("service.name", service), text("host.name", "bench")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: logs,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    req.encode_to_vec()
}

fn write_json(records: &[Record], json: &Path) -> Result<()> {
    let mut j = BufWriter::new(std::fs::File::create(json)?);
    for r in records {
        j.write_all(json_line(r).as_bytes())?;
    }
    j.flush()?;
    Ok(())
}

/// The three ways into the database the bench times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ingest,
    Serve,
    Copy,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Ingest => "opsdash ingest (file, whole process)",
            Phase::Serve => "opsdash serve",
            Phase::Copy => "psql \\copy (tokens included)",
        }
    }
}

/// What a timed phase needs.
struct PhaseCtx<'a> {
    url: &'a str,
    config: &'a Path,
    json: &'a Path,
    copy_script: &'a Path,
    dir: &'a Path,
    rt: &'a tokio::runtime::Runtime,
    http: &'a reqwest::Client,
    kind: BodyKind,
    /// A request of one record like the others but for its message, sent to a fresh server
    /// before its phase (its pipeline and connection are then made).
    warm: &'a (Vec<u8>, &'static str),
    bodies: &'a Arc<Vec<(Vec<u8>, &'static str)>>,
    clients: usize,
}

impl PhaseCtx<'_> {
    /// Runs one phase from the same starting point as every other (see [`prepare`]); returns
    /// how long it took and a note for its line. Each serve phase gets a fresh server (as each
    /// ingest phase is a fresh process): a server that took the same records a moment ago
    /// would fold them into the rows it wrote then (`ingest.dedup_window`), which the
    /// emptied table no longer has.
    fn run(&self, phase: Phase) -> Result<(Duration, Option<Duration>, String)> {
        match phase {
            Phase::Ingest => {
                prepare(self.url)?;
                let cpu = children_cpu();
                let took = run_ingest(self.url, self.config, self.json)?;
                Ok((
                    took,
                    Some(children_cpu().saturating_sub(cpu)),
                    String::new(),
                ))
            }
            Phase::Copy => {
                prepare(self.url)?;
                let t = Instant::now();
                psql_file(self.url, self.copy_script)?;
                Ok((t.elapsed(), None, String::new()))
            }
            Phase::Serve => {
                let server = Server::start(self.url, self.config, self.dir)?;
                let target = format!("{}{}", server.base, self.kind.route());
                let warm = Arc::new(vec![self.warm.clone()]);
                self.rt
                    .block_on(saturate(self.http, &target, warm, 1))
                    .context("warming the server up")?;
                prepare(self.url)?;
                let cpu = server.cpu()?;
                let (took, refused) = self
                    .rt
                    .block_on(saturate(
                        self.http,
                        &target,
                        self.bodies.clone(),
                        self.clients,
                    ))
                    .with_context(|| std::fs::read_to_string(&server.log).unwrap_or_default())?;
                let cpu = server.cpu()?.saturating_sub(cpu);
                let note = if refused > 0 {
                    format!(" ({refused} answers 429/503, sent again)")
                } else {
                    String::new()
                };
                Ok((took, Some(cpu), note))
            }
        }
    }
}

/// CPU time (user and system) of this process's children waited for so far: around a run of
/// `opsdash ingest`, that run's.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we hand it, nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `opsdash ingest` of `file`, as a user runs it; the time of the whole process.
fn run_ingest(url: &str, config: &Path, file: &Path) -> Result<Duration> {
    let t = Instant::now();
    let out = Command::new(opsdash_bin())
        .args(["--database-url", url, "--config"])
        .arg(config)
        .args(["ingest", "--format", "json"])
        .arg(file)
        .output()
        .context("running opsdash ingest")?;
    if !out.status.success() {
        bail!(
            "opsdash ingest: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(t.elapsed())
}

/// The same starting point for every phase: the tables emptied, no autovacuum worker busy
/// (one started by the last phase's rows would run into the next), and a CHECKPOINT (so no
/// phase pays for the last one's dirty pages, and each starts as far from the next
/// checkpoint).
fn prepare(url: &str) -> Result<()> {
    reset(url)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while psql(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
    )? != "0"
    {
        if Instant::now() > deadline {
            bail!("autovacuum still busy after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    psql(url, "CHECKPOINT")?;
    Ok(())
}

/// What the log and request tables hold, in a form two phases can be compared by: the row
/// counts and an md5 over every column the writer sends (not the id, nor the writing
/// transaction).
#[derive(Debug, PartialEq, Eq)]
struct Digest {
    rows: u64,
    requests: u64,
    md5: String,
}

fn digest(url: &str) -> Result<Digest> {
    let cols = opsdash::ingest::writer::LOG_COPY_COLUMNS.join(", ");
    let req_cols = opsdash::ingest::writer::REQUEST_COLUMNS.join(", ");
    let out = psql(
        url,
        &format!(
            "SELECT (SELECT count(*) FROM opsdash.log_event),              (SELECT count(*) FROM opsdash.request_log),              md5((SELECT string_agg(({cols})::text, E'\n' ORDER BY ts, message)                   FROM opsdash.log_event)               || coalesce((SELECT string_agg(({req_cols})::text, E'\n' ORDER BY ts, request_id)                   FROM opsdash.request_log), ''))"
        ),
    )?;
    let mut f = out.split('|');
    let mut next = || f.next().unwrap_or_default().to_string();
    Ok(Digest {
        rows: next().parse().context("log rows")?,
        requests: next().parse().context("request rows")?,
        md5: next(),
    })
}

/// Writes the stored log and request rows to `file` in COPY's text format with the writer's
/// columns (`search_tokens` as the writer computed them), and `script`: the psql `\copy`
/// commands that load them back.
fn export_rows(url: &str, file: &Path, script: &Path) -> Result<()> {
    let cols = opsdash::ingest::writer::LOG_COPY_COLUMNS.join(", ");
    let req_cols = opsdash::ingest::writer::REQUEST_COLUMNS.join(", ");
    let req_file = file.with_extension("requests");
    psql(
        url,
        &format!(
            "\\copy (SELECT {cols} FROM opsdash.log_event ORDER BY id) TO '{}'",
            file.display()
        ),
    )?;
    psql(
        url,
        &format!(
            "\\copy (SELECT {req_cols} FROM opsdash.request_log ORDER BY id) TO '{}'",
            req_file.display()
        ),
    )?;
    std::fs::write(
        script,
        format!(
            "\\copy opsdash.log_event ({cols}) FROM '{}'\n\\copy opsdash.request_log ({req_cols}) FROM '{}'\n",
            file.display(),
            req_file.display()
        ),
    )?;
    Ok(())
}

/// Runs a psql script in one transaction (as the writer commits a batch).
fn psql_file(url: &str, script: &Path) -> Result<()> {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(script)
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The 1-minute load average, as /proc/loadavg says it (the machine is shared).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// The opsdash binary measured: this build's, or `SERVE_BENCH_OPSDASH` (an older build, to
/// compare two builds in one run).
fn opsdash_bin() -> std::path::PathBuf {
    std::env::var_os("SERVE_BENCH_OPSDASH")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_opsdash").into())
}

/// `opsdash serve` on a free port; killed on drop.
struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(url: &str, config: &Path, dir: &Path) -> Result<Server> {
        let log = dir.join("serve.log");
        let out = std::fs::File::create(&log)?;
        // SERVE_BENCH_WRAP="perf record -g -o FILE --" (or a script that execs a profiler
        // with the server's arguments) runs the server under a profiler. heaptrack's script
        // does not pass the bench's SIGTERM on: its servers are left to stop by hand.
        let mut cmd = match std::env::var("SERVE_BENCH_WRAP") {
            Ok(w) if !w.trim().is_empty() => {
                let mut words = w.split_whitespace();
                let mut c = Command::new(words.next().unwrap_or_default());
                c.args(words).arg(opsdash_bin());
                c
            }
            _ => Command::new(opsdash_bin()),
        };
        let child = cmd
            .args(["--database-url", url, "--config"])
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting opsdash serve")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                let base = rest.lines().next().unwrap_or("").trim().to_string();
                return Ok(Server { child, base, log });
            }
            if Instant::now() > deadline {
                bail!("opsdash serve did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory since the last [`Server::reset_peak`], in MiB.
    fn peak_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmHWM")?;
        Ok(kb / 1024.0)
    }

    fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS")?;
        Ok(kb / 1024.0)
    }

    /// CPU time (user and system) the server has used so far.
    fn cpu(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces) start at its closing paren;
        // utime and stime are the 14th and 15th fields, in clock ticks.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        // SAFETY: sysconf only reads a constant of the system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_millis(f.iter().sum::<u64>() * 1000 / hz))
    }

    /// Makes VmHWM start again from the current RSS (`clear_refs` 5).
    fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .context("resetting VmHWM")
    }
}

impl Drop for Server {
    /// SIGTERM first (a profiler wrapping the server writes its data then), SIGKILL if it is
    /// still there after 10 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends every body with `clients` clients, each taking the next one as soon as its last is
/// answered (a 429 or 503 is sent again after a short pause). Returns the time to the last 2xx.
async fn saturate(
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<(Vec<u8>, &'static str)>>,
    clients: usize,
) -> Result<(Duration, u64)> {
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, bodies, next, refused) = (
            http.clone(),
            url.to_string(),
            bodies.clone(),
            next.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((b, ct)) = bodies.get(i) else { break };
                loop {
                    let r = http
                        .post(&url)
                        .header("content-type", *ct)
                        .body(b.clone())
                        .send()
                        .await?;
                    if r.status().is_success() {
                        break;
                    }
                    if r.status() == 429 || r.status() == 503 {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    bail!(
                        "status {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((start.elapsed(), refused.load(Ordering::Relaxed)))
}

/// Open loop at `rate` records/s for `seconds`: a request of `batch` records every
/// batch/rate seconds, whatever the answers. Returns the latencies of the 2xx answers and the
/// number of other answers.
async fn offered(
    http: &reqwest::Client,
    url: &str,
    kind: BodyKind,
    recs: &[Record],
    rate: f64,
    batch: usize,
    seconds: f64,
) -> Result<(Vec<Duration>, u64)> {
    let every = Duration::from_secs_f64(batch as f64 / rate);
    let count = (seconds * rate / batch as f64).ceil() as usize;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(count);
    for k in 0..count {
        tick.tick().await;
        let from = (k * batch) % recs.len().saturating_sub(batch).max(1);
        let (b, ct) = body(kind, &recs[from..from + batch]);
        let (http, url, latencies, refused) = (
            http.clone(),
            url.to_string(),
            latencies.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            match http
                .post(&url)
                .header("content-type", ct)
                .body(b)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    let took = t.elapsed();
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(took);
                }
                _ => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut l = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    l.sort();
    Ok((l, refused.load(Ordering::Relaxed)))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let n: usize = arg("--records")
        .map(|s| s.replace('_', "").parse())
        .transpose()
        .context("--records")?
        .unwrap_or(200_000);
    let clients: usize = arg("--clients")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(4);
    let batch: usize = arg("--batch")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500);
    let seconds: f64 = arg("--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10.0);
    let rounds: usize = arg("--rounds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let kind = BodyKind::parse(&arg("--body").unwrap_or_else(|| "ndjson".into()))?;
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("records.jsonl");
    let config = dir.path().join("config.toml");
    // `SERVE_BENCH_CONFIG`: a config (TOML text) for both opsdash paths, to try settings such
    // as `[ingest] batch_size` on both sides of the comparison.
    let config_text = std::env::var("SERVE_BENCH_CONFIG").unwrap_or_default();
    std::fs::write(&config, &config_text)?;
    if !config_text.is_empty() {
        println!("config: {}", config_text.replace('\n', "; "));
    }
    println!("generating {n} records...");
    let recs = records(n);
    write_json(&recs, &json)?;

    let tc = TestCluster::start("bench-serve")?;
    let url = format!(
        "postgresql://postgres@localhost/{}?host={}&port={}",
        opsdash::db::embedded::DATABASE,
        tc.cluster.socket_dir().display(),
        tc.cluster
            .connect_options(opsdash::db::embedded::DATABASE)
            .get_port()
    );

    // Warm-up, untimed: one pass of each path, so that partitions exist, the server has its
    // pipeline and connection, and every phase after it starts from the same state. The file
    // ingest's rows are the reference: exported as the writer sends them (every COPY column,
    // `search_tokens` included), they are what `psql \copy` loads, and every timed phase must
    // store the same rows.
    let copy_file = dir.path().join("rows.copy");
    let copy_script = dir.path().join("copy.sql");
    prepare(&url)?;
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "")?;
    let startup = run_ingest(&url, &config, &empty)?;
    run_ingest(&url, &config, &json)?;
    let reference = digest(&url)?;
    if reference.rows != n as u64 {
        bail!(
            "opsdash ingest stored {} rows, expected {n}",
            reference.rows
        );
    }
    export_rows(&url, &copy_file, &copy_script)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120))
        .build()?;
    let bodies: Arc<Vec<_>> = Arc::new(recs.chunks(batch).map(|c| body(kind, c)).collect());
    let warm = {
        let mut r = records(1);
        r[0].message = "bench warm-up".into();
        body(kind, &r)
    };
    let ctx = PhaseCtx {
        url: &url,
        config: &config,
        json: &json,
        copy_script: &copy_script,
        dir: dir.path(),
        rt: &rt,
        http: &http,
        kind,
        warm: &warm,
        bodies: &bodies,
        clients,
    };
    for phase in [Phase::Serve, Phase::Copy] {
        ctx.run(phase)?;
        let got = digest(&url)?;
        if got != reference {
            bail!(
                "{} stored other rows than opsdash ingest: {got:?} vs {reference:?}",
                phase.name()
            );
        }
    }
    println!(
        "warm-up done: every path stores the same {n} rows ({} request rows, digest {}); \
         opsdash ingest of an empty file takes {:.0} ms (in its figures below)",
        reference.requests,
        &reference.md5[..12],
        startup.as_secs_f64() * 1000.0
    );

    // Timed rounds, the order rotating from round to round so that no path always runs first
    // or after the same neighbour.
    let mut runs: Vec<(Phase, f64, Option<f64>)> = Vec::new();
    let phases = [Phase::Ingest, Phase::Serve, Phase::Copy];
    for round in 0..rounds {
        for k in 0..phases.len() {
            let phase = phases[(round + k) % phases.len()];
            let load = loadavg();
            let (took, cpu, note) = ctx.run(phase)?;
            let got = digest(&url)?;
            if got != reference {
                bail!(
                    "{} stored other rows than opsdash ingest: {got:?} vs {reference:?}",
                    phase.name()
                );
            }
            let rate = n as f64 / took.as_secs_f64();
            // Opsdash's own CPU per 1,000 rows (the server's, or the ingest process's): under a
            // shared machine's load far steadier than rows/s.
            let cpu_per_k = cpu.map(|c| c.as_secs_f64() * 1e6 / n as f64);
            let cpu_text = cpu_per_k.map_or(String::new(), |c| format!("  cpu {c:.1} ms/1k rows"));
            println!(
                "round {} {:<34} {rate:>10.0} rows/s  load {load}{cpu_text}{note}",
                round + 1,
                phase.name()
            );
            runs.push((phase, rate, cpu_per_k));
        }
    }
    let rates = |p: Phase| -> Vec<f64> { runs.iter().filter(|r| r.0 == p).map(|r| r.1).collect() };
    let cpus = |p: Phase| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.0 == p)
            .filter_map(|r| r.2)
            .collect()
    };
    let (serve_runs, ingest_runs, copy_runs) = (
        rates(Phase::Serve),
        rates(Phase::Ingest),
        rates(Phase::Copy),
    );
    let ratios: Vec<String> = serve_runs
        .iter()
        .zip(&ingest_runs)
        .map(|(s, i)| format!("{:.2}", s / i))
        .collect();
    let (serve_rate, ingest_rate, copy_rate) = (
        median(&serve_runs),
        median(&ingest_runs),
        median(&copy_runs),
    );
    println!(
        "medians of {rounds}: serve {serve_rate:.0}, ingest {ingest_rate:.0}, psql \\copy \
         {copy_rate:.0} rows/s; serve/ingest {:.2} (per round {}), serve/psql {:.2}; best \
         serve/best ingest {:.2}",
        serve_rate / ingest_rate,
        ratios.join(", "),
        serve_rate / copy_rate,
        max(&serve_runs) / max(&ingest_runs)
    );
    let (serve_cpu, ingest_cpu) = (median(&cpus(Phase::Serve)), median(&cpus(Phase::Ingest)));
    println!(
        "opsdash's own CPU per 1k rows, medians: serve {serve_cpu:.1} ms, ingest {ingest_cpu:.1} \
         ms (serve/ingest {:.2})",
        serve_cpu / ingest_cpu
    );
    report::figure(
        "serve",
        &format!(
            "opsdash serve, {} records, {clients} clients, {kind:?} (median of {rounds})",
            report::size(n as u64)
        ),
        serve_rate,
        "rows/s",
        Some((
            "opsdash ingest of the same records from a file",
            ingest_rate,
        )),
        &[Aim::RatioAtLeast(0.8)],
    );
    report::figure(
        "serve",
        &format!(
            "opsdash serve, {} records, {clients} clients, {kind:?} (median of {rounds})",
            report::size(n as u64)
        ),
        serve_rate,
        "rows/s",
        Some((
            "psql \\copy of the same rows, search_tokens included",
            copy_rate,
        )),
        &[],
    );

    // Latency at fixed offered rates (100 records a request), on a fresh server.
    let server = Server::start(&url, &config, dir.path())?;
    let target = format!("{}{}", server.base, kind.route());
    let small = 100;
    for rate in [5_000.0, 20_000.0] {
        reset(&url)?;
        let (lat, bad) = rt.block_on(offered(&http, &target, kind, &recs, rate, small, seconds))?;
        let (p50, p99) = (pct(&lat, 0.50), pct(&lat, 0.99));
        println!(
            "offered {rate:>6.0} records/s for {seconds}s: {} requests 2xx, {bad} not; \
             p50 {p50:.1} ms, p99 {p99:.1} ms",
            lat.len()
        );
        let aims: &[Aim] = if rate == 5_000.0 {
            &[Aim::AtMost(50.0)]
        } else {
            &[]
        };
        report::figure(
            "serve",
            &format!("opsdash serve p99 latency at {rate:.0} records/s offered ({small}/request)"),
            p99,
            "ms",
            None,
            aims,
        );
        report::figure(
            "serve",
            &format!("opsdash serve p50 latency at {rate:.0} records/s offered ({small}/request)"),
            p50,
            "ms",
            None,
            &[],
        );
    }

    // A burst of 10x the higher rate: peak memory of the server.
    reset(&url)?;
    let before = server.rss_mib()?;
    server.reset_peak()?;
    let burst = 200_000.0;
    let (lat, bad) = rt.block_on(offered(&http, &target, kind, &recs, burst, small, 3.0))?;
    let peak = server.peak_mib()?;
    println!(
        "burst {burst:.0} records/s offered for 3 s: {} requests 2xx, {bad} refused (429/503); \
         server RSS {before:.1} MiB before, peak {peak:.1} MiB",
        lat.len()
    );
    report::figure(
        "serve",
        "opsdash serve peak resident memory under a 10x burst (200k records/s offered)",
        peak,
        "MiB",
        None,
        &[Aim::AtMost(100.0)],
    );
    Ok(())
}
