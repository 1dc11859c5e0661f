//! The audit trail view: a component owning what it lists (the trail its filter line selects,
//! paged; who deleted a row; the mass deletes), its cursors, detail pane, keys, queries and
//! draw. `m` opens the mass-delete view (an actor's deletes with one action, more than 10 in
//! 5 minutes: the shipped `mass-delete` rule's notion); Enter on one of its rows lists those
//! deletes in the trail. `x` exports the rows the filter line selects (`export`).

use super::*;
use crate::filter::audit::{parse_audit, AuditFilter};

/// What the audit view lists.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditMode {
    /// The rows the audit filter line selects, newest first, paged.
    Trail,
    WhoDeleted(String),
    /// `:who-deleted TABLE ID`.
    WhoDeletedIn(String, String),
    MassDeletes(i64),
}

/// Rows per page of the audit trail.
const AUDIT_PAGE: i64 = 200;

/// The mass-delete view's window and threshold: the shipped `mass-delete` rule's.
const MASS_WINDOW_MIN: i64 = 5;
const MASS_THRESHOLD: i64 = 10;

/// The audit view's quick forms: `deleted:X` (who deleted X), `mass` / `mass:N` (actors with
/// more than N deletes in 5 minutes). None: the filter line proper.
fn audit_quick(text: &str) -> Option<AuditMode> {
    let t = text.trim();
    if let Some(x) = t.strip_prefix("deleted:") {
        return Some(AuditMode::WhoDeleted(x.trim().to_string()));
    }
    let n = t.strip_prefix("mass")?;
    let n = n.strip_prefix(':').unwrap_or(n).trim();
    if n.is_empty() {
        return Some(AuditMode::MassDeletes(MASS_THRESHOLD));
    }
    n.parse().ok().map(AuditMode::MassDeletes)
}

/// A value for the filter line, quoted when it holds a space, quote or comma.
fn filter_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | ',' | '\\'))
    {
        return v.to_string();
    }
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The trail's filter for the deletes of one mass-delete row: that actor and action in the
/// busiest window.
fn mass_filter(m: &MassDelete) -> String {
    let t = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        "actor:{} action:{} since:{} until:{}",
        filter_value(&m.actor),
        filter_value(&m.action),
        t(m.peak_at - chrono::Duration::minutes(MASS_WINDOW_MIN)),
        t(m.peak_at + chrono::Duration::microseconds(1)),
    )
}

pub(super) struct AuditView {
    pub(super) mode: AuditMode,
    /// The filter line (`filter::audit`), applied on Enter.
    filter: AuditFilter,
    /// Whether the last page of the trail came back full (more rows to page to).
    more: bool,
    audit: Panel<Vec<AuditEvent>>,
    mass: Panel<Vec<MassDelete>>,
    cursor: Cursor,
    mass_cursor: Cursor,
    pub(super) detail: bool,
}

impl Default for AuditView {
    fn default() -> Self {
        AuditView {
            mode: AuditMode::Trail,
            filter: AuditFilter::default(),
            more: false,
            audit: Panel::default(),
            mass: Panel::default(),
            cursor: Cursor::default(),
            mass_cursor: Cursor::default(),
            detail: false,
        }
    }
}

impl AuditView {
    pub(super) fn request(&mut self, ctx: &TabCtx) -> Effect {
        let db = ctx.db.clone();
        if let AuditMode::MassDeletes(n) = self.mode {
            self.mass.loading = true;
            let since = ctx.now - ctx.range.duration();
            return Effect::Query(QueryRequest::new(
                "mass",
                async move {
                    Ok(crate::query::audit::mass_deletes(
                        &db.read,
                        since,
                        chrono::Duration::minutes(MASS_WINDOW_MIN),
                        n,
                    )
                    .await?)
                },
                LogsData::Mass,
            ));
        }
        self.audit.loading = true;
        let mode = self.mode.clone();
        let f = self.filter.clone();
        Effect::Query(QueryRequest::new(
            "audit",
            async move {
                Ok(match mode {
                    AuditMode::WhoDeletedIn(table, id) => {
                        crate::query::audit::who_deleted_in(&db.read, &table, &id, 500).await?
                    }
                    AuditMode::WhoDeleted(what) => {
                        crate::query::audit::who_deleted(&db.read, &what, 500).await?
                    }
                    _ => crate::query::audit::search(&db.read, &f, None, AUDIT_PAGE).await?,
                })
            },
            LogsData::Audit,
        ))
    }

