//! The application every firmware example runs, shared by `targets/cortex-m`,
//! `targets/riscv-virt` and `targets/cortex-a53` (each includes this file with `#[path]` and
//! adds its board's start-up, console, exit and stack painting).
//!
//! It embeds [`TEXT`] with the blob in flash and the scratch arena in `.bss`, and prints the
//! lines `cargo xtask firmware` reads: `text:`, `tokens:`, `arena:`, `hash:` (FNV-1a 64 of
//! the pooled Q.16 vector, as `microbert embed --hash`), and the pooled vector itself.
//!
//! Memory: the model blob is `include_bytes!`-ed into the image (`.rodata`) and parsed
//! zero-copy; the arena is one `static` `microbert::Arena` handed out once as
//! `&'static mut` by a `static_cell::ConstStaticCell` (no `static mut`, no heap, no
//! `unsafe`). Its size is a `const fn` of the board's declared plan (`crate::PLAN`: the
//! model's dimensions and [`MAX_TOKENS`]), so no build script has to parse the blob; at run
//! time `Plan::check` confirms the blob fits what was declared.

use core::fmt::{self, Write};
use microbert::{Arena, Plan};
use static_cell::ConstStaticCell;

/// Longest token sequence accepted, `[CLS]` and `[SEP]` included (longer texts are
/// truncated by the tokenizer). The board's `PLAN` sizes the arena for it.
pub(crate) const MAX_TOKENS: usize = 128;

/// Hidden width (length of the pooled vector) of the declared plan.
const HIDDEN: usize = crate::PLAN.dims().hidden;
/// Bytes of the static arena.
const ARENA_BYTES: usize = crate::PLAN.arena_bytes();
const _: () = assert!(crate::PLAN.tokens() == MAX_TOKENS, "the plan's token count");

/// The sentence the firmware embeds (printed as `text:` so the host side uses the same).
pub(crate) const TEXT: &str =
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.";

/// The model, in flash.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.blob"));

/// The scratch arena. All zero, so it lands in `.bss` (zeroed at start-up, no image bytes).
static ARENA: ConstStaticCell<Arena<ARENA_BYTES>> = ConstStaticCell::new(Arena::new());

/// Everything that can fail, for one message: the runtime's error or the console.
pub(crate) enum Error {
    Microbert(microbert::Error),
    Console,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Microbert(e) => write!(f, "{e}"),
            Self::Console => f.write_str("console write failed"),
        }
    }
}

impl From<microbert::BlobError> for Error {
    fn from(e: microbert::BlobError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<microbert::TokenizeError> for Error {
    fn from(e: microbert::TokenizeError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<microbert::RunError> for Error {
    fn from(e: microbert::RunError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<fmt::Error> for Error {
    fn from(_: fmt::Error) -> Self {
        Self::Console
    }
}

/// The whole firmware run: paints the stack, embeds [`TEXT`], prints any error and the
/// peak stack; returns the exit status (0, or 1 after an error) and the hash.
pub(crate) fn main<K: microbert::Kernels>(
    kernels: K,
    board: &str,
    out: &mut impl Write,
) -> (u32, Option<u64>) {
    let painted = crate::stack::paint();
    let (status, hash) = match run(kernels, board, out) {
        Ok(hash) => (0, Some(hash)),
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            (1, None)
        }
    };
    let peak = crate::stack::peak();
    let _ = writeln!(
        out,
        "stack: peak {peak} bytes (painted {painted} bytes below the entry frame)"
    );
    (status, hash)
}

/// Embeds [`TEXT`] with `kernels` on `board`, printing to `out`; returns the hash.
pub(crate) fn run<K: microbert::Kernels>(
    kernels: K,
    board: &str,
    out: &mut impl Write,
) -> Result<u64, Error> {
    writeln!(out, "microbert {board}: {} kernels", kernels.name())?;
    let model = microbert::parse(BLOB)?;
    writeln!(
        out,
        "model: {} layers, hidden {}, vocab {}, blob {} bytes",
        model.config.num_hidden_layers,
        model.config.hidden_size,
        model.config.vocab_size,
        BLOB.len()
    )?;
    let mut ids = [0u32; MAX_TOKENS];
    let enc = microbert::Tokenizer::new(&model).encode(TEXT, &mut ids)?;
    writeln!(out, "text: {TEXT}")?;
    let truncated = if enc.truncated { " (truncated)" } else { "" };
    writeln!(out, "tokens: {}{truncated}", enc.len)?;
    // The blob must fit the plan the arena was declared for.
    crate::PLAN.check(&Plan::for_model(&model, MAX_TOKENS))?;
    let arena = ARENA.take().bytes();
    writeln!(
        out,
        "arena: {ARENA_BYTES} bytes static (scratch for {MAX_TOKENS} tokens), {} needed for this text",
        microbert::scratch_bytes(&model, enc.len)
    )?;
    let mut pooled = [0i32; HIDDEN];
    microbert::Encoder::new(&model, kernels).embed(&ids[..enc.len], arena, &mut pooled)?;
    let hash = microbert::output::hash(&pooled);
    writeln!(out, "hash: {hash:016x}")?;
    write!(out, "pooled (Q.16, {HIDDEN}):")?;
    for v in pooled {
        write!(out, " {v}")?;
    }
    writeln!(out)?;
    Ok(hash)
}
