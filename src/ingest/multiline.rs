//! Multi-line events: joins a stack trace's or a message's continuation lines to the line that
//! starts the event, one pending event per stream, before the text is parsed. Pure and
//! synchronous: the pipeline feeds it envelopes and a clock, and reads completed events back.
//!
//! A line continues the pending event of its stream when the pending one is `partial` (CRI `P`,
//! a Docker line cut without its newline: concatenated as is), when a configured first-line
//! pattern for the stream's service or path does not match it, or, without one, when it has the
//! shape of a continuation: indented, a Java `Caused by:` / `... N more` / exception header, a
//! Python traceback and its final exception line, a Go panic's goroutine blocks and frames, a
//! Rust panic's message and backtrace. A JSON line (not partial) is complete on its own: it never
//! joins and nothing joins it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::envelope::Envelope;
use crate::config::MultilineRule;
use crate::query::checkpoint::Checkpoint;

/// A completed event: the first line's envelope holding the joined text.
#[derive(Debug, Clone)]
pub struct Joined<'a> {
    pub env: Envelope<'a>,
    /// Input lines in the event (1 for a line on its own).
    pub lines: u64,
    /// Input line number of the event's first line.
    pub first_line: u64,
    pub has_nul: bool,
    pub invalid_utf8: bool,
}

impl<'a> Joined<'a> {
    pub fn single(env: Envelope<'a>, line: u64, has_nul: bool, invalid_utf8: bool) -> Self {
        Joined {
            env,
            lines: 1,
            first_line: line,
            has_nul,
            invalid_utf8,
        }
    }
}

/// What a pending event is, so that lines only that kind of trace has may join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// After `Traceback (most recent call last):`, until the exception line that ends it.
    Python,
    /// A Go panic (`panic:`, `fatal error:`, `goroutine N [...]:`) and its stacks.
    Go,
    /// A Rust panic; the number is the lines seen after `thread '...' panicked at`.
    Rust(u8),
}

struct Pending {
    source: Arc<str>,
    stream: Option<String>,
    /// `stream_hash(&stream)`: finding a line's stream among hundreds pending (journald's
    /// `unit[pid]`, syslog's `program[pid]`) compares these first, not every stream's text.
    hash: u64,
    event: Joined<'static>,
    mode: Mode,
    /// Has had a Python traceback (chained tracebacks may follow its exception line).
    python: bool,
    /// Pending events are sent after this much quiet.
    last: Instant,
    /// Where the event's file stood before its first line (what a checkpoint may claim while
    /// the event is pending).
    start: Option<Checkpoint>,
}

/// A stream's hash for `Pending::hash` (fixed seed: it only has to be equal for equal streams;
/// a collision costs one text compare).
fn stream_hash(stream: &Option<String>) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(stream)
}

/// Limits and rules of the joiner (`[ingest]` `multiline_*` and `[[ingest.multiline]]`).
pub struct Joiner {
    rules: Vec<(MultilineRule, Option<glob::Pattern>, Regex)>,
    max_lines: u64,
    max_bytes: usize,
    quiet: Duration,
    pending: Vec<Pending>,
    /// The rule of the last (service, source) seen: most lines repeat it.
    cached: Option<(String, Arc<str>, Option<usize>)>,
    /// Text buffers of events already read, handed back by `recycle`: a line held as a pending
    /// event is copied out of the input's buffer, and most events are one line, so without
    /// this every line would cost an allocation.
    spare: Vec<String>,
}

/// Buffers kept for reuse (one per stream pending at once is enough).
const SPARE: usize = 8;

/// Upper bounds of one event, so one endless trace cannot hold memory or a checkpoint.
pub const DEFAULT_MAX_LINES: u64 = 500;
pub const DEFAULT_MAX_BYTES: usize = 64 << 10;

