//! Error groups (one per fingerprint): the list with counts and sparklines, a sample event, and
//! the triage workflow new -> acknowledged -> in-progress -> resolved / ignored. Every
//! transition is recorded as an `opsdash.audit_event` (source 'opsdash') in the same
//! transaction. Counting and regression marking happen at ingest (`error_group.regressed`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use crate::query::logs::{LogLine, LINE_COLUMNS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupStatus {
    New,
    Acknowledged,
    InProgress,
    Resolved,
    Ignored,
}

impl GroupStatus {
    pub const ALL: [GroupStatus; 5] = [
        GroupStatus::New,
        GroupStatus::Acknowledged,
        GroupStatus::InProgress,
        GroupStatus::Resolved,
        GroupStatus::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::New => "new",
            GroupStatus::Acknowledged => "acknowledged",
            GroupStatus::InProgress => "in-progress",
            GroupStatus::Resolved => "resolved",
            GroupStatus::Ignored => "ignored",
        }
    }

    /// The workflow: forward along new -> acknowledged -> in-progress -> resolved, ignore from
    /// anywhere, and reopen (to new or acknowledged) a resolved or ignored group.
    pub fn can_become(self, to: GroupStatus) -> bool {
        use GroupStatus::*;
        match (self, to) {
            (a, b) if a == b => false,
            (_, Ignored) => true,
            (New | Acknowledged | InProgress, Resolved) => true,
            (New | Acknowledged, InProgress) => true,
            (New | Resolved | Ignored, Acknowledged) => true,
            (Resolved | Ignored, New) => true,
            _ => false,
        }
    }
}

impl fmt::Display for GroupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupStatus::ALL
            .into_iter()
            .find(|g| g.as_str() == s.trim())
            .ok_or_else(|| format!("unknown error group status {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorGroup {
    pub fingerprint: String,
    pub service: String,
    pub error_type: Option<String>,
    pub sample_message: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    pub affected_users: i64,
    pub status: GroupStatus,
    pub regressed: bool,
    pub assignee: Option<String>,
    pub note: Option<String>,
    /// Occurrences per bucket over the sparkline window, oldest first.
    pub sparkline: Vec<u64>,
}

type GroupRow = (
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    i64,
    String,
    bool,
    Option<String>,
    Option<String>,
);

const GROUP_COLUMNS: &str = "fingerprint, service, error_type, sample_message, first_seen, \
     last_seen, count, affected_users, status, regressed, assignee, note";

fn group(r: GroupRow) -> ErrorGroup {
    ErrorGroup {
        fingerprint: r.0,
        service: r.1,
        error_type: r.2,
        sample_message: r.3,
        first_seen: r.4,
        last_seen: r.5,
        count: r.6,
        affected_users: r.7,
        // The CHECK constraint allows only the five names.
        status: r.8.parse().unwrap_or(GroupStatus::New),
        regressed: r.9,
        assignee: r.10,
        note: r.11,
        sparkline: Vec::new(),
    }
}

/// The order of the list (the groups view cycles through them with `s`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupSort {
    /// Regressed groups first, then most recently seen: the triage order.
    #[default]
    LastSeen,
    /// Most occurrences first.
    Count,
    /// Most users affected first.
    Users,
    /// Newest groups first.
    FirstSeen,
}

impl GroupSort {
    pub const ALL: [GroupSort; 4] = [
        GroupSort::LastSeen,
        GroupSort::Count,
        GroupSort::Users,
        GroupSort::FirstSeen,
    ];

    /// The next order in the cycle.
    pub fn next(self) -> GroupSort {
        let i = GroupSort::ALL.iter().position(|s| *s == self).unwrap_or(0);
        GroupSort::ALL[(i + 1) % GroupSort::ALL.len()]
    }

