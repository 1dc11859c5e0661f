//! Turns a parsed filter into a parameterized WHERE clause over `opsdash.log_event`. User text
//! only ever travels as bind parameters.
//!
//! Message search uses the GIN index on `search_tokens` (migration 0027): the words of the
//! searched text, hashed the way the ingest writer hashed the message's
//! (`model::search_tokens`: runs of ASCII letters and digits, so a word inside a path or a
//! dotted name is a token of its own), must all be among the row's, which finds the candidates;
//! then `ILIKE` on those candidates so a word or a phrase matches exactly what the operator
//! typed, case-insensitively. Text with no ASCII letter or digit has no token to look up, so it
//! falls back to `ILIKE` alone, as does a prefix (`pay*`: hashes have no prefixes), which is
//! matched by a regular expression at a token start.

use sqlx::{Postgres, QueryBuilder};

use super::{CmpOp, Cond, NumField, Pattern, Term, TextColumn, TimeBound};
use crate::model::search_tokens::search_tokens;

/// Rows whose tokens include all of the searched text's (then the exact check).
///
/// The hashes are written into the statement as a constant, not bound: they are numbers we
/// computed (no user text), and the planner must see them. With a parameter, every word search
/// is the same statement text, so after five runs PostgreSQL's plan cache may switch to a
/// generic plan that cannot tell a rare word from a common one: it walked the ts index newest
/// first through all 2M rows for a rare word (500 ms against 20 ms, `cargo bench --bench logs`).
fn push_tokens(text: &str, qb: &mut QueryBuilder<'_, Postgres>) {
    let tokens = search_tokens(text);
    if !tokens.is_empty() {
        let list: Vec<String> = tokens.iter().map(i32::to_string).collect();
        qb.push(format!(
            "search_tokens @> '{{{}}}'::int4[] AND ",
            list.join(",")
        ));
    }
}

pub fn push_terms(terms: &[Term], qb: &mut QueryBuilder<'_, Postgres>) {
    if terms.is_empty() {
        qb.push("TRUE");
        return;
    }
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            qb.push(" AND ");
        }
        if t.negated {
            // Nullable columns: a line without a trace id is "not trace:x", so NULL counts as
            // not matching rather than dropping the row.
            qb.push("NOT coalesce((");
            push_cond(&t.cond, qb);
            qb.push("), false)");
        } else {
            qb.push("(");
            push_cond(&t.cond, qb);
            qb.push(")");
        }
    }
}

fn push_cond(c: &Cond, qb: &mut QueryBuilder<'_, Postgres>) {
    match c {
        Cond::LevelAtLeast(l) => {
            qb.push("level >= ").push_bind(l.as_i16());
        }
        // One level is an equality, so the (level, ts) index serves `ORDER BY ts` (newest
        // first) directly; `= ANY(array)` of one element is not seen as one.
        Cond::LevelIn(levels) if levels.len() == 1 => {
            qb.push("level = ").push_bind(levels[0].as_i16());
        }
        Cond::LevelIn(levels) => {
            let v: Vec<i16> = levels.iter().map(|l| l.as_i16()).collect();
            qb.push("level = ANY(").push_bind(v).push(")");
        }
        Cond::Status(ranges) => {
            for (i, (lo, hi)) in ranges.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                if lo == hi {
                    qb.push("status = ").push_bind(*lo);
                } else {
                    qb.push("status BETWEEN ")
                        .push_bind(*lo)
                        .push(" AND ")
                        .push_bind(*hi);
                }
            }
        }
        Cond::Field { column, patterns } => push_field(*column, patterns, qb),
        Cond::Since(b) => {
            qb.push("ts >= ");
            push_time(b, qb);
        }
        Cond::Until(b) => {
            qb.push("ts < ");
            push_time(b, qb);
        }
        Cond::Word(w) => {
            push_tokens(w, qb);
            qb.push("message ILIKE ").push_bind(contains(w));
        }
        Cond::Phrase(p) => {
            push_tokens(p, qb);
            qb.push("message ILIKE ").push_bind(contains(p));
        }
        Cond::Prefix(stem) => {
            // The stem is letters and digits only (see the parser): a word of the message
            // (a run of letters and digits, as the tokens are) starts with it.
            qb.push("message ~* ")
                .push_bind(format!("(^|[^[:alnum:]]){stem}"));
        }
        Cond::Wildcard(w) => {
            qb.push("message ILIKE ")
                .push_bind(format!("%{}%", glob_to_like(w)));
        }
        // The forms below have no index of their own on log_event: each is checked on the
        // rows the time range (partition pruning, the ts index) and the other terms leave.
        Cond::Attr { path, patterns } => push_attr(path, patterns, qb),
        Cond::HasAttr(path) => {
            qb.push("attrs #> ")
                .push_bind(path.clone())
                .push("::text[] IS NOT NULL");
        }
        Cond::Has(column) => {
            qb.push(column.sql()).push(" IS NOT NULL");
        }
        Cond::Compare { field, op, value } => push_compare(*field, *op, *value, qb),
        Cond::AttrCompare { path, op, value } => push_attr_compare(path, *op, *value, qb),
        Cond::IpIn(nets) => {
            // `ip` is text from the logs: opsdash.try_inet (migration 0030) reads it as an
            // address or NULL, so one malformed value cannot fail the whole query.
            qb.push("opsdash.try_inet(ip) <<= ANY(")
                .push_bind(nets.clone())
                .push("::cidr[])");
        }
        Cond::Regex(re) => {
            qb.push("message ~ ").push_bind(re.clone());
        }
    }
}

