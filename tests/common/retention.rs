//! Shared setup of the retention tests (included with `#[path = "common/retention.rs"]`): a fresh
//! database, a clock, an archive directory, and the job's two phases run as the worker runs them.
#![allow(dead_code)]

use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use opsdash::config::RetentionConfig;
use opsdash::db::testkit::TestDb;
use opsdash::query::retention as q;
use opsdash::worker::retention::{Report, Retention};
use sqlx::PgPool;

pub struct Fixture {
    pub t: TestDb,
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let now = Utc::now();
        Fixture {
            t: TestDb::new().await.unwrap(),
            now,
            today: now.date_naive(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.t.db.write
    }

    /// `n` days before today.
    pub fn d(&self, n: i64) -> NaiveDate {
        self.today - Duration::days(n)
    }

    /// The job writing its archives into `dir` (the fixture's own unless a test breaks it).
    pub fn retention_in<'a>(&'a self, cfg: &'a RetentionConfig, dir: &Path) -> Retention<'a> {
        Retention::new(&self.t.db, cfg, dir.to_path_buf())
    }

    pub fn retention<'a>(&'a self, cfg: &'a RetentionConfig) -> Retention<'a> {
        self.retention_in(cfg, self.dir.path())
    }

    /// `run` alone, as a process killed right after it would leave things: every expired day
    /// has left its parent, and its table waits for the background drop. No step may fail.
    pub async fn run_without_drop_phase(&self, cfg: &RetentionConfig) -> Report {
        let report = self.retention(cfg).run(self.now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    }

    /// `run_job` with the fixture's archive directory and no fault hook; no step may fail.
    pub async fn run_clean(&self, cfg: &RetentionConfig) -> Report {
        let report = self.retention(cfg).run_job(self.now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    }
}

pub fn day_start(d: NaiveDate) -> DateTime<Utc> {
    q::day_range(d).0
}

pub async fn exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass('opsdash.' || $1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}