    pub fn name(self) -> &'static str {
        match self {
            GroupSort::LastSeen => "last seen",
            GroupSort::Count => "count",
            GroupSort::Users => "users",
            GroupSort::FirstSeen => "first seen",
        }
    }

    /// The ORDER BY list (constants only); the fingerprint makes every order total, so a
    /// refresh never swaps two equal rows.
    fn order_by(self) -> &'static str {
        match self {
            GroupSort::LastSeen => "regressed DESC, last_seen DESC, fingerprint",
            GroupSort::Count => "count DESC, last_seen DESC, fingerprint",
            GroupSort::Users => "affected_users DESC, count DESC, fingerprint",
            GroupSort::FirstSeen => "first_seen DESC, fingerprint",
        }
    }
}

/// Which groups to list, and in which order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupQuery {
    /// Only these statuses (all when empty).
    pub statuses: Vec<GroupStatus>,
    /// Only groups seen since.
    pub seen_since: Option<DateTime<Utc>>,
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Only these error types (all when empty).
    pub error_types: Vec<String>,
    /// Only the groups that came back after they were resolved.
    pub regressed_only: bool,
    /// Words that must each appear in the sample message, the fingerprint or the type
    /// (case-insensitively).
    pub words: Vec<String>,
    pub sort: GroupSort,
}

/// `word` as a LIKE pattern matching it anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(word: &str) -> String {
    let mut p = String::from("%");
    for c in word.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Groups in the query's order, each with a sparkline of `buckets` counts over the
/// `spark_window` ending now (from the raw lines, via the (fingerprint, ts) index).
pub async fn list(
    pool: &PgPool,
    q: &GroupQuery,
    limit: i64,
    spark_window: chrono::Duration,
    buckets: usize,
) -> sqlx::Result<Vec<ErrorGroup>> {
    let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_string()).collect();
    let words: Vec<String> = q.words.iter().map(|w| contains_pattern(w)).collect();
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM opsdash.error_group
          WHERE (cardinality($1::text[]) = 0 OR status = ANY($1))
            AND ($2::timestamptz IS NULL OR last_seen >= $2)
            AND (cardinality($3::text[]) = 0 OR service = ANY($3))
            AND (cardinality($4::text[]) = 0 OR error_type = ANY($4))
            AND (NOT $5 OR regressed)
            AND (SELECT bool_and(sample_message ILIKE w OR fingerprint ILIKE w
                                 OR coalesce(error_type, '') ILIKE w)
                   FROM unnest($6::text[]) w) IS NOT FALSE
          ORDER BY {} LIMIT $7",
        q.sort.order_by()
    ))
    .bind(&statuses)
    .bind(q.seen_since)
    .bind(&q.services)
    .bind(&q.error_types)
    .bind(q.regressed_only)
    .bind(&words)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut groups: Vec<ErrorGroup> = rows.into_iter().map(group).collect();
    if groups.is_empty() || buckets == 0 {
        return Ok(groups);
    }
    let fps: Vec<String> = groups.iter().map(|g| g.fingerprint.clone()).collect();
    let end = Utc::now();
    let start = end - spark_window;
    let counts: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT fingerprint,
                width_bucket(extract(epoch FROM ts), extract(epoch FROM $2::timestamptz),
                             extract(epoch FROM $3::timestamptz), $4) AS b,
                sum(repeat_count)::bigint
           FROM opsdash.log_event
          WHERE fingerprint = ANY($1) AND ts >= $2 AND ts < $3
          GROUP BY 1, 2",
    )
    .bind(&fps)
    .bind(start)
    .bind(end)
    .bind(buckets as i32)
    .fetch_all(pool)
    .await?;
    for g in &mut groups {
        g.sparkline = vec![0; buckets];
    }
    for (fp, b, n) in counts {
        if let (Some(g), Some(i)) = (
            groups.iter_mut().find(|g| g.fingerprint == fp),
            usize::try_from(b - 1).ok(),
        ) {
            if let Some(slot) = g.sparkline.get_mut(i) {
                *slot += n.max(0) as u64;
            }
        }
    }
    Ok(groups)
}

pub async fn get(pool: &PgPool, fingerprint: &str) -> sqlx::Result<Option<ErrorGroup>> {
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM opsdash.error_group WHERE fingerprint = $1"
    ))
    .bind(fingerprint)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(group))
}

