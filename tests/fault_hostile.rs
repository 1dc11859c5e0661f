//! Fault: a hostile input corpus through the real `opsdash ingest` and onto the screen.
//!
//! The corpus is generated here (a 10 MB line and 100k-level JSON are not worth checking in):
//! malformed JSON, invalid UTF-8, NUL bytes (raw and escaped), a 10 MB line, timestamps in year 1
//! and 9999, JSON nested 100,000 levels deep, and terminal escape attacks (CSI incl. device
//! status and window reports, OSC 0/8/52, DCS, APC, PM, SOS, 8-bit C1 controls, bidi overrides
//! and isolates, BEL, backspace overwrite tricks), both JSON-escaped (`\u001b` decodes to a real
//! ESC) and raw in text and logfmt lines. Checks: every rejected line is named by its number with
//! a reason, every good line is stored, nothing crashes, and no escape or control byte from the
//! data reaches a terminal: ingest's own stderr, the Logs tab rendered on ratatui's TestBackend,
//! and every byte the real dashboard writes to a tmux pane.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::tmux::{Tmux, PROMPT};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::sanitize::is_unsafe;
use opsdash::tui::app::{update, App, AppOptions};
use opsdash::tui::event::Event;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// Every good line carries this marker and its own number, so each is found in the table.
const GOOD: &str = "HOSTILE-OK-";

/// Escape attacks, as text (JSON-escaped into JSON lines, written raw into text lines).
const ATTACKS: &[(&str, &str)] = &[
    ("csi-clear", "\x1b[2J\x1b[H cleared the screen"),
    ("csi-dsr", "\x1b[6n device status report"),
    ("csi-title-report", "\x1b[21t window title report"),
    ("csi-printer", "\x1b[5i printer on"),
    ("csi-alt-screen", "\x1b[?1049l leave alternate screen"),
    ("osc-title", "\x1b]0;owned title\x07 title"),
    (
        "osc-hyperlink",
        "\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\",
    ),
    ("osc-52-clipboard", "\x1b]52;c;ZXZpbA==\x07 clipboard"),
    ("dcs", "\x1bP+q544e\x1b\\ dcs"),
    ("apc", "\x1b_Gf=100;payload\x1b\\ apc"),
    ("pm", "\x1b^private message\x1b\\ pm"),
    ("sos", "\x1bXstart of string\x1b\\ sos"),
    ("c1-csi", "\u{9b}31m 8-bit CSI"),
    ("c1-osc", "\u{9d}0;c1 title\u{9c} 8-bit OSC"),
    (
        "bidi",
        "bidi \u{202e}gnp.exe\u{202c} \u{2066}isolate\u{2069} \u{200f}",
    ),
    ("bel", "bell \x07\x07\x07"),
    ("backspace", "rm -rf /safe\x08\x08\x08\x08\x08evil!"),
    ("carriage-return", "innocent\r\x1b[Kforged line"),
    ("split-escape", "split escape at the end \x1b"),
];

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

struct Corpus {
    /// Lines whose marker must be stored.
    good: Vec<String>,
    /// Line numbers that must be rejected.
    rejected: Vec<u64>,
}