    /// Lists `mode` from its first row.
    pub(super) fn show(&mut self, mode: AuditMode, ctx: &TabCtx) -> Vec<Effect> {
        self.mode = mode;
        self.cursor = Cursor::default();
        vec![self.request(ctx)]
    }

    pub(super) fn on_rows(&mut self, r: crate::tui::msg::Res<Vec<AuditEvent>>) {
        let ids = |a: &Panel<Vec<AuditEvent>>| -> Vec<i64> {
            a.data.iter().flatten().map(|e| e.id).collect()
        };
        let had = ids(&self.audit).get(self.cursor.selected).copied();
        self.more = self.mode == AuditMode::Trail
            && r.as_ref().is_ok_and(|rows| rows.len() as i64 >= AUDIT_PAGE);
        self.audit.set(r);
        self.cursor.follow(had.as_ref(), ids(&self.audit));
    }

    pub(super) fn on_mass(&mut self, r: crate::tui::msg::Res<Vec<MassDelete>>) {
        self.mass.set(r);
        self.mass_cursor
            .clamp(self.mass.data.as_ref().map_or(0, Vec::len));
    }

    /// The filter text `/` reopens with.
    pub(super) fn filter_text(&self) -> &str {
        self.filter.source()
    }

    /// What `x` exports: the rows the filter line selects.
    pub(super) fn export_filter(&self) -> AuditFilter {
        self.filter.clone()
    }

    /// Checks the filter being typed (the quick forms are always understood).
    pub(super) fn check_filter(text: &str) -> Option<(String, FilterError)> {
        audit_quick(text)
            .is_none()
            .then(|| parse_audit(text).err())
            .flatten()
            .map(|e| (text.to_string(), e))
    }

    /// The quick filters `deleted:X`, `mass` / `mass:N`; empty: the trail. Otherwise the filter
    /// line over the trail; a mistake leaves the previous filter in force.
    pub(super) fn on_filter_submit(
        &mut self,
        text: &str,
        ctx: &TabCtx,
    ) -> Result<Vec<Effect>, (String, FilterError)> {
        self.mode = match audit_quick(text) {
            Some(mode) => mode,
            None => {
                let f = parse_audit(text).map_err(|e| (text.to_string(), e))?;
                self.filter = f;
                self.cursor = Cursor::default();
                AuditMode::Trail
            }
        };
        Ok(vec![self.request(ctx)])
    }

    /// Navigation. None: Back leaves the view.
    pub(super) fn on_action(&mut self, a: Action, ctx: &TabCtx) -> Option<Vec<Effect>> {
        if let AuditMode::MassDeletes(_) = self.mode {
            return match a {
                Action::Back => Some(self.show(AuditMode::Trail, ctx)),
                Action::Select => {
                    let rows = self.mass.data.as_deref().unwrap_or(&[]);
                    let Some(m) = rows.get(self.mass_cursor.selected) else {
                        return Some(Vec::new());
                    };
                    let text = mass_filter(m);
                    match parse_audit(&text) {
                        Ok(f) => {
                            self.filter = f;
                            Some(self.show(AuditMode::Trail, ctx))
                        }
                        Err(_) => Some(Vec::new()),
                    }
                }
                a => {
                    let n = self.mass.data.as_ref().map_or(0, Vec::len);
                    self.mass_cursor.apply(a, n, 10);
                    Some(Vec::new())
                }
            };
        }
        match a {
            Action::Back => {
                if self.mode != AuditMode::Trail {
                    return Some(self.show(AuditMode::Trail, ctx));
                }
                None
            }
            Action::Select => {
                self.detail = !self.detail;
                Some(Vec::new())
            }
            a => {
                let n = self.audit.data.as_ref().map_or(0, Vec::len);
                self.cursor.apply(a, n, 10);
                Some(self.want_page(ctx))
            }
        }
    }

    /// `m` the mass deletes, `D` who deleted the selected row's resource.
    pub(super) fn on_key(&mut self, c: char, ctx: &TabCtx) -> Option<Vec<Effect>> {
        match c {
            'm' => {
                self.mass_cursor = Cursor::default();
                Some(self.show(AuditMode::MassDeletes(MASS_THRESHOLD), ctx))
            }
            'D' => {
                let what = self
                    .audit
                    .data
                    .as_ref()
                    .and_then(|a| a.get(self.cursor.selected))
                    .and_then(|a| a.resource_id.clone())?;
                self.mode = AuditMode::WhoDeleted(what);
                Some(vec![self.request(ctx)])
            }
            _ => None,
        }
    }

