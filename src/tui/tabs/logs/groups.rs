//! The error groups view, for triage: a component owning its groups, cursor, filter, sort,
//! detail pane and note prompt. `/` filters by status, service, type and words; `s` cycles
//! the sort (the column header marks it); Enter lists the group's log lines; the triage keys
//! (acknowledge, in progress, resolve, ignore, reopen) act at once, `n` takes a note with the
//! transition; a regressed group is marked `▲` and says "regressed", readable without colour.

use super::*;
use crate::query::error_groups::GroupSort;
use crate::tui::line_input::LineInput;

/// The error-group triage keys (one binding; they write, so a reader sees them unavailable).
pub(super) const GROUP_KEYS: &str = "a p R i o n";

/// What the groups filter line knows, for its error messages and the help.
pub(super) const GROUP_FILTER_KEYS: &str =
    "status:new,acknowledged,in-progress,resolved,ignored,regressed service:NAME type:NAME words";

/// Who the operator is, for the audit trail.
pub(super) fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "opsdash".into())
}

/// Parses the groups view's filter line: `status:a,b` (`regressed` too), `service:a,b`,
/// `type:a,b`, and words each found in the message, fingerprint or type. Errors carry the
/// column of the mistake, as the Logs filter's do.
pub(super) fn parse_group_filter(text: &str) -> Result<GroupQuery, FilterError> {
    let mut q = GroupQuery::default();
    let mut pos = 0;
    for word in text.split(' ') {
        let start = pos;
        pos += word.chars().count() + 1;
        if word.is_empty() {
            continue;
        }
        let Some((key, value)) = word.split_once(':') else {
            q.words.push(word.to_string());
            continue;
        };
        let value_pos = start + key.chars().count() + 1;
        let items: Vec<&str> = value.split(',').collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(FilterError::new(value_pos, "an empty value in the list"));
        }
        match key.to_ascii_lowercase().as_str() {
            "status" => {
                for item in items {
                    if item == "regressed" {
                        q.regressed_only = true;
                        continue;
                    }
                    let s = item.parse::<GroupStatus>().map_err(|_| {
                        FilterError::new(
                            value_pos,
                            format!("unknown status '{item}' (known: new, acknowledged, in-progress, resolved, ignored, regressed)"),
                        )
                    })?;
                    q.statuses.push(s);
                }
            }
            "service" => q.services.extend(items.iter().map(|s| s.to_string())),
            "type" => q.error_types.extend(items.iter().map(|s| s.to_string())),
            other => {
                return Err(FilterError::new(
                    start,
                    format!("unknown error group field '{other}' (known: status, service, type)"),
                ))
            }
        }
    }
    Ok(q)
}