/// The JSON corpus (ingested with --format json).
fn write_json_corpus(path: &Path) -> Corpus {
    let mut out: Vec<u8> = Vec::new();
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    let mut n = 0u64;
    let mut line = |bytes: &[u8], ok: Option<String>| {
        n += 1;
        out.extend_from_slice(bytes);
        out.push(b'\n');
        match ok {
            Some(m) => good.push(m),
            None => rejected.push(n),
        }
    };
    let m = |i: &str| format!("{GOOD}json-{i}");
    line(
        format!("{{\"msg\":\"{} plain\"}}", m("plain")).as_bytes(),
        Some(m("plain")),
    );
    line(b"{\"msg\": oops", None);
    // Invalid UTF-8 is stored with U+FFFD (issue 12: it was rejected, losing the line).
    let mut bad_utf8 = format!("{{\"msg\":\"{} bad ", m("utf8")).into_bytes();
    bad_utf8.extend(b"\xff\xfe utf8\"}");
    line(&bad_utf8, Some(m("utf8")));
    line(b"{\"msg\":\"raw \x00 nul byte\"}", None);
    line(
        format!("{{\"msg\":\"{} nul \\u0000 escaped\"}}", m("nul")).as_bytes(),
        Some(m("nul")),
    );
    let mut huge = b"{\"msg\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    huge.extend(b"\"}");
    line(&huge, None);
    line(
        format!("{{\"msg\":\"{} after the 10 MB line\"}}", m("after-huge")).as_bytes(),
        Some(m("after-huge")),
    );
    line(
        format!(
            "{{\"ts\":\"0001-01-01T00:00:00Z\",\"msg\":\"{} year one\"}}",
            m("year-1")
        )
        .as_bytes(),
        Some(m("year-1")),
    );
    line(
        format!(
            "{{\"ts\":\"9999-12-31T23:59:59Z\",\"msg\":\"{} year 9999\"}}",
            m("year-9999")
        )
        .as_bytes(),
        Some(m("year-9999")),
    );
    let depth = 100_000;
    let nested_array = format!(
        "{{\"msg\":\"nested\",\"a\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    line(nested_array.as_bytes(), None);
    let nested_object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    line(nested_object.as_bytes(), None);
    line(b"", Some(String::new()));
    for (name, attack) in ATTACKS {
        let marker = m(name);
        let msg = json_escape(&format!("{marker} {attack}"));
        let field = json_escape(attack);
        line(
            format!("{{\"level\":\"error\",\"service\":\"hostile\",\"msg\":{msg},\"user\":{field},\"k\":{field}}}")
                .as_bytes(),
            Some(marker),
        );
    }
    line(b"[1,2,3]", None);
    line(b"\"just a string\"", None);
    line(
        format!("{{\"msg\":\"{} last line\"}}", m("last")).as_bytes(),
        Some(m("last")),
    );
    std::fs::write(path, &out).expect("corpus written");
    // The blank line is skipped, neither stored nor rejected.
    good.retain(|g| !g.is_empty());
    Corpus { good, rejected }
}

/// The text corpus (ingested with --format auto): raw escape bytes in plain and logfmt lines,
/// and a raw 8-bit C1 byte (invalid UTF-8).
fn write_text_corpus(path: &Path) -> Corpus {
    let mut out: Vec<u8> = Vec::new();
    let mut good = Vec::new();
    for (name, attack) in ATTACKS {
        let marker = format!("{GOOD}text-{name}");
        out.extend(format!("ERROR {marker} {attack}\n").as_bytes());
        good.push(marker);
    }
    for (name, attack) in ATTACKS.iter().take(6) {
        let marker = format!("{GOOD}logfmt-{name}");
        let quoted = attack.replace('\\', "\\\\").replace('"', "\\\"");
        out.extend(
            format!("level=error service=hostile msg=\"{marker} {quoted}\" user=\"{quoted}\"\n")
                .as_bytes(),
        );
        good.push(marker);
    }
    // 0x9b alone is the 8-bit CSI of old terminals and not UTF-8.
    out.extend(b"ERROR raw 8-bit \x9b31m csi\n");
    let last = format!("{GOOD}text-last");
    out.extend(format!("{last} no newline at the end").as_bytes());
    good.push(last);
    std::fs::write(path, &out).expect("corpus written");
    Corpus {
        good,
        rejected: Vec::new(),
    }
}

fn ingest(url: &str, format: &str, path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .args(["--database-url", url, "ingest", "--format", format])
        .arg(path)
        .output()
        .expect("opsdash ingest runs")
}

