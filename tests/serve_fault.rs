//! Fault: PostgreSQL stopped for 10 s under a running `opsdash serve` (the real binary) while a
//! client sends about 1,000 numbered records a second to `POST /ingest`, retrying on 503 and
//! 429 as the Retry-After header says. Afterwards every record the client was answered 2xx for
//! is stored exactly once, every 503 carried Retry-After, and the 503s came at once (the
//! receiver knows the database is away) rather than after the writer's retries.
//!
//! The client is [`post_batch`]: one numbered batch as NDJSON. The issue names the OpenTelemetry
//! SDK as the client; once `/v1/logs` lands, a second client that posts the same numbered
//! records through the SDK's OTLP exporter can replace it without touching the rest.

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
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !log.lock().unwrap().accepted.is_empty(),
        "nothing accepted before the fault\n{}",
        server.log()
    );
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
