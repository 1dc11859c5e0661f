//! `opsdash demo`: synthetic traffic with scripted incidents, on the embedded cluster or any
//! database, shown in the dashboard. Headless, it prints a progress line every few seconds and
//! a summary at the end.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;

use crate::config::Config;
use crate::demo::{self, DemoEvent, DemoOptions, DemoStats, Phase, RowCounts};
use crate::sanitize::sanitize;

#[derive(Debug, ClapArgs)]
pub struct DemoArgs {
    /// Run without the dashboard (for scripts and tests); stop after --duration or Ctrl-C.
    #[arg(long)]
    pub headless: bool,
    /// With --headless: live traffic for this long once the backfill is done (e.g. 30s, 5m),
    /// then stop; default: run until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "headless")]
    pub duration: Option<Duration>,
    /// Live requests per second.
    #[arg(long, value_name = "N", default_value_t = 50.0)]
    pub rate: f64,
    /// History to backfill before live traffic (0s: none). Windows an earlier run already
    /// wrote are skipped.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub backfill: Duration,
    /// Requests the backfill window holds in total.
    #[arg(long, value_name = "N", default_value_t = 1_100_000)]
    pub backfill_requests: u64,
    /// Length of the scripted incident loop (six incidents per loop).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub incident_cycle: Duration,
    #[command(flatten)]
    pub tui: crate::cli::tui::TuiArgs,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long after the start the demo's first scripted incident begins.
const FIRST_INCIDENT: Duration = Duration::from_secs(10);

pub fn run(cfg: &Config, args: DemoArgs) -> Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate >= 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be between 0 and 100000 requests per second");
    }
    let opts = DemoOptions {
        rate: args.rate,
        backfill_window: args.backfill,
        backfill_requests: args.backfill_requests,
        incident_cycle: args.incident_cycle,
        // A newcomer should see an incident (and its alert) in the first minute.
        first_incident: Some(FIRST_INCIDENT),
    };
    if args.headless {
        super::runtime()?.block_on(headless(cfg, opts, args.duration))
    } else {
        super::runtime()?.block_on(with_dashboard(cfg, opts, &args.tui))
    }
}

/// The demo in the background, the dashboard in front; the traffic stops when the dashboard
/// is closed. Nothing is printed while the dashboard owns the terminal.
async fn with_dashboard(
    cfg: &Config,
    opts: DemoOptions,
    tui_args: &crate::cli::tui::TuiArgs,
) -> Result<ExitCode> {
    let db = crate::db::Db::open(cfg).await?;
    let mut handle = demo::start(db.clone(), opts);
    let cfg = std::sync::Arc::new(cfg.clone());
    // The worker runs beside the traffic, as in any dashboard process: rollups fill the
    // Performance tab and the shipped alert rules fire on the scripted incidents.
    let instance = crate::worker::instance_id();
    let worker = crate::jobs::spawn_as(db.clone(), cfg.clone(), instance.clone()).await;
    let counters = handle.counters();
    let background = crate::tui::Background(std::sync::Arc::new(move || {
        let p = counters.snapshot().backfilling?;
        Some(format!(
            "DEMO BACKFILL {:.0}% ({}/{} slices, {} rows/s): history figures are partial until it ends; live traffic runs beside it",
            p.percent(),
            p.slices_done,
            p.slices,
            thousands(p.rows_per_sec() as u64)
        ))
    }));
    let tui_opts = crate::tui::Options {
        no_color: tui_args.no_color,
        instance: Some(instance),
        background: Some(background),
    };
    let shown = crate::tui::run(db, cfg, tui_opts).await;
    worker.shutdown().await;
    let mut problems = Vec::new();
    while let Ok(ev) = handle.events.try_recv() {
        if matches!(ev, DemoEvent::Error(_) | DemoEvent::BackfillFailed(_)) {
            problems.push(ev);
        }
    }
    let stats = handle.stop().await;
    shown.context("dashboard")?;
    for ev in problems.iter().rev().take(5).rev() {
        print_event(ev);
    }
    print_summary(&stats?);
    Ok(ExitCode::SUCCESS)
}

