//! Turns a request path into a route template (`/users/123/orders?page=2` ->
//! `/users/:id/orders`), so latency and errors group per endpoint instead of per URL.

/// True for a path segment that is an identifier rather than a name: numbers, UUIDs, hex
/// digests, and long tokens mixing letters and digits.
fn is_id_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    if digits == 0 {
        return false;
    }
    let hexish = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
    if hexish && b.len() >= 8 {
        return true;
    }
    // Opaque tokens such as "a8Fk29dlQ0zX": long, alphanumeric, with digits in them.
    b.len() >= 16
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// The route template of a path (query string and fragment dropped, id segments as `:id`).
pub fn template(path: &str) -> String {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let path = &path[..end];
    // Absolute URLs (proxies log them): keep only the path.
    let path = match path.find("://") {
        Some(i) => path[i + 3..]
            .find('/')
            .map(|j| &path[i + 3 + j..])
            .unwrap_or("/"),
        None => path,
    };
    if !path.split('/').any(is_id_segment) {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_id_segment(seg) { ":id" } else { seg });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn ids_become_placeholders() {
        assert_eq!(template("/users/123/orders?page=2"), "/users/:id/orders");
        assert_eq!(
            template("/o/550e8400-e29b-41d4-a716-446655440000"),
            "/o/:id"
        );
        assert_eq!(template("/blob/deadbeef1234cafe"), "/blob/:id");
        assert_eq!(template("/api/v1/health"), "/api/v1/health");
        assert_eq!(template("/"), "/");
        assert_eq!(template("http://example.com/a/42"), "/a/:id");
        assert_eq!(template("/static/app.js#x"), "/static/app.js");
    }
}
