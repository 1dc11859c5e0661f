//! Container logs: Docker's json-file lines (`{"log":"text\n","stream":"stdout","time":"..."}`)
//! and the CRI format of Kubernetes/containerd/CRI-O (`<RFC3339Nano> <stream> <P|F> <text>`);
//! the pod, namespace and container a log file belongs to, read from its path. A runtime splits
//! a long line into pieces (Docker and containerd cut at 16 KiB: a Docker piece lacks its
//! trailing newline, a CRI piece is tagged `P`): such an envelope is `partial`, and the
//! multi-line joiner (`multiline`) puts the pieces of each stream back together.
//!
//! A line's stream (stdout or stderr) goes to attrs as `stream`; stderr does not raise the
//! level (programs write ordinary progress there): the level is info unless the text says.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::Envelope;

/// Cheap test for `auto`: Docker's json-file writes `log` first.
pub fn looks_like_docker(line: &str) -> bool {
    line.starts_with("{\"log\":")
}

/// Cheap test for `auto`: `2024-...T... stdout ` or `stderr `.
pub fn looks_like_cri(line: &str) -> bool {
    let b = line.as_bytes();
    if b.len() < 28 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[10] != b'T' {
        return false;
    }
    match memchr::memchr(b' ', &b[..b.len().min(40)]) {
        Some(i) => {
            let rest = &b[i + 1..];
            rest.starts_with(b"stdout ") || rest.starts_with(b"stderr ")
        }
        None => false,
    }
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    /// `--log-opt labels=/env=/tag=` values.
    #[serde(default)]
    attrs: Option<Map<String, Value>>,
}

fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Opens a Docker json-file line.
pub fn open_docker(line: &str) -> Result<Envelope<'_>, String> {
    let d: DockerLine = serde_json::from_str(line).map_err(|e| format!("docker json-file: {e}"))?;
    let mut env = Envelope {
        format: "docker",
        ..Envelope::default()
    };
    env.partial = !d.log.ends_with('\n');
    env.text = match d.log {
        Cow::Borrowed(s) => Cow::Borrowed(trim_newline(s)),
        Cow::Owned(mut s) => {
            let keep = trim_newline(&s).len();
            s.truncate(keep);
            Cow::Owned(s)
        }
    };
    if let Some(t) = d.time {
        env.ts = Some(rfc3339(&t).ok_or_else(|| format!("docker json-file: bad time {t:?}"))?);
    }
    if let Some(a) = d.attrs {
        env.attrs = a;
    }
    let stream = d.stream.map(Cow::into_owned).unwrap_or_default();
    if !stream.is_empty() {
        env.attrs
            .insert("stream".into(), Value::from(stream.as_str()));
    }
    env.stream = Some(stream);
    Ok(env)
}

fn trim_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// Opens a CRI line: `<time> <stream> <tags> <text>`; the first tag is `P` (partial) or `F`.
pub fn open_cri(line: &str) -> Result<Envelope<'_>, String> {
    let bad = || format!("not a CRI log line: {:?}", super::pipeline::clip(line, 60));
    let (ts, rest) = line.split_once(' ').ok_or_else(bad)?;
    let (stream, rest) = rest.split_once(' ').ok_or_else(bad)?;
    if stream != "stdout" && stream != "stderr" {
        return Err(bad());
    }
    // The text may be empty and then has no space before it.
    let (tags, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(bad()),
    };
    let mut env = Envelope {
        format: "cri",
        text: Cow::Borrowed(text),
        ts: Some(rfc3339(ts).ok_or_else(bad)?),
        stream: Some(stream.to_string()),
        partial,
        ..Envelope::default()
    };
    env.attrs.insert("stream".into(), Value::from(stream));
    Ok(env)
}

/// What a container log file's path says about its lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PathMeta {
    /// The container's name: the service of lines that name none.
    pub service: Option<String>,
    pub attrs: Map<String, Value>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Reads Kubernetes' and Docker's log paths (any prefix, so a copied tree reads the same):
