//! The retention job: makes partitions ahead, moves rows out of DEFAULT partitions, removes
//! expired partitions (detach, archive + verify when configured, hand off), compacts old log
//! days to their error rows, anonymizes, and trims unpartitioned tables with batched DELETEs;
//! then, in a second phase, drops the tables handed off (the background drop).
//!
//! Why two phases: on a day of 10M rows the DETACH (the only step that locks the parent) takes
//! a few milliseconds, but DROP TABLE waits for the file system to free about 2 GB (1.5-1.7 s
//! on ext4 with `discard`). The drop step therefore ends when the day has left the parent and
//! its detached table is renamed to `PARTITION_dropOID` (`q::hand_off`); the drop phase frees
//! the storage afterwards, locking only that table.
//!
//! Every step is idempotent and its state lives in the catalog, the archive directory and
//! `retention_run`, so a run that failed or was killed is finished by the next one:
//! - a partition detached but not handed off is found (a table named like a partition that is
//!   no longer attached) and finished (archived first when configured);
//! - a table handed off but not dropped (`PARTITION_dropOID`) is dropped by the next drop
//!   phase; its rows were counted once, by the drop step that handed it off;
//! - an archive with a manifest that verifies against the table is reused; a partial or corrupt
//!   one is written again;
//! - nothing is dropped before its archive is verified, and a failure at any step leaves the
//!   data where it is, records the error and moves on to the next partition.
//!
//! A worker that does not own the tables (a login role granted opsdash_worker) runs the same
//! steps: the DDL (detach, hand-off, drop, compaction) and the anonymizing updates are
//! owner-defined functions (migrations/0026) that both call. Only the detach differs: the owner
//! detaches `CONCURRENTLY` where it can, which no function can do, so a non-owner detaches in
//! the plain form under the short `lock_timeout`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};

use crate::archive;
use crate::config::{RetentionConfig, PARTITIONED_TABLES};
use crate::db::Db;
use crate::query::retention::{self as q, Partition, PartitionState, RunOutcome};
use crate::worker::Job;

/// How often the job runs; each run does only what is due.
pub const INTERVAL: Duration = Duration::from_secs(15 * 60);

pub fn job() -> Job {
    Job::new("retention", INTERVAL, |ctx| async move {
        let dir = archive::archive_dir(&ctx.cfg)?;
        let report = run_once(&ctx.db, &ctx.cfg.retention, &dir).await?;
        if let Some(e) = report.errors.first() {
            bail!(
                "{} retention step(s) failed; first: {e}",
                report.errors.len()
            );
        }
        Ok(())
    })
}

/// The steps of dropping one partition, for fault-injection tests (`Retention::after_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Detached,
    ArchiveWritten,
    ArchiveVerified,
    /// Renamed for the background drop, run record finished: the drop step is over.
    HandedOff,
    /// The background drop freed the table (`Retention::drop_handed_off`).
    Dropped,
}

pub type StepHook = Box<dyn Fn(Step, &Partition, &Path) -> Result<()> + Send + Sync>;

/// What one run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub partitions_created: i32,
    pub moved_from_default: Vec<String>,
    /// Partitions whose drop step finished: detached (archived when configured) and handed to
    /// the background drop. Their rows are gone from the parent table.
    pub dropped: Vec<String>,
    /// Tables the background drop removed (pending-drop names, `q::pending_drop_name`).
    pub freed: Vec<String>,
    pub archived: Vec<String>,
    pub compacted: Vec<String>,
    pub anonymized: Vec<String>,
    pub trimmed: Vec<(String, u64)>,
    /// One line per failed step ("partition: error").
    pub errors: Vec<String>,
    /// Why anonymization was refused (no secret configured). Recorded in `retention_run` for
    /// the Health tab, but not a failure of the job: everything else ran.
    pub anonymize_refused: Option<String>,
}

pub struct Retention<'a> {
    db: &'a Db,
    cfg: &'a RetentionConfig,
    archive_dir: PathBuf,
    hook: Option<StepHook>,
}

