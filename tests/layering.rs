//! The house rules of the import graph (ARCHITECTURE.md), checked on the source itself: the
//! lower floors (`model`, `filter`, `db`, `query`) never reach up into what runs them (the TUI,
//! the worker and its jobs, the alert engine, notifications, the CLI, the receiver), and `model`
//! depends on nothing of the crate. Inside the TUI, the message vocabulary (`tui::msg`) imports
//! no other TUI module, the tabs never import the shell, the renderer, the runner or the event
//! producers, the shell's `update` never imports the renderer, and the runner knows only the
//! messages. A new arrow that breaks a rule fails here with the file and line, before it becomes
//! a circle.

use std::path::{Path, PathBuf};

/// Modules that the lower floors must not import.
const UPPER: &[&str] = &[
    "tui",
    "worker",
    "alerts::engine",
    "alerts::operator",
    "notify",
    "cli",
    "serve",
    "demo",
    "tail",
];

/// Each lower floor and what it must never name.
fn forbidden(floor: &str) -> Vec<&'static str> {
    match floor {
        // The vocabulary: nothing of the crate but itself.
        "model" => vec![
            "tui", "worker", "alerts", "notify", "cli", "serve", "demo", "tail", "query", "db",
            "filter", "ingest", "config", "export", "archive",
        ],
        // The scheduler knows jobs only as `Job`s: the list is assembled above it (`jobs`).
        "worker" => vec!["tui", "alerts", "notify", "cli", "serve", "demo", "jobs"],
        _ => UPPER.to_vec(),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path named in the file, with its line number, outside comments.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_use_group: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        // `use crate::{a, b::c}` groups, possibly over several lines.
        if let Some(rest) = code.trim_start().strip_prefix("use crate::{") {
            in_use_group = Some(String::new());
            for item in rest.split([',', '}']) {
                let item = item.trim();
                if !item.is_empty() {
                    found.push((n + 1, item.to_string()));
                }
            }
            if code.contains('}') {
                in_use_group = None;
            }
            continue;
        }
        if in_use_group.is_some() {
            for item in code.split([',', '}', ';']) {
                let item = item.trim();
                if !item.is_empty() && !item.starts_with('{') {
                    found.push((n + 1, item.to_string()));
                }
            }
            if code.contains('}') {
                in_use_group = None;
            }
            continue;
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            found.push((n + 1, tail[..end].trim_end_matches(':').to_string()));
            rest = &tail[end..];
        }
    }
    found
}

fn names(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

#[test]
fn lower_floors_never_import_upper_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for floor in ["model", "filter", "db", "query", "worker"] {
        let mut files = Vec::new();
        rust_files(&src.join(floor), &mut files);
        assert!(!files.is_empty(), "src/{floor} has no Rust files");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source readable");
            // The test kit builds throwaway clusters for tests; it is no floor of the app.
            if file.ends_with("db/testkit.rs") {
                continue;
            }
            for (line, path) in crate_paths(&text) {
                for bad in forbidden(floor) {
                    if names(&path, bad) {
                        broken.push(format!(
                            "{}:{line}: {floor} imports crate::{path}",
                            file.strip_prefix(&src).unwrap_or(&file).display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "arrows the architecture forbids (see ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
}

/// TUI rooms (a file, or a folder with everything under it) and the TUI modules each must never
/// import.
const TUI_RULES: &[(&str, &[&str])] = &[
    // The vocabulary every room speaks: it imports none of them.
    ("tui/msg.rs", &["tui"]),
    // Geometry shared by update and draw: from the messages only.
    (
        "tui/layout.rs",
        &[
            "tui::app",
            "tui::draw",
            "tui::tabs",
            "tui::view",
            "tui::runner",
        ],
    ),
    // The runner carries requests and results; it knows nothing of who sent them.
    (
        "tui/runner.rs",
        &[
            "tui::app",
            "tui::tabs",
            "tui::view",
            "tui::event",
            "tui::draw",
        ],
    ),
    // What a tab is: above the messages, below the tabs and the shell.
    (
        "tui/view.rs",
        &[
            "tui::app",
            "tui::tabs",
            "tui::draw",
            "tui::runner",
            "tui::event",
            "tui::help",
        ],
    ),
    // The tabs: effects, jumps and results come from `msg`, never from the shell that runs
    // them, nor from the renderer, the runner or the event producers.
    (
        "tui/tabs",
        &[
            "tui::app",
            "tui::draw",
            "tui::runner",
            "tui::event",
            "tui::help",
        ],
    ),
    // `update` does not depend on the renderer (the tab bar's geometry is in `layout`).
    (
        "tui/app.rs",
        &["tui::draw", "tui::help", "tui::runner", "tui::event"],
    ),
];

#[test]
fn tui_rooms_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (room, bad) in TUI_RULES {
        let path = src.join(room);
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        assert!(
            files.iter().all(|f| f.exists()) && !files.is_empty(),
            "src/{room} not found"
        );
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source readable");
            for (line, p) in crate_paths(&text) {
                for b in *bad {
                    if names(&p, b) {
                        broken.push(format!(
                            "{}:{line}: imports crate::{p}",
                            file.strip_prefix(&src).unwrap_or(&file).display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "TUI arrows the architecture forbids (see ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_import() {
    let text = "use crate::tui::app;\nuse crate::{db::Db, worker::Job};\nuse crate::{\n    model::Level,\n    notify::send,\n};\nlet x = crate::cli::run(); // crate::demo in a comment\n";
    let paths: Vec<String> = crate_paths(text).into_iter().map(|(_, p)| p).collect();
    for want in [
        "tui::app",
        "db::Db",
        "worker::Job",
        "model::Level",
        "notify::send",
        "cli::run",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} not seen in {paths:?}"
        );
    }
    assert!(!paths.iter().any(|p| p.starts_with("demo")));
}
