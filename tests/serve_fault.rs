//! Fault: PostgreSQL stopped for 10 s under a running `opsdash serve` (the real binary) while
//! clients send about 1,000 numbered records a second. Afterwards every record a client was
//! told was accepted is stored exactly once, and none is stored twice.
//!
//! Two clients, one test each:
//! - [`post_batch`], our own: numbered NDJSON batches to `POST /ingest`, retrying on 503 and
//!   429 as Retry-After says. It also checks that every 503 carried Retry-After and that the
//!   503s came at once (the receiver knows the database is away) rather than after the
//!   writer's retries.
//! - the OpenTelemetry Python SDK (`fixtures/otlp/fault_send.py`, the venv `.ci/setup` makes):
//!   its OTLP/HTTP log exporter, with its own retries on 503, reports which records it was told
//!   were accepted (a SUCCESS from the exporter); those are counted by their `fault.seq`
//!   attribute.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::serve::Server;
use common::tmux::start_cluster;

const PREFIX: &str = "fault record";
/// Records per request and requests per second: 1,000 records a second.
const BATCH: u64 = 100;
const EVERY: Duration = Duration::from_millis(100);
/// A batch not accepted within this is given up (and counted as such).
const GIVE_UP: Duration = Duration::from_secs(90);

/// What one attempt got.
#[derive(Debug, Clone)]
struct Attempt {
    status: u16,
    retry_after: Option<u64>,
    took: Duration,
}

/// Sends records `first..first + BATCH` as NDJSON, once. `Err` when no HTTP answer came.
async fn post_batch(http: &reqwest::Client, url: &str, first: u64) -> Result<Attempt, String> {
    let mut body = String::new();
    for n in first..first + BATCH {
        body.push_str(&format!(
            "{{\"level\":\"info\",\"service\":\"faultclient\",\"msg\":\"{PREFIX} {n}\"}}\n"
        ));
    }
    let start = Instant::now();
    let resp = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(Attempt {
        status: resp.status().as_u16(),
        retry_after,
        took: start.elapsed(),
    })
}

#[derive(Default)]
struct Log {
    attempts: Vec<Attempt>,
    accepted: BTreeSet<u64>,
    given_up: Vec<u64>,
    transport_errors: u64,
}

