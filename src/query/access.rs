//! What the connected role is and may do in the opsdash schema, asked once at connect time
//! (`db::access` turns the answer into the capabilities the CLI and the tabs consult), the
//! schema version a non-owner checks instead of migrating, `opsdash db grant`, and the Grafana
//! login role of `opsdash db url --tcp`.

use anyhow::{Context, Result};
use sqlx::{PgPool, Row};

/// The role and the schema as the server sees them before any migration runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaOwnership {
    /// `session_user`: the login role, whatever `SET ROLE` says.
    pub role: String,
    /// The opsdash schema exists.
    pub schema_exists: bool,
    /// The role owns the schema (or is a member of the role that does).
    pub owner: bool,
}

pub async fn ownership(pool: &PgPool) -> Result<SchemaOwnership> {
    let r = sqlx::query(
        "SELECT session_user::text,
                n.oid IS NOT NULL,
                coalesce(pg_has_role(session_user, n.nspowner, 'USAGE'), false)
           FROM (SELECT 1) one
           LEFT JOIN pg_namespace n ON n.nspname = 'opsdash'",
    )
    .fetch_one(pool)
    .await
    .context("asking who we are connected as")?;
    Ok(SchemaOwnership {
        role: r.try_get(0)?,
        schema_exists: r.try_get(1)?,
        owner: r.try_get(2)?,
    })
}

/// The newest migration applied (sqlx's bookkeeping table), None when none is.
pub async fn schema_version(pool: &PgPool) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .context("reading the schema version (_sqlx_migrations)")
}

/// What the role may do, each from the privileges the operation needs (so a role granted
/// privileges directly, not through the opsdash_* groups, is judged right too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Privileges {
    /// Acknowledge, resolve, silence, triage error groups, change rules (with the audit row).
    pub operate: bool,
    /// Store log lines and requests.
    pub ingest: bool,
    /// Read log lines (tail, search, export).
    pub read_logs: bool,
    /// Run the background jobs (alerts, outbox, rollups, leases).
    pub work: bool,
    /// Sees every session's activity and statistics (pg_monitor / pg_read_all_stats).
    pub all_stats: bool,
    /// The opsdash_* groups the role is a member of, sorted.
    pub groups: Vec<String>,
}

pub async fn privileges(pool: &PgPool) -> Result<Privileges> {
    let r = sqlx::query(
        "SELECT has_column_privilege('opsdash.alert', 'state', 'UPDATE')
                  AND has_table_privilege('opsdash.silence', 'INSERT')
                  AND has_column_privilege('opsdash.error_group', 'status', 'UPDATE')
                  AND has_table_privilege('opsdash.audit_event', 'INSERT'),
                has_table_privilege('opsdash.log_event', 'INSERT')
                  AND has_table_privilege('opsdash.request_log', 'INSERT'),
                has_table_privilege('opsdash.log_event', 'SELECT'),
                has_table_privilege('opsdash.worker_lease', 'UPDATE')
                  AND has_table_privilege('opsdash.alert', 'INSERT')
                  AND has_table_privilege('opsdash.notification', 'UPDATE'),
                pg_has_role('pg_read_all_stats', 'USAGE'),
                coalesce((SELECT array_agg(rolname::text ORDER BY rolname)
                            FROM pg_roles
                           WHERE rolname IN ('opsdash_reader', 'opsdash_operator',
                                             'opsdash_ingest', 'opsdash_worker')
                             AND pg_has_role(session_user, oid, 'USAGE')), '{}')",
    )
    .fetch_one(pool)
    .await
    .context("reading the role's privileges")?;
    Ok(Privileges {
        operate: r.try_get(0)?,
        ingest: r.try_get(1)?,
        read_logs: r.try_get(2)?,
        work: r.try_get(3)?,
        all_stats: r.try_get(4)?,
        groups: r.try_get(5)?,
    })
}

/// Grants one of the opsdash roles to a login role, after (re)applying the roles' grants to
/// the schema's current tables. Names are quoted by the server (`format('%I')`), never by us.
pub async fn grant(pool: &PgPool, role: &str, user: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let applied: bool = sqlx::query_scalar("SELECT opsdash.apply_role_grants()")
        .fetch_one(&mut *tx)
        .await
        .context("applying the opsdash roles' grants")?;
    if !applied {
        anyhow::bail!(
            "the opsdash roles do not exist: create them (CREATE ROLE {role} NOLOGIN, and the \
             other three) as a role with CREATEROLE, or run `opsdash migrate` as one"
        );
    }
    grant_role(&mut tx, role, user).await?;
    tx.commit().await?;
    Ok(())
}

/// `GRANT role TO user` in `tx`; the server quotes both names (GRANT takes no bind parameters).
async fn grant_role(tx: &mut sqlx::PgConnection, role: &str, user: &str) -> Result<()> {
    let stmt: String = sqlx::query_scalar("SELECT format('GRANT %I TO %I', $1::text, $2::text)")
        .bind(role)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(&stmt)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("granting {role} to {user}"))?;
    Ok(())
}

/// Makes `user` a login role holding only `opsdash_reader`, with `password` (set every time, so
/// the password file in the data dir stays the truth). Run by the schema's owner.
pub async fn ensure_reader_login(pool: &PgPool, user: &str, password: &str) -> Result<()> {
    grant_ready(pool).await?;
    let mut tx = pool.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
    // CREATE/ALTER ROLE take no bind parameters: format() quotes the name and the password.
    let stmt: String = sqlx::query_scalar(if exists {
        "SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', $1::text, $2::text)"
    } else {
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)"
    })
    .bind(user)
    .bind(password)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&stmt)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("creating the login role {user}"))?;
    grant_role(&mut tx, "opsdash_reader", user).await?;
    tx.commit().await?;
    Ok(())
}

/// The opsdash roles exist and carry their grants (as `grant` checks).
async fn grant_ready(pool: &PgPool) -> Result<()> {
    let applied: bool = sqlx::query_scalar("SELECT opsdash.apply_role_grants()")
        .fetch_one(pool)
        .await
        .context("applying the opsdash roles' grants")?;
    if !applied {
        anyhow::bail!(
            "the opsdash roles do not exist: run `opsdash migrate` as the schema's owner"
        );
    }
    Ok(())
}