impl Joiner {
    /// Fails with one line naming the rule whose pattern does not compile.
    pub fn new(
        rules: &[MultilineRule],
        max_lines: u64,
        max_bytes: usize,
        quiet: Duration,
    ) -> Result<Joiner, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let start = Regex::new(&r.start)
                .map_err(|e| format!("ingest.multiline[{i}].start {:?}: {e}", r.start))?;
            let path = match &r.match_path {
                Some(p) => Some(
                    glob::Pattern::new(p)
                        .map_err(|e| format!("ingest.multiline[{i}].match_path {p:?}: {e}"))?,
                ),
                None => None,
            };
            compiled.push((r.clone(), path, start));
        }
        Ok(Joiner {
            rules: compiled,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            quiet,
            pending: Vec::new(),
            cached: None,
            spare: Vec::new(),
        })
    }

    /// Takes back the text buffer of an event that has been read, for a later line.
    pub fn recycle(&mut self, mut text: String) {
        if self.spare.len() < SPARE && text.capacity() <= self.max_bytes.max(4096) {
            text.clear();
            self.spare.push(text);
        }
    }

    /// Lines held in pending events (read, not yet handed on).
    pub fn pending_lines(&self) -> u64 {
        self.pending.iter().map(|p| p.event.lines).sum()
    }

    /// When the oldest-quiet pending event is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.last + self.quiet).min()
    }

    /// The checkpoint `source` may claim: before its earliest pending event's first line.
    /// `None`: nothing of `source` is pending. `Some(None)`: pending since before any mark.
    pub fn held(&self, source: &str) -> Option<Option<&Checkpoint>> {
        self.pending
            .iter()
            .filter(|p| &*p.source == source)
            .min_by_key(|p| p.event.first_line)
            .map(|p| p.start.as_ref())
    }

    fn rule_for(&mut self, service: &str, source: &Arc<str>) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        if let Some((s, p, r)) = &self.cached {
            if s == service && Arc::ptr_eq(p, source) {
                return *r;
            }
        }
        let found = self.rules.iter().position(|(r, path, _)| {
            r.match_service.as_deref().is_none_or(|s| s == service)
                && path.as_ref().is_none_or(|p| p.matches(source))
        });
        self.cached = Some((service.to_string(), source.clone(), found));
        found
    }

    /// Takes one line of `source` (its envelope); returns up to two completed events in input
    /// order: the stream's pending one the line ends, and the line itself when it cannot be
    /// joined by what follows (a JSON line).
    pub fn push<'a>(
        &mut self,
        source: &Arc<str>,
        default_service: &str,
        line: Joined<'a>,
        start: Option<Checkpoint>,
        now: Instant,
    ) -> [Option<Joined<'a>>; 2] {
        let env = &line.env;
        let hash = stream_hash(&env.stream);
        let at = self.pending.iter().position(|p| {
            p.hash == hash && Arc::ptr_eq(&p.source, source) && p.stream == env.stream
        });
        let json = !env.partial && is_json(&env.text);
        if let Some(i) = at {
            let rule = if self.rules.is_empty() {
                None
            } else {
                let service = env.service.as_deref().unwrap_or(default_service);
                self.rule_for(service, source)
            };
            let p = &self.pending[i];
            let text = &*env.text;
            let room = p.event.lines < self.max_lines
                && p.event.env.text.len() + 1 + text.len() <= self.max_bytes;
            let joins = if p.event.env.partial {
                true
            } else if json || is_json(&p.event.env.text) {
                false
            } else {
                match rule {
                    Some(r) => !self.rules[r].2.is_match(text),
                    None => continues(p, text),
                }
            };
            if joins && room {
                let p = &mut self.pending[i];
                p.join(line, now);
                return [None, None];
            }
            let done = self.pending.swap_remove(i).event;
            let own = self.start(source, line, start, json, now, hash);
            return [Some(done), own];
        }
        [self.start(source, line, start, json, now, hash), None]
    }

    /// Makes `line` the pending event of its stream, or hands it back when it is complete.
    fn start<'a>(
        &mut self,
        source: &Arc<str>,
        line: Joined<'a>,
        start: Option<Checkpoint>,
        json: bool,
        now: Instant,
        hash: u64,
    ) -> Option<Joined<'a>> {
        if json {
            return Some(line);
        }
        let mode = start_mode(&line.env.text);
        let stream = line.env.stream.clone();
        let mut env = line.env;
        let text = match std::mem::take(&mut env.text) {
            Cow::Owned(s) => s,
            Cow::Borrowed(b) => match self.spare.pop() {
                Some(mut s) => {
                    s.push_str(b);
                    s
                }
                None => b.to_string(),
            },
        };
        let mut env = env.into_owned();
        env.text = Cow::Owned(text);
        let event = Joined {
            env,
            lines: line.lines,
            first_line: line.first_line,
            has_nul: line.has_nul,
            invalid_utf8: line.invalid_utf8,
        };
        self.pending.push(Pending {
            source: source.clone(),
            stream,
            hash,
            event,
            mode,
            python: mode == Mode::Python,
            last: now,
            start,
        });
        None
    }

    /// Completed events quiet since `now - quiet` (all of them with `all`), oldest first.
    pub fn drain(&mut self, now: Instant, all: bool) -> Vec<Joined<'static>> {
        let quiet = self.quiet;
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if all || self.pending[i].last + quiet <= now {
                out.push(self.pending.remove(i).event);
            } else {
                i += 1;
            }
        }
        out.sort_by_key(|e| e.first_line);
        out
    }
}

