//! The audit trail: who did what to which resource when, with before/after; the filter line's
//! search with keyset paging through all of it (`opsdash audit search`); quick filters for
//! "who deleted X" and for mass deletes (an actor's deletes with one action, more than N in 5
//! minutes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::filter::audit::AuditFilter;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub actor: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changes: Option<Value>,
    pub outcome: String,
    pub ip: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub host: Option<String>,
    pub source: String,
}

const AUDIT_COLUMNS: &str = "id, ts, actor, actor_role, action, resource_type, resource_id, \
     before, after, changes, outcome, ip, session_id, request_id, trace_id, host, source";

/// A delete in any spelling: `DELETE` (row trigger), `user.delete`, `file_deleted`; not
/// `undelete`.
const IS_DELETE: &str = "lower(action) ~ '(^|[^a-z])delet'";

/// Narrowing of the trail; every field optional.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Matches the action exactly, or as a prefix when it ends with `*`.
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub deletes_only: bool,
}

fn push_query<'a>(qb: &mut QueryBuilder<'a, Postgres>, q: &'a AuditQuery) {
    qb.push(" WHERE TRUE");
    if let Some(a) = &q.actor {
        qb.push(" AND actor = ").push_bind(a);
    }
    if let Some(a) = &q.action {
        match a.strip_suffix('*') {
            Some(prefix) => {
                let escaped: String = prefix
                    .chars()
                    .flat_map(|c| {
                        let esc = matches!(c, '\\' | '%' | '_').then_some('\\');
                        esc.into_iter().chain(std::iter::once(c))
                    })
                    .collect();
                qb.push(" AND action LIKE ")
                    .push_bind(format!("{escaped}%"));
            }
            None => {
                qb.push(" AND action = ").push_bind(a);
            }
        }
    }
    if let Some(r) = &q.resource_type {
        qb.push(" AND resource_type = ").push_bind(r);
    }
    if let Some(r) = &q.resource_id {
        qb.push(" AND resource_id = ").push_bind(r);
    }
    if let Some(t) = q.since {
        qb.push(" AND ts >= ").push_bind(t);
    }
    if let Some(t) = q.until {
        qb.push(" AND ts < ").push_bind(t);
    }
    if q.deletes_only {
        qb.push(" AND ").push(IS_DELETE);
    }
}

/// A page of the trail, newest first; `before` is the (ts, id) of the last row shown.
pub async fn trail(
    pool: &PgPool,
    q: &AuditQuery,
    before: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("SELECT {AUDIT_COLUMNS} FROM opsdash.audit_event"));
    push_query(&mut qb, q);
    if let Some((ts, id)) = before {
        qb.push(" AND (ts, id) < (")
            .push_bind(ts)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .push_bind(limit);
    qb.build_query_as().fetch_all(pool).await
}

/// Where a page of the trail continues: the (ts, id) of its last (oldest) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditKey {
    pub ts: DateTime<Utc>,
    pub id: i64,
}

/// One page of the rows the filter line selects, newest first, after `before`. Paging by
/// (ts, id) keys costs the same at any depth; an exact actor, action or resource is served by
/// its `(..., ts)` index, anything else by a backward scan of the `ts` index that stops at
/// `limit` rows.
pub async fn search(
    pool: &PgPool,
    filter: &AuditFilter,
    before: Option<AuditKey>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    search_query("", filter, before, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// The statement of `search` after `prefix` (`EXPLAIN ...` in tests).
pub fn search_query<'a>(
    prefix: &str,
    filter: &'a AuditFilter,
    before: Option<AuditKey>,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT {AUDIT_COLUMNS} FROM opsdash.audit_event WHERE "
    ));
    filter.push_conditions(&mut qb);
    if let Some(k) = before {
        qb.push(" AND ts <= ")
            .push_bind(k.ts)
            .push(" AND (ts, id) < (")
            .push_bind(k.ts)
            .push(", ")
            .push_bind(k.id)
            .push(")");
    }
    qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .push_bind(limit.max(0));
    qb
}

/// "Who deleted row ID of TABLE": deletes of that resource, newest first. The row trigger
/// names the type `schema.table`; a table given without a schema matches it in any schema.
pub async fn who_deleted_in(
    pool: &PgPool,
    table: &str,
    id: &str,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    let escaped: String = table
        .chars()
        .flat_map(|c| {
            let esc = matches!(c, '\\' | '%' | '_').then_some('\\');
            esc.into_iter().chain(std::iter::once(c))
        })
        .collect();
    sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM opsdash.audit_event
          WHERE resource_id = $1 AND (resource_type = $2 OR resource_type LIKE $3)
            AND {IS_DELETE}
          ORDER BY ts DESC, id DESC LIMIT $4"
    ))
    .bind(id)
    .bind(table)
    .bind(format!("%.{escaped}"))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// "Who deleted X": deletes of a resource, newest first. `resource` is an id, or
