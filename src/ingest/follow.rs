//! Following files by name, like `tail -F`: which file a name points to now (a new inode after
//! a rename-and-create rotation, the same inode truncated by copytruncate, a file deleted and
//! created again), where reading stands in it (for checkpoints), where a saved checkpoint
//! resumes, and the set of names and globs one process follows. Polling `stat` (as tail -F
//! does) is enough at 100 ms and works on every filesystem, unlike inotify.
//!
//! Files are read with positioned reads (`pread`): the read position is ours alone and always
//! known, so a checkpoint is just "the byte after the last line handed to the pipeline".

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::reader::{LineBuf, MAX_LINE};
use crate::query::checkpoint::Checkpoint;

/// Bytes at the start of a file that identify it (hashed into the checkpoint).
pub const HEAD: usize = 1024;

/// One line on stderr about a followed name (paths are data: escaped).
pub fn note(msg: &str) {
    eprintln!("opsdash ingest: {}", crate::sanitize::clean(msg));
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

fn hash(bytes: &[u8]) -> Arc<str> {
    hex::encode(Sha256::digest(bytes)).into()
}

/// An open file and the reading state in it.
pub struct OpenFile {
    file: File,
    pub dev: u64,
    pub ino: u64,
    /// The file's first bytes (up to `HEAD`), to recognise it again.
    head: Vec<u8>,
    /// Hash of `head[..n]`, computed once per length (a checkpoint is taken per line).
    hash: Option<(usize, Arc<str>)>,
    pub lines: LineBuf,
}

impl OpenFile {
    /// Opens `path` to read from `offset`.
    pub fn at(path: &Path, offset: u64) -> io::Result<OpenFile> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        if !m.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut o = OpenFile {
            file,
            dev: m.dev(),
            ino: m.ino(),
            head: Vec::new(),
            hash: None,
            lines: LineBuf::new(MAX_LINE),
        };
        o.head = o.read_head()?;
        o.lines.reset(offset);
        Ok(o)
    }

    fn read_head(&self) -> io::Result<Vec<u8>> {
        let mut h = vec![0; HEAD];
        let mut n = 0;
        while n < HEAD {
            let k = self.file.read_at(&mut h[n..], n as u64)?;
            if k == 0 {
                break;
            }
            n += k;
        }
        h.truncate(n);
        Ok(h)
    }

    /// Reads the next chunk after what was read; 0 at the end of the file (for now).
    pub fn read_chunk(&mut self) -> io::Result<usize> {
        let at = self.lines.read_end();
        let space = self.lines.space();
        let n = self.file.read_at(space, at)?;
        self.lines.filled(n);
        if n > 0 && self.head.len() < HEAD {
            self.head = self.read_head()?;
        }
        Ok(n)
    }

    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The position after the last line taken, or None inside a too-long line being skipped.
    pub fn checkpoint(&mut self, key: &Arc<str>) -> Option<Checkpoint> {
        if !self.lines.at_line_start() {
            return None;
        }
        let offset = self.lines.offset();
        let n = self
            .head
            .len()
            .min(usize::try_from(offset).unwrap_or(usize::MAX));
        let h = match &self.hash {
            Some((k, h)) if *k == n => h.clone(),
            _ => {
                let h = hash(&self.head[..n]);
                self.hash = Some((n, h.clone()));
                h
            }
        };
        Some(Checkpoint {
            path: key.clone(),
            dev: self.dev as i64,
            inode: self.ino as i64,
            offset: offset as i64,
            head_len: n as i32,
            head_hash: h,
        })
    }

    /// Whether `cp` was taken in this file: same inode and same first bytes, and the file still
    /// reaches the offset. The device number is not compared: it can change across reboots,
    /// while a reused inode is caught by the first bytes.
    pub fn matches(&self, cp: &Checkpoint) -> bool {
        let n = cp.head_len.max(0) as usize;
        self.ino as i64 == cp.inode
            && self.head.len() >= n
            && *hash(&self.head[..n]) == *cp.head_hash
            && self.size().is_ok_and(|l| l >= cp.offset.max(0) as u64)
    }

    /// False when the file's first bytes are no longer those read: it was truncated and written
    /// again (copytruncate followed by new lines past the old size before the next check).
    fn same_start(&self) -> bool {
        match self.read_head() {
            Ok(now) => now.len() >= self.head.len() && now[..self.head.len()] == self.head[..],
            Err(_) => true,
        }
    }
}

/// What a check of a followed name found.
pub enum Check {
    Same,
    /// The name points to another file: read the open one to its end, then this one.
    Replaced(OpenFile),
    /// The open file is shorter than what was read, or starts differently: read it again.
    Truncated,
}