impl<'a> Retention<'a> {
    pub fn new(db: &'a Db, cfg: &'a RetentionConfig, archive_dir: PathBuf) -> Self {
        Retention {
            db,
            cfg,
            archive_dir,
            hook: None,
        }
    }

    /// Called after each step of a partition drop; an error stops that partition there, as a
    /// crash would (tests inject faults with it: corrupt a file, "kill" after the detach).
    pub fn after_step(mut self, hook: StepHook) -> Self {
        self.hook = Some(hook);
        self
    }

    fn step(&self, step: Step, p: &Partition) -> Result<()> {
        match &self.hook {
            Some(h) => h(step, p, &self.archive_dir),
            None => Ok(()),
        }
    }

    /// One retention run as of `now` (tests pass a simulated clock). Expired partitions leave
    /// their parent; their storage is freed by `drop_handed_off` (`run_once` does both).
    pub async fn run(&self, now: DateTime<Utc>) -> Result<Report> {
        if let Err((_, msg)) = self.cfg.check() {
            bail!("retention config: {msg}");
        }
        let pool = &self.db.write;
        let today = now.date_naive();
        let mut report = Report {
            partitions_created: q::ensure_partitions(
                pool,
                today,
                today + chrono::Duration::days(self.cfg.partitions_ahead_days as i64),
            )
            .await?,
            ..Default::default()
        };
        self.move_default_rows(today, &mut report).await?;
        self.drop_expired(now, &mut report).await?;
        self.compact_logs(now, &mut report).await?;
        self.anonymize(today, &mut report).await?;
        self.trim(now, &mut report).await;
        Ok(report)
    }

