//! Geometry the shell's `update` and `draw` must agree on, computed here from the tab titles
//! and the screen width so that neither imports the other: where each tab's entry sits in the
//! tab bar (drawn by `draw`, hit by a mouse click in `update`).

use crate::tui::msg::Tab;

/// Below this width the long tab titles give way to short ones.
const SHORT_TITLES_BELOW: u16 = 70;

/// One tab-bar entry: its tab, its text and the columns `from..to` it covers on row 0.
#[derive(Debug, Clone, PartialEq)]
pub struct TabEntry {
    pub tab: Tab,
    pub label: String,
    pub from: u16,
    pub to: u16,
}

/// The tab bar for these tabs (in bar order) at this screen width; entries are one column
/// apart.
pub fn tab_bar(tabs: impl IntoIterator<Item = Tab>, width: u16) -> Vec<TabEntry> {
    let mut x = 0u16;
    let mut out = Vec::new();
    for tab in tabs {
        let label = tab_label(tab, width);
        let w = label.chars().count() as u16;
        out.push(TabEntry {
            tab,
            label,
            from: x,
            to: x + w,
        });
        x += w + 1;
    }
    out
}

/// The tab whose entry covers `column` of the tab bar.
pub fn tab_at(tabs: impl IntoIterator<Item = Tab>, width: u16, column: u16) -> Option<Tab> {
    tab_bar(tabs, width)
        .into_iter()
        .find(|e| (e.from..e.to).contains(&column))
        .map(|e| e.tab)
}

fn tab_label(tab: Tab, width: u16) -> String {
    // At 80 columns the long titles still fit; below that, use short ones.
    let title = match (tab, width < SHORT_TITLES_BELOW) {
        (Tab::Perf, true) => "Perf",
        (t, _) => t.title(),
    };
    format!(" {} {} ", tab.number(), title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_contiguous_and_clicks_find_them() {
        let bar = tab_bar(Tab::ALL, 120);
        assert_eq!(bar[0].label, " 1 KPI ");
        assert_eq!((bar[0].from, bar[0].to), (0, 7));
        assert_eq!(bar[1].from, 8, "one column between entries");
        assert_eq!(tab_at(Tab::ALL, 120, 8), Some(Tab::Logs));
        assert_eq!(tab_at(Tab::ALL, 120, 7), None, "the gap hits nothing");
        let narrow = tab_bar(Tab::ALL, 60);
        assert!(narrow.iter().any(|e| e.label == " 4 Perf "));
    }
}
