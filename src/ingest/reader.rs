//! Bounded line reader: splits input into lines without ever holding more than `max` bytes of
//! one line in memory. A longer line is reported once and skipped up to its newline.
//! `LineBuf` is the buffer alone (fed by `LineReader` from an async stream, or by `follow` from
//! a file with plain reads) and knows the input offset of each line's end, for checkpoints.

use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest line accepted.
pub const MAX_LINE: usize = 1 << 20;
const CHUNK: usize = 256 << 10;

pub enum Line<'a> {
    Text(&'a [u8]),
    /// A line longer than the limit (its content is discarded).
    TooLong,
}

/// A line found in the buffer, by position (so the caller can note the offset before using it).
pub enum Found {
    Text(Range<usize>),
    TooLong,
}

pub struct LineBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    /// Inside a too-long line: drop bytes until its newline.
    discarding: bool,
    /// Input offset of `buf[0]`.
    base: u64,
}

impl LineBuf {
    pub fn new(max: usize) -> Self {
        LineBuf {
            buf: vec![0; CHUNK.min(max + 1).max(4096)],
            start: 0,
            end: 0,
            max,
            discarding: false,
            base: 0,
        }
    }

    /// Empties the buffer; the next byte read is at input offset `offset`.
    pub fn reset(&mut self, offset: u64) {
        self.start = 0;
        self.end = 0;
        self.discarding = false;
        self.base = offset;
    }

    /// Input offset just after the last line returned (or skipped).
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Input offset just after the last byte read.
    pub fn read_end(&self) -> u64 {
        self.base + self.end as u64
    }

    /// True unless the reader is inside a too-long line it is skipping: a position saved now
    /// is the start of a line.
    pub fn at_line_start(&self) -> bool {
        !self.discarding
    }

    /// The next complete line already read.
    pub fn next_line(&mut self) -> Option<Found> {
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
                        return Some(Found::TooLong);
                    }
                    return Some(Found::Text(s..s + i));
                }
                None if self.discarding => {
                    self.start = self.end;
                    return None;
                }
                None if self.end - self.start > self.max => {
                    self.discarding = true;
                    self.start = self.end;
                    return Some(Found::TooLong);
                }
                None => return None,
            }
        }
    }

    pub fn slice(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Room for the next read (after moving unread bytes to the front).
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.base += self.start as u64;
            self.start = 0;
        }
        if self.buf.len() - self.end < CHUNK / 4 {
            // Room for a line of up to `max` bytes plus one read.
            let target = (self.buf.len() * 2)
                .min(self.max + CHUNK + 1)
                .max(self.end + 4096);
            self.buf.resize(target, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into `space()`.
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// At the end of the input: the last line when it has no newline.
    pub fn rest(&mut self) -> Option<Range<usize>> {
        if self.start == self.end {
            return None;
        }
        let s = self.start;
        self.start = self.end;
        if self.discarding {
            self.discarding = false;
            return None;
        }
        Some(s..self.end)
    }
}

pub struct LineReader<R> {
    inner: R,
    lines: LineBuf,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            lines: LineBuf::new(max),
        }
    }

    /// The next complete line already read, without touching the input.
    pub fn buffered(&mut self) -> Option<Line<'_>> {
        match self.lines.next_line()? {
            Found::Text(r) => Some(Line::Text(self.lines.slice(r))),
            Found::TooLong => Some(Line::TooLong),
        }
    }

    /// Reads more input. Returns false at the end of the input. Cancel-safe: state changes only
    /// after the read completes.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        let space = self.lines.space();
        let n = self.inner.read(space).await?;
        self.lines.filled(n);
        Ok(n > 0)
    }

    /// At the end of the input: the last line when it has no newline.
    pub fn rest(&mut self) -> Option<Line<'_>> {
        let r = self.lines.rest()?;
        Some(Line::Text(self.lines.slice(r)))
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
        r.lines.buf = vec![0; 10_000];
        assert!(r.fill().await.unwrap());
        assert!(matches!(r.buffered(), Some(Line::TooLong)));
        assert!(matches!(r.buffered(), Some(Line::Text(b"end"))));
    }

    #[test]
    fn offsets_are_line_ends() {
        let mut b = LineBuf::new(8);
        let input = b"ab\ncdef\n0123456789abc\nz\npart";
        b.reset(100);
        let sp = b.space();
        sp[..input.len()].copy_from_slice(input);
        b.filled(input.len());
        assert!(matches!(b.next_line(), Some(Found::Text(r)) if r == (0..2)));
        assert_eq!(b.offset(), 103);
        assert!(matches!(b.next_line(), Some(Found::Text(_))));
        assert_eq!(b.offset(), 108);
        assert!(matches!(b.next_line(), Some(Found::TooLong)));
        assert_eq!(b.offset(), 122);
        assert!(b.at_line_start());
        assert!(matches!(b.next_line(), Some(Found::Text(_))));
        assert_eq!(b.offset(), 124);
        assert!(b.next_line().is_none());
        // Compacting keeps offsets.
        b.space();
        assert_eq!(b.offset(), 124);
        assert_eq!(b.read_end(), 128);
        assert_eq!(b.rest(), Some(0..4));
        assert_eq!(b.offset(), 128);
    }
}