    async fn move_default_rows(&self, today: NaiveDate, report: &mut Report) -> Result<()> {
        let pool = &self.db.write;
        let last = today + chrono::Duration::days(self.cfg.partitions_ahead_days as i64);
        for table in PARTITIONED_TABLES {
            for day in q::default_partition_days(pool, table, last, 1000).await? {
                match q::ensure_partition(pool, table, day).await {
                    Ok(part) => report.moved_from_default.push(part),
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let _ =
                            q::run_record(pool, table, None, "move_default", 0, Some(&msg)).await;
                        report.errors.push(format!("{table} default {day}: {msg}"));
                    }
                }
            }
        }
        Ok(())
    }

    async fn drop_expired(&self, now: DateTime<Utc>, report: &mut Report) -> Result<()> {
        let pool = &self.db.write;
        let today = now.date_naive();
        let held: HashSet<String> = q::holds(pool)
            .await?
            .into_iter()
            .filter(|(_, until)| *until > now)
            .map(|(p, _)| p)
            .collect();
        let mut concurrent = std::collections::HashMap::new();
        for p in q::partitions(pool).await? {
            let Some(policy) = self.cfg.policy(p.table) else {
                continue;
            };
            let cutoff = today - chrono::Duration::days(policy.keep_days as i64);
            if p.day >= cutoff || held.contains(&p.name) {
                continue;
            }
            let conc = match concurrent.get(p.table) {
                Some(c) => *c,
                None => {
                    let c = !q::has_default_partition(pool, p.table).await?;
                    concurrent.insert(p.table, c);
                    c
                }
            };
            match self.drop_partition(&p, policy.archive, conc).await {
                Ok(archived) => {
                    if archived {
                        report.archived.push(p.name.clone());
                    }
                    report.dropped.push(p.name.clone());
                }
                Err(e) => report.errors.push(format!("{}: {e:#}", p.name)),
            }
        }
        Ok(())
    }

    /// detach -> (archive -> verify) -> hand off, recorded as one 'drop' step; returns whether
    /// it archived. The storage is freed later by `drop_handed_off`.
    async fn drop_partition(&self, p: &Partition, archive: bool, concurrent: bool) -> Result<bool> {
        let pool = &self.db.write;
        let range = Some(q::day_range(p.day));
        let run = q::run_start(pool, p.table, Some(&p.name), "drop", range).await?;
        let result = async {
            // An archive is checked against an exact count of the (then static) table; a
            // plain drop records the statistics' estimate taken before the detach: counting a
            // day of rows is a full scan (240 ms of a 440 ms drop at 1M rows) for a figure
            // only the Health tab shows.
            let estimate = if archive {
                None
            } else {
                q::estimated_rows(pool, &p.name).await?
            };
            self.detach(p, concurrent).await?;
            let mut detached = p.clone();
            detached.state = PartitionState::Detached;
            self.step(Step::Detached, &detached)?;
            let mut outcome = RunOutcome {
                rows: estimate,
                ..Default::default()
            };
            if archive {
                let rows = q::count_rows(pool, &p.name).await?;
                outcome.rows = Some(rows);
                let (m, mpath) = self.archive(&detached, rows).await?;
                outcome.archive_path =
                    Some(mpath.with_file_name(&m.file).to_string_lossy().to_string());
                outcome.archive_bytes = Some(m.bytes as i64);
                outcome.sha256 = Some(m.sha256);
            }
            // The run record is finished inside the hand-off transaction: a crash leaves either
            // a detached table and an unfinished record, or neither.
            q::hand_off(pool, &detached, run, &outcome).await?;
            self.step(Step::HandedOff, &detached)?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(archive),
            Err(e) => {
                q::run_finish(pool, run, &RunOutcome::default(), Some(&format!("{e:#}"))).await?;
                Err(e)
            }
        }
    }

    /// Detaches, retrying a lock timeout.
    async fn detach(&self, p: &Partition, concurrent: bool) -> Result<()> {
        let pool = &self.db.write;
        let mut attempt = 0;
        loop {
            let detached = q::detach_partition(
                pool,
                p,
                concurrent,
                self.cfg.lock_timeout_ms,
                self.db.access.owner,
            )
            .await;
            match detached {
                Ok(()) => break,
                Err(e) if q::is_lock_timeout(&e) && attempt + 1 < self.cfg.lock_attempts => {
                    attempt += 1;
                    // Back off so waiting ingest gets through between attempts.
                    tokio::time::sleep(Duration::from_millis(
                        self.cfg.lock_timeout_ms.saturating_mul(attempt as u64),
                    ))
                    .await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes (or reuses) and verifies the archive of a detached partition with `rows` rows.
    /// Returns the manifest and its path.
    async fn archive(&self, p: &Partition, rows: i64) -> Result<(archive::Manifest, PathBuf)> {
        let pool = &self.db.write;
        let run = q::run_start(
            pool,
            p.table,
            Some(&p.name),
            "archive",
            Some(q::day_range(p.day)),
        )
        .await?;
        let result = async {
            let relid = q::relid(pool, &p.name).await?;
            // Our archive from an earlier, interrupted run is reused when it verifies, rewritten
            // when it does not; archives of earlier incarnations of this day are kept.
            let mut generation = 0;
            let (stem, mpath, reusable) = loop {
                let stem = archive::stem(&p.name, generation);
                let mpath = archive::manifest_path(&self.archive_dir, p.table, &stem);
                if !mpath.exists() {
                    break (stem, mpath, None);
                }
                match archive::read_manifest(&mpath) {
                    Ok(m) if m.relid == relid && m.partition == p.name => {
                        let ok = m.rows == rows as u64 && archive::verify(&mpath, &m).is_ok();
                        break (stem, mpath, ok.then_some(m));
                    }
                    _ => generation += 1,
                }
            };
            let m = match reusable {
                Some(m) => m,
                None => {
                    let m = archive::write(
                        pool,
                        &self.archive_dir,
                        p.table,
                        &p.name,
                        &stem,
                        p.day,
                        relid,
                    )
                    .await?;
                    self.step(Step::ArchiveWritten, p)?;
                    m
                }
            };
            let verified = archive::verify(&mpath, &m)?;
            if verified != rows as u64 {
                bail!(
                    "{}: archive holds {verified} rows, the partition {rows}",
                    mpath.display()
                );
            }
            self.step(Step::ArchiveVerified, p)?;
            anyhow::Ok((m, mpath))
        }
        .await;
        match result {
            Ok((m, mpath)) => {
                let outcome = RunOutcome {
                    rows: Some(rows),
                    archive_path: Some(mpath.with_file_name(&m.file).to_string_lossy().to_string()),
                    archive_bytes: Some(m.bytes as i64),
                    sha256: Some(m.sha256.clone()),
                };
                q::run_finish(pool, run, &outcome, None).await?;
                Ok((m, mpath))
            }
            Err(e) => {
                q::run_finish(pool, run, &RunOutcome::default(), Some(&format!("{e:#}"))).await?;
                Err(e)
            }
        }
    }

    /// A whole job run: `run`, then the background drop (`drop_handed_off`) of what it or an
    /// earlier, interrupted run handed off. The report holds both phases' work and errors.
    pub async fn run_job(&self, now: DateTime<Utc>) -> Result<Report> {
        let mut report = self.run(now).await.context("retention run")?;
        let dropped = self
            .drop_handed_off()
            .await
            .context("retention drop phase")?;
        report.freed = dropped.freed;
        report.errors.extend(dropped.errors);
        Ok(report)
    }

    /// The background drop: drops every table handed off by a drop step, this run's or an
    /// earlier one's (a process killed between the hand-off and the drop), one at a time.
    /// Locks only those tables, never a parent. Each drop is recorded under the pending-drop
    /// name with no row count (the rows were counted by the drop step), so a failure shows in
    /// the Health tab until a later drop succeeds.
    pub async fn drop_handed_off(&self) -> Result<Report> {
        let pool = &self.db.write;
        let mut report = Report::default();
        for name in q::pending_drops(pool).await? {
            let Some((table, partition, day)) = q::parse_pending_drop_name(&name) else {
                continue;
            };
            let run =
                q::run_start(pool, table, Some(&name), "drop", Some(q::day_range(day))).await?;
            let result = async {
                q::drop_pending(pool, &name).await?;
                let p = Partition {
                    table,
                    name: partition,
                    day,
                    state: PartitionState::Detached,
                };
                self.step(Step::Dropped, &p)
            }
            .await;
            let error = result.as_ref().err().map(|e| format!("{e:#}"));
            q::run_finish(pool, run, &RunOutcome::default(), error.as_deref()).await?;
            match error {
                None => report.freed.push(name),
                Some(e) => report.errors.push(format!("{name}: {e}")),
            }
        }
        Ok(report)
    }

    async fn compact_logs(&self, now: DateTime<Utc>, report: &mut Report) -> Result<()> {
        let pool = &self.db.write;
        let today = now.date_naive();
        let keep = self.cfg.log_non_error_keep_days;
        if keep >= self.cfg.log_event.keep_days {
            return Ok(());
        }
        let cutoff = today - chrono::Duration::days(keep as i64);
        let done: HashSet<String> = q::marked(pool, "compacted").await?.into_iter().collect();
        // A held day (a restore, `ingest --keep`) keeps all its rows, not only its errors.
        let held: HashSet<String> = q::holds(pool)
            .await?
            .into_iter()
            .filter(|(_, until)| *until > now)
            .map(|(p, _)| p)
            .collect();
        for p in q::partitions(pool).await? {
            if p.table != "log_event"
                || p.state != PartitionState::Attached
                || p.day >= cutoff
                || done.contains(&p.name)
                || held.contains(&p.name)
            {
                continue;
            }
            let mut attempt = 0;
            let result = loop {
                match q::compact_log_partition(pool, &p, self.cfg.lock_timeout_ms).await {
                    Err(e) if q::is_lock_timeout(&e) && attempt + 1 < self.cfg.lock_attempts => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(
                            self.cfg.lock_timeout_ms.saturating_mul(attempt as u64),
                        ))
                        .await;
                    }
                    other => break other,
                }
            };
            let (err, rows) = match &result {
                Ok((_, removed)) => (None, *removed),
                Err(e) => (Some(format!("{e:#}")), 0),
            };
            q::run_record(
                pool,
                "log_event",
                Some(&p.name),
                "compact",
                rows,
                err.as_deref(),
            )
            .await?;
            match err {
                None => report.compacted.push(p.name.clone()),
                Some(e) => report.errors.push(format!("{}: {e}", p.name)),
            }
        }
        Ok(())
    }

    async fn anonymize(&self, today: NaiveDate, report: &mut Report) -> Result<()> {
        let pool = &self.db.write;
        let cutoff = today - chrono::Duration::days(self.cfg.anonymize_after_days as i64);
        let done: HashSet<String> = q::marked(pool, "anonymized").await?.into_iter().collect();
        let due: Vec<Partition> = q::partitions(pool)
            .await?
            .into_iter()
            .filter(|p| {
                matches!(p.table, "log_event" | "request_log" | "audit_event")
                    && p.state == PartitionState::Attached
                    && p.day < cutoff
                    && !done.contains(&p.name)
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        if self.cfg.anonymize_secret.is_empty() {
            // Refuse rather than invent a key: a key generated into the database would sit next
            // to the data it protects, and pseudonyms are only as private as their key.
            let msg = format!(
                "{} partition(s) are due for anonymization but retention.anonymize_secret is \
                 empty; set it (a long random string, chmod 600 the config file)",
                due.len()
            );
            let mut tables: Vec<&str> = due.iter().map(|p| p.table).collect();
            tables.dedup();
            for table in tables {
                q::run_record(pool, table, None, "anonymize", 0, Some(&msg)).await?;
            }
            report.anonymize_refused = Some(msg);
            return Ok(());
        }
        for p in due {
            let result = q::anonymize_partition(pool, &p, self.cfg).await;
            let (err, rows) = match &result {
                Ok(n) => (None, *n as i64),
                Err(e) => (Some(format!("{e:#}")), 0),
            };
            q::run_record(
                pool,
                p.table,
                Some(&p.name),
                "anonymize",
                rows,
                err.as_deref(),
            )
            .await?;
            match err {
                None => report.anonymized.push(p.name.clone()),
                Some(e) => report.errors.push(format!("{}: {e}", p.name)),
            }
        }
        Ok(())
    }

    async fn trim(&self, now: DateTime<Utc>, report: &mut Report) {
        let pool = &self.db.write;
        let mut tables: Vec<(&str, u32)> = self
            .cfg
            .policies()
            .into_iter()
            .filter(|(t, _)| !PARTITIONED_TABLES.contains(t))
            .map(|(t, p)| (t, p.keep_days))
            .collect();
        // Alert history goes with its resolved alerts (and their notifications).
        tables.push(("alert", self.cfg.alert_history.keep_days));
        for (table, keep) in tables {
            let cutoff = now - chrono::Duration::days(keep as i64);
            match q::trim_table(pool, table, cutoff, self.cfg.delete_batch).await {
                Ok(0) => {}
                Ok(n) => {
                    let _ = q::run_record(pool, table, None, "trim", n as i64, None).await;
                    report.trimmed.push((table.to_string(), n));
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let _ = q::run_record(pool, table, None, "trim", 0, Some(&msg)).await;
                    report.errors.push(format!("{table}: {msg}"));
                }
            }
        }
    }
}

/// One job run now (`Retention::run_job`): what the worker and `opsdash retention run` do.
pub async fn run_once(db: &Db, cfg: &RetentionConfig, archive_dir: &Path) -> Result<Report> {
    Retention::new(db, cfg, archive_dir.to_path_buf())
        .run_job(Utc::now())
        .await
}