impl Pending {
    fn join(&mut self, line: Joined<'_>, now: Instant) {
        let text = &*line.env.text;
        let ev = &mut self.event;
        let joined = ev.env.text.to_mut();
        if !ev.env.partial {
            joined.push('\n');
        }
        joined.push_str(text);
        ev.env.partial = line.env.partial;
        ev.lines += line.lines;
        ev.has_nul |= line.has_nul;
        ev.invalid_utf8 |= line.invalid_utf8;
        self.last = now;
        self.mode = match self.mode {
            Mode::Rust(n) => Mode::Rust(n.saturating_add(1)),
            Mode::Python if !starts_indented(text) && !is_python_chain(text) => {
                if text.starts_with("Traceback ") {
                    Mode::Python
                } else {
                    Mode::Plain
                }
            }
            _ if text.starts_with("Traceback (most recent call last):") => {
                self.python = true;
                Mode::Python
            }
            m => m,
        };
    }
}

/// A JSON object line: `{` first and `}` last. An indented `{` is a frame's source line
/// (Python prints `    {}["key"]`), not a JSON line.
fn is_json(text: &str) -> bool {
    text.starts_with('{') && text.trim_end().ends_with('}')
}

fn starts_indented(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b' ' | b'\t'))
}

fn is_python_chain(text: &str) -> bool {
    text.starts_with("During handling of the above exception")
        || text.starts_with("The above exception was the direct cause")
}

/// The mode a line starting an event opens.
fn start_mode(text: &str) -> Mode {
    if text.starts_with("panic: ") || text.starts_with("fatal error: ") || is_goroutine(text) {
        Mode::Go
    } else if text.starts_with("thread '") && text.contains(" panicked at ") {
        Mode::Rust(0)
    } else if text.starts_with("Traceback (most recent call last):") {
        Mode::Python
    } else {
        Mode::Plain
    }
}

fn is_goroutine(text: &str) -> bool {
    text.strip_prefix("goroutine ").is_some_and(|r| {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && r[digits..].starts_with(" [")
    })
}