/// Sends one batch until it is answered 2xx, waiting as Retry-After says between tries.
async fn deliver(http: reqwest::Client, url: String, first: u64, log: Arc<Mutex<Log>>) {
    let start = Instant::now();
    loop {
        let wait = match post_batch(&http, &url, first).await {
            Ok(a) => {
                let status = a.status;
                let wait = a.retry_after.unwrap_or(1);
                log.lock().unwrap().attempts.push(a);
                if (200..300).contains(&status) {
                    log.lock().unwrap().accepted.insert(first);
                    return;
                }
                assert!(
                    status == 503 || status == 429,
                    "batch {first}: unexpected status {status}"
                );
                Duration::from_secs(wait)
            }
            Err(_) => {
                log.lock().unwrap().transport_errors += 1;
                Duration::from_millis(500)
            }
        };
        if start.elapsed() > GIVE_UP {
            log.lock().unwrap().given_up.push(first);
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

#[test]
fn database_stopped_for_ten_seconds_under_a_steady_client() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = start_cluster("serve-fault");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&cluster.url(), dir.path(), "", &[]);
    let url = server.url("/ingest");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let log = Arc::new(Mutex::new(Log::default()));

    // 3 s steady, 10 s without the database, then 5 s more with it back.
    let sender = {
        let (http, url, log) = (http.clone(), url.clone(), log.clone());
        rt.spawn(async move {
            let mut tasks = Vec::new();
            let mut tick = tokio::time::interval(EVERY);
            for k in 0..180u64 {
                tick.tick().await;
                tasks.push(tokio::spawn(deliver(
                    http.clone(),
                    url.clone(),
                    k * BATCH,
                    log.clone(),
                )));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    // Records flow before the fault.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().accepted.is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing accepted before the fault\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.cluster.stop("fast").expect("pg_ctl stop");
    // The fault itself lasts 10 s (this is the outage, not a wait for a condition).
    std::thread::sleep(Duration::from_secs(10));
    cluster.cluster.restart_stopped().expect("restart");
    rt.block_on(sender).expect("sender");

    let log = log.lock().unwrap();
    let sent: u64 = 180;
    let unavailable: Vec<&Attempt> = log.attempts.iter().filter(|a| a.status == 503).collect();
    let busy: Vec<&Attempt> = log.attempts.iter().filter(|a| a.status == 429).collect();
    assert!(
        !unavailable.is_empty(),
        "no 503 while the database was stopped\n{}",
        server.log()
    );
    assert!(
        unavailable
            .iter()
            .chain(busy.iter())
            .all(|a| a.retry_after.is_some_and(|s| s >= 1)),
        "a 503 or 429 without Retry-After"
    );
    // Refused at once while the database is known to be away, not after ~20 s of retries.
    let mut took: Vec<Duration> = unavailable.iter().map(|a| a.took).collect();
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_secs(1),
        "503s were slow: median {median:?} of {}",
        took.len()
    );
    assert!(
        log.given_up.is_empty(),
        "batches never accepted though the database came back: {:?}\n{}",
        log.given_up,
        server.log()
    );
    assert_eq!(log.accepted.len() as u64, sent);

    // Every record answered 2xx is stored exactly once; none is stored twice.
    let db = rt.block_on(async {
        sqlx::PgPool::connect(&cluster.url())
            .await
            .expect("connect")
    });
    let rows: Vec<(String, i64)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT message, count(*) FROM opsdash.log_event
                  WHERE service = 'faultclient' GROUP BY message",
            )
            .fetch_all(&db),
        )
        .expect("query");
    let stored: BTreeMap<u64, i64> = rows
        .iter()
        .filter_map(|(m, c)| Some((m.strip_prefix(PREFIX)?.trim().parse().ok()?, *c)))
        .collect();
    let twice: Vec<_> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "records stored twice: {twice:?}");
    let mut missing = Vec::new();
    for first in &log.accepted {
        for n in *first..*first + BATCH {
            if stored.get(&n) != Some(&1) {
                missing.push(n);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} records answered 2xx but not stored (first {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    eprintln!(
        "serve fault: {} batches, {} attempts, {} answered 503 (median {median:?}), {} 429, \
         {} transport errors",
        sent,
        log.attempts.len(),
        unavailable.len(),
        busy.len(),
        log.transport_errors
    );
}

/// What the SDK's reporting exporter printed so far.
#[derive(Default)]
struct SdkLog {
    accepted: Vec<u64>,
    emitted: Option<u64>,
}

/// Waits until `what` holds for the SDK's output, at most `limit`.
fn wait_sdk(log: &Mutex<SdkLog>, limit: Duration, what: &str, cond: impl Fn(&SdkLog) -> bool) {
    let deadline = Instant::now() + limit;
    while !cond(&log.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn database_stopped_for_ten_seconds_under_the_opentelemetry_sdk() {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};

    let venv = std::env::var("OPSDASH_OTEL_VENV").unwrap_or_else(|_| "/opt/opsdash-venv".into());
    let python = std::path::Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "the OpenTelemetry Python SDK venv is missing ({venv}): run `bash .ci/setup`"
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp/fault_send.py");
    let cluster = start_cluster("serve-fault-sdk");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&cluster.url(), dir.path(), "", &[]);
    let stderr = std::fs::File::create(dir.path().join("sdk.err")).expect("stderr file");
    let mut sdk = Command::new(&python)
        .arg(&script)
        .arg(&server.base)
        .args(["--rate", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("python runs");
    let log = Arc::new(Mutex::new(SdkLog::default()));
    let reader = {
        let out = sdk.stdout.take().expect("stdout");
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut l = log.lock().unwrap();
                if let Some(seqs) = line.strip_prefix("accepted ") {
                    l.accepted.extend(
                        seqs.split_whitespace()
                            .filter_map(|n| n.parse::<u64>().ok()),
                    );
                } else if let Some(n) = line.strip_prefix("emitted ") {
                    l.emitted = n.trim().parse().ok();
                }
            }
        })
    };
    let sdk_err = || std::fs::read_to_string(dir.path().join("sdk.err")).unwrap_or_default();

    // Records flow, then the database goes away for 10 s (the outage itself, not a wait for a
    // condition), then comes back; the SDK goes on logging throughout.
    wait_sdk(
        &log,
        Duration::from_secs(30),
        "a first accepted batch",
        |l| !l.accepted.is_empty(),
    );
    cluster.cluster.stop("fast").expect("pg_ctl stop");
    let down = Instant::now();
    let during = log.lock().unwrap().accepted.len();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    cluster.cluster.restart_stopped().expect("restart");
    // Accepted again once the exporter's retries reach the database.
    wait_sdk(
        &log,
        Duration::from_secs(40),
        "an accepted batch after the restart",
        |l| l.accepted.len() > during,
    );
    let mut stdin = sdk.stdin.take().expect("stdin");
    writeln!(stdin, "stop").expect("telling the SDK to stop");
    drop(stdin);
    wait_sdk(&log, Duration::from_secs(60), "the SDK's shutdown", |l| {
        l.emitted.is_some()
    });
    let status = sdk.wait().expect("python exits");
    reader.join().expect("stdout reader");
    assert!(status.success(), "fault_send.py failed:\n{}", sdk_err());

    let err = sdk_err();
    // The exporter was refused while the database was away and tried again (its own log line).
    assert!(
        err.contains("Transient error") && err.contains("retrying"),
        "the exporter never retried:\n{err}\n{}",
        server.log()
    );
    let l = log.lock().unwrap();
    let emitted = l.emitted.expect("emitted");
    let accepted: BTreeSet<u64> = l.accepted.iter().copied().collect();
    assert_eq!(
        accepted.len(),
        l.accepted.len(),
        "the exporter reported a record accepted twice"
    );
    // Batches whose retries ran out while the database was away are dropped by the SDK (and
    // not reported); most records must still have made it.
    assert!(
        accepted.len() as u64 * 2 >= emitted,
        "only {} of {emitted} records accepted\n{err}",
        accepted.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows: Vec<(Option<String>, i64)> = rt
        .block_on(async {
            let db = sqlx::PgPool::connect(&cluster.url()).await?;
            sqlx::query_as(
                "SELECT attrs->>'fault.seq', count(*) FROM opsdash.log_event
                  WHERE service = 'faultsdk' GROUP BY 1",
            )
            .fetch_all(&db)
            .await
        })
        .expect("query");
    let stored: BTreeMap<u64, i64> = rows
        .iter()
        .filter_map(|(seq, c)| Some((seq.as_deref()?.parse().ok()?, *c)))
        .collect();
    let twice: Vec<_> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "records stored twice: {twice:?}");
    let missing: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|n| stored.get(n) != Some(&1))
        .collect();
    assert!(
        missing.is_empty(),
        "{} records the exporter was told were accepted are not stored (first {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    eprintln!(
        "serve fault (OpenTelemetry SDK): {emitted} records logged, {} accepted, {} stored",
        accepted.len(),
        stored.len()
    );
}