/// The filter of a group's log lines: its fingerprint (quoted when it needs it) from its
/// first occurrence on.
pub(super) fn lines_filter(g: &ErrorGroup) -> String {
    let plain = g
        .fingerprint
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let fp = if plain {
        g.fingerprint.clone()
    } else {
        format!(
            "\"{}\"",
            g.fingerprint.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    // The second the group was first seen, whole: the lines' stamps carry microseconds.
    let since = g
        .first_seen
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("fp:{fp} since:{since}")
}

/// The verbs of a note prompt and of the `:` commands, with the status each leads to.
pub(super) fn verb(word: &str) -> Option<GroupStatus> {
    Some(match word {
        "a" | "ack" | "acknowledge" => GroupStatus::Acknowledged,
        "p" | "progress" => GroupStatus::InProgress,
        "R" | "resolve" => GroupStatus::Resolved,
        "i" | "ignore" => GroupStatus::Ignored,
        "o" | "reopen" => GroupStatus::New,
        _ => return None,
    })
}

#[derive(Default)]
pub(super) struct GroupsView {
    groups: Panel<Vec<ErrorGroup>>,
    cursor: Cursor,
    pub(super) detail: bool,
    query: GroupQuery,
    filter_text: String,
    /// The note prompt (`n`): "VERB NOTE", e.g. "resolve fixed by the 1.4.2 deploy".
    prompt: Option<LineInput>,
}

impl GroupsView {
    pub(super) fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        let q = self.query.clone();
        self.groups.loading = true;
        Effect::Query(QueryRequest::new(
            "groups",
            async move {
                Ok(error_groups::list(&db.read, &q, 200, chrono::Duration::hours(24), 24).await?)
            },
            LogsData::Groups,
        ))
    }

    /// A refresh re-sorts the groups: the cursor stays on its group, so `R` resolves the group
    /// the operator was looking at.
    pub(super) fn on_data(&mut self, r: crate::tui::msg::Res<Vec<ErrorGroup>>) {
        let fps = |g: &Panel<Vec<ErrorGroup>>| -> Vec<String> {
            g.data
                .iter()
                .flatten()
                .map(|g| g.fingerprint.clone())
                .collect()
        };
        let had = fps(&self.groups).get(self.cursor.selected).cloned();
        self.groups.set(r);
        self.cursor.follow(had.as_ref(), fps(&self.groups));
    }

    fn selected(&self) -> Option<&ErrorGroup> {
        self.groups.data.as_ref()?.get(self.cursor.selected)
    }

    pub(super) fn filter_text(&self) -> &str {
        &self.filter_text
    }

    pub(super) fn prompt_open(&self) -> bool {
        self.prompt.is_some()
    }

    /// Checks the filter being typed.
    pub(super) fn check_filter(text: &str) -> Option<(String, FilterError)> {
        parse_group_filter(text)
            .err()
            .map(|e| (text.to_string(), e))
    }

    /// Applies a filter; a mistake leaves the previous one in force.
    pub(super) fn on_filter_submit(
        &mut self,
        text: &str,
        ctx: &TabCtx,
    ) -> Result<Vec<Effect>, (String, FilterError)> {
        let q = parse_group_filter(text).map_err(|e| (text.to_string(), e))?;
        self.filter_text = text.trim().to_string();
        self.query = GroupQuery {
            sort: self.query.sort,
            ..q
        };
        self.cursor = Cursor::default();
        Ok(vec![self.request(ctx)])
    }

    /// Navigation: Back leaves the view (false); Enter lists the group's lines (a jump).
    pub(super) fn on_action(&mut self, a: Action, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match a {
            Action::Back => return None,
            Action::Select => {
                let Some(g) = self.selected() else {
                    return Some(Vec::new());
                };
                // The range reaches back to the group's first line, as an alert's jump does
                // (the list follows the filter's `since:` inside the range).
                let age = ctx.now - g.first_seen;
                let range = TimeRange::ALL
                    .into_iter()
                    .find(|r| r.duration() >= age)
                    .unwrap_or(TimeRange::D30);
                return Some(vec![Effect::Jump(Jump {
                    tab: Some(Tab::Logs),
                    filter: lines_filter(g),
                    range: Some(range),
                    note: format!("log lines of error group {}", safe(&g.fingerprint)),
                    ..Jump::default()
                })]);
            }
            a => {
                let n = self.groups.data.as_ref().map_or(0, Vec::len);
                self.cursor.apply(a, n, 10);
            }
        }
        Some(Vec::new())
    }

    /// The view's keys: triage, the note prompt, the sort, the detail pane.
    pub(super) fn on_key(
        &mut self,
        key: &KeyEvent,
        msg: &mut Note,
        ctx: &TabCtx,
    ) -> Option<Vec<Effect>> {
        if let Some(p) = self.prompt.as_mut() {
            match key.code {
                KeyCode::Esc => self.prompt = None,
                KeyCode::Enter => {
                    let text = p.text().trim().to_string();
                    self.prompt = None;
                    let (word, note) = text.split_once(' ').unwrap_or((text.as_str(), ""));
                    let Some(to) = verb(word) else {
                        *msg = Some((
                            format!(
                                "start the note with ack, progress, resolve, ignore or reopen, not '{}'",
                                safe(word)
                            ),
                            Role::Error,
                        ));
                        return Some(Vec::new());
                    };
                    let note = note.trim();
                    return Some(self.transition(to, (!note.is_empty()).then(|| note.into()), ctx));
                }
                _ => {
                    p.input(*key);
                }
            }
            return Some(Vec::new());
        }
        let KeyCode::Char(c) = key.code else {
            return None;
        };
        match c {
            'a' => Some(self.transition(GroupStatus::Acknowledged, None, ctx)),
            'p' => Some(self.transition(GroupStatus::InProgress, None, ctx)),
            'R' => Some(self.transition(GroupStatus::Resolved, None, ctx)),
            'i' => Some(self.transition(GroupStatus::Ignored, None, ctx)),
            'o' => Some(self.transition(GroupStatus::New, None, ctx)),
            'n' => {
                if let Some(why) = ctx.db.access.refusal("changing an error group") {
                    return Some(vec![Effect::Say {
                        text: why,
                        error: true,
                    }]);
                }
                if self.selected().is_some() {
                    self.prompt = Some(LineInput::prompt(
                        "resolve ",
                        "ack|progress|resolve|ignore|reopen NOTE",
                    ));
                }
                Some(Vec::new())
            }
            's' => {
                self.query.sort = self.query.sort.next();
                self.cursor = Cursor::default();
                Some(vec![self.request(ctx)])
            }
            'd' => {
                self.detail = !self.detail;
                Some(Vec::new())
            }
            _ => None,
        }
    }

    pub(super) fn transition(
        &mut self,
        to: GroupStatus,
        note: Option<String>,
        ctx: &TabCtx,
    ) -> Vec<Effect> {
        let doing = match to {
            GroupStatus::Acknowledged => "acknowledging an error group",
            GroupStatus::InProgress => "starting work on an error group",
            GroupStatus::Resolved => "resolving an error group",
            GroupStatus::Ignored => "ignoring an error group",
            GroupStatus::New => "reopening an error group",
        };
        if let Some(why) = ctx.db.access.refusal(doing) {
            return vec![Effect::Say {
                text: why,
                error: true,
            }];
        }
        let Some(g) = self.selected() else {
            return Vec::new();
        };
        let fp = g.fingerprint.clone();
        let db = ctx.db.clone();
        let actor = operator();
        vec![Effect::Query(QueryRequest::new(
            "transition",
            async move {
                error_groups::transition(&db.write, &fp, to, &actor, note.as_deref())
                    .await
                    .map_err(anyhow::Error::from)
            },
            LogsData::Transition,
        ))]
    }

    /// A transition's outcome for the note line; the tab reads the groups again.
    pub(super) fn on_transition(r: crate::tui::msg::Res<ErrorGroup>) -> (String, Role) {
        match r {
            Ok(g) => {
                let note = g
                    .note
                    .as_deref()
                    .map(|n| format!(" (note: {})", sanitize(n)))
                    .unwrap_or_default();
                (
                    format!("{} is now {}{note}", sanitize(&g.fingerprint), g.status),
                    Role::Ok,
                )
            }
            Err(e) => (e, Role::Error),
        }
    }

    /// `y`: the selected group.
    pub(super) fn copy_text(&self) -> Option<(String, String)> {
        let g = self.selected()?;
        Some((
            format!("{} {} {}", g.fingerprint, g.service, g.sample_message),
            format!("error group {}", safe(&g.fingerprint)),
        ))
    }

    pub(super) fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let n = self.groups.data.as_ref().map_or(0, Vec::len);
        let filter = if self.filter_text.is_empty() {
            String::new()
        } else {
            format!(" · filter: {}", safe(&self.filter_text))
        };
        let title = format!(
            "error groups: {n} · sort: {} (s){filter}",
            self.query.sort.name()
        );
        let b = block(&title, true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        let Some(groups) = &self.groups.data else {
            let (t, r) = self
                .groups
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if groups.is_empty() {
            let empty = if self.filter_text.is_empty() {
                "no error groups"
            } else {
                "no error groups match the filter"
            };
            draw_note(f, inner, empty, Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let [header, rows] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(list);
        let w = list.width as usize;
        let wide = w >= 120;
        // The sparkline's newest hours: all 24 when there is room, else the last 12.
        let spark_w = if w >= 100 { 24 } else { 12 };
        let sorted = |s: GroupSort, text: &str| -> String {
            if self.query.sort == s {
                format!("{text}▼")
            } else {
                text.to_string()
            }
        };
        let mut head = format!(
            "  {:<12}{:>8} {:>6} {:<spark_w$} {:>9} ",
            "STATUS",
            sorted(GroupSort::Count, "COUNT"),
            sorted(GroupSort::Users, "USERS"),
            format!("LAST {}H", spark_w),
            sorted(GroupSort::LastSeen, "LAST SEEN"),
        );
        if wide {
            head.push_str(&format!(
                "{:>10} ",
                sorted(GroupSort::FirstSeen, "FIRST SEEN")
            ));
        }
        head.push_str("SERVICE · TYPE · MESSAGE");
        crate::tui::widgets::render(
            f,
            Paragraph::new(Span::styled(truncate(&head, w), theme.style(Role::Header))),
            header,
        );
        let used = 2 + 12 + 8 + 1 + 6 + 1 + spark_w + 1 + 9 + 1 + if wide { 11 } else { 0 };
        let height = rows.height as usize;
        let sel = self.cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let lines: Vec<Line> = groups
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, g)| {
                let s = i == sel;
                let (mark, status, role) = if g.regressed {
                    ("▲ ", "regressed".to_string(), Role::Error)
                } else {
                    ("  ", g.status.to_string(), status_role(g.status.as_str()))
                };
                let mut spans = vec![
                    Span::styled(mark, theme.style(Role::Error)),
                    Span::styled(format!("{:<12}", status), theme.style(role)),
                    Span::styled(
                        format!("{:>8} ", fmt_count(g.count as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:>6} ", fmt_count(g.affected_users as f64)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<spark_w$} ", spark_text(&g.sparkline, spark_w)),
                        theme.style(Role::Spark),
                    ),
                    Span::styled(
                        format!("{:>9} ", ctx.ago(g.last_seen)),
                        theme.style(Role::Dim),
                    ),
                ];
                if wide {
                    spans.push(Span::styled(
                        format!("{:>10} ", ctx.ago(g.first_seen)),
                        theme.style(Role::Dim),
                    ));
                }
                let what = match &g.error_type {
                    Some(t) => format!(
                        "{} · {} · {}",
                        safe(&g.service),
                        safe(t),
                        safe(&g.sample_message)
                    ),
                    None => format!("{} · {}", safe(&g.service), safe(&g.sample_message)),
                };
                spans.push(Span::styled(
                    truncate(&what, w.saturating_sub(used)),
                    row_style(s, theme),
                ));
                Line::from(spans)
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), rows);
        if let (Some(area), Some(g)) = (detail, groups.get(sel)) {
            let mut l = vec![
                kv("fingerprint", &g.fingerprint, theme),
                kv("service", &g.service, theme),
                kv("type", g.error_type.as_deref().unwrap_or("-"), theme),
                kv(
                    "first seen",
                    &ctx.fmt_time(g.first_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv(
                    "last seen",
                    &ctx.fmt_time(g.last_seen, "%Y-%m-%d %H:%M:%S"),
                    theme,
                ),
                kv("assignee", g.assignee.as_deref().unwrap_or("-"), theme),
                kv("note", g.note.as_deref().unwrap_or("-"), theme),
            ];
            l.push(kv("sample", &g.sample_message, theme));
            crate::tui::widgets::render(
                f,
                Paragraph::new(l)
                    .block(block("group", false, theme))
                    .wrap(Wrap { trim: false }),
                area,
            );
        }
        if let Some(p) = &self.prompt {
            let r = Rect {
                x: inner.x,
                y: inner.bottom().saturating_sub(3),
                width: inner.width,
                height: 3.min(inner.height),
            };
            crate::tui::widgets::render(f, ratatui::widgets::Clear, r);
            let name = self
                .selected()
                .map(|g| safe(&g.fingerprint))
                .unwrap_or_default();
            let input = crate::tui::widgets::framed(
                f,
                r,
                &format!("{name}: VERB NOTE (enter: apply, esc: cancel)"),
                true,
                theme,
            );
            let cursor =
                ratatui::style::Style::default().add_modifier(ratatui::style::Modifier::REVERSED);
            crate::tui::widgets::render(
                f,
                &p.widget(ratatui::style::Style::default(), cursor),
                input,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_filter_reads_status_service_type_and_words() {
        let q =
            parse_group_filter("status:new,regressed service:api,web type:Timeout  card").unwrap();
        assert_eq!(q.statuses, vec![GroupStatus::New]);
        assert!(q.regressed_only);
        assert_eq!(q.services, vec!["api", "web"]);
        assert_eq!(q.error_types, vec!["Timeout"]);
        assert_eq!(q.words, vec!["card"]);
        let e = parse_group_filter("service:api stat:new").unwrap_err();
        assert_eq!(e.pos, 12);
        let e = parse_group_filter("status:fixed").unwrap_err();
        assert_eq!(e.pos, 7);
        assert!(parse_group_filter("service:a,,b").is_err());
    }

    #[test]
    fn the_note_prompt_reads_a_verb_then_the_note() {
        assert_eq!(verb("resolve"), Some(GroupStatus::Resolved));
        assert_eq!(verb("R"), Some(GroupStatus::Resolved));
        assert_eq!(verb("reopen"), Some(GroupStatus::New));
        assert_eq!(verb("fixed"), None);
    }
}
