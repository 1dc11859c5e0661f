//! SQL of the `pg_stat_statements` sampler: whether the extension is there, the cumulative
//! counters of each statement of the connected database, and the rows of one interval's
//! deltas in `query_log`. The same queries read opsdash's own database and each monitored one
//! (`[[database.monitor]]`).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Cumulative counters of one statement (one user, one database), as the view keeps them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StatementCounters {
    pub dbid: i64,
    pub userid: i64,
    pub queryid: i64,
    pub database: String,
    pub role: String,
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub rows: i64,
}

/// Whether `pg_stat_statements` can be read in the connected database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// `CREATE EXTENSION pg_stat_statements` was not run in this database.
    NotInstalled,
    /// Installed, but the server did not load its library (`shared_preload_libraries`).
    NotLoaded,
}

/// Whether `pg_stat_statements` is installed in the database and its library loaded. The view
/// itself says whether the library is loaded (SQLSTATE 55000 when it is not): the setting
/// `shared_preload_libraries` is readable by superusers and pg_read_all_settings only.
pub async fn availability(conn: &mut PgConnection) -> Result<Availability> {
    let installed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(&mut *conn)
    .await
    .context("looking for pg_stat_statements")?;
    if !installed {
        return Ok(Availability::NotInstalled);
    }
    // One row is read: with LIMIT 0 the server never calls the function behind the view.
    match sqlx::query("SELECT count(*) FROM (SELECT 1 FROM pg_stat_statements LIMIT 1) s")
        .execute(&mut *conn)
        .await
    {
        Ok(_) => Ok(Availability::Ready),
        Err(e)
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "55000") =>
        {
            Ok(Availability::NotLoaded)
        }
        Err(e) => Err(e).context("reading pg_stat_statements"),
    }
}

/// The counters of the connected database's statements that ran at least once. The view
/// holds the whole server's statements; each database is sampled through its own connection
/// (opsdash's, or its `[[database.monitor]]`'s), so none is counted twice when two of them
/// share a server.
pub async fn counters(conn: &mut PgConnection) -> Result<Vec<StatementCounters>> {
    // Only top-level statements: a function's inner statements would count its time twice.
    sqlx::query_as(
        "SELECT s.dbid::int8 AS dbid, s.userid::int8 AS userid, s.queryid AS queryid,
                coalesce(d.datname, '') AS database, coalesce(r.rolname, '') AS role,
                coalesce(s.query, '') AS query, s.calls AS calls,
                s.total_exec_time AS total_ms, s.rows AS rows
           FROM pg_stat_statements s
           LEFT JOIN pg_database d ON d.oid = s.dbid
           LEFT JOIN pg_roles r ON r.oid = s.userid
          WHERE s.calls > 0 AND s.queryid IS NOT NULL AND s.toplevel
            AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(conn)
    .await
    .context("reading pg_stat_statements")
}

/// One statement's work during an interval: `calls` executions averaging `mean_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementDelta {
    pub ts: DateTime<Utc>,
    pub service: String,
    pub database: String,
    pub query: String,
    pub fingerprint: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub rows: i64,
}

/// Stores the deltas as `query_log` rows (one per statement per interval, weighted by its
/// `calls`), in one statement.
pub async fn store(pool: &PgPool, deltas: &[StatementDelta]) -> Result<u64> {
    if deltas.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    let mut days: Vec<chrono::NaiveDate> = deltas.iter().map(|d| d.ts.date_naive()).collect();
    days.dedup();
    super::ingest::ensure_partitions(&mut conn, &["query_log"], &days).await?;
    let col = |f: fn(&StatementDelta) -> String| deltas.iter().map(f).collect::<Vec<_>>();
    let n = sqlx::query(
        "INSERT INTO opsdash.query_log (ts, service, database, query, fingerprint, duration_ms,
                                        rows, calls)
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::float8[], $7::int8[], $8::int8[])",
    )
    .bind(deltas.iter().map(|d| d.ts).collect::<Vec<_>>())
    .bind(col(|d| d.service.clone()))
    .bind(col(|d| d.database.clone()))
    .bind(col(|d| d.query.clone()))
    .bind(col(|d| d.fingerprint.clone()))
    .bind(deltas.iter().map(|d| d.mean_ms).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.rows).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.calls).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .context("storing pg_stat_statements samples")?
    .rows_affected();
    Ok(n)
}