/// `attrs.a.b:v`: `#>>` gives the attribute as text (a string without its quotes, a number's
/// digits), so `attrs.order_id:123` finds 123 and "123" alike.
///
/// An exact value is first looked up by containment (`attrs @> {"a":{"b":v}}`), which the GIN
/// index on attrs (migration 0061) answers, then checked with `#>>` as before: without the
/// lookup a rare value walked the whole range newest first (25 s for `attrs.order_id:4242` on
/// 10M rows). The lookup only narrows: every value whose `#>>` text is v is contained in one
/// of the candidates (see `containment_candidates`), so what is shown is unchanged.
fn push_attr(path: &[String], patterns: &[Pattern], qb: &mut QueryBuilder<'_, Postgres>) {
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(");
        if let Pattern::Exact(v) = p {
            let candidates = containment_candidates(path, v);
            if !candidates.is_empty() {
                qb.push("(");
                for (k, c) in candidates.into_iter().enumerate() {
                    if k > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("attrs @> ").push_bind(c).push("::jsonb");
                }
                qb.push(") AND ");
            }
        }
        qb.push("attrs #>> ")
            .push_bind(path.to_vec())
            .push("::text[]");
        match p {
            Pattern::Exact(v) => qb.push(" = ").push_bind(v.clone()),
            Pattern::Glob(g) => qb.push(" LIKE ").push_bind(glob_to_like(g)),
        };
        qb.push(")");
    }
}

/// The JSON documents `{"a":{"b":x}}` that contain every attrs whose `path` reads as the text
/// `v` with `#>>`: x the string v, and also the number v or the boolean v when v spells one
/// (a number's text equal to v means the same number; containment compares numbers by value).
/// Empty (no lookup, the `#>>` check alone) where containment cannot stand for `#>>`: a path
/// part that is an integer (`#>>` also indexes arrays with it), and a v that begins like an
/// object or an array (`#>>` gives such a value as its JSON text).
fn containment_candidates(path: &[String], v: &str) -> Vec<String> {
    if path.is_empty()
        || path.iter().any(|p| p.parse::<i64>().is_ok())
        || v.starts_with('{')
        || v.starts_with('[')
    {
        return Vec::new();
    }
    let mut leaves = vec![serde_json::Value::String(v.to_string())];
    if let Ok(n) = v.parse::<serde_json::Number>() {
        // serde_json reads a fraction as an f64: past 15 significant digits it may not be the
        // number v spells, and a lookup by the wrong number would hide the row.
        let mantissa = v.split(['e', 'E']).next().unwrap_or(v);
        let digits = mantissa
            .chars()
            .filter(char::is_ascii_digit)
            .skip_while(|c| *c == '0')
            .count();
        if !(n.is_i64() || n.is_u64() || digits <= 15) {
            return Vec::new();
        }
        leaves.push(serde_json::Value::Number(n));
    }
    match v {
        "true" => leaves.push(serde_json::Value::Bool(true)),
        "false" => leaves.push(serde_json::Value::Bool(false)),
        _ => {}
    }
    leaves
        .into_iter()
        .map(|leaf| {
            let doc = path.iter().rev().fold(leaf, |inner, name| {
                let mut m = serde_json::Map::new();
                m.insert(name.clone(), inner);
                serde_json::Value::Object(m)
            });
            doc.to_string()
        })
        .collect()
}