    /// `y`: the selected event.
    pub(super) fn copy_text(&self) -> Option<(String, String)> {
        let a = self.audit.data.as_ref()?.get(self.cursor.selected)?;
        Some((
            format!(
                "{} {} {} {} {} {}",
                a.ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                a.actor,
                a.action,
                a.resource_type.as_deref().unwrap_or("-"),
                a.resource_id.as_deref().unwrap_or("-"),
                a.outcome
            ),
            "the audit event".into(),
        ))
    }

    /// The next page of the trail when the cursor nears the last row loaded and the last page
    /// came back full (keyset on (ts, id): the same cost at any depth).
    fn want_page(&mut self, ctx: &TabCtx) -> Vec<Effect> {
        let rows = self.audit.data.as_deref().unwrap_or(&[]);
        if self.mode != AuditMode::Trail
            || !self.more
            || self.audit.loading
            || self.cursor.selected + 20 < rows.len()
        {
            return Vec::new();
        }
        let Some(last) = rows.last() else {
            return Vec::new();
        };
        let key = crate::query::audit::AuditKey {
            ts: last.ts,
            id: last.id,
        };
        self.audit.loading = true;
        let pool = ctx.db.read.clone();
        let f = self.filter.clone();
        vec![Effect::Query(QueryRequest::new(
            "audit-more",
            async move { Ok(crate::query::audit::search(&pool, &f, Some(key), AUDIT_PAGE).await?) },
            LogsData::AuditMore,
        ))]
    }

    /// A page of older rows: appended when it continues the rows held (a new filter since
    /// then read the trail again from its newest row). An error is for the note line.
    pub(super) fn page_in(
        &mut self,
        r: crate::tui::msg::Res<Vec<AuditEvent>>,
    ) -> Option<(String, Role)> {
        self.audit.loading = false;
        match r {
            Ok(page) => {
                let rows = self.audit.data.as_mut()?;
                let last = rows.last().map(|a| (a.ts, a.id));
                let continues = page
                    .first()
                    .is_some_and(|p| last.is_some_and(|l| (p.ts, p.id) < l));
                if !continues {
                    self.more = false;
                    return None;
                }
                self.more = page.len() as i64 >= AUDIT_PAGE;
                rows.extend(page);
                None
            }
            Err(e) => {
                self.more = false;
                Some((format!("reading the audit trail: {e}"), Role::Error))
            }
        }
    }