/// Bytes an attacker would want on the terminal; the dashboard itself never writes them.
fn forbidden_sequences() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("OSC", b"\x1b]".to_vec()),
        ("DCS", b"\x1bP".to_vec()),
        ("APC", b"\x1b_".to_vec()),
        ("PM", b"\x1b^".to_vec()),
        ("SOS", b"\x1bX".to_vec()),
        ("BEL", b"\x07".to_vec()),
        ("BS", b"\x08".to_vec()),
        ("CSI 6n", b"\x1b[6n".to_vec()),
        ("CSI 21t", b"\x1b[21t".to_vec()),
        ("CSI 5i", b"\x1b[5i".to_vec()),
    ];
    for c in 0x80u32..=0x9f {
        let mut b = [0u8; 4];
        let s = char::from_u32(c).expect("C1").encode_utf8(&mut b);
        v.push(("C1", s.as_bytes().to_vec()));
    }
    for c in [
        '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}',
    ] {
        v.push(("bidi", c.to_string().into_bytes()));
    }
    v
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn press(app: &mut App, code: KeyCode) -> Vec<opsdash::tui::app::Effect> {
    update(
        app,
        Event::Input(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))),
    )
}

fn screen_text(app: &App, w: u16, h: u16) -> (String, Vec<String>) {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| opsdash::tui::draw::draw(app, f))
        .expect("draw");
    let buf = term.backend().buffer().clone();
    let mut text = String::new();
    let mut unsafe_cells = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let s = buf[(x, y)].symbol();
            if s.chars().any(|c| is_unsafe(c) || c == '\t') {
                unsafe_cells.push(format!("{s:?} at {x},{y}"));
            }
            text.push_str(s);
        }
        text.push('\n');
    }
    (text, unsafe_cells)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corpus_through_ingest_and_onto_the_screen() {
    let t = TestDb::new().await.expect("test db");
    let url = t.url().expect("url");
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("hostile.json.log");
    let text_path = dir.path().join("hostile.text.log");
    let json = write_json_corpus(&json_path);
    let text = write_text_corpus(&text_path);

    let (json_out, text_out) = tokio::task::spawn_blocking({
        let url = url.clone();
        let (jp, tp) = (json_path.clone(), text_path.clone());
        move || (ingest(&url, "json", &jp), ingest(&url, "auto", &tp))
    })
    .await
    .expect("ingest thread");
    let json_err = String::from_utf8_lossy(&json_out.stderr).to_string();
    let text_err = String::from_utf8_lossy(&text_out.stderr).to_string();
    // The JSON corpus holds lines JSON cannot read: the good ones are stored and the run says
    // so with its documented status (3: some lines rejected). Plain text rejects nothing.
    assert_eq!(json_out.status.code(), Some(3), "{json_err}");
    assert!(text_out.status.success(), "{text_err}");

    // Every rejected line is reported by number with a reason; nothing else is.
    let reported: Vec<u64> = json_err
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported, json.rejected, "{json_err}");
    for l in json_err.lines().filter(|l| l.starts_with("line ")) {
        let reason = l.split_once(": ").map(|(_, r)| r).unwrap_or("");
        assert!(reason.len() > 5, "a reason for each rejected line: {l}");
    }
    // The ingest's own output is safe to print too.
    for (which, out) in [("json", &json_out.stderr), ("text", &text_out.stderr)] {
        let s = String::from_utf8_lossy(out);
        assert!(
            !s.chars().any(|c| is_unsafe(c) && c != '\n'),
            "unsafe character in ingest {which} output: {s:?}"
        );
    }

    // Every good line stored once.
    let stored: Vec<String> = sqlx::query_scalar("SELECT message FROM opsdash.log_event")
        .fetch_all(&t.db.write)
        .await
        .expect("rows");
    let mut missing = Vec::new();
    for g in json.good.iter().chain(&text.good) {
        let hits = stored
            .iter()
            .filter(|m| m.split_whitespace().next() == Some(g.as_str()))
            .count();
        if hits != 1 {
            missing.push(format!("{g} stored {hits} times"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}\n{json_err}\n{text_err}");
    let years: Vec<i32> = sqlx::query_scalar(
        "SELECT extract(year FROM ts)::int FROM opsdash.log_event
          WHERE message LIKE 'HOSTILE-OK-json-year%' ORDER BY ts",
    )
    .fetch_all(&t.db.write)
    .await
    .expect("years");
    assert_eq!(years, vec![1, 9999]);
    // The hostile bytes are stored as they came (sanitizing is the display's job).
    let raw: String = sqlx::query_scalar(
        "SELECT message FROM opsdash.log_event WHERE message LIKE 'HOSTILE-OK-json-osc-52%'",
    )
    .fetch_one(&t.db.write)
    .await
    .expect("osc 52 row");
    assert!(raw.contains("\x1b]52;"), "{raw:?}");

    // The Logs tab on TestBackend: nothing unsafe in any cell, the attacks shown defanged.
    let mut app = App::new(
        t.db.clone(),
        Arc::new(Config::default()),
        AppOptions {
            no_color: false,
            instance: "fault-hostile:1:x".into(),
            config_dir: None,
        },
    );
    let fx = app.start();
    opsdash::tui::settle(&mut app, fx).await;
    let fx = update(&mut app, Event::Ping(Ok(Duration::from_millis(2))));
    opsdash::tui::settle(&mut app, fx).await;
    let fx = press(&mut app, KeyCode::Char('2'));
    opsdash::tui::settle(&mut app, fx).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let backend_screen = loop {
        let (s, bad) = screen_text(&app, 200, 60);
        assert!(bad.is_empty(), "unsafe cells on the Logs tab: {bad:?}\n{s}");
        if s.contains("text-last") && s.contains("^[]52") {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the corpus on the Logs tab:\n{s}"
        );
        let fx = update(&mut app, Event::Tick(chrono::Utc::now()));
        opsdash::tui::settle(&mut app, fx).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (w, h) in [(80, 24), (120, 40)] {
        let (s, bad) = screen_text(&app, w, h);
        assert!(bad.is_empty(), "unsafe cells at {w}x{h}: {bad:?}\n{s}");
    }
    assert!(backend_screen.contains("<U+202E>"), "{backend_screen}");

    // The real dashboard in tmux, every byte it writes recorded.
    let tm = Tmux::start("fault-hostile", 200, 60);
    let pane_log = tm.home.path().join("pane.out");
    let ok = Command::new("tmux")
        .args([
            "pipe-pane",
            "-o",
            "-t",
            &tm.name,
            &format!("cat >> {}", pane_log.display()),
        ])
        .status()
        .expect("tmux pipe-pane");
    assert!(ok.success());
    tm.start_dashboard(&url, "");
    tm.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    tm.send(&["2"]);
    let screen = tm.wait_for(
        |s| s.contains("text-last") && s.contains("^[]52"),
        "the corpus on the real Logs tab",
    );
    // Scroll through the whole corpus so every line is drawn at least once.
    for _ in 0..3 {
        tm.send(&["g"]);
        std::thread::sleep(Duration::from_millis(300));
        tm.send(&["G"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    tm.send(&["q"]);
    tm.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "prompt after quit",
    );
    // The typed command line is in the recording too: look only at what opsdash wrote, from
    // entering the alternate screen to leaving it.
    let bytes = std::fs::read(&pane_log).expect("pane recording");
    let start = find(&bytes, b"\x1b[?1049h").expect("alternate screen entered");
    let end = bytes.len()
        - bytes
            .windows(8)
            .rev()
            .position(|w| w == b"\x1b[?1049l")
            .expect("alternate screen left");
    let written = &bytes[start..end];
    let mut leaks = Vec::new();
    for (what, seq) in forbidden_sequences() {
        if let Some(at) = find(written, &seq) {
            let from = at.saturating_sub(40);
            leaks.push(format!(
                "{what} at byte {at}: {:?}",
                String::from_utf8_lossy(&written[from..(at + 40).min(written.len())])
            ));
        }
    }
    let attacks = ATTACKS.len() * 2 + 6;
    eprintln!(
        "FAULT hostile-input: {} json lines ({} rejected with line numbers: {:?}) + {} text/logfmt \
         lines, {attacks} escape attacks; good lines stored {}/{}, crashes 0, unsafe cells on \
         TestBackend 0, forbidden sequences in {} bytes written to the terminal {}",
        json.good.len() + json.rejected.len(),
        json.rejected.len(),
        json.rejected,
        text.good.len() + 1,
        json.good.len() + text.good.len() - missing.len(),
        json.good.len() + text.good.len(),
        written.len(),
        leaks.len(),
    );
    assert!(leaks.is_empty(), "{leaks:#?}\nscreen:\n{screen}");
    assert!(!tm.alternate_screen_on());
}