fn push_compare(field: NumField, op: CmpOp, value: f64, qb: &mut QueryBuilder<'_, Postgres>) {
    qb.push(field.sql()).push(" ").push(op.sql()).push(" ");
    // A whole number against an integer column is bound as bigint: int2/int4 against int8 has
    // btree operators, so an index on the column stays usable (a float8 cast of the column
    // would not). Fractions (and durations) compare as float8.
    let integral = value.fract() == 0.0 && value.abs() < 1e15;
    if field != NumField::DurationMs && integral {
        qb.push_bind(value as i64);
    } else {
        qb.push_bind(value).push("::float8");
    }
}

/// `attrs.latency>100` as a JSON path predicate: strings, objects and missing attributes never
/// compare (jsonpath's "unknown" is false). The names come from the lexer (letters, digits,
/// `_`, `-`) and are written as quoted jsonpath keys; the number is bound as a variable.
fn push_attr_compare(path: &[String], op: CmpOp, value: f64, qb: &mut QueryBuilder<'_, Postgres>) {
    let mut jp = String::from("$");
    for name in path {
        jp.push_str(".\"");
        jp.push_str(&name.replace('\\', "\\\\").replace('"', "\\\""));
        jp.push('"');
    }
    jp.push_str(&format!(" ? (@ {} $v)", op.sql()));
    qb.push("jsonb_path_exists(attrs, ")
        .push_bind(jp)
        .push("::jsonpath, jsonb_build_object('v', ")
        .push_bind(value)
        .push("::float8))");
}

fn push_field(column: TextColumn, patterns: &[Pattern], qb: &mut QueryBuilder<'_, Postgres>) {
    let col = column.sql();
    let exact: Vec<String> = patterns
        .iter()
        .filter_map(|p| match p {
            Pattern::Exact(s) => Some(s.clone()),
            Pattern::Glob(_) => None,
        })
        .collect();
    let mut first = true;
    if !exact.is_empty() {
        first = false;
        if exact.len() == 1 {
            qb.push(col).push(" = ").push_bind(exact[0].clone());
        } else {
            qb.push(col).push(" = ANY(").push_bind(exact).push(")");
        }
    }
    for p in patterns {
        if let Pattern::Glob(g) = p {
            if !first {
                qb.push(" OR ");
            }
            first = false;
            qb.push(col).push(" LIKE ").push_bind(glob_to_like(g));
        }
    }
}

pub(super) fn push_time(b: &TimeBound, qb: &mut QueryBuilder<'_, Postgres>) {
    match b {
        TimeBound::At(t) => {
            qb.push_bind(*t);
        }
        TimeBound::Ago(d) => {
            qb.push("now() - make_interval(secs => ")
                .push_bind(d.as_secs_f64())
                .push(")");
        }
    }
}

/// Escapes LIKE's special characters (backslash is LIKE's default escape).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn contains(s: &str) -> String {
    format!("%{}%", like_escape(s))
}

/// `*` is the only wildcard users write; everything else is literal.
pub(super) fn glob_to_like(g: &str) -> String {
    g.split('*').map(like_escape).collect::<Vec<_>>().join("%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_user_text() {
        assert_eq!(glob_to_like("/api/pay*"), "/api/pay%");
        assert_eq!(glob_to_like("100%_a\\*"), "100\\%\\_a\\\\%");
        assert_eq!(contains("50%"), "%50\\%%");
    }

    #[test]
    fn one_level_is_an_equality_the_level_index_can_order_by() {
        let sql = |text: &str| {
            let f = crate::filter::parse(text).unwrap();
            let mut qb = QueryBuilder::<Postgres>::new("");
            f.push_conditions(&mut qb);
            qb.sql().to_string()
        };
        assert!(
            sql("level:fatal").contains("level = $1"),
            "{}",
            sql("level:fatal")
        );
        assert!(sql("level:error,fatal").contains("level = ANY($1)"));
    }

    #[test]
    fn sql_text_never_contains_user_text() {
        let f =
            crate::filter::parse("evil'); DROP TABLE x; -- service:\"a'b\" level:warn+").unwrap();
        let mut qb = QueryBuilder::<Postgres>::new("SELECT 1 FROM opsdash.log_event WHERE ");
        f.push_conditions(&mut qb);
        let sql = qb.sql();
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains("a'b"), "{sql}");
        assert!(sql.contains("search_tokens @> '{"), "{sql}");
    }
}
