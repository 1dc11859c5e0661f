//! Alerts looking back: the alerts that were resolved, acknowledged or silenced in a window,
//! and per rule the mean time to acknowledge (MTTA) and to resolve (MTTR) of the alerts that
//! fired in it. One alert's state transitions are `alerts::history` (table `alert_history`).

use std::time::Duration;

use anyhow::Result;
use sqlx::PgPool;

use super::alerts::{AlertRow, ALERT_COLUMNS};

/// One rule's response times over the window: of the alerts that fired in it, how many were
/// acknowledged and resolved, and how long that took on average (seconds from firing).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RuleTimes {
    pub rule_name: String,
    pub fired: i64,
    pub acknowledged: i64,
    pub mtta_s: Option<f64>,
    pub resolved: i64,
    pub mttr_s: Option<f64>,
}

/// What the history view shows: past alerts, newest change first, and the rules' times.
#[derive(Debug, Clone)]
pub struct AlertHistory {
    pub window: Duration,
    pub alerts: Vec<AlertRow>,
    pub rules: Vec<RuleTimes>,
}

/// The moment an alert last changed state, as the history orders it.
const LAST_CHANGE: &str = "coalesce(resolved_at, acknowledged_at, fired_at, pending_since)";

/// Alerts resolved, acknowledged or suppressed whose last change falls in the window.
pub async fn past_alerts(pool: &PgPool, window: Duration, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM opsdash.alert
          WHERE state IN ('resolved', 'acknowledged', 'suppressed')
            AND {LAST_CHANGE} >= now() - $1 * interval '1 second'
          ORDER BY {LAST_CHANGE} DESC, id DESC
          LIMIT $2"
    ))
    .bind(window.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// MTTA and MTTR per rule, over the alerts that fired in the window (an alert resolved while
/// still pending never fired: it counts in neither). Busiest rules first.
pub async fn rule_times(pool: &PgPool, window: Duration) -> Result<Vec<RuleTimes>> {
    Ok(sqlx::query_as(
        "SELECT rule_name,
                count(*) AS fired,
                count(acknowledged_at) AS acknowledged,
                avg(extract(epoch FROM acknowledged_at - fired_at))::float8 AS mtta_s,
                count(resolved_at) AS resolved,
                avg(extract(epoch FROM resolved_at - fired_at))::float8 AS mttr_s
           FROM opsdash.alert
          WHERE fired_at >= now() - $1 * interval '1 second'
          GROUP BY rule_name
          ORDER BY count(*) DESC, rule_name",
    )
    .bind(window.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Both, for the history view.
pub async fn alert_history(pool: &PgPool, window: Duration) -> Result<AlertHistory> {
    Ok(AlertHistory {
        window,
        alerts: past_alerts(pool, window, 500).await?,
        rules: rule_times(pool, window).await?,
    })
}
