//! Where a key path (`service[1].kind`) stands in the config text, so an error names the line
//! and column of the value it refuses.

/// One step of a key path: a key, or an index into an array (of tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `alert.channel[1].smtp_tls` as steps. Our keys have no dots or brackets.
pub(super) fn steps(key_path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key_path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// A place in a parsed TOML document: a table, an item (what a key holds) or a value inside an
/// array or inline table.
#[derive(Clone, Copy)]
pub(super) enum Node<'a> {
    Table(&'a dyn toml_edit::TableLike),
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
}

pub(super) type Span = Option<std::ops::Range<usize>>;

impl<'a> Node<'a> {
    fn table_like(self) -> Option<&'a dyn toml_edit::TableLike> {
        match self {
            Node::Table(t) => Some(t),
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
        }
    }

    fn array(self) -> Option<&'a toml_edit::Array> {
        match self {
            Node::Table(_) => None,
            Node::Item(i) => i.as_array(),
            Node::Value(v) => v.as_array(),
        }
    }

    /// The entry under `key`, with the span of the key as written.
    fn key(self, key: &str) -> Option<(Span, Node<'a>)> {
        let (k, item) = self.table_like()?.get_key_value(key)?;
        Some((k.span().or_else(|| item.span()), Node::Item(item)))
    }

    /// The i-th entry of an array of tables (its header's span) or of an inline array.
    fn nth(self, i: usize) -> Option<(Span, Node<'a>)> {
        if let Node::Item(item) = self {
            if let Some(aot) = item.as_array_of_tables() {
                let t = aot.get(i)?;
                return Some((t.span(), Node::Table(t)));
            }
        }
        let v = self.array()?.get(i)?;
        Some((v.span(), Node::Value(v)))
    }

    /// Every entry below this node, depth first, with its key path and span.
    pub(super) fn walk(self, path: &str, span: Span, f: &mut dyn FnMut(&str, Span, Node<'a>)) {
        f(path, span.clone(), self);
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        if let Some(t) = self.table_like() {
            for (k, _) in t.iter() {
                if let Some((s, n)) = self.key(k) {
                    n.walk(&join(k), s, f);
                }
            }
            return;
        }
        let len = match self {
            Node::Item(i) => i
                .as_array_of_tables()
                .map(|a| a.len())
                .or_else(|| i.as_array().map(|a| a.len())),
            Node::Value(v) => v.as_array().map(|a| a.len()),
            Node::Table(_) => None,
        };
        for i in 0..len.unwrap_or(0) {
            if let Some((s, n)) = self.nth(i) {
                n.walk(&format!("{path}[{i}]"), s.or_else(|| span.clone()), f);
            }
        }
    }

    pub(super) fn as_str(self) -> Option<&'a str> {
        match self {
            Node::Item(i) => i.as_str(),
            Node::Value(v) => v.as_str(),
            Node::Table(_) => None,
        }
    }
}

/// Line and column (1-based) of the value at `key_path` in the TOML text, from the document's
/// own spans: the key itself when it is written, else the nearest enclosing entry that is (an
/// `[[alert.channel]]` header for a key it lacks), else 1:1.
pub(super) fn locate(text: &str, key_path: &str) -> (usize, usize) {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return (1, 1);
    };
    let mut node = Node::Table(doc.as_table());
    let mut found: Span = None;
    for step in steps(key_path) {
        let next = match step {
            Step::Key(k) => node.key(k),
            Step::Index(i) => node.nth(i),
        };
        let Some((span, n)) = next else {
            break;
        };
        found = span.or(found);
        node = n;
    }
    found.map(|s| line_col(text, s.start)).unwrap_or((1, 1))
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_located_in_arrays_of_tables() {
        let text = "[[alert.channel]]\nname = \"a\"\nkind = \"x\"\n\n[[alert.channel]]\nname = \"b\"\n  kind = \"y\"\n";
        assert_eq!(locate(text, "alert.channel[1].kind"), (7, 3));
        assert_eq!(locate(text, "alert.channel[0].kind"), (3, 1));
        // Missing key: the entry's header; missing entry: the nearest enclosing key.
        assert_eq!(locate(text, "alert.channel[1].url"), (5, 1));
        assert_eq!(locate(text, "alert.channel[5].url").0, 1);
        assert_eq!(
            steps("a.b[2].c"),
            vec![
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(2),
                Step::Key("c")
            ]
        );
    }
}