/// One followed name.
pub struct Followed {
    pub path: PathBuf,
    /// Checkpoint key: the absolute path.
    pub key: Arc<str>,
    /// Service of its lines that name none.
    pub service: String,
    pub cur: Option<OpenFile>,
    /// The name was reported missing (said once).
    gone: bool,
}

impl Followed {
    /// Starts following `path`: resumes at `cp` when it was taken in the file there, else finds
    /// the file it was taken in among the rotated names beside it (`app.log.1`,
    /// `app.log-20240101`), else reads from the start; says which on stderr.
    pub fn start(path: PathBuf, service: String, cp: Option<&Checkpoint>) -> Followed {
        let key = key_of(&path);
        let mut f = Followed {
            path,
            key,
            service,
            cur: None,
            gone: false,
        };
        let name = show(&f.path);
        let open = match OpenFile::at(&f.path, 0) {
            Ok(o) => o,
            Err(e) => {
                let e = if std::fs::metadata(&f.path).is_ok_and(|m| !m.is_file()) {
                    "not a regular file (only those are followed by name; pipe others through standard input)".to_string()
                } else {
                    e.to_string()
                };
                if let Some((sib, o)) = cp.and_then(|cp| find_rotated(&f.path, cp)) {
                    note(&format!(
                        "{name}: missing; reading the rest of {} (its file at the saved position) from byte {}",
                        show(&sib),
                        o.lines.offset()
                    ));
                    f.cur = Some(o);
                } else {
                    note(&format!("{name}: {e}; waiting for it to appear"));
                }
                f.gone = true;
                return f;
            }
        };
        let mut open = open;
        match cp {
            None => {}
            Some(cp) if open.matches(cp) => {
                open.lines.reset(cp.offset as u64);
                note(&format!("{name}: resuming at byte {} (saved position)", cp.offset));
            }
            Some(cp) if open.ino as i64 == cp.inode => note(&format!(
                "{name}: truncated or rewritten since the saved position (byte {}): reading it from the start",
                cp.offset
            )),
            Some(cp) => match find_rotated(&f.path, cp) {
                Some((sib, o)) => {
                    note(&format!(
                        "{name}: rotated while not followed: reading the rest of {} from byte {} first, then {name} from the start",
                        show(&sib),
                        cp.offset
                    ));
                    f.cur = Some(o);
                    return f;
                }
                None => note(&format!(
                    "{name}: rotated while not followed, and the file of the saved position is not beside it: reading the new file from the start (lines after byte {} of the old one were not read)",
                    cp.offset
                )),
            },
        }
        f.cur = Some(open);
        f
    }

    /// Looks at what the name points to now (called when the open file is at its end).
    pub fn check(&mut self) -> Check {
        let name = show(&self.path);
        let meta = std::fs::metadata(&self.path);
        match (meta, self.cur.as_mut()) {
            (Err(_), Some(_)) => {
                if !self.gone {
                    self.gone = true;
                    note(&format!(
                        "{name}: removed or renamed; reading the open file to its end and waiting for the name to come back"
                    ));
                }
                Check::Same
            }
            (Err(_), None) => Check::Same,
            (Ok(m), None) => {
                if m.is_file() {
                    if let Ok(o) = OpenFile::at(&self.path, 0) {
                        note(&format!("{name}: appeared; reading it from the start"));
                        self.gone = false;
                        self.cur = Some(o);
                    }
                }
                Check::Same
            }
            (Ok(m), Some(cur)) => {
                if m.ino() != cur.ino || m.dev() != cur.dev {
                    if !m.is_file() {
                        return Check::Same;
                    }
                    match OpenFile::at(&self.path, 0) {
                        Ok(o) => {
                            self.gone = false;
                            Check::Replaced(o)
                        }
                        Err(_) => Check::Same,
                    }
                } else if m.len() < cur.lines.read_end() || !cur.same_start() {
                    Check::Truncated
                } else {
                    Check::Same
                }
            }
        }
    }

    /// After a truncation: read the same file again from its start.
    pub fn restart(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.lines.reset(0);
            cur.hash = None;
            cur.head = cur.read_head().unwrap_or_default();
        }
    }
}

/// The checkpoint key of a path: absolute, so a restart from another directory finds it.
pub fn key_of(path: &Path) -> Arc<str> {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into()
}

/// The file beside `path` whose name starts with `path`'s (`app.log.1`, `app.log-20240101`)
/// and in which `cp` was taken, opened at `cp`'s offset.
fn find_rotated(path: &Path, cp: &Checkpoint) -> Option<(PathBuf, OpenFile)> {
    let name = path.file_name()?.to_string_lossy().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for e in std::fs::read_dir(&dir).ok()?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n == name || !n.starts_with(&name) {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.ino() as i64 != cp.inode || !m.is_file() {
            continue;
        }
        let p = e.path();
        if let Ok(mut o) = OpenFile::at(&p, 0) {
            if o.matches(cp) {
                o.lines.reset(cp.offset as u64);
                return Some((p, o));
            }
        }
    }
    None
}

