//! The Alerts tab's main view: open alerts sorted by severity, state and age (with the tab's
//! filter), grouped by rule and the rule's `group_by` labels (a group of `GROUP_FROM` or more
//! is one line with its count, Enter expands it), the detail pane of the selected one below, and its keys:
//! space marks (k9s style), `a` acknowledge, `R` resolve, `s` silence: the marked alerts, else
//! the selected group's, else the selected one (each through a prompt).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::Row;
use ratatui::Frame;

use super::detail::DetailPane;
use super::prompt::{Prompt, SilenceForm};
use super::{labels_text, num, Shared};
use crate::alerts::Matcher;
use crate::model::rule::label_key;
use crate::model::AlertState;
use crate::query::alerts::{self as q, AlertRow};
use crate::query::rules::Rule;
use crate::sanitize::sanitize;
use crate::tui::line_input::LineInput;
use crate::tui::msg::{AlertsData, Effect, Jump, QueryRequest};
use crate::tui::theme::Role;
use crate::tui::view::{Cursor, DrawCtx, Panel, TabCtx};
use crate::tui::widgets::{
    alert_state_role, draw_table_panel, framed, row_style, severity_role, visible_page, Columns,
};

#[derive(Default)]
pub struct AlertList {
    pub alerts: Panel<Vec<AlertRow>>,
    pub detail: DetailPane,
    pub cursor: Cursor,
    pub filter: String,
    /// Each rule's `group_by` labels (from the rules view's data), by rule id.
    pub group_by: HashMap<i64, Vec<String>>,
    /// Groups shown expanded (their `group_key`).
    pub expanded: BTreeSet<String>,
    /// Alerts marked with space: the actions apply to them.
    pub marked: BTreeSet<i64>,
}

/// A group holds this many alerts or more before it folds into one line: two or three alerts
/// of a rule read better as their own lines (their labels differ at a glance), a storm does not.
pub const GROUP_FROM: usize = 4;

/// One line of the list: a group of several alerts (one rule, the same `group_by` values), or
/// an alert (alone in its group, or under its expanded group).
pub enum ListRow<'a> {
    Group {
        key: String,
        /// The `group_by` labels' values (`user=alice`), empty when the rule has none.
        by: String,
        alerts: Vec<&'a AlertRow>,
        expanded: bool,
    },
    Alert {
        alert: &'a AlertRow,
        /// Shown under its expanded group.
        member: bool,
    },
}

impl<'a> ListRow<'a> {
    /// The identity the cursor follows across refreshes.
    fn key(&self) -> String {
        match self {
            ListRow::Group { key, .. } => format!("g{key}"),
            ListRow::Alert { alert, .. } => format!("a{}", alert.id),
        }
    }

    /// The alert the detail pane and Enter's jump show: a group's gravest.
    pub fn alert(&self) -> Option<&'a AlertRow> {
        match self {
            ListRow::Group { alerts, .. } => alerts.first().copied(),
            ListRow::Alert { alert, .. } => Some(*alert),
        }
    }
}

/// The alerts' labels that every one of them has, as silence matchers: `name=value` when all
/// share the value, `name=~a|b` (escaped) when they differ among a few values, so the prefilled
/// silence covers exactly the selection; `severity` is left out (a silence keeps to labels).
pub fn common_matchers(alerts: &[&AlertRow]) -> Vec<Matcher> {
    let Some(first) = alerts.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in first.labels.0.keys().filter(|k| *k != "severity") {
        let values: Option<BTreeSet<&String>> =
            alerts.iter().map(|a| a.labels.0.get(name)).collect();
        match values {
            Some(v) if v.len() == 1 => out.extend(v.into_iter().map(|v| Matcher {
                name: name.clone(),
                op: "=".into(),
                value: v.clone(),
            })),
            Some(v) if v.len() <= 10 => out.push(Matcher {
                name: name.clone(),
                op: "=~".into(),
                value: v
                    .into_iter()
                    .map(|v| regex::escape(v))
                    .collect::<Vec<_>>()
                    .join("|"),
            }),
            _ => {}
        }
    }
    out
}

impl AlertList {
    pub fn request(ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        Effect::Query(QueryRequest::new(
            "alerts",
            async move { q::list_alerts(&db.read, false, 500).await },
            AlertsData::Alerts,
        ))
    }

