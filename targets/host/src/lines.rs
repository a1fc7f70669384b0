//! Line decoding of the batch command line: raw bytes in, one numbered result per line out.
//!
//! The `microbert` verbs that read many texts (`embed`, `tokenize`, every later one) read
//! them through [`Lines`], so that one bad line costs that line only. The contract:
//!
//! - The input is split on `\n`. One `\r` directly before the `\n` is stripped (CRLF
//!   input). A final line without `\n` is a line; empty input has no lines; an empty line
//!   is a line (the empty text).
//! - Each line comes out as `(line_number, Result<&str, LineError>)`, numbered from 1 in
//!   input order, and every line comes out: a line that is not UTF-8
//!   ([`LineError::InvalidUtf8`]) or is longer than the limit ([`LineError::TooLong`]) is an
//!   error for that line only, and reading goes on with the next line.
//! - Memory is bounded per line: at most `limit` bytes of a line are held
//!   ([`MAX_LINE_BYTES`] unless [`Lines::with_limit`] says otherwise); the rest of a longer
//!   line is read and dropped up to its `\n`. The limit counts the bytes before the `\n`
//!   (a CRLF line's `\r` included).
//! - Never panics, whatever the bytes. Only a failing reader ends reading early, with its
//!   [`std::io::Error`] (that concerns the whole run, not a line).
//!
//! ```
//! use microbert_host::lines::{LineError, Lines};
//! let mut lines = Lines::new(&b"hello\r\n\xff\n\nlast"[..]);
//! let mut got = Vec::new();
//! while let Some((n, line)) = lines.next_line().expect("a slice never fails") {
//!     got.push((n, line.map(str::to_owned)));
//! }
//! assert_eq!(got[0], (1, Ok("hello".to_owned())));
//! assert_eq!(got[1], (2, Err(LineError::InvalidUtf8 { valid_up_to: 0 })));
//! assert_eq!(got[2], (3, Ok(String::new())));
//! assert_eq!(got[3], (4, Ok("last".to_owned())));
//! assert_eq!(got.len(), 4);
//! ```

use core::fmt;
use std::io::{self, BufRead, Read};

/// Default longest line, in bytes before the `\n`: 16 MiB.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Capacity the line buffer shrinks back to after a long line (so one long line does not
/// keep its memory for the rest of the run).
const KEEP_CAPACITY: usize = 1 << 20;

/// Why one line cannot be used as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// The line is not valid UTF-8.
    InvalidUtf8 {
        /// Bytes of the line before the first invalid sequence.
        valid_up_to: usize,
    },
    /// The line is longer than the limit; it was read to its end and dropped.
    TooLong {
        /// The line's length in bytes, before the `\n` (a CRLF line's `\r` included).
        len: u64,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidUtf8 { valid_up_to } => write!(
                f,
                "the line is not valid UTF-8 (first invalid byte at offset {valid_up_to})"
            ),
            Self::TooLong { len, limit } => write!(
                f,
                "the line is {len} bytes, longer than the {limit}-byte limit"
            ),
        }
    }
}

impl core::error::Error for LineError {}