    pub(super) fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let title = match &self.mode {
            AuditMode::Trail => format!(
                "audit trail: {} rows{} (/actor:NAME action:*delete* since:1d, /deleted:ID, /mass:N)",
                self.audit.data.as_ref().map_or(0, Vec::len),
                if self.more { "+" } else { "" }
            ),
            AuditMode::WhoDeletedIn(t, id) => format!("who deleted {} {}", safe(t), safe(id)),
            AuditMode::WhoDeleted(x) => format!("who deleted {}", safe(x)),
            AuditMode::MassDeletes(n) => format!(
                "mass deletes: more than {n} by one actor with one action in {MASS_WINDOW_MIN} minutes (enter: those rows)"
            ),
        };
        let b = block(&title, true, theme);
        let inner = b.inner(area);
        crate::tui::widgets::render(f, b, area);
        if let AuditMode::MassDeletes(_) = self.mode {
            self.draw_mass(f, inner, ctx);
            return;
        }
        let Some(events) = &self.audit.data else {
            let (t, r) = self
                .audit
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if events.is_empty() {
            draw_note(f, inner, "no audit events", Role::Dim, theme);
            return;
        }
        let (list, detail) = if self.detail {
            let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(inner);
            (a, Some(b))
        } else {
            (inner, None)
        };
        let height = list.height as usize;
        let sel = self.cursor.selected;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let w = list.width as usize;
        let lines: Vec<Line> = events
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, a)| {
                let s = i == sel;
                let deleting = a.action.to_lowercase().contains("delet");
                Line::from(vec![
                    Span::styled(
                        format!("{:<20}", ctx.fmt_time(a.ts, "%m-%d %H:%M:%S")),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<14}", truncate(&safe(&a.actor), 13)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!("{:<18}", truncate(&safe(&a.action), 17)),
                        if deleting {
                            theme.style(Role::Warn)
                        } else {
                            row_style(s, theme)
                        },
                    ),
                    Span::styled(
                        truncate(
                            &format!(
                                "{} {}",
                                safe(a.resource_type.as_deref().unwrap_or("")),
                                safe(a.resource_id.as_deref().unwrap_or(""))
                            ),
                            w.saturating_sub(52),
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), list);
        if let (Some(area), Some(a)) = (detail, events.get(sel)) {
            draw_event(f, area, a, theme);
        }
    }

    fn draw_mass(&self, f: &mut Frame, inner: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let Some(rows) = &self.mass.data else {
            let (t, r) = self
                .mass
                .placeholder()
                .unwrap_or((String::new(), Role::Dim));
            draw_note(f, inner, &t, r, theme);
            return;
        };
        if rows.is_empty() {
            draw_note(f, inner, "no mass deletes in the range", Role::Ok, theme);
            return;
        }
        let sel = self.mass_cursor.selected;
        let height = inner.height as usize;
        let top = sel.saturating_sub(height.saturating_sub(1));
        let lines: Vec<Line> = rows
            .iter()
            .enumerate()
            .skip(top)
            .take(height)
            .map(|(i, m)| {
                let s = i == sel;
                Line::from(vec![
                    Span::styled(
                        format!("{:<20}", truncate(&safe(&m.actor), 19)),
                        if s {
                            theme.style(Role::Selection)
                        } else {
                            theme.style(Role::Error)
                        },
                    ),
                    Span::styled(
                        format!("{:<18}", truncate(&safe(&m.action), 17)),
                        row_style(s, theme),
                    ),
                    Span::styled(
                        format!(
                            "{} deletes in {MASS_WINDOW_MIN} min (until {}), {} in range",
                            m.peak,
                            ctx.fmt_time(m.peak_at, "%H:%M:%S"),
                            m.total
                        ),
                        row_style(s, theme),
                    ),
                ])
            })
            .collect();
        crate::tui::widgets::render(f, Paragraph::new(lines), inner);
    }
}

/// One event's actor, outcome and before/after as a diff, readable without colour (`+`,
/// `-`, `~`).
fn draw_event(f: &mut Frame, area: Rect, a: &AuditEvent, theme: &Theme) {
    let mut l = vec![
        kv(
            "actor",
            &format!("{} ({})", a.actor, a.actor_role.as_deref().unwrap_or("-")),
            theme,
        ),
        kv("outcome", &a.outcome, theme),
        kv("source", &a.source, theme),
        kv("ip", a.ip.as_deref().unwrap_or("-"), theme),
    ];
    for d in crate::query::audit::diff(a.before.as_ref(), a.after.as_ref()) {
        l.push(match d {
            DiffLine::Added { key, after } => Line::from(Span::styled(
                format!("+ {}: {}", safe(&key), safe(&after)),
                theme.style(Role::Ok),
            )),
            DiffLine::Removed { key, before } => Line::from(Span::styled(
                format!("- {}: {}", safe(&key), safe(&before)),
                theme.style(Role::Error),
            )),
            DiffLine::Changed { key, before, after } => Line::from(Span::styled(
                format!("~ {}: {} → {}", safe(&key), safe(&before), safe(&after)),
                theme.style(Role::Warn),
            )),
        });
    }
    crate::tui::widgets::render(
        f,
        Paragraph::new(l)
            .block(block("before → after", false, theme))
            .wrap(Wrap { trim: false }),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mass_delete_row_becomes_a_trail_filter_the_language_reads() {
        let m = MassDelete {
            actor: "mal lory".into(),
            action: "file.deleted".into(),
            peak: 12,
            peak_at: Utc::now(),
            total: 12,
        };
        let text = mass_filter(&m);
        assert!(
            text.starts_with("actor:\"mal lory\" action:file.deleted since:"),
            "{text}"
        );
        assert!(parse_audit(&text).is_ok(), "{text}");
        assert_eq!(audit_quick("mass"), Some(AuditMode::MassDeletes(10)));
        assert_eq!(audit_quick("mass:3"), Some(AuditMode::MassDeletes(3)));
        assert_eq!(audit_quick("actor:x"), None);
    }
}
