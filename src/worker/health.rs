//! Health checks of the `[[service]]`s in the config: HTTP GET with an expected status, TCP
//! connect, or a Postgres query; each with a timeout and retries. Every result is stored in
//! `opsdash.health_check` and sets the service's status: healthy (first attempt succeeded in
//! time), degraded (succeeded slowly or only after a retry), down (every attempt failed).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::config::{redact_url, ServiceCheck};
use crate::db::Db;
use crate::worker::{Job, JobContext};

/// The job: every 5 s it checks the services whose interval has elapsed, concurrently.
pub fn job() -> Job {
    Job::new(
        "health_checks",
        Duration::from_secs(5),
        |ctx: JobContext| async move { run_due(&ctx.db, &ctx.cfg.service).await },
    )
}

/// Registers the configured services and checks those that are due.
pub async fn run_due(db: &Db, checks: &[ServiceCheck]) -> Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    crate::query::health::upsert_services(db, checks).await?;
    let names: Vec<String> = checks.iter().map(|c| c.name.clone()).collect();
    let due = crate::query::health::due_services(db, &names).await?;
    let runs = checks
        .iter()
        .filter(|c| due.contains(&c.name))
        .map(|c| async move {
            let outcome = check_with_retries(c).await;
            crate::query::health::record_check(
                db,
                &c.name,
                outcome.status,
                outcome.response_ms,
                &outcome.detail,
            )
            .await
        });
    let results = futures::future::join_all(runs).await;
    // One failing write should not hide the others' results; report the first error.
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// The outcome of one check (all attempts).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: &'static str,
    pub response_ms: Option<f64>,
    pub detail: String,
}

pub async fn check_with_retries(c: &ServiceCheck) -> Outcome {
    let timeout = Duration::from_millis(c.timeout_ms.max(1));
    let mut last_error = String::new();
    for attempt in 0..=c.retries {
        let started = Instant::now();
        let res = match tokio::time::timeout(timeout, attempt_once(c, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} ms", c.timeout_ms)),
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match res {
            Ok(detail) => {
                let slow = ms > c.degraded_ms as f64;
                let status = if attempt == 0 && !slow {
                    "healthy"
                } else {
                    "degraded"
                };
                let mut detail = detail;
                if attempt > 0 {
                    detail = format!("{detail} (after {attempt} retry: {last_error})");
                } else if slow {
                    detail = format!("{detail} (slow: {ms:.0} ms > {} ms)", c.degraded_ms);
                }
                return Outcome {
                    status,
                    response_ms: Some(ms),
                    detail,
                };
            }
            Err(e) => last_error = e,
        }
        if attempt < c.retries {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Outcome {
        status: "down",
        response_ms: None,
        detail: last_error,
    }
}

async fn attempt_once(c: &ServiceCheck, timeout: Duration) -> Result<String, String> {
    match c.kind.as_str() {
        "http" => {
            let client = crate::trust::http_client(&c.ca_file)?
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::limited(5))
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client.get(&c.target).send().await.map_err(|e| {
                format!(
                    "GET {}: {}",
                    redact_url(&c.target),
                    crate::trust::error_chain(&e)
                )
            })?;
            let code = resp.status().as_u16();
            if code == c.expected_status {
                Ok(format!("HTTP {code}"))
            } else {
                Err(format!("HTTP {code}, expected {}", c.expected_status))
            }
        }
        "tcp" => {
            tokio::net::TcpStream::connect(&c.target)
                .await
                .map_err(|e| format!("connect {}: {e}", c.target))?;
            Ok("connected".into())
        }
        "postgres" => {
            use sqlx::Connection;
            let opts = crate::db::pool::parse_url(&c.target).map_err(|e| e.to_string())?;
            let mut conn = sqlx::PgConnection::connect_with(&opts).await.map_err(|e| {
                let why = crate::db::tls::explain(&e, &opts).unwrap_or_else(|| e.to_string());
                format!("connect {}: {why}", redact_url(&c.target))
            })?;
            let res = sqlx::query(&c.query)
                .execute(&mut conn)
                .await
                .map_err(|e| format!("query: {e}"));
            let _ = conn.close().await;
            res.map(|_| "query ok".to_string())
        }
        other => Err(format!("unknown check kind {other:?}")),
    }
}
