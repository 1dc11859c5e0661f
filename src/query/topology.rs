//! The SQL `db::topology` asks of the servers: whether a session keeps its backend across
//! transactions (a transaction-mode pooler hands each transaction any server connection), and a
//! read replica's replay position and lag. Every statement here uses the simple query protocol
//! (a plain `&str` statement without parameters): it must work through PgBouncer in transaction mode, which cannot
//! carry a statement prepared in one round trip to the next.

use sqlx::{Executor, PgConnection, Row};

/// The backend process serving this statement.
pub async fn backend_pid(conn: &mut PgConnection) -> sqlx::Result<i32> {
    let row = conn.fetch_one("SELECT pg_backend_pid()").await?;
    row.try_get(0)
}

/// Opens a transaction and returns the backend serving it; it stays that transaction's until
/// `end_transaction`.
pub async fn backend_pid_in_transaction(conn: &mut PgConnection) -> sqlx::Result<i32> {
    conn.execute("BEGIN").await?;
    backend_pid(conn).await
}

pub async fn end_transaction(conn: &mut PgConnection) -> sqlx::Result<()> {
    conn.execute("ROLLBACK").await?;
    Ok(())
}

/// Session settings through `SET` rather than the startup `options` parameter, which PgBouncer
/// refuses ("unsupported startup parameter: options"). `setting` and `value` come from our own
/// code, never from input.
pub async fn set_session(conn: &mut PgConnection, setting: &str, value: &str) -> sqlx::Result<()> {
    conn.execute(format!("SET {setting} = '{value}'").as_str())
        .await?;
    Ok(())
}

/// How far a replica is behind, as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayState {
    /// False when the server is not in recovery (not a replica at all, or promoted).
    pub in_recovery: bool,
    /// Seconds between now and the last transaction replayed, zero when everything received
    /// is replayed (an idle primary must not look like a lagging replica).
    pub lag_s: f64,
    /// WAL received but not yet replayed, in bytes.
    pub behind_bytes: i64,
    /// Replay is paused (`pg_wal_replay_pause()`).
    pub paused: bool,
}

pub async fn replay_state(conn: &mut PgConnection) -> sqlx::Result<ReplayState> {
    let row = conn
        .fetch_one(
            "SELECT pg_is_in_recovery(),
                CASE WHEN NOT pg_is_in_recovery()
                       OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                     THEN 0
                     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
                END::float8,
                coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
                         0)::int8,
                CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() <> 'not paused'
                     ELSE false END",
        )
        .await?;
    Ok(ReplayState {
        in_recovery: row.try_get(0)?,
        lag_s: row.try_get::<f64, _>(1)?.max(0.0),
        behind_bytes: row.try_get(2)?,
        paused: row.try_get(3)?,
    })
}

/// The oldest transaction still running as this server sees it: every transaction below it has
/// finished here (on a replica: its commit or abort has been replayed).
pub async fn snapshot_xmin(conn: &mut PgConnection) -> sqlx::Result<i64> {
    let row = conn
        .fetch_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8")
        .await?;
    row.try_get(0)
}

/// One statement with a parameter: sqlx prepares it as a named statement (`sqlx_s_N`) in one
/// round trip and binds it in the next, which only a pooler that tracks prepared statements
/// can carry across server connections.
pub async fn prepared_echo(conn: &mut PgConnection, n: i32) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT $1::int4")
        .bind(n)
        .fetch_one(conn)
        .await
}