/// `type:id` / `type/id` to name the type too.
pub async fn who_deleted(
    pool: &PgPool,
    resource: &str,
    limit: i64,
) -> sqlx::Result<Vec<AuditEvent>> {
    let (rtype, rid) = match resource.split_once([':', '/']) {
        Some((t, id)) if !t.is_empty() && !id.is_empty() => (Some(t), id),
        _ => (None, resource),
    };
    sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM opsdash.audit_event
          WHERE resource_id = $1 AND ($2::text IS NULL OR resource_type = $2) AND {IS_DELETE}
          ORDER BY ts DESC, id DESC LIMIT $3"
    ))
    .bind(rid)
    .bind(rtype)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An actor who deleted more than the threshold within one window with one action (the
/// notion of the shipped `mass-delete` rule: deletes by one actor over 5 minutes, above 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MassDelete {
    pub actor: String,
    /// The delete action (`user.delete`, `DELETE`...): one row per actor and action.
    pub action: String,
    /// Most deletes in any one window.
    pub peak: i64,
    /// End of the busiest window (the delete that reached the peak).
    pub peak_at: DateTime<Utc>,
    /// All deletes by the actor with this action since `since`.
    pub total: i64,
}

/// Actors and actions with more than `threshold` deletes within any `window` (sliding) since
/// `since`, worst first.
pub async fn mass_deletes(
    pool: &PgPool,
    since: DateTime<Utc>,
    window: chrono::Duration,
    threshold: i64,
) -> sqlx::Result<Vec<MassDelete>> {
    let secs = window.num_milliseconds() as f64 / 1000.0;
    let rows: Vec<(String, String, i64, DateTime<Utc>, i64)> = sqlx::query_as(&format!(
        "WITH d AS (
           SELECT actor, action, ts,
                  count(*) OVER (PARTITION BY actor, action ORDER BY ts
                                 RANGE BETWEEN make_interval(secs => $2) PRECEDING AND CURRENT ROW) AS in_window
             FROM opsdash.audit_event
            WHERE ts >= $1 AND {IS_DELETE}
         ), per_actor AS (
           SELECT DISTINCT ON (actor, action) actor, action, in_window AS peak, ts AS peak_at,
                  count(*) OVER (PARTITION BY actor, action) AS total
             FROM d ORDER BY actor, action, in_window DESC, ts
         )
         SELECT actor, action, peak, peak_at, total FROM per_actor WHERE peak > $3
          ORDER BY peak DESC, actor, action"
    ))
    .bind(since)
    .bind(secs)
    .bind(threshold)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(actor, action, peak, peak_at, total)| MassDelete {
            actor,
            action,
            peak,
            peak_at,
            total,
        })
        .collect())
}

/// One line of a before/after diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Added {
        key: String,
        after: String,
    },
    Removed {
        key: String,
        before: String,
    },
    Changed {
        key: String,
        before: String,
        after: String,
    },
}

/// Field-by-field differences of two JSON documents (nested objects as dotted keys), sorted by
/// key. A missing document counts as empty.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<DiffLine> {
    let mut a = std::collections::BTreeMap::new();
    let mut b = std::collections::BTreeMap::new();
    if let Some(v) = before {
        flatten("", v, &mut a);
    }
    if let Some(v) = after {
        flatten("", v, &mut b);
    }
    let mut out = Vec::new();
    for (k, va) in &a {
        match b.get(k) {
            None => out.push(DiffLine::Removed {
                key: k.clone(),
                before: va.clone(),
            }),
            Some(vb) if vb != va => out.push(DiffLine::Changed {
                key: k.clone(),
                before: va.clone(),
                after: vb.clone(),
            }),
            _ => {}
        }
    }
    for (k, vb) in &b {
        if !a.contains_key(k) {
            out.push(DiffLine::Added {
                key: k.clone(),
                after: vb.clone(),
            });
        }
    }
    out.sort_by(|x, y| key_of(x).cmp(key_of(y)));
    out
}

fn key_of(d: &DiffLine) -> &str {
    match d {
        DiffLine::Added { key, .. }
        | DiffLine::Removed { key, .. }
        | DiffLine::Changed { key, .. } => key,
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut std::collections::BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            let key = if prefix.is_empty() { "(value)" } else { prefix };
            out.insert(key.to_string(), other.to_string());
        }
    }
}

/// Tables with the audit trigger installed.
pub async fn audited_tables(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT table_name FROM opsdash.audited_tables ORDER BY 1")
        .fetch_all(pool)
        .await
}

/// Installs the row-level audit trigger on `table`; the name is resolved by PostgreSQL
/// (`::regclass`), never pasted into SQL. Returns the primary-key columns that identify a row
/// in `resource_id`.
pub async fn install_trigger(pool: &PgPool, table: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT opsdash.audit_install($1::regclass)")
        .bind(table)
        .fetch_one(pool)
        .await
}

/// Removes the audit trigger; false when it was not installed.
pub async fn uninstall_trigger(pool: &PgPool, table: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT opsdash.audit_uninstall($1::regclass)")
        .bind(table)
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_added_removed_and_changed_fields() {
        let d = diff(
            Some(&json!({"name": "a", "role": {"admin": true}, "gone": 1})),
            Some(&json!({"name": "b", "role": {"admin": true}, "new": null})),
        );
        assert_eq!(
            d,
            vec![
                DiffLine::Removed {
                    key: "gone".into(),
                    before: "1".into()
                },
                DiffLine::Changed {
                    key: "name".into(),
                    before: "\"a\"".into(),
                    after: "\"b\"".into()
                },
                DiffLine::Added {
                    key: "new".into(),
                    after: "null".into()
                },
            ]
        );
        assert!(diff(None, None).is_empty());
    }
}
