//! The tabs, one module (or folder) each, with its own state implementing `TabView`
//! (`tui::view`): key handling, the query requests it needs, how it takes their results, and a
//! pure `draw`. `registered` lists the tabs that exist: a tab not built yet is absent, never a
//! placeholder.

pub mod alerts;
pub mod health;
pub mod kpi;
pub mod logs;
pub mod perf;

use crate::config::Config;
// Where tests and older callers name them; they live in `msg` and `view`.
pub use crate::tui::msg::Tab;
pub use crate::tui::view::{Binding, Cursor, DrawCtx, Panel, Refresher, TabCtx, TabView};

/// The tabs that exist, in tab-bar order. Adding a tab = one line here.
pub fn registered(cfg: &Config) -> Vec<Box<dyn TabView>> {
    let mut tabs: Vec<Box<dyn TabView>> = vec![
        Box::new(kpi::KpiTab::new(cfg)),
        Box::new(health::HealthTab::new()),
        Box::new(alerts::AlertsTab::new(cfg)),
        Box::new(perf::PerfTab::new(cfg)),
        Box::new(logs::LogsTab::new(cfg)),
    ];
    tabs.sort_by_key(|t| t.id());
    tabs
}
