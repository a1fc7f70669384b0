//! Shared harness of microbert's libFuzzer targets (`fuzz/src/bin/*.rs`, one file per
//! target): the compiled-in fixture model, the input decoders and the invariants every
//! target checks. A check that fails panics with a message saying which invariant broke,
//! which libFuzzer reports as a crash and saves as a reproducer.
//!
//! | module | what |
//! |---|---|
//! | [`input`] | the fuzz input read as a stream of choices (exhausted input gives 0, the first choice, `false`) |
//! | [`fixture`] | the tiny committed model (`models/fixtures/tiny/model.blob`), compiled in, and its section boundaries |
//! | [`header`] | an independent oracle of the header checks (length, magic, version, total length, FNV-1a) |
//! | [`oracle`] | the expected outcome of an encoder call, and the scratch size in `u128` |
//! | [`check`] | the invariants on a parsed model: runs, determinism, AVX2 == scalar, scratch sizes |
//! | [`tokens`] | tokenizer invariants, and vocabularies built in the harness |
//! | [`synth`] | structure-aware blobs: arbitrary configs and tensors, at most one known defect |
//!
//! Build and run: `cargo xtask fuzz --seconds N [--target T]` (the recipe, the flags and
//! the corpus layout are in `fuzz/README.md` and `xtask/src/fuzz.rs`).
//!
//! Adding a target is one file: `fuzz/src/bin/NAME.rs` with `#![no_main]` and
//! `libfuzzer_sys::fuzz_target!(|data: &[u8]| ...)`, using the helpers here. Cargo
//! discovers it, `cargo xtask fuzz` lists `src/bin/` to find it and keeps its corpus in
//! `fuzz/corpus/NAME/`.

pub mod check;
pub mod fixture;
pub mod header;
pub mod input;
pub mod oracle;
pub mod synth;
pub mod tokens;

pub use input::Input;

use microbert::blob::Header;

/// A blob made of `body` behind a freshly computed header (length and checksum), the way
/// a writer seals it: random edits of the body then get past the checksum into the
/// section decoders and validators.
pub fn seal(body: &[u8]) -> Vec<u8> {
    seal_version(microbert::blob::FORMAT_VERSION, body)
}

/// [`seal`] with another format version in the header (1: the legacy layout).
pub fn seal_version(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Header::seal_version(version, body).to_vec();
    out.extend_from_slice(body);
    out
}

/// A scratch arena of `len` bytes that starts `offset % REGION_ALIGN` bytes past a
/// `REGION_ALIGN`-byte boundary, every byte set to `fill` (so a run that read scratch it
/// never wrote would differ between two fills). The runtime takes an arena at any address
/// and aligns its regions itself; the start residue is a fuzzed choice.
pub struct Arena {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Arena {
    /// A new arena.
    pub fn new(offset: usize, len: usize, fill: u8) -> Self {
        let align = microbert::model::scratch::REGION_ALIGN;
        let bytes = vec![fill; len + align];
        let base = bytes.as_ptr().addr() % align;
        let start = (offset % align + align - base) % align;
        Self { bytes, start, len }
    }

    /// The arena's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        let (start, len) = (self.start, self.len);
        &mut self.bytes[start..start + len]
    }
}

/// An input byte string as lossy UTF-8 (every input is used, none rejected).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
