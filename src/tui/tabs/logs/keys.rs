//! The Logs tab's navigation actions and keys, dispatched by the view on screen.

use super::*;

impl LogsTab {
    /// The tab's navigation actions (`on_action` adds the detail pane's read).
    pub(super) fn act(&mut self, action: Action, ctx: &TabCtx) -> Vec<Effect> {
        let page = 10;
        match self.view {
            View::Tail => match action {
                // The first line of the range, not only of the window.
                Action::Top if self.list.older_left => {
                    self.follow = false;
                    return self.load(LoadKind::Oldest, ctx);
                }
                Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top => {
                    let Some(cur) = self.selected_index() else {
                        return Vec::new();
                    };
                    let mut c = Cursor { selected: cur };
                    c.apply(action, self.list.len(), page);
                    self.follow = false;
                    self.select_index(c.selected);
                    return self.want_pages(ctx);
                }
                Action::Bottom => {
                    self.set_paused(false);
                    self.follow = true;
                    self.selected = None;
                    if self.list.newer_left {
                        // Scrolled back past what memory holds: the newest lines again.
                        return self.load(LoadKind::Newest, ctx);
                    }
                }
                Action::Left if self.volume.shown => self.volume.move_cursor(-1),
                Action::Right if self.volume.shown => self.volume.move_cursor(1),
                Action::Select if self.volume.shown => return self.volume_enter(ctx),
                Action::Left => self.hscroll = self.hscroll.saturating_sub(8),
                Action::Right => self.hscroll += 8,
                Action::Select => self.detail = !self.detail,
                Action::Back => {
                    self.detail = false;
                    self.message = None;
                }
                _ => {}
            },
            View::Trace => match action {
                Action::Back => self.view = View::Tail,
                a => {
                    let n = self.trace.data.as_ref().map_or(0, Vec::len);
                    self.trace_cursor.apply(a, n, page);
                }
            },
            View::Groups => match action {
                Action::Back => self.view = View::Tail,
                Action::Select => self.detail = !self.detail,
                a => {
                    let n = self.groups.data.as_ref().map_or(0, Vec::len);
                    self.group_cursor.apply(a, n, page);
                }
            },
            View::Audit => match action {
                Action::Back => {
                    if self.audit_mode != AuditMode::Trail {
                        self.audit_mode = AuditMode::Trail;
                        self.audit_cursor = Cursor::default();
                        return self.view_query(ctx);
                    }
                    self.view = View::Tail;
                }
                Action::Select => self.detail = !self.detail,
                a => {
                    let n = self.audit.data.as_ref().map_or(0, Vec::len);
                    self.audit_cursor.apply(a, n, page);
                    return self.audit_want_page(ctx);
                }
            },
        }
        Vec::new()
    }

    /// The tab's own keys (`on_key` adds the detail pane's read).
    pub(super) fn key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        let KeyCode::Char(c) = key.code else {
            return None;
        };
        match (self.view, c) {
            (_, 'v') => {
                self.view = match self.view {
                    View::Tail | View::Trace => View::Groups,
                    View::Groups => View::Audit,
                    View::Audit => View::Tail,
                };
                self.detail = false;
                Some(self.view_query(ctx))
            }
            (_, 'x') => Some(self.start_export(None, false, ctx)),
            (_, 'y') => Some(self.copy()),
            (View::Tail, ' ') => {
                let p = !self.paused;
                self.set_paused(p);
                Some(self.drain(ctx))
            }
            (View::Tail, 'i') => Some(self.toggle_volume(ctx)),
            (View::Tail, 'w') => {
                self.wrap = !self.wrap;
                Some(Vec::new())
            }
            (View::Tail, 'e') | (View::Tail, 'E') => {
                if !self.jump(c == 'e', |l| l.level >= Level::Error.as_i16()) {
                    self.message = Some(("no more errors in the loaded lines".into(), Role::Dim));
                }
                Some(Vec::new())
            }
            (View::Tail, 'n') | (View::Tail, 'N') => {
                let terms: Vec<String> = self
                    .filter
                    .message_terms()
                    .iter()
                    .map(|t| t.to_lowercase())
                    .collect();
                if terms.is_empty() {
                    self.message = Some((
                        "no search words in the filter (type / then words)".into(),
                        Role::Dim,
                    ));
                } else if !self.jump(c == 'n', |l| {
                    let m = l.message.to_lowercase();
                    terms.iter().any(|t| m.contains(t.as_str()))
                }) {
                    self.message = Some(("no more matches in the loaded lines".into(), Role::Dim));
                }
                Some(Vec::new())
            }
            (View::Tail, 't') => {
                let Some(id) = self.selected_line().and_then(|l| l.trace_id.clone()) else {
                    self.message = Some(("this line has no trace id".into(), Role::Dim));
                    return Some(Vec::new());
                };
                self.trace_id = id;
                self.trace = Panel::default();
                self.trace_cursor = Cursor::default();
                self.view = View::Trace;
                Some(self.view_query(ctx))
            }
            (View::Groups, 'a') => Some(self.transition(GroupStatus::Acknowledged, None, ctx)),
            (View::Groups, 'p') => Some(self.transition(GroupStatus::InProgress, None, ctx)),
            (View::Groups, 'R') => Some(self.transition(GroupStatus::Resolved, None, ctx)),
            (View::Groups, 'i') => Some(self.transition(GroupStatus::Ignored, None, ctx)),
            (View::Groups, 'o') => Some(self.transition(GroupStatus::New, None, ctx)),
            (View::Audit, 'm') => {
                self.audit_mode = AuditMode::MassDeletes(10);
                Some(self.view_query(ctx))
            }
            (View::Audit, 'D') => {
                let what = self
                    .audit
                    .data
                    .as_ref()
                    .and_then(|a| a.get(self.audit_cursor.selected))
                    .and_then(|a| a.resource_id.clone())?;
                self.audit_mode = AuditMode::WhoDeleted(what);
                Some(self.view_query(ctx))
            }
            _ => None,
        }
    }
}