/// The most recent occurrence, with every field (the sample event of the detail pane).
pub async fn sample(pool: &PgPool, fingerprint: &str) -> sqlx::Result<Option<LogLine>> {
    sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS} FROM opsdash.log_event WHERE fingerprint = $1
          ORDER BY ts DESC LIMIT 1"
    ))
    .bind(fingerprint)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no error group {0}")]
    NotFound(String),
    #[error("an error group cannot go from {from} to {to}")]
    NotAllowed { from: GroupStatus, to: GroupStatus },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Moves a group along the workflow and records who did it (with the note) in the audit
/// trail, atomically: the database role as the actor, `actor`@host and the SSH client address
/// as context. Starting work (in-progress) assigns the group to `actor`.
pub async fn transition(
    pool: &PgPool,
    fingerprint: &str,
    to: GroupStatus,
    actor: &str,
    note: Option<&str>,
) -> Result<ErrorGroup, TransitionError> {
    let mut tx = pool.begin().await?;
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM opsdash.error_group WHERE fingerprint = $1 FOR UPDATE"
    ))
    .bind(fingerprint)
    .fetch_optional(&mut *tx)
    .await?;
    let before = row
        .map(group)
        .ok_or_else(|| TransitionError::NotFound(fingerprint.to_string()))?;
    if !before.status.can_become(to) {
        return Err(TransitionError::NotAllowed {
            from: before.status,
            to,
        });
    }
    let row: GroupRow = sqlx::query_as(&format!(
        "UPDATE opsdash.error_group SET
            status = $2,
            note = coalesce($3, note),
            assignee = CASE WHEN $2 = 'in-progress' THEN $4 ELSE assignee END,
            resolved_at = CASE WHEN $2 = 'resolved' THEN now()
                               WHEN $2 = 'new' THEN NULL ELSE resolved_at END,
            regressed = CASE WHEN $2 IN ('resolved', 'ignored', 'acknowledged', 'in-progress')
                             THEN false ELSE regressed END,
            updated_at = now()
          WHERE fingerprint = $1
          RETURNING {GROUP_COLUMNS}"
    ))
    .bind(fingerprint)
    .bind(to.as_str())
    .bind(note)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    let after = group(row);
    sqlx::query(
        "INSERT INTO opsdash.audit_event
            (actor, actor_role, action, resource_type, resource_id, before, after, changes, source,
             host, session_id, ip)
         VALUES (session_user, 'operator', $2, 'error_group', $3, $4, $5, $6, 'opsdash', $7,
                 $1 || '@' || coalesce($7, 'localhost'), $8)",
    )
    .bind(actor)
    .bind(format!("error_group.{}", to.as_str()))
    .bind(fingerprint)
    .bind(
        json!({"status": before.status.as_str(), "note": before.note, "assignee": before.assignee}),
    )
    .bind(json!({"status": after.status.as_str(), "note": after.note, "assignee": after.assignee}))
    .bind(json!({"status": [before.status.as_str(), after.status.as_str()], "note": note}))
    .bind(hostname())
    .bind(ssh_client())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// The SSH client's address, as `alerts::operator::Operator` reads it.
fn ssh_client() -> Option<String> {
    std::env::var("SSH_CLIENT")
        .or_else(|_| std::env::var("SSH_CONNECTION"))
        .ok()
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .filter(|s| !s.is_empty())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_allows_forward_moves_ignore_and_reopen() {
        use GroupStatus::*;
        assert!(New.can_become(Acknowledged));
        assert!(Acknowledged.can_become(InProgress));
        assert!(InProgress.can_become(Resolved));
        assert!(InProgress.can_become(Ignored));
        assert!(Resolved.can_become(New));
        assert!(Ignored.can_become(Acknowledged));
        assert!(!Resolved.can_become(InProgress));
        assert!(!InProgress.can_become(New));
        assert!(!New.can_become(New));
        for s in GroupStatus::ALL {
            assert_eq!(s.as_str().parse::<GroupStatus>(), Ok(s));
        }
    }
}
