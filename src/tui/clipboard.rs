//! Copy out of the dashboard with OSC 52: the terminal (or tmux with `set-clipboard on`, or
//! the terminal at the far end of an SSH session) puts the text on the clipboard, as k9s, lnav
//! and pg_activity do. Mouse capture keeps the operator from selecting text, so this is the
//! way out. The sequence is written by the main loop between frames, never from `draw`.

use std::io::Write;

use base64::Engine as _;

/// Terminals cap what one OSC 52 sequence may carry (xterm's default is about 100 kB of
/// base64); a longer text is cut here rather than dropped whole by the terminal.
pub const MAX_BYTES: usize = 64 * 1024;

/// The OSC 52 sequence that puts `text` on the clipboard (`c`), ended by BEL, which tmux and
/// the common terminals accept. The text is base64 inside the sequence, so no byte of it can
/// end the sequence early or reach the terminal as a command.
pub fn osc52(text: &str) -> String {
    let mut end = text.len().min(MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[..end]);
    format!("\x1b]52;c;{b64}\x07")
}

/// Writes the sequence to the terminal (stdout, which the dashboard owns).
pub fn copy(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(osc52(text).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_travels_as_base64_between_osc_52_and_bel() {
        assert_eq!(osc52("trace-42"), "\x1b]52;c;dHJhY2UtNDI=\x07");
        // An escape in the text cannot break out of the sequence.
        let s = osc52("a\x1b]0;owned\x07b");
        assert_eq!(s.matches('\x07').count(), 1);
        assert_eq!(s.matches('\x1b').count(), 1);
        // Cut at a character boundary under the cap.
        let long = "é".repeat(MAX_BYTES);
        let b64 = osc52(&long);
        let inner = &b64["\x1b]52;c;".len()..b64.len() - 1];
        let back = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .unwrap();
        assert!(back.len() <= MAX_BYTES && std::str::from_utf8(&back).is_ok());
    }
}
