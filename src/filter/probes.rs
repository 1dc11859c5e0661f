//! What a filter asks of the block summaries (`model::log_block`): groups of keys, every group
//! needing one of its keys in a block for that block's rows to possibly match. Only terms that
//! every matching row must satisfy with an exact, indexed value give a group (words and phrases,
//! exact trace and user ids, exact attribute values); any other term narrows nothing here, and
//! a filter without such a term reads every block (the restriction is then left out).

use super::{Cond, Filter, Pattern, TextColumn};
use crate::model::log_block::{
    attr_any_key, attr_key, attrs_unread_key, trace_key, user_key, word_key,
};
use crate::model::search_tokens::search_tokens;

impl Filter {
    /// The key groups of the filter's terms (empty: the blocks cannot narrow it).
    pub fn block_probes(&self) -> Vec<Vec<u64>> {
        let mut groups = Vec::new();
        for t in self.terms.iter().filter(|t| !t.negated) {
            match &t.cond {
                // Each word of the text is a token the row's message holds.
                Cond::Word(w) | Cond::Phrase(w) => {
                    groups.extend(search_tokens(w).into_iter().map(|t| vec![word_key(t)]));
                }
                Cond::Field { column, patterns } => {
                    let key = match column {
                        TextColumn::TraceId => trace_key,
                        TextColumn::UserId => user_key,
                        _ => continue,
                    };
                    if let Some(values) = exact(patterns) {
                        groups.push(values.into_iter().map(key).collect());
                    }
                }
                Cond::Attr { path, patterns } => {
                    let Some(values) = exact(patterns) else {
                        continue;
                    };
                    // `#>>` prints an object or array as its JSON text: no key stands for it.
                    if path.is_empty() || values.iter().any(|v| v.starts_with(['{', '['])) {
                        continue;
                    }
                    let mut g: Vec<u64> = values.iter().map(|v| attr_key(path, v)).collect();
                    // A value the writer could not key at this path or above it (an array
                    // `#>>` indexes into, a fraction), or attrs it did not read.
                    g.extend((1..=path.len()).map(|n| attr_any_key(&path[..n])));
                    g.push(attrs_unread_key());
                    groups.push(g);
                }
                _ => {}
            }
        }
        groups
    }
}

/// The values of patterns that are all exact (None if any is a glob).
fn exact(patterns: &[Pattern]) -> Option<Vec<&str>> {
    patterns
        .iter()
        .map(|p| match p {
            Pattern::Exact(v) => Some(v.as_str()),
            Pattern::Glob(_) => None,
        })
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(f: &str) -> Vec<Vec<u64>> {
        super::super::parse(f).expect("filter").block_probes()
    }

    #[test]
    fn exact_terms_give_groups_and_the_rest_none() {
        assert_eq!(probes("timeout").len(), 1);
        assert_eq!(probes("\"card declined\"").len(), 2);
        assert_eq!(probes("trace:abc"), vec![vec![trace_key("abc")]]);
        assert_eq!(probes("user:alice,bob")[0].len(), 2);
        assert_eq!(probes("attrs.order.id:42")[0].len(), 4);
        assert!(probes("-timeout").is_empty());
        assert!(probes("user:al*").is_empty());
        assert!(probes("service:api level:error").is_empty());
        assert!(probes("pay*").is_empty());
        assert!(probes("attrs.x:[1]").is_empty());
    }
}