/// A dotted name such as `java.lang.IllegalStateException` or `errors.NotFound` followed by `:`
/// or nothing; `java_only` asks for a Java-style Exception/Error/Throwable suffix and a package.
fn is_exception_line(text: &str, java_only: bool) -> bool {
    let name = match text.find(':') {
        Some(i) => &text[..i],
        None => text,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
        || !name.as_bytes()[0].is_ascii_alphabetic()
    {
        return false;
    }
    if java_only {
        let last = name.rsplit('.').next().unwrap_or(name);
        name.contains('.')
            && (last.ends_with("Exception") || last.ends_with("Error") || last == "Throwable")
    } else {
        // A Python exception line: `ValueError: bad`, `KeyboardInterrupt`, `pkg.mod.Oops: x`.
        true
    }
}

/// Whether `text` continues the pending event `p` (no configured rule).
fn continues(p: &Pending, text: &str) -> bool {
    if starts_indented(text) {
        return true;
    }
    if text.starts_with("Caused by: ")
        || text.starts_with("Suppressed: ")
        || (text.starts_with("... ") && text.ends_with(" more"))
        || text.starts_with("Traceback (most recent call last):")
        || is_exception_line(text, true)
    {
        return true;
    }
    match p.mode {
        Mode::Python => is_exception_line(text, false) || is_python_chain(text),
        Mode::Plain => p.python && is_python_chain(text),
        Mode::Go => {
            is_goroutine(text)
                || text.starts_with("created by ")
                || text.starts_with("[signal ")
                || (text.ends_with(')')
                    && text
                        .split_once('(')
                        .is_some_and(|(head, _)| !head.is_empty() && !head.contains(' ')))
        }
        // The message line (possibly one), `stack backtrace:`, and the closing `note:`.
        Mode::Rust(n) => n == 0 || text == "stack backtrace:" || text.starts_with("note: "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joiner() -> Joiner {
        Joiner::new(&[], 500, 64 << 10, Duration::from_millis(500)).unwrap()
    }

    /// Feeds `lines` (one stream) and returns the texts of the events, in order.
    fn events(j: &mut Joiner, lines: &[&str]) -> Vec<String> {
        let src: Arc<str> = Arc::from("");
        let now = Instant::now();
        let mut out = Vec::new();
        for (n, l) in lines.iter().enumerate() {
            let line = Joined::single(Envelope::bare(l), n as u64 + 1, false, false);
            for e in j.push(&src, "svc", line, None, now).into_iter().flatten() {
                out.push(e.env.text.into_owned());
            }
        }
        out.extend(
            j.drain(now, true)
                .into_iter()
                .map(|e| e.env.text.into_owned()),
        );
        out
    }

    fn split(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn java_trace_with_causes_is_one_event() {
        let trace = "2024-05-01 12:00:00,123 ERROR [main] c.e.App - request failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.App.handle(App.java:42)\n\
\tat com.example.App.main(App.java:10)\n\
Caused by: java.io.IOException: disk full\n\
\tat com.example.Store.write(Store.java:7)\n\
\t... 2 more";
        let mut lines = split(trace);
        lines.push("2024-05-01 12:00:01,000 INFO [main] c.e.App - next");
        let got = events(&mut joiner(), &lines);
        assert_eq!(got, vec![trace.to_string(), lines[7].to_string()]);
    }

    #[test]
    fn python_traceback_ends_at_its_exception_line() {
        let tb = [
            "ERROR:root:failed",
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "    f()",
            "  File \"app.py\", line 2, in f",
            "    raise ValueError(\"bad\")",
            "ValueError: bad",
        ]
        .join("\n");
        let tb = tb.as_str();
        let mut lines = split(tb);
        lines.push("INFO:root:next");
        assert_eq!(events(&mut joiner(), &lines), vec![tb, "INFO:root:next"]);
        // Chained tracebacks stay one event.
        let chained = "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nKeyError: 'x'\n\
During handling of the above exception, another exception occurred:\n\
Traceback (most recent call last):\n  File \"a.py\", line 3, in <module>\nRuntimeError: y";
        let mut lines = split(chained);
        lines.push("next");
        assert_eq!(events(&mut joiner(), &lines), vec![chained, "next"]);
    }

    #[test]
    fn go_panic_with_goroutines_is_one_event() {
        let p = "panic: runtime error: index out of range [5] with length 3\n\
goroutine 1 [running]:\nmain.main()\n\t/tmp/x/main.go:8 +0x1d\n\
goroutine 6 [chan receive]:\nmain.worker(0xc000010000)\n\t/tmp/x/main.go:20 +0x3a\n\
created by main.main in goroutine 1\n\t/tmp/x/main.go:12 +0x55";
        let mut lines = split(p);
        lines.push("exit status 2");
        assert_eq!(events(&mut joiner(), &lines), vec![p, "exit status 2"]);
    }

    #[test]
    fn rust_panic_with_backtrace_is_one_event() {
        let p = "thread 'main' panicked at src/main.rs:4:5:\nboom\nstack backtrace:\n   \
0: rust_begin_unwind\n             at /rustc/abc/library/std/src/panicking.rs:645:5\n   \
1: demo::main\n             at ./src/main.rs:4:5\n\
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.";
        let mut lines = split(p);
        lines.push("[2024-05-01T12:00:00Z INFO demo] restarted");
        assert_eq!(
            events(&mut joiner(), &lines),
            vec![p, "[2024-05-01T12:00:00Z INFO demo] restarted"]
        );
    }

    #[test]
    fn node_frames_and_indented_lines_join_json_never_does() {
        let lines = [
            "Error: connect ECONNREFUSED 127.0.0.1:5432",
            "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1494:16)",
            "{\"level\":50,\"msg\":\"x\"}",
            "  indented after JSON",
            "    {}[\"key\"] is source code, not JSON",
            "{\"level\":30,\"msg\":\"y\"}",
        ];
        let got = events(&mut joiner(), &lines);
        assert_eq!(
            got,
            vec![
                format!("{}\n{}", lines[0], lines[1]),
                lines[2].to_string(),
                format!("{}\n{}", lines[3], lines[4]),
                lines[5].to_string()
            ]
        );
    }

    #[test]
    fn partial_lines_concatenate_and_streams_do_not_mix() {
        let src: Arc<str> = Arc::from("f");
        let now = Instant::now();
        let mut j = joiner();
        let mk = |t: &'static str, stream: &str, partial: bool, n: u64| {
            let mut e = Envelope::bare(t);
            e.stream = Some(stream.into());
            e.partial = partial;
            Joined::single(e, n, false, false)
        };
        let mut out = Vec::new();
        for l in [
            mk("{\"msg\":\"a lo", "stdout", true, 1),
            mk("oops on stderr", "stderr", false, 2),
            mk("ng line\"}", "stdout", false, 3),
            mk("next", "stdout", false, 4),
        ] {
            out.extend(j.push(&src, "svc", l, None, now).into_iter().flatten());
        }
        out.extend(j.drain(now, true));
        let texts: Vec<_> = out.iter().map(|e| e.env.text.to_string()).collect();
        assert_eq!(
            texts,
            ["{\"msg\":\"a long line\"}", "oops on stderr", "next"]
        );
        assert_eq!(out[0].lines, 2);
    }

    #[test]
    fn configured_start_pattern_decides() {
        let rule = MultilineRule {
            match_service: Some("svc".into()),
            match_path: None,
            start: r"^\d{4}-\d\d-\d\d ".into(),
        };
        let mut j = Joiner::new(&[rule], 500, 1 << 20, Duration::from_secs(1)).unwrap();
        let lines = ["2024-05-01 a", "not indented but joins", "2024-05-01 b"];
        assert_eq!(
            events(&mut j, &lines),
            vec!["2024-05-01 a\nnot indented but joins", "2024-05-01 b"]
        );
        let bad = MultilineRule {
            start: "(".into(),
            ..MultilineRule::default()
        };
        assert!(Joiner::new(&[bad], 1, 1, Duration::ZERO).is_err());
    }

    #[test]
    fn the_cap_starts_a_new_event_and_loses_nothing() {
        let mut j = Joiner::new(&[], 3, 1 << 20, Duration::from_secs(1)).unwrap();
        let lines = ["start", " a", " b", " c", " d"];
        assert_eq!(events(&mut j, &lines), vec!["start\n a\n b", " c\n d"]);
    }

    #[test]
    fn quiet_events_are_drained_by_time() {
        let src: Arc<str> = Arc::from("");
        let mut j = joiner();
        let t0 = Instant::now();
        let line = Joined::single(Envelope::bare("x"), 1, false, false);
        assert!(j
            .push(&src, "svc", line, None, t0)
            .iter()
            .all(Option::is_none));
        assert_eq!(j.deadline(), Some(t0 + Duration::from_millis(500)));
        assert!(j.drain(t0 + Duration::from_millis(100), false).is_empty());
        assert_eq!(j.drain(t0 + Duration::from_millis(500), false).len(), 1);
        assert_eq!(j.pending_lines(), 0);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z ]{0,12}",
                "\t[a-z. ]{0,12}",
                Just("Traceback (most recent call last):".to_string()),
                Just("ValueError: x".to_string()),
                Just("panic: p".to_string()),
                Just("goroutine 1 [running]:".to_string()),
                Just("main.main()".to_string()),
                Just("thread 'main' panicked at src/a.rs:1:1:".to_string()),
                Just("note: n".to_string()),
                Just("Caused by: a.b.CException: z".to_string()),
                "\\{[a-z\":]{0,8}\\}",
            ]
            .prop_filter("non-blank", |l| !l.trim().is_empty())
        }

        proptest! {
            /// Whatever the lines, streams and cap, the events' texts give back every line
            /// of each stream once, in order.
            #[test]
            fn no_line_lost_duplicated_or_reordered(
                input in proptest::collection::vec((line(), 0u8..3, any::<bool>()), 0..60),
                cap in 1u64..6,
            ) {
                let mut j = Joiner::new(&[], cap, 1 << 20, Duration::from_millis(5)).unwrap();
                let src: Arc<str> = Arc::from("");
                let t0 = Instant::now();
                let mut out = Vec::new();
                for (n, (text, stream, drain)) in input.iter().enumerate() {
                    let mut env = Envelope::bare(text);
                    env.stream = Some(stream.to_string());
                    let now = t0 + Duration::from_millis(n as u64);
                    let line = Joined::single(env, n as u64 + 1, false, false);
                    out.extend(j.push(&src, "s", line, None, now).into_iter().flatten().map(|e| (e.env.stream.clone(), e.env.text.into_owned(), e.lines)));
                    if *drain {
                        out.extend(j.drain(now, false).into_iter().map(|e| (e.env.stream.clone(), e.env.text.into_owned(), e.lines)));
                    }
                }
                out.extend(j.drain(t0, true).into_iter().map(|e| (e.env.stream.clone(), e.env.text.into_owned(), e.lines)));
                prop_assert_eq!(j.pending_lines(), 0);
                for s in 0u8..3 {
                    let key = Some(s.to_string());
                    let want: Vec<&str> = input.iter().filter(|l| l.1 == s).map(|l| l.0.as_str()).collect();
                    let events: Vec<&(Option<String>, String, u64)> = out.iter().filter(|e| e.0 == key).collect();
                    let got: Vec<&str> = events.iter().flat_map(|e| e.1.split('\n')).collect();
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(events.iter().map(|e| e.2).sum::<u64>(), want.len() as u64);
                    prop_assert!(events.iter().all(|e| e.2 <= cap));
                }
            }
        }
    }
}
