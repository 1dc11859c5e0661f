//! `y`: what each Logs view copies to the clipboard (the selected line, the trace id, the
//! error group, the audit event) and the status line that says so. The text is made safe
//! first: a line pasted into a shell later must not carry escape sequences either.

use super::*;

impl LogsTab {
    /// The selected item of the view on screen as text to copy, and what to call it.
    fn copy_text(&self) -> Option<(String, String)> {
        match self.view {
            View::Tail => {
                let l = self.detail_line()?;
                let text = format!(
                    "{} {} {} {}",
                    l.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    l.level.name(),
                    l.service,
                    l.message
                );
                Some((text, "the selected line".into()))
            }
            View::Trace => self.trace.copy_text(),
            View::Groups => self.groups.copy_text(),
            View::Audit => self.audit.copy_text(),
        }
    }

    /// `y`: the copy effect for the main loop, and the status line.
    pub(super) fn copy(&mut self) -> Vec<Effect> {
        let Some((text, what)) = self.copy_text() else {
            self.message = Some(("nothing selected to copy".into(), Role::Dim));
            return Vec::new();
        };
        let text = safe(&text);
        self.message = Some((
            format!(
                "copied {what} ({} characters) to the clipboard (OSC 52)",
                text.chars().count()
            ),
            Role::Ok,
        ));
        vec![Effect::Copy(text)]
    }
}
