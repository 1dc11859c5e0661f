//! One machine-readable line per benchmark figure, so `scripts/bench-report` can put every
//! bench's figures into one table. A bench includes this file with
//! `#[path = "common/report.rs"] mod report;` and calls `report::figure` (always by its path,
//! so a local variable named `report` cannot shadow it) next to its human-readable
//! line. Format (tab-separated, one line per figure, display strings already formatted):
//!
//! `REPORT  area  figure  value  unit  baseline-name  baseline-value  ratio  aim  verdict`
//!
//! `ratio` is value / baseline (so for times below 1 is faster, for rates above 1 is faster);
//! `verdict` is `met`, `NOT met` or `-` when the issue states no aim for the figure.
#![allow(dead_code)]

/// A goal from the capability's issue, checked against the figure or its ratio to the baseline.
#[derive(Clone, Copy, Debug)]
pub enum Aim {
    AtMost(f64),
    AtLeast(f64),
    RatioAtMost(f64),
    RatioAtLeast(f64),
}

impl Aim {
    fn met(self, value: f64, ratio: Option<f64>) -> bool {
        match self {
            Aim::AtMost(a) => value <= a,
            Aim::AtLeast(a) => value >= a,
            Aim::RatioAtMost(a) => ratio.is_some_and(|r| r <= a),
            Aim::RatioAtLeast(a) => ratio.is_some_and(|r| r >= a),
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Aim::AtMost(a) => format!("<= {} {unit}", round_number(a)),
            Aim::AtLeast(a) => format!(">= {} {unit}", round_number(a)),
            Aim::RatioAtMost(a) => format!("<= {}x baseline", round_number(a)),
            Aim::RatioAtLeast(a) => format!(">= {}x baseline", round_number(a)),
        }
    }
}

/// A figure and, when one was measured in the same run, its baseline (`name`, `value`, in the
/// same unit as the figure).
pub fn figure(
    area: &str,
    figure: &str,
    value: f64,
    unit: &str,
    baseline: Option<(&str, f64)>,
    aims: &[Aim],
) {
    println!("{}", line(area, figure, value, unit, baseline, aims));
}

fn line(
    area: &str,
    figure: &str,
    value: f64,
    unit: &str,
    baseline: Option<(&str, f64)>,
    aims: &[Aim],
) -> String {
    let ratio = baseline.and_then(|(_, b)| (b != 0.0 && b.is_finite()).then(|| value / b));
    let (baseline_name, baseline_value) = match baseline {
        Some((name, v)) => (clean(name), number(v)),
        None => ("-".to_string(), "-".to_string()),
    };
    let verdict = if aims.is_empty() || !value.is_finite() {
        "-"
    } else if aims.iter().all(|a| a.met(value, ratio)) {
        "met"
    } else {
        "NOT met"
    };
    let aim_text = if aims.is_empty() {
        "-".to_string()
    } else {
        aims.iter()
            .map(|a| a.text(unit))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    [
        "REPORT".to_string(),
        clean(area),
        clean(figure),
        number(value),
        clean(unit),
        baseline_name,
        baseline_value,
        ratio.map_or("-".to_string(), |r| format!("{}x", number(r))),
        aim_text,
        verdict.to_string(),
    ]
    .join("\t")
}

/// Tabs and newlines would break the line format.
fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// Three significant digits below 100, whole numbers with thousands separators above.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let a = v.abs();
    if a >= 100.0 {
        let whole = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// An aim is a round number: no trailing zeros (`0.5`, not `0.500`).
fn round_number(v: f64) -> String {
    let s = number(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `1000000` -> `1M`, for figure names that carry the data size.
pub fn size(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(100_000) {
        let m = n as f64 / 1e6;
        format!("{}M", trim(m))
    } else if n >= 1_000 && n.is_multiple_of(100) {
        format!("{}k", trim(n as f64 / 1e3))
    } else {
        n.to_string()
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