/// Numbered lines of a byte stream; see the [module docs](self) for the contract.
///
/// A lending reader (each line borrows the internal buffer until the next call), so it is
/// not an [`Iterator`]: loop with `while let Some((n, line)) = lines.next_line()? { .. }`.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    number: u64,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader` with the [`MAX_LINE_BYTES`] limit.
    pub fn new(reader: R) -> Self {
        Self::with_limit(reader, MAX_LINE_BYTES)
    }

    /// Lines of `reader`, each at most `limit` bytes before its `\n`.
    pub fn with_limit(reader: R, limit: usize) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            number: 0,
            limit,
        }
    }

    /// Lines returned so far (the number of the last one).
    pub fn count(&self) -> u64 {
        self.number
    }

    /// The next line and its number (from 1), or `None` at the end of the input.
    ///
    /// # Errors
    /// Only when the reader fails (other than [`io::ErrorKind::Interrupted`], which is
    /// retried); the line it was reading is then lost and reading should stop.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Result<&str, LineError>)>> {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.buf.clear();
        // One byte past the limit tells a line of exactly `limit` bytes from a longer one.
        let cap = u64::try_from(self.limit)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        // `read_until` retries `Interrupted` itself.
        let n = (&mut self.reader)
            .take(cap)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number = self.number.saturating_add(1);
        let line = match self.buf.strip_suffix(b"\n") {
            Some(line) => line,
            None if self.buf.len() > self.limit => {
                let rest = skip_line(&mut self.reader)?;
                let len = (self.buf.len() as u64).saturating_add(rest);
                return Ok(Some((
                    self.number,
                    Err(LineError::TooLong {
                        len,
                        limit: self.limit,
                    }),
                )));
            }
            // The final line, without `\n`.
            None => &self.buf[..],
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = core::str::from_utf8(line).map_err(|e| LineError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        });
        Ok(Some((self.number, text)))
    }
}