    /// The alerts shown: matching the filter, most severe first, then firing before the rest,
    /// then oldest first.
    pub fn visible(&self) -> Vec<&AlertRow> {
        let f = self.filter.to_lowercase();
        let mut v: Vec<&AlertRow> = self
            .alerts
            .data
            .iter()
            .flatten()
            .filter(|a| matches_filter(a, &f))
            .collect();
        // Gravest first, then firing before pending, acknowledged and suppressed (the order
        // `AlertState` declares).
        v.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.severity),
                a.state,
                a.fired_at.unwrap_or(a.pending_since),
                a.id,
            )
        });
        v
    }

    /// The group an alert belongs to: its rule and the values of the rule's `group_by` labels.
    fn group_of(&self, a: &AlertRow) -> (String, String) {
        let by: BTreeMap<String, String> = self
            .group_by
            .get(&a.rule_id)
            .into_iter()
            .flatten()
            .map(|k| (k.clone(), a.labels.0.get(k).cloned().unwrap_or_default()))
            .collect();
        let by = label_key(&by);
        (format!("{}\u{1f}{by}", a.rule_id), by)
    }

    /// The lines of the list: the visible alerts grouped, groups in the order of their gravest
    /// alert; a group of fewer than `GROUP_FROM` is its alerts' lines.
    pub fn rows(&self) -> Vec<ListRow<'_>> {
        let mut order: Vec<(String, String)> = Vec::new();
        let mut groups: HashMap<String, Vec<&AlertRow>> = HashMap::new();
        for a in self.visible() {
            let (key, by) = self.group_of(a);
            let members = groups.entry(key.clone()).or_default();
            if members.is_empty() {
                order.push((key, by));
            }
            members.push(a);
        }
        let mut rows = Vec::new();
        for (key, by) in order {
            let alerts = groups.remove(&key).unwrap_or_default();
            if alerts.len() < GROUP_FROM {
                rows.extend(alerts.into_iter().map(|alert| ListRow::Alert {
                    alert,
                    member: false,
                }));
                continue;
            }
            let expanded = self.expanded.contains(&key);
            let members = if expanded { alerts.clone() } else { Vec::new() };
            rows.push(ListRow::Group {
                key,
                by,
                alerts,
                expanded,
            });
            rows.extend(members.into_iter().map(|alert| ListRow::Alert {
                alert,
                member: true,
            }));
        }
        rows
    }

    pub fn selected(&self) -> Option<&AlertRow> {
        self.rows()
            .get(self.cursor.selected)
            .and_then(|r| r.alert())
    }

    /// What an action applies to: the marked alerts still open, else the selected group's
    /// alerts, else the selected alert.
    pub fn targets(&self) -> Vec<&AlertRow> {
        if !self.marked.is_empty() {
            return self
                .visible()
                .into_iter()
                .filter(|a| self.marked.contains(&a.id))
                .collect();
        }
        match self.rows().into_iter().nth(self.cursor.selected) {
            Some(ListRow::Group { alerts, .. }) => alerts,
            Some(ListRow::Alert { alert, .. }) => vec![alert],
            None => Vec::new(),
        }
    }

    /// Enter on a group line: expands or collapses it. False on an alert's line.
    pub fn toggle_group(&mut self) -> bool {
        let key = match self.rows().into_iter().nth(self.cursor.selected) {
            Some(ListRow::Group { key, .. }) => key,
            _ => return false,
        };
        if !self.expanded.remove(&key) {
            self.expanded.insert(key);
        }
        true
    }

    /// Space: marks or unmarks the selected alert (a group line: all its alerts, unmarked when
    /// all were marked), then moves down as k9s does.
    fn toggle_mark(&mut self) {
        let ids: Vec<i64> = match self.rows().into_iter().nth(self.cursor.selected) {
            Some(ListRow::Group { alerts, .. }) => alerts.iter().map(|a| a.id).collect(),
            Some(ListRow::Alert { alert, .. }) => vec![alert.id],
            None => return,
        };
        if ids.iter().all(|id| self.marked.contains(id)) {
            for id in &ids {
                self.marked.remove(id);
            }
        } else {
            self.marked.extend(ids);
        }
        let len = self.rows().len();
        self.cursor.selected = (self.cursor.selected + 1).min(len.saturating_sub(1));
    }

    pub fn detail_request(&self, ctx: &TabCtx) -> Vec<Effect> {
        DetailPane::request(self.selected(), ctx)
    }

    /// New alerts: the same alert stays selected when the order changes (it was
    /// acknowledged...); a different selection asks for its detail.
    pub fn on_data(
        &mut self,
        r: Result<Vec<AlertRow>, String>,
        shown: bool,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let had = self.selected().map(|a| a.id);
        let had_row = self.rows().get(self.cursor.selected).map(ListRow::key);
        self.alerts.set(r);
        // A mark on an alert that is no longer open has nothing left to act on.
        let open: BTreeSet<i64> = self.alerts.data.iter().flatten().map(|a| a.id).collect();
        self.marked.retain(|id| open.contains(id));
        if shown {
            let keys: Vec<String> = self.rows().iter().map(ListRow::key).collect();
            self.cursor.follow(had_row.as_ref(), keys);
        }
        if self.selected().map(|a| a.id) != had {
            return self.detail_request(ctx);
        }
        Vec::new()
    }

    /// `Enter`: the selected alert's log lines; its rule from the rules view or the detail.
    pub fn jump(&self, rules: &[Rule], ctx: &TabCtx) -> Option<Jump> {
        let a = self.selected()?;
        let rule = rules
            .iter()
            .find(|r| r.id == a.rule_id)
            .or_else(|| {
                self.detail
                    .detail
                    .data
                    .as_ref()
                    .filter(|d| d.alert.id == a.id)
                    .and_then(|d| d.rule.as_ref())
            })
            .map(|r| &r.spec);
        Some(super::jump::logs_jump(a, rule, ctx.now))
    }

    pub fn on_key(&mut self, c: char, sh: &mut Shared, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match c {
            ' ' => {
                self.toggle_mark();
                Some(self.detail_request(ctx))
            }
            'a' => {
                let targets = self.targets();
                let firing: Vec<i64> = targets
                    .iter()
                    .filter(|a| a.state == AlertState::Firing)
                    .map(|a| a.id)
                    .collect();
                if firing.is_empty() {
                    let text = match targets[..] {
                        [] => return None,
                        [a] => format!("alert {} is {}, not firing", a.id, a.state),
                        _ => format!("none of these {} alerts is firing", targets.len()),
                    };
                    sh.message = Some((text, Role::Warn));
                    return Some(Vec::new());
                }
                sh.prompt = Some(Prompt::Ack {
                    ids: firing,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            'R' => {
                let ids: Vec<i64> = self.targets().iter().map(|a| a.id).collect();
                if ids.is_empty() {
                    return None;
                }
                sh.prompt = Some(Prompt::Resolve {
                    ids,
                    input: LineInput::prompt("", "note (optional)"),
                });
                Some(Vec::new())
            }
            's' => {
                let targets = self.targets();
                if targets.is_empty() {
                    return None;
                }
                let form = SilenceForm::new(&common_matchers(&targets), targets.len());
                let fx = form.preview_request(ctx);
                sh.prompt = Some(Prompt::Silence(form));
                Some(fx)
            }
            _ => None,
        }
    }

    pub fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let t = ctx.theme;
        let rows = self.rows();
        let list_h = (rows.len() as u16 + 3).clamp(4, area.height / 2 + 1);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(area);
        // The count is the one every view shows (`OpenCounts`); testing-mode alerts apart.
        let open = q::OpenCounts::of(self.alerts.data.iter().flatten());
        let mut title = format!("Alerts open {}: {}", open.total(), open.by_severity());
        if open.testing > 0 {
            title.push_str(&format!(" +{} testing", open.testing));
        }
        if !self.filter.is_empty() {
            title.push_str(&format!(" · {} match the filter", self.visible().len()));
        }
        if !self.marked.is_empty() {
            title.push_str(&format!(" · {} marked", self.marked.len()));
        }
        title.push_str(" · h/l: rules, silences, history");
        let inner = framed(f, top, &title, true, t);
        // The mark column is there only while something is marked.
        const COLUMNS: Columns = Columns {
            header: &["SEVERITY", "STATE", "RULE", "VALUE", "AGE", "LABELS"],
            widths: &[8, 19, 18, 8, 8, 10],
            flexible: 5,
            header_role: Role::Header,
            wants: &[],
        };
        const MARKING: Columns = Columns {
            header: &["", "SEVERITY", "STATE", "RULE", "VALUE", "AGE", "LABELS"],
            widths: &[1, 8, 19, 18, 8, 8, 10],
            flexible: 6,
            header_role: Role::Header,
            wants: &[],
        };
        let marking = !self.marked.is_empty();
        let note = self
            .alerts
            .note(rows.is_empty(), ("no open alerts", Role::Ok));
        let columns = if marking { &MARKING } else { &COLUMNS };
        draw_table_panel(f, inner, t, columns, note, |page| {
            visible_page(&rows, self.cursor.selected, page.max(1))
                .map(|(i, row)| {
                    let sel = i == self.cursor.selected;
                    let style = row_style(sel, t);
                    let cell = |s: String, role: Role| {
                        if sel {
                            Span::styled(s, style)
                        } else {
                            Span::styled(s, t.style(role))
                        }
                    };
                    match row {
                        ListRow::Group {
                            by,
                            alerts,
                            expanded,
                            ..
                        } => self.group_row(alerts, by, *expanded, marking, cell, ctx),
                        ListRow::Alert { alert: a, member } => {
                            let mark = if self.marked.contains(&a.id) { "*" } else { "" };
                            let state = sanitize(&a.state_label()).into_owned();
                            let mut cells = Vec::with_capacity(7);
                            if marking {
                                cells.push(cell(mark.into(), Role::Accent));
                            }
                            cells.extend([
                                cell(a.severity.to_string(), severity_role(a.severity)),
                                cell(
                                    if *member { format!("  {state}") } else { state },
                                    if a.testing {
                                        Role::Dim
                                    } else {
                                        alert_state_role(a.state)
                                    },
                                ),
                                cell(
                                    sanitize(&rule_cell(a)).into_owned(),
                                    if a.source.is_some() {
                                        Role::Accent
                                    } else {
                                        Role::Text
                                    },
                                ),
                                cell(num(a.value), Role::Text),
                                cell(ctx.ago(a.fired_at.unwrap_or(a.pending_since)), Role::Dim),
                                cell(sanitize(&labels_text(a)).into_owned(), Role::Dim),
                            ]);
                            Row::new(cells)
                        }
                    }
                    .style(style)
                })
                .collect()
        });
        self.detail.draw(self.selected(), f, bottom, ctx);
    }
}

impl AlertList {
    /// A group's line: its gravest severity, `▸ 15 alerts` (`▾` when expanded), the rule,
    /// the highest value, the oldest age, and its `group_by` values with the count per state.
    fn group_row<'r>(
        &self,
        alerts: &[&AlertRow],
        by: &str,
        expanded: bool,
        marking: bool,
        cell: impl Fn(String, Role) -> Span<'r>,
        ctx: &DrawCtx,
    ) -> Row<'r> {
        let Some(first) = alerts.first() else {
            return Row::new(Vec::<Span>::new());
        };
        let marked = alerts
            .iter()
            .filter(|a| self.marked.contains(&a.id))
            .count();
        let mark = match marked {
            0 => "",
            n if n == alerts.len() => "*",
            _ => "-",
        };
        let mut states: BTreeMap<AlertState, usize> = BTreeMap::new();
        for a in alerts {
            *states.entry(a.state).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let oldest = alerts
            .iter()
            .map(|a| a.fired_at.unwrap_or(a.pending_since))
            .min()
            .unwrap_or(first.pending_since);
        let max_value = alerts
            .iter()
            .filter_map(|a| a.value)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let labels = if by.is_empty() {
            states.join(", ")
        } else {
            format!("{by} · {}", states.join(", "))
        };
        let mut cells = Vec::with_capacity(7);
        if marking {
            cells.push(cell(mark.into(), Role::Accent));
        }
        cells.extend([
            cell(first.severity.to_string(), severity_role(first.severity)),
            cell(
                format!(
                    "{} {} alerts",
                    if expanded { "▾" } else { "▸" },
                    alerts.len()
                ),
                alert_state_role(first.state),
            ),
            cell(sanitize(&rule_cell(first)).into_owned(), Role::Text),
            cell(num(max_value), Role::Text),
            cell(ctx.ago(oldest), Role::Dim),
            cell(sanitize(&labels).into_owned(), Role::Dim),
        ]);
        Row::new(cells)
    }
}

/// The Alerts tab's filter on one alert: `lowered` (the filter text, lower-cased) is found in
/// its rule, state, severity or labels. The list and the history view share it, so `/` means
/// the same on both.
pub(super) fn matches_filter(a: &AlertRow, lowered: &str) -> bool {
    lowered.is_empty()
        || format!(
            "{} {} {} {}",
            rule_cell(a),
            a.state,
            a.severity,
            labels_text(a)
        )
        .to_lowercase()
        .contains(lowered)
}

/// The RULE column: an external alert's name with its sender, so it stands apart from
/// opsdash's own (`HighLatency (prometheus)`).
fn rule_cell(a: &AlertRow) -> String {
    match &a.source {
        Some(src) => format!("{} ({src})", a.rule_name),
        None => a.rule_name.clone(),
    }
}
