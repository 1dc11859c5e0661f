//! Which widget wrote each cell of a frame, for tests: every draw goes through
//! `widgets::render` (and `widgets::put_line`), which reports here what it is about to write.
//! While a test has started a recording, a cell written by two text widgets is a collision:
//! two texts overlapping, one cut into the other. Blocks (frames, backgrounds) only contain,
//! and `Clear` (an overlay's backdrop) hands its cells to whatever is drawn over it.
//! Outside a recording this costs one thread-local read per widget.

use std::cell::RefCell;

use ratatui::layout::Rect;

/// Two widgets that wrote the same cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub x: u16,
    pub y: u16,
    pub first: String,
    pub second: String,
}

struct Recording {
    area: Rect,
    /// Per cell: index + 1 into `names` of the text widget that wrote it, 0 for none.
    owner: Vec<u32>,
    names: Vec<String>,
    collisions: Vec<Collision>,
}

thread_local! {
    static RECORDING: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

/// Starts recording the writes of frames of `area` on this thread.
pub fn start(area: Rect) {
    RECORDING.with(|r| {
        *r.borrow_mut() = Some(Recording {
            area,
            owner: vec![0; area.width as usize * area.height as usize],
            names: Vec::new(),
            collisions: Vec::new(),
        })
    });
}

/// Ends the recording: the collisions seen (the first of each pair of widgets).
pub fn finish() -> Vec<Collision> {
    RECORDING.with(|r| {
        r.borrow_mut()
            .take()
            .map(|r| r.collisions)
            .unwrap_or_default()
    })
}

/// A widget of type `W` is about to write `area`.
pub fn record<W>(area: Rect) {
    RECORDING.with(|r| {
        let mut guard = r.borrow_mut();
        let Some(rec) = guard.as_mut() else {
            return;
        };
        let ty = std::any::type_name::<W>();
        let name = short(ty);
        let area = area.intersection(rec.area);
        if name == "Block" {
            return;
        }
        let clear = name == "Clear";
        rec.names.push(name.to_string());
        let me = rec.names.len() as u32;
        let w = rec.area.width as usize;
        for y in area.top()..area.bottom() {
            for x in area.left()..area.right() {
                let i = (y - rec.area.y) as usize * w + (x - rec.area.x) as usize;
                let prev = rec.owner[i];
                if clear {
                    rec.owner[i] = 0;
                    continue;
                }
                if prev != 0 && prev != me {
                    let first = rec.names[prev as usize - 1].clone();
                    let seen = rec
                        .collisions
                        .iter()
                        .any(|c| c.first == first && c.second == name);
                    if !seen {
                        rec.collisions.push(Collision {
                            x,
                            y,
                            first,
                            second: name.to_string(),
                        });
                    }
                }
                rec.owner[i] = me;
            }
        }
    });
}

/// `ratatui::widgets::paragraph::Paragraph<'_>` -> `Paragraph`.
fn short(ty: &'static str) -> &'static str {
    let base = ty.trim_start_matches('&');
    let base = base.split('<').next().unwrap_or(base);
    base.rsplit("::").next().unwrap_or(base)
}
