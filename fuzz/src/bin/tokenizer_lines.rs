//! Fuzz target `tokenizer_lines`: arbitrary bytes through the batch CLI's line decoding
//! (`microbert_host::lines::Lines`, what `microbert embed` and `tokenize` read stdin with),
//! then the fixture's tokenizer on every line that decodes.
//!
//! The first byte picks the line-length limit (the default 16 MiB, or 0 to 64 bytes), the
//! second the capacity of the `BufReader` in front of it (1 to 64 bytes, or 8 KiB), so
//! lines cross buffer refills; the rest is the input. Checked against an independent
//! oracle written from the contract in `targets/host/src/lines.rs`:
//! - the input split on `\n` (a final line without `\n` is a line, empty input has none)
//!   gives exactly one item per line, numbered from 1, in order;
//! - a line longer than the limit (bytes before the `\n`, a `\r` included) is
//!   `TooLong { len, limit }` with its full length; otherwise one `\r` before the `\n` is
//!   stripped and the line is the text, or `InvalidUtf8 { valid_up_to }`;
//! - the lines after a bad one are still read; reading a slice never fails;
//! - every text line passes [`microbert_fuzz::tokens::check`] with the fixture's tokenizer.
#![no_main]

use microbert::Tokenizer;
use microbert_fuzz::{Input, fixture, tokens};
use microbert_host::lines::{LineError, Lines, MAX_LINE_BYTES};
use std::io::BufReader;

/// What the contract says line by line.
fn expected(data: &[u8], limit: usize) -> Vec<Result<&str, LineError>> {
    if data.is_empty() {
        return Vec::new();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&b| b == b'\n')
        .map(|raw| {
            if raw.len() > limit {
                return Err(LineError::TooLong {
                    len: raw.len() as u64,
                    limit,
                });
            }
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            core::str::from_utf8(line).map_err(|e| LineError::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            })
        })
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let limit = match input.byte() {
        0..=127 => MAX_LINE_BYTES,
        b => usize::from(b % 65),
    };
    let capacity = match input.byte() {
        0..=127 => 8 << 10,
        b => 1 + usize::from(b % 64),
    };
    let bytes = input.rest();
    let want = expected(bytes, limit);
    let model = fixture::model();
    let tokenizer = Tokenizer::new(model);
    let mut lines = Lines::with_limit(BufReader::with_capacity(capacity, bytes), limit);
    let mut count = 0usize;
    while let Some((number, got)) = lines.next_line().expect("reading a slice never fails") {
        count += 1;
        assert_eq!(number, count as u64, "line numbers count from 1 in order");
        let Some(want) = want.get(count - 1) else {
            panic!("line {number} past the {} lines of the input", want.len());
        };
        assert_eq!(
            &got, want,
            "line {number} (limit {limit}, buffer {capacity})"
        );
        if let Ok(text) = got {
            let seed = number.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ data.len() as u64;
            tokens::check(
                &tokenizer,
                model.tokenizer.as_ref(),
                model.config.vocab_size,
                text,
                seed,
            );
        }
    }
    assert_eq!(count, want.len(), "lines out vs lines in");
    assert_eq!(lines.count(), count as u64, "Lines::count");
});
