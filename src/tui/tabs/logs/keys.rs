//! The Logs tab's navigation actions and keys: the list's own, and the dispatch to the view
//! component on screen (`trace`, `groups`, `audit`).

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
                Action::Select => self.detail.shown = !self.detail.shown,
                Action::Back => {
                    self.detail.shown = false;
                    self.message = None;
                }
                _ => {}
            },
            View::Trace => {
                if !self.trace.on_action(action) {
                    self.view = View::Tail;
                }
            }
            View::Groups => match self.groups.on_action(action, ctx) {
                Some(fx) => return fx,
                None => self.view = View::Tail,
            },
            View::Audit => match self.audit.on_action(action, ctx) {
                Some(fx) => return fx,
                None => self.view = View::Tail,
            },
        }
        Vec::new()
    }

    /// The tab's own keys (`on_key` adds the detail pane's read).
    pub(super) fn key(&mut self, key: &KeyEvent, ctx: &TabCtx) -> Option<Vec<Effect>> {
        // The groups view's note prompt takes every key while open.
        if self.view == View::Groups && self.groups.prompt_open() {
            return self.groups.on_key(key, &mut self.message, ctx);
        }
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
                self.close_details();
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
                if !self.jump(c == 'e', |l| l.level >= Level::Error) {
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
                self.trace.open(id);
                self.view = View::Trace;
                Some(self.view_query(ctx))
            }
            (View::Groups, _) => self.groups.on_key(key, &mut self.message, ctx),
            (View::Audit, c) => self.audit.on_key(c, ctx),
            _ => None,
        }
    }

    /// The keys the help and the footer show, the view on screen's last.
    pub(super) fn key_bindings(&self) -> Vec<Binding> {
        let mut b = vec![
            Binding {
                keys: "space",
                help: "pause / resume the tail",
            },
            Binding {
                keys: "G",
                help: "follow the newest lines",
            },
            Binding {
                keys: "enter",
                help: "details",
            },
            Binding {
                keys: "w",
                help: "wrap long lines",
            },
            Binding {
                keys: "h l",
                help: "scroll sideways",
            },
            Binding {
                keys: "e E",
                help: "next / previous error",
            },
            Binding {
                keys: "n N",
                help: "next / previous match",
            },
            Binding {
                keys: "t",
                help: "trace of this line",
            },
            Binding {
                keys: "v",
                help: "tail / error groups / audit",
            },
            Binding {
                keys: ":f NAME",
                help: "apply a saved filter ([logs.saved_filters])",
            },
            Binding {
                keys: "y",
                help: "copy the line / trace id / group / audit event (OSC 52)",
            },
            Binding {
                keys: "i",
                help: "volume histogram (←/→ a bucket, enter: the list there)",
            },
            Binding {
                keys: "g",
                help: "the range's first line (paging through all of history)",
            },
            Binding {
                keys: ":goto TIME",
                help: "lines at 2026-12-01 14:00, 14:00 or 2h (ago)",
            },
            Binding {
                keys: "x",
                help: "export the lines the header counts: filter and range (:export FILE)",
            },
        ];
        if self.view == View::Groups {
            b.extend([
                Binding {
                    keys: GROUP_KEYS,
                    help: "ack / in progress / resolve / ignore / reopen / with a note (:resolve NOTE)",
                },
                Binding {
                    keys: "s",
                    help: "groups: sort by last seen / count / users / first seen",
                },
                Binding {
                    keys: "/",
                    help: groups::GROUP_FILTER_KEYS,
                },
                Binding {
                    keys: "enter d",
                    help: "groups: the group's log lines / its detail",
                },
            ]);
        }
        if self.view == View::Audit {
            b.extend([
                Binding {
                    keys: "D m",
                    help: "who deleted this / mass deletes (enter: their rows)",
                },
                Binding {
                    keys: "x",
                    help: "audit: export the rows of the filter (:export FILE.jsonl|.log)",
                },
            ]);
        }
        b
    }
}
