//! Bounded line reader: splits input into lines without ever holding more than `max` bytes of
//! one line in memory. A longer line is reported once and skipped up to its newline.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest line accepted.
pub const MAX_LINE: usize = 1 << 20;
const CHUNK: usize = 256 << 10;

pub enum Line<'a> {
    Text(&'a [u8]),
    /// A line longer than the limit (its content is discarded).
    TooLong,
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    /// Inside a too-long line: drop bytes until its newline.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: vec![0; CHUNK.min(max + 1).max(4096)],
            start: 0,
            end: 0,
            max,
            discarding: false,
        }
    }

    /// The next complete line already read, without touching the input.
    pub fn buffered(&mut self) -> Option<Line<'_>> {
        loop {
            if self.start == self.end {
                return None;
            }
            match memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                Some(i) => {
                    let s = self.start;
                    self.start += i + 1;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if i > self.max {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Text(&self.buf[s..s + i]));
                }
                None if self.discarding => {
                    self.start = self.end;
                    return None;
                }
                None if self.end - self.start > self.max => {
                    self.discarding = true;
                    self.start = self.end;
                    return Some(Line::TooLong);
                }
                None => return None,
            }
        }
    }

    /// Reads more input. Returns false at the end of the input. Cancel-safe: state changes only
    /// after the read completes.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < CHUNK / 4 {
            // Room for a line of up to `max` bytes plus one read.
            let target = (self.buf.len() * 2)
                .min(self.max + CHUNK + 1)
                .max(self.end + 4096);
            self.buf.resize(target, 0);
        }
        let n = self.inner.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    /// At the end of the input: the last line when it has no newline.
    pub fn rest(&mut self) -> Option<Line<'_>> {
        if self.start == self.end {
            return None;
        }
        let s = self.start;
        self.start = self.end;
        if self.discarding {
            self.discarding = false;
            return None;
        }
        Some(Line::Text(&self.buf[s..self.end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            while let Some(l) = r.buffered() {
                out.push(match l {
                    Line::Text(t) => String::from_utf8_lossy(t).to_string(),
                    Line::TooLong => "<long>".into(),
                });
            }
            if !r.fill().await.unwrap() {
                break;
            }
        }
        while let Some(l) = r.buffered() {
            if let Line::Text(t) = l {
                out.push(String::from_utf8_lossy(t).to_string());
            }
        }
        if let Some(Line::Text(t)) = r.rest() {
            out.push(String::from_utf8_lossy(t).to_string());
        }
        out
    }

    #[tokio::test]
    async fn splits_and_bounds() {
        assert_eq!(lines(b"a\nbb\n\nc", 10).await, ["a", "bb", "", "c"]);
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\nafter\n");
        assert_eq!(lines(&input, 5000).await, ["ok", "<long>", "after"]);
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'y', 100_000));
        assert_eq!(lines(&input, 5000).await, ["ok", "<long>"]);
        // A long line that arrives whole in one read is caught too.
        let mut input = std::iter::repeat_n(b'z', 6000).collect::<Vec<u8>>();
        input.extend(b"\nend\n");
        let mut r = LineReader::new(&input[..], 5000);
        r.buf = vec![0; 10_000];
        assert!(r.fill().await.unwrap());
        assert!(matches!(r.buffered(), Some(Line::TooLong)));
        assert!(matches!(r.buffered(), Some(Line::Text(b"end"))));
    }
}