/// Whether a FILE argument is a glob pattern rather than a name.
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// Every name and glob one run follows.
pub struct FollowSet {
    pub files: Vec<Followed>,
    patterns: Vec<glob::Pattern>,
    pattern_text: Vec<String>,
    saved: HashMap<Arc<str>, Checkpoint>,
    /// `--service`, else each file's stem.
    service: Option<String>,
    /// Files left behind by a rotation, with the offset read: a glob that matches the rotated
    /// name later (`app-20240101.log` for `*.log`) continues there instead of reading it twice.
    left: HashMap<(u64, u64), u64>,
    /// Whether positions are saved (`--follow`), else the files are read once from the start.
    pub marks: bool,
    /// Files named to be read once that cannot be opened.
    unreadable: Vec<String>,
}

impl FollowSet {
    /// `args`: names and glob patterns; `saved`: the checkpoints in the database (empty when
    /// reading once).
    pub fn new(
        args: &[String],
        saved: Vec<Checkpoint>,
        service: Option<String>,
        marks: bool,
    ) -> anyhow::Result<FollowSet> {
        let mut set = FollowSet {
            files: Vec::new(),
            patterns: Vec::new(),
            pattern_text: Vec::new(),
            saved: saved.into_iter().map(|c| (c.path.clone(), c)).collect(),
            service,
            left: HashMap::new(),
            marks,
            unreadable: Vec::new(),
        };
        for a in args {
            if is_pattern(a) {
                let p = glob::Pattern::new(a)
                    .map_err(|e| anyhow::anyhow!("bad file pattern {a:?}: {e}"))?;
                set.patterns.push(p);
                set.pattern_text.push(a.clone());
            } else {
                set.add(PathBuf::from(a), true);
            }
        }
        let before = set.files.len();
        set.scan(true);
        if set.files.len() == before && !set.patterns.is_empty() && !marks {
            anyhow::bail!("no file matches {}", set.pattern_text.join(" "));
        }
        if !set.unreadable.is_empty() {
            anyhow::bail!("{}", set.unreadable.join("; "));
        }
        Ok(set)
    }

    fn service_of(&self, path: &Path) -> String {
        self.service.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        })
    }

    fn add(&mut self, path: PathBuf, at_start: bool) {
        let key = key_of(&path);
        if self.files.iter().any(|f| f.key == key) {
            return;
        }
        let service = self.service_of(&path);
        if !self.marks {
            let mut f = Followed {
                path,
                key,
                service,
                cur: None,
                gone: false,
            };
            match OpenFile::at(&f.path, 0) {
                Ok(o) => f.cur = Some(o),
                Err(e) => self.unreadable.push(format!("{}: {e}", show(&f.path))),
            }
            self.files.push(f);
            return;
        }
        let cp = self.saved.get(&key).cloned();
        if !at_start && cp.is_none() {
            // A file created while we run: maybe a rotated name of one we read.
            if let Ok(m) = std::fs::metadata(&path) {
                let id = (m.dev(), m.ino());
                let open_elsewhere = self
                    .files
                    .iter()
                    .any(|f| f.cur.as_ref().is_some_and(|o| (o.dev, o.ino) == id));
                if open_elsewhere {
                    // Still being read under its old name: look again once that one switched.
                    return;
                }
                if let Some(&offset) = self.left.get(&id) {
                    if let Ok(o) = OpenFile::at(&path, offset) {
                        note(&format!(
                            "{}: already read up to byte {offset} under another name (rotated); following it from there",
                            show(&path)
                        ));
                        self.files.push(Followed {
                            path,
                            key,
                            service,
                            cur: Some(o),
                            gone: false,
                        });
                    }
                    return;
                }
            }
            note(&format!("{}: new file; following it", show(&path)));
        }
        self.files.push(Followed::start(path, service, cp.as_ref()));
    }

    /// Adds the files the patterns match now.
    pub fn scan(&mut self, at_start: bool) {
        let mut found = Vec::new();
        for p in &self.pattern_text {
            let Ok(paths) = glob::glob(p) else { continue };
            for path in paths.flatten() {
                if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    found.push(path);
                }
            }
        }
        found.sort();
        let known: HashSet<Arc<str>> = self.files.iter().map(|f| f.key.clone()).collect();
        for path in found {
            if !known.contains(&key_of(&path)) {
                self.add(path, at_start);
            }
        }
    }

    /// Remembers where reading of a file left behind by a rotation stopped.
    pub fn left_behind(&mut self, dev: u64, ino: u64, offset: u64) {
        self.left.insert((dev, ino), offset);
    }

    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }
}