/// Reads and drops bytes up to and including the next `\n` (or the end of the input);
/// returns how many bytes came before the `\n`.
fn skip_line(reader: &mut impl BufRead) -> io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(skipped);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped.saturating_add(i as u64));
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
                skipped = skipped.saturating_add(len as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    /// Every line of `input` (owned), read with `limit` through a buffer of `capacity`.
    fn read_all(
        input: &[u8],
        limit: usize,
        capacity: usize,
    ) -> Vec<(u64, Result<String, LineError>)> {
        let mut lines = Lines::with_limit(BufReader::with_capacity(capacity, input), limit);
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().expect("slices do not fail") {
            out.push((n, line.map(str::to_owned)));
        }
        assert_eq!(lines.count(), out.len() as u64);
        out
    }

    /// The contract written as the obvious (unbounded) program: split on `\n`, drop the
    /// empty piece after a final `\n`, strip one `\r`, check the length, then UTF-8.
    fn reference(input: &[u8], limit: usize) -> Vec<(u64, Result<String, LineError>)> {
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let r = if p.len() > limit {
                    Err(LineError::TooLong {
                        len: p.len() as u64,
                        limit,
                    })
                } else {
                    let p = p.strip_suffix(b"\r").unwrap_or(p);
                    core::str::from_utf8(p)
                        .map(str::to_owned)
                        .map_err(|e| LineError::InvalidUtf8 {
                            valid_up_to: e.valid_up_to(),
                        })
                };
                (i as u64 + 1, r)
            })
            .collect()
    }

    fn ok(n: u64, s: &str) -> (u64, Result<String, LineError>) {
        (n, Ok(s.to_owned()))
    }

    #[test]
    fn splits_on_newline_strips_cr_and_keeps_the_final_line() {
        assert_eq!(read_all(b"", 16, 8), []);
        assert_eq!(read_all(b"\n", 16, 8), [ok(1, "")]);
        assert_eq!(read_all(b"\r\n", 16, 8), [ok(1, "")]);
        assert_eq!(read_all(b"\r", 16, 8), [ok(1, "")]);
        assert_eq!(
            read_all(b"a\r\n\r\nb\n\nc", 16, 8),
            [ok(1, "a"), ok(2, ""), ok(3, "b"), ok(4, ""), ok(5, "c")]
        );
        // Only one `\r`, and only before the `\n`.
        assert_eq!(
            read_all(b"a\r\r\nb\rc\n", 16, 8),
            [ok(1, "a\r"), ok(2, "b\rc")]
        );
        assert_eq!(read_all("é中😀\n".as_bytes(), 16, 1), [ok(1, "é中😀")]);
    }

    #[test]
    fn invalid_utf8_costs_its_line_only() {
        let input: &[u8] =
            b"ok\n\x80\nab\xc3\n\xe2\x82\n\xc0\xaf\n\xed\xa0\x80\n\xf4\x90\x80\x80\n\xff\r\nend";
        let got = read_all(input, 64, 3);
        let bad = |n, at| (n, Err(LineError::InvalidUtf8 { valid_up_to: at }));
        assert_eq!(
            got,
            [
                ok(1, "ok"),
                bad(2, 0),
                bad(3, 2),
                bad(4, 0),
                bad(5, 0),
                bad(6, 0),
                bad(7, 0),
                bad(8, 0),
                ok(9, "end")
            ]
        );
    }

    #[test]
    fn long_lines_are_errors_and_reading_resumes() {
        let too_long = |n, len| (n, Err(LineError::TooLong { len, limit: 4 }));
        // Exactly the limit is fine, one more is not, with or without `\n`, CR counted.
        assert_eq!(
            read_all(b"abcd\nabcde\nab\r\nabc\r\nx\nabcdefghij", 4, 2),
            [
                ok(1, "abcd"),
                too_long(2, 5),
                ok(3, "ab"),
                ok(4, "abc"),
                ok(5, "x"),
                too_long(6, 10)
            ]
        );
        assert_eq!(read_all(b"abcd", 4, 2), [ok(1, "abcd")]);
        assert_eq!(read_all(b"abcde", 4, 2), [too_long(1, 5)]);
        assert_eq!(read_all(b"abcde\n", 4, 2), [too_long(1, 5)]);
        // A long line of invalid bytes is reported as too long (it is never decoded).
        assert_eq!(
            read_all(b"\xff\xff\xff\xff\xff\xff\nok\n", 4, 3),
            [too_long(1, 6), ok(2, "ok")]
        );
        // Limit 0: only empty lines pass.
        assert_eq!(
            read_all(b"\na\n\n", 0, 1),
            [
                ok(1, ""),
                (2, Err(LineError::TooLong { len: 1, limit: 0 })),
                ok(3, "")
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_match_the_reference() {
        // Seeded bytes from a small alphabet rich in newlines, CRs and UTF-8 fragments.
        let alphabet: &[u8] = b"\n\n\r\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x80\xffab ";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..2000 {
            let len = (next() % 200) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let limit = [0usize, 1, 3, 8, 64][case % 5];
            let capacity = [1usize, 2, 7, 64][case % 4];
            assert_eq!(
                read_all(&input, limit, capacity),
                reference(&input, limit),
                "case {case}: {input:?} limit {limit}"
            );
        }
    }

    /// A reader that gives its bytes one at a time, interrupted before each, then fails.
    struct Flaky<'a> {
        bytes: &'a [u8],
        interrupt: bool,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let Some((&b, rest)) = self.bytes.split_first() else {
                return Err(io::Error::other("disk on fire"));
            };
            match out.first_mut() {
                Some(slot) => *slot = b,
                None => return Ok(0),
            }
            self.bytes = rest;
            Ok(1)
        }
    }

    #[test]
    fn interruptions_are_retried_and_read_errors_end_reading() {
        let reader = BufReader::with_capacity(
            1,
            Flaky {
                bytes: b"ab\ncd\n",
                interrupt: false,
            },
        );
        let mut lines = Lines::new(reader);
        let first = lines
            .next_line()
            .expect("line 1")
            .map(|(n, l)| (n, l.map(str::to_owned)));
        assert_eq!(first, Some(ok(1, "ab")));
        let second = lines
            .next_line()
            .expect("line 2")
            .map(|(n, l)| (n, l.map(str::to_owned)));
        assert_eq!(second, Some(ok(2, "cd")));
        let err = lines
            .next_line()
            .expect_err("the reader fails after its bytes");
        assert_eq!(err.to_string(), "disk on fire");
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = LineError::InvalidUtf8 { valid_up_to: 17 };
        assert_eq!(
            e.to_string(),
            "the line is not valid UTF-8 (first invalid byte at offset 17)"
        );
        let e = LineError::TooLong {
            len: 16_777_217,
            limit: MAX_LINE_BYTES,
        };
        assert_eq!(
            e.to_string(),
            "the line is 16777217 bytes, longer than the 16777216-byte limit"
        );
    }
}
