//! The scheduler and its leases against a real database: several instances, one runner per job.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::worker::{lease, spawn_jobs, Job};

fn fast_config() -> Arc<Config> {
    let mut cfg = Config::default();
    cfg.worker.lease_ttl_ms = 300;
    cfg.worker.job_timeout_ms = 5000;
    Arc::new(cfg)
}

#[derive(Default)]
struct Probe {
    running: AtomicUsize,
    max_running: AtomicUsize,
    runs: AtomicUsize,
    by: Mutex<Vec<String>>,
}

/// Counts a run as running until its future completes or is dropped: the scheduler drops a run
/// the moment its lease is lost, and aborting an instance drops it mid-run, and neither must
/// leave a phantom "still running" behind that would look like an overlap later.
struct Running(Arc<Probe>);

impl Running {
    fn enter(probe: Arc<Probe>) -> Running {
        let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
        probe.max_running.fetch_max(now, Ordering::SeqCst);
        Running(probe)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn probe_job(probe: Arc<Probe>) -> Job {
    Job::new("probe", Duration::from_millis(30), move |ctx| {
        let probe = probe.clone();
        async move {
            let _running = Running::enter(probe.clone());
            tokio::time::sleep(Duration::from_millis(15)).await;
            probe.runs.fetch_add(1, Ordering::SeqCst);
            probe.by.lock().unwrap().push(ctx.instance.clone());
            Ok(())
        }
    })
}

async fn holder(t: &TestDb, job: &str) -> Option<(String, i64)> {
    sqlx::query_as::<_, (Option<String>, i64)>(
        "SELECT holder, epoch FROM opsdash.worker_lease WHERE job = $1 AND expires_at > now()",
    )
    .bind(job)
    .fetch_optional(&t.db.write)
    .await
    .unwrap()
    .and_then(|(h, e)| h.map(|h| (h, e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_run_each_job_once_at_a_time_and_take_over_from_a_dead_leader() {
    let t = TestDb::new().await.unwrap();
    let cfg = fast_config();
    let probe = Arc::new(Probe::default());
    let mut handles: Vec<_> = (0..3)
        .map(|i| {
            spawn_jobs(
                t.db.clone(),
                cfg.clone(),
                vec![probe_job(probe.clone())],
                format!("test:{i}"),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        probe.max_running.load(Ordering::SeqCst),
        1,
        "two instances ran the job at once"
    );
    let runs_before = probe.runs.load(Ordering::SeqCst);
    assert!(runs_before >= 5, "job ran only {runs_before} times");

    // Kill the leader without letting it release the lease, as a crash would.
    let (leader, epoch) = holder(&t, "probe").await.expect("someone leads");
    let idx = handles.iter().position(|h| h.instance == leader).unwrap();
    handles.remove(idx).abort();
    let killed_at = std::time::Instant::now();
    let (new_leader, new_epoch) = loop {
        if let Some((h, e)) = holder(&t, "probe").await {
            if h != leader {
                break (h, e);
            }
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "nobody took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Takeover within two lease TTLs (300 ms each) plus scheduling slack.
    assert!(
        killed_at.elapsed() < Duration::from_millis(1200),
        "took {:?}",
        killed_at.elapsed()
    );
    assert!(new_epoch > epoch);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<String> = probe.by.lock().unwrap()[runs_before..].to_vec();
    assert!(after.contains(&new_leader), "new leader never ran the job");
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);

    let row: (Option<chrono::DateTime<chrono::Utc>>, Option<String>) = sqlx::query_as(
        "SELECT last_ok_at, last_error FROM opsdash.worker_lease WHERE job = 'probe'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert!(row.0.is_some() && row.1.is_none());
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.worker_instance")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert!(instances >= 2);
    for h in handles {
        h.shutdown().await;
    }
    // A clean shutdown releases the lease at once.
    assert!(holder(&t, "probe").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_leader_write_is_fenced() {
    let t = TestDb::new().await.unwrap();
    let pool = &t.db.write;
    let ttl = Duration::from_millis(200);
    let a = lease::acquire(pool, "fence", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease::acquire(pool, "fence", "b", ttl).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = lease::acquire(pool, "fence", "b", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(b > a);
    let mut tx = pool.begin().await.unwrap();
    let err = lease::fence(&mut *tx, "fence", a).await.unwrap_err();
    assert!(err.downcast_ref::<lease::Fenced>().is_some(), "{err:#}");
    drop(tx);
    assert!(!lease::renew(pool, "fence", "a", a, ttl).await.unwrap());
    let mut tx = pool.begin().await.unwrap();
    lease::fence(&mut *tx, "fence", b).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_is_dropped_the_moment_the_lease_is_lost_and_slow_runs_are_cut_off() {
    let t = TestDb::new().await.unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let slow = Job::new("slow", Duration::from_secs(60), move |_ctx| {
        let f = f.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    let h = spawn_jobs(t.db.clone(), fast_config(), vec![slow], "solo".into());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another instance steals the lease (as after a network partition).
    sqlx::query(
        "UPDATE opsdash.worker_lease SET holder = 'thief', epoch = epoch + 1 WHERE job = 'slow'",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the run kept going after the lease was lost"
    );
    h.shutdown().await;

    let mut cfg = Config::default();
    cfg.worker.lease_ttl_ms = 300;
    cfg.worker.job_timeout_ms = 200;
    let hang = Job::new("hang", Duration::from_secs(60), |_ctx| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    });
    let h = spawn_jobs(t.db.clone(), Arc::new(cfg), vec![hang], "solo2".into());
    let mut err = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        err = sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM opsdash.worker_lease WHERE job = 'hang'",
        )
        .fetch_optional(&t.db.write)
        .await
        .unwrap()
        .flatten();
        if err.is_some() {
            break;
        }
    }
    assert!(err.unwrap_or_default().contains("timed out"));
    h.shutdown().await;
}
