//! The batch driver every line-reading verb plugs into: one output line per input line,
//! in order, and nothing lost.
//!
//! - Input lines come from [`microbert_host::lines`] (raw bytes, `\n`-split, one `\r`
//!   stripped, bounded per line). A line that is not UTF-8 or too long, or that the verb
//!   fails on, gives `{"line": N, "error": "..."}` in its place and the run goes on; the
//!   exit status is then non-zero and stderr gets one summary line
//!   (`microbert: 3 of 10000 lines failed (first: line 2: ...)`), never one line per error.
//! - `--fail-fast` stops at the first such line instead: its error on stderr, exit status 1.
//! - A closed stdout (`microbert embed ... | head -1`) ends the run quietly: status 0,
//!   nothing on stderr (Rust ignores SIGPIPE, so every write and flush checks for
//!   `BrokenPipe`).
//! - Whatever concerns the whole run (stdin unreadable, stdout failing otherwise) stops it
//!   at once with an error.

use anyhow::{Context, Result, anyhow};
use microbert_host::lines::Lines;
use std::io::{self, BufRead, BufWriter, Write};

/// What `--help` of each batch verb says about lines and errors.
pub(crate) const HELP: &str = "\
Lines: each stdin line (CRLF accepted) gives one output line, in order; a line that cannot be \
processed (not UTF-8, over 16 MiB, ...) gives {\"line\": N, \"error\": \"...\"} and the run \
goes on, then exits 1 with a count on stderr. --fail-fast stops at the first.";

/// Flags every batch verb shares.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct BatchArgs {
    /// Stop at the first line that cannot be processed (its error on stderr, exit status
    /// 1) instead of writing {"line": N, "error": "..."} for it and going on.
    #[arg(long)]
    pub(crate) fail_fast: bool,
}

/// How a run ended, short of an error that concerns the whole run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every input line gave its output line.
    Done(Report),
    /// stdout was closed by its reader: stop quietly.
    Closed,
}

/// The lines of a finished run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Input lines read.
    pub(crate) lines: u64,
    /// Lines that gave an error line.
    pub(crate) failed: u64,
    /// The first failure: line number and message.
    pub(crate) first: Option<(u64, String)>,
}

impl Report {
    /// The stderr summary of the failures, if any: `3 of 10000 lines failed (first: ...)`.
    pub(crate) fn failure_summary(&self) -> Option<String> {
        let (n, msg) = self.first.as_ref()?;
        Some(format!(
            "{} of {} {} failed (first: line {n}: {msg})",
            self.failed,
            self.lines,
            if self.lines == 1 { "line" } else { "lines" }
        ))
    }
}

/// One `{"line": N, "error": "..."}` output line (fields in this order).
#[derive(serde::Serialize)]
struct ErrorLine<'a> {
    line: u64,
    error: &'a str,
}

/// Results writer: buffered, and a closed pipe is [`Closed`], not an error.
pub(crate) struct Output<W: Write> {
    out: BufWriter<W>,
}

/// The reader of stdout went away.
#[derive(Debug)]
pub(crate) struct Closed;

/// `Ok(Err(Closed))` for a broken pipe, `Err` for any other write error.
fn write_result(r: io::Result<()>) -> Result<Result<(), Closed>> {
    match r {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Err(Closed)),
        Err(e) => Err(anyhow!(e).context("cannot write to stdout")),
    }
}

impl<W: Write> Output<W> {
    pub(crate) fn new(w: W) -> Self {
        Self {
            out: BufWriter::new(w),
        }
    }

    /// Writes `bytes` and a `\n`.
    pub(crate) fn line(&mut self, bytes: &[u8]) -> Result<Result<(), Closed>> {
        write_result(
            self.out
                .write_all(bytes)
                .and_then(|()| self.out.write_all(b"\n")),
        )
    }

    /// Writes `text` as is.
    pub(crate) fn text(&mut self, text: &str) -> Result<Result<(), Closed>> {
        write_result(self.out.write_all(text.as_bytes()))
    }

    pub(crate) fn flush(&mut self) -> Result<Result<(), Closed>> {
        write_result(self.out.flush())
    }
}

/// Runs `verb` on every line of `input`, writing its output line (the bytes it appends to
/// the buffer, without `\n`) or an error line to `out`. `verb(line_number, text, buffer)`
/// returns an error for a line it cannot process.
pub(crate) fn run<R, W, F>(input: R, out: W, args: BatchArgs, mut verb: F) -> Result<Outcome>
where
    R: BufRead,
    W: Write,
    F: FnMut(u64, &str, &mut Vec<u8>) -> Result<()>,
{
    run_groups(input, out, args, 1, |lines, results| {
        for &(n, text) in lines {
            let mut buf = Vec::new();
            let r = verb(n, text, &mut buf).map(|()| buf);
            results.push(r);
        }
    })
}