/// `.../pods/<namespace>_<pod>_<uid>/<container>/<N>.log[.rotated]`,
/// `.../containers/<pod>_<namespace>_<container>-<id>.log`,
/// `.../containers/<id>/<id>-json.log[.N]` (Docker: only the container id).
pub fn path_meta(path: &Path) -> Option<PathMeta> {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let n = parts.len();
    let file = *parts.last()?;
    let mut meta = PathMeta::default();
    let mut put = |k: &str, v: &str| {
        meta.attrs.insert(k.into(), Value::from(v));
    };
    if n >= 4 && parts[n - 4] == "pods" {
        let mut dir = parts[n - 3].splitn(3, '_');
        if let (Some(ns), Some(pod), Some(uid)) = (dir.next(), dir.next(), dir.next()) {
            let container = parts[n - 2];
            put("k8s.namespace", ns);
            put("k8s.pod", pod);
            put("k8s.pod_uid", uid);
            put("k8s.container", container);
            meta.service = Some(container.to_string());
            return Some(meta);
        }
    }
    if n >= 2 && parts[n - 2] == "containers" {
        let stem = file.strip_suffix(".log")?;
        let (name, id) = stem.rsplit_once('-')?;
        let mut it = name.splitn(3, '_');
        if let (Some(pod), Some(ns), Some(container), true) =
            (it.next(), it.next(), it.next(), is_hex(id))
        {
            put("k8s.namespace", ns);
            put("k8s.pod", pod);
            put("k8s.container", container);
            put("container.id", id);
            meta.service = Some(container.to_string());
            return Some(meta);
        }
    }
    if n >= 3 && parts[n - 3] == "containers" && is_hex(parts[n - 2]) {
        let id = parts[n - 2];
        if file.starts_with(&format!("{id}-json.log")) {
            put("container.id", id);
            return Some(meta);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_lines() {
        let e = open_docker(
            r#"{"log":"{\"level\":\"warn\",\"msg\":\"slow\"}\n","stream":"stderr","time":"2024-12-04T03:04:05.123456789Z"}"#,
        )
        .unwrap();
        assert_eq!(e.text, r#"{"level":"warn","msg":"slow"}"#);
        assert!(!e.partial);
        assert_eq!(
            e.ts.unwrap().timestamp_nanos_opt(),
            Some(1733281445123456789)
        );
        assert_eq!(e.attrs["stream"], "stderr");
        assert_eq!(e.level, None, "stderr is not a level");
        let e =
            open_docker(r#"{"log":"no newline","stream":"stdout","time":"2024-12-04T03:04:05Z"}"#)
                .unwrap();
        assert!(e.partial);
        let e = open_docker(r#"{"log":"x\r\n","stream":"stdout","attrs":{"tag":"web"},"time":"2024-12-04T03:04:05Z"}"#)
            .unwrap();
        assert_eq!(e.text, "x");
        assert_eq!(e.attrs["tag"], "web");
        assert!(open_docker(r#"{"log":"x\n","time":"yesterday"}"#).is_err());
        assert!(open_docker(r#"{"msg":"x"}"#).is_err());
    }

    #[test]
    fn cri_lines() {
        let line = "2024-12-04T03:04:05.123456789+01:00 stderr F level=error msg=boom";
        assert!(looks_like_cri(line));
        let e = open_cri(line).unwrap();
        assert_eq!(e.text, "level=error msg=boom");
        assert_eq!(
            e.ts.unwrap().to_rfc3339(),
            "2024-12-04T02:04:05.123456789+00:00"
        );
        assert_eq!(e.stream.as_deref(), Some("stderr"));
        assert!(!e.partial);
        assert!(
            open_cri("2024-12-04T03:04:05Z stdout P part")
                .unwrap()
                .partial
        );
        assert_eq!(open_cri("2024-12-04T03:04:05Z stdout F").unwrap().text, "");
        assert!(open_cri("2024-12-04T03:04:05Z stdout X text").is_err());
        assert!(open_cri("2024-12-04T03:04:05Z other F text").is_err());
        assert!(!looks_like_cri("2024-12-04T03:04:05Z INFO started"));
    }

    #[test]
    fn paths() {
        let m = path_meta(Path::new(
            "/var/log/pods/shop_api-7d9f8b6c5-x2x9k_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/api/0.log",
        ))
        .unwrap();
        assert_eq!(m.service.as_deref(), Some("api"));
        assert_eq!(m.attrs["k8s.namespace"], "shop");
        assert_eq!(m.attrs["k8s.pod"], "api-7d9f8b6c5-x2x9k");
        assert_eq!(m.attrs["k8s.container"], "api");
        let m = path_meta(Path::new(
            "/var/log/containers/api-7d9f8b6c5-x2x9k_shop_istio-proxy-4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0.log",
        ))
        .unwrap();
        assert_eq!(m.service.as_deref(), Some("istio-proxy"));
        assert_eq!(m.attrs["k8s.namespace"], "shop");
        assert_eq!(m.attrs["k8s.pod"], "api-7d9f8b6c5-x2x9k");
        let id = "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0";
        let m = path_meta(Path::new(&format!(
            "/var/lib/docker/containers/{id}/{id}-json.log.1"
        )))
        .unwrap();
        assert_eq!(m.attrs["container.id"], id);
        assert_eq!(m.service, None);
        assert_eq!(path_meta(Path::new("/var/log/app/api.log")), None);
    }
}
