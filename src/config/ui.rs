//! What the dashboard shows: `[ui]`, `[keys]`, `[kpi]` with its widgets, and `[logs]`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    pub theme: String,
    /// "utc" or "local".
    pub clock: String,
    /// Initial time range: 1h, 6h, 24h, 7d or 30d.
    pub range: String,
    /// Lines kept by the live tail.
    pub tail_buffer: usize,
    /// Frames per second at most.
    pub max_fps: u32,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: "dark".into(),
            clock: "utc".into(),
            range: "1h".into(),
            tail_buffer: 10_000,
            max_fps: 30,
        }
    }
}

/// Key bindings overrides: action name -> key (e.g. `quit = "ctrl-q"`). Validated by the TUI,
/// which reports a bad binding instead of failing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct KeysConfig(pub std::collections::BTreeMap<String, String>);

/// The KPI tab: operators' own widgets, shown on the tab's "custom" view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiConfig {
    pub widget: Vec<KpiWidget>,
}

/// The Logs tab.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// The live tail follows lines stamped at most this many hours before the dashboard
    /// started (older timestamps are history, found by search).
    pub tail_floor_hours: u32,
    /// Named filters, applied with `:f NAME` on the Logs tab.
    pub saved_filters: std::collections::BTreeMap<String, String>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            tail_floor_hours: 24,
            saved_filters: [("errors", "level:error+"), ("5xx", "status:5xx")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

pub const WIDGET_KINDS: &[&str] = &[
    "counter",
    "gauge",
    "sparkline",
    "chart",
    "table",
    "bar",
    "alerts",
];

/// One custom KPI widget. `query` is SQL returning: a number (counter, gauge: first column of
/// the first row), a series (sparkline, chart, bar: label in the first column, value in the
/// last) or rows (table). `alerts` needs no query: it lists the active alerts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KpiWidget {
    pub title: String,
    pub kind: String,
    #[serde(default)]
    pub query: String,
    /// Gauge full scale.
    #[serde(default)]
    pub max: Option<f64>,
    /// Shown after the value, e.g. "EUR" or "%".
    #[serde(default)]
    pub unit: String,
}