/// [`run`] over groups of up to `group` lines: `verb(lines, results)` gets the readable
/// lines of a group (line number, text) and pushes one result per line, in order (a
/// missing result is an error line). Output, errors, `--fail-fast` and a closed stdout
/// behave exactly as with [`run`], line by line.
pub(crate) fn run_groups<R, W, F>(
    input: R,
    out: W,
    args: BatchArgs,
    group: usize,
    mut verb: F,
) -> Result<Outcome>
where
    R: BufRead,
    W: Write,
    F: FnMut(&[(u64, &str)], &mut Vec<Result<Vec<u8>>>),
{
    let mut out = Output::new(out);
    let mut lines = Lines::new(input);
    let mut report = Report::default();
    let mut pending: Vec<(u64, Result<String>)> = Vec::new();
    let mut results = Vec::new();
    let mut end = false;
    while !end {
        pending.clear();
        while pending.len() < group.max(1) {
            let Some((n, line)) = lines.next_line().context("cannot read stdin")? else {
                end = true;
                break;
            };
            pending.push((n, line.map(str::to_owned).map_err(Into::into)));
        }
        let texts: Vec<(u64, &str)> = pending
            .iter()
            .filter_map(|(n, l)| l.as_ref().ok().map(|t| (*n, t.as_str())))
            .collect();
        results.clear();
        if !texts.is_empty() {
            verb(&texts, &mut results);
        }
        let mut computed = results.drain(..);
        for (n, line) in pending.drain(..) {
            report.lines = n;
            let result = match line {
                Ok(_) => computed
                    .next()
                    .unwrap_or_else(|| Err(anyhow!("no result for this line"))),
                Err(e) => Err(e),
            };
            let buf = match result {
                Ok(buf) => buf,
                Err(e) => {
                    let msg = format!("{e:#}");
                    if args.fail_fast {
                        if out.flush()?.is_err() {
                            return Ok(Outcome::Closed);
                        }
                        return Err(anyhow!("line {n}: {msg}"));
                    }
                    let mut buf = Vec::new();
                    serde_json::to_writer(
                        &mut buf,
                        &ErrorLine {
                            line: n,
                            error: &msg,
                        },
                    )?;
                    report.failed += 1;
                    report.first.get_or_insert((n, msg));
                    buf
                }
            };
            if out.line(&buf)?.is_err() {
                return Ok(Outcome::Closed);
            }
        }
    }
    if out.flush()?.is_err() {
        return Ok(Outcome::Closed);
    }
    Ok(Outcome::Done(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(_: u64, text: &str, buf: &mut Vec<u8>) -> Result<()> {
        anyhow::ensure!(text != "bad", "the verb refuses {text:?}");
        buf.extend_from_slice(text.to_uppercase().as_bytes());
        Ok(())
    }

    const KEEP_GOING: BatchArgs = BatchArgs { fail_fast: false };

    #[test]
    fn every_line_gives_one_line_in_order() {
        let mut out = Vec::new();
        let input: &[u8] = b"a\r\n\xff\nbad\n\nb";
        let outcome = run(input, &mut out, KEEP_GOING, upper).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A\n\
             {\"line\":2,\"error\":\"the line is not valid UTF-8 (first invalid byte at offset 0)\"}\n\
             {\"line\":3,\"error\":\"the verb refuses \\\"bad\\\"\"}\n\
             \n\
             B\n"
        );
        let report = match outcome {
            Outcome::Done(r) => r,
            Outcome::Closed => panic!("stdout is a Vec"),
        };
        assert_eq!((report.lines, report.failed), (5, 2));
        assert_eq!(
            report.failure_summary().unwrap(),
            "2 of 5 lines failed (first: line 2: the line is not valid UTF-8 (first invalid byte at offset 0))"
        );
    }

    #[test]
    fn empty_input_gives_nothing() {
        let mut out = Vec::new();
        let outcome = run(&b""[..], &mut out, KEEP_GOING, upper).unwrap();
        assert_eq!(outcome, Outcome::Done(Report::default()));
        assert!(out.is_empty());
        assert_eq!(Report::default().failure_summary(), None);
    }

    #[test]
    fn fail_fast_stops_at_the_first_bad_line() {
        let mut out = Vec::new();
        let args = BatchArgs { fail_fast: true };
        let e = run(&b"a\nbad\nc\n"[..], &mut out, args, upper).unwrap_err();
        assert_eq!(e.to_string(), "line 2: the verb refuses \"bad\"");
        assert_eq!(out, b"A\n");
    }

    /// A stdout whose reader has gone after `room` bytes.
    struct Pipe {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(self.kind.into());
            }
            let n = b.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_ends_the_run_quietly() {
        let input = "x\n".repeat(100_000);
        let mut seen = 0u64;
        let pipe = Pipe {
            room: 10,
            kind: io::ErrorKind::BrokenPipe,
        };
        let outcome = run(input.as_bytes(), pipe, KEEP_GOING, |n, t, b| {
            seen = n;
            upper(n, t, b)
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Closed);
        // Stopped once the buffer had to be written, long before the end of the input.
        assert!(seen < 20_000, "read {seen} lines after stdout closed");
        // At the final flush too.
        let pipe = Pipe {
            room: 1,
            kind: io::ErrorKind::BrokenPipe,
        };
        assert_eq!(
            run(&b"a\nb\n"[..], pipe, KEEP_GOING, upper).unwrap(),
            Outcome::Closed
        );
    }

    #[test]
    fn other_write_errors_concern_the_whole_run() {
        let pipe = Pipe {
            room: 1,
            kind: io::ErrorKind::StorageFull,
        };
        let e = run(&b"a\nb\n"[..], pipe, KEEP_GOING, upper).unwrap_err();
        assert!(e.to_string().contains("cannot write to stdout"), "{e:#}");
    }
}