async fn headless(cfg: &Config, opts: DemoOptions, duration: Option<Duration>) -> Result<ExitCode> {
    let db = crate::db::Db::open(cfg).await?;
    crate::outln!("demo: writing to {}", db.target);
    let started = Instant::now();
    let mut handle = demo::start(db.clone(), opts);
    let worker = crate::jobs::spawn(db, std::sync::Arc::new(cfg.clone())).await;
    // --duration counts live traffic: the backfill always completes (or is interrupted).
    let mut deadline: Option<tokio::time::Instant> = None;
    let start_clock = |deadline: &mut Option<tokio::time::Instant>| {
        if deadline.is_none() {
            *deadline = duration.map(|d| tokio::time::Instant::now() + d);
        }
    };
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    progress.tick().await;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let reason = loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until_deadline => break "duration elapsed",
            _ = tokio::signal::ctrl_c() => break "interrupted",
            _ = sigterm.recv() => break "terminated",
            ev = handle.events.recv() => match ev {
                Ok(ev) => {
                    if matches!(ev, DemoEvent::LiveStarted { .. }) {
                        start_clock(&mut deadline);
                    }
                    print_event(&ev);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    crate::outln!("demo: {n} events not shown");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break "stopped",
            },
            _ = progress.tick() => {
                let stats = handle.stats();
                if stats.phase == Phase::Live {
                    start_clock(&mut deadline);
                }
                crate::outln!("demo: {}", progress_line(&stats));
                if handle.is_finished() {
                    break "stopped";
                }
            }
        }
    };
    let stats = handle.stop().await?;
    worker.shutdown().await;
    crate::outln!(
        "demo: {reason} after {}",
        humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
    );
    print_summary(&stats);
    Ok(ExitCode::SUCCESS)
}

fn print_event(ev: &DemoEvent) {
    match ev {
        DemoEvent::BackfillPlanned {
            from,
            to,
            slices,
            expected_requests,
        } if *slices == 0 => crate::outln!(
            "demo: backfill {} .. {} already written by an earlier run, skipped",
            from.format("%Y-%m-%d %H:%M"),
            to.format("%H:%M")
        ),
        DemoEvent::BackfillPlanned {
            from,
            to,
            slices,
            expected_requests,
        } => crate::outln!(
            "demo: backfilling {} .. {} UTC: ~{} requests in {slices} slices",
            from.format("%Y-%m-%d %H:%M"),
            to.format("%Y-%m-%d %H:%M"),
            thousands(*expected_requests)
        ),
        DemoEvent::BackfillDone(r) if r.slices == 0 => {}
        DemoEvent::BackfillDone(r) => crate::outln!(
            "demo: backfill done: {} rows ({} requests) in {:.1} s, {} rows/s",
            thousands(r.rows.total()),
            thousands(r.rows.requests),
            r.elapsed.as_secs_f64(),
            thousands(r.rows_per_sec() as u64)
        ),
        DemoEvent::BackfillFailed(e) => {
            crate::outln!("demo: backfill incomplete: {}", sanitize(e));
        }
        DemoEvent::LiveStarted { rate } => {
            crate::outln!("demo: live traffic at {rate} requests/s")
        }
        DemoEvent::IncidentStarted(o) => crate::outln!(
            "demo: incident started: {} (until {} UTC)",
            demo::incidents::describe(o.kind),
            o.end.format("%H:%M:%S")
        ),
        DemoEvent::IncidentEnded(o) => crate::outln!(
            "demo: incident ended: {}",
            demo::incidents::describe(o.kind)
        ),
        DemoEvent::Error(e) => crate::outln!("demo: error: {}", sanitize(e)),
    }
}

fn progress_line(s: &DemoStats) -> String {
    let phase = match s.phase {
        Phase::Starting => "starting",
        Phase::Backfill => "backfill",
        Phase::Live => "live",
        Phase::Stopped => "stopped",
    };
    let active = if s.active.is_empty() {
        "none".to_string()
    } else {
        s.active
            .iter()
            .map(|o| format!("{:?}", o.kind))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{phase} | {} | batches {} | errors {} | incidents: {active}",
        counts_line(&s.rows),
        s.live_batches,
        s.errors
    )
}

fn counts_line(c: &RowCounts) -> String {
    format!(
        "request_log {} log_event {} query_log {} audit_event {} health_check {}",
        thousands(c.requests),
        thousands(c.logs),
        thousands(c.queries),
        thousands(c.audits),
        thousands(c.health)
    )
}

fn print_summary(s: &DemoStats) {
    crate::outln!("demo: rows written: {}", counts_line(&s.rows));
    crate::outln!(
        "demo: total {} rows, {} live batches, {} notifies, {} failed batches",
        thousands(s.rows.total()),
        s.live_batches,
        s.notifies,
        s.errors
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
