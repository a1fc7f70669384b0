//! TODO(fuzz target `tokenizer_lines`, not built yet): arbitrary bytes through the CLI's
//! line decoding, then the tokenizer.
//!
//! Waits for `microbert_host::lines` (the batch CLI's line reader, being written on another
//! branch for issue 9 item 3). This file lives outside `src/bin/`, so Cargo does not build
//! it and `cargo xtask fuzz` does not list it. To wire it in: move it to
//! `fuzz/src/bin/tokenizer_lines.rs`, replace the body below with the real reader, and
//! check at least:
//! - one decoded item per input line, in order (N lines in, N items out, also for a last
//!   line without `\n`, `\r\n` endings and empty lines);
//! - an invalid-UTF-8 line is an error item carrying its 1-based line number, and the lines
//!   after it are still decoded;
//! - every valid line tokenizes under `microbert_fuzz::tokens::check`, and its ids equal
//!   those of the same line given to the tokenizer directly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // for (number, line) in microbert_host::lines::Lines::new(data).enumerate() { ... }
    let _ = data;
    unimplemented!("waits for microbert_host::lines");
});
