//! microbert on a Cortex-M4F, bare metal: no heap, no OS, no floating point in inference.
//!
//! Embeds [`TEXT`] with the runtime's scalar kernels and prints, over semihosting, the
//! pooled vector's hash (`microbert::output::hash`, 16 hex digits), the pooled Q.16 vector,
//! the arena size and the peak stack, then exits with status 0 (1 on any error).
//! `cargo xtask firmware` builds it, runs it under `qemu-system-arm -machine mps2-an386` and
//! compares the hash with the host CLI's on the same blob.
//!
//! Memory:
//! - the model blob is `include_bytes!`-ed into flash (`.rodata`) and parsed zero-copy;
//! - the scratch arena is one `static` in `.bss`, handed out once as `&'static mut` by a
//!   `static_cell::ConstStaticCell` (no `static mut`, no heap, no `unsafe` for it; a second
//!   `take` would panic). Its size is computed by `build.rs` with the runtime itself:
//!   `scratch_bytes(model, MAX_TOKENS)`. Keeping it out of the stack keeps the stack small
//!   and makes both show up separately in the memory report;
//! - token ids and the pooled vector are small arrays on the stack.
//!
//! Peak stack is measured by painting: at entry every word between the end of static RAM
//! (`_stack_end`) and a little below the current stack pointer is filled with
//! [`stack::PAINT`]; after the embedding the lowest overwritten word gives the deepest the
//! stack went.
#![no_std]
#![no_main]

use core::fmt;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use static_cell::ConstStaticCell;

#[cfg(feature = "defmt")]
use defmt_semihosting as _;

/// Constants the build script derived from the blob.
mod consts {
    include!(concat!(env!("OUT_DIR"), "/model_consts.rs"));
}
use consts::{ARENA_BYTES, HIDDEN};

/// Longest token sequence accepted, `[CLS]` and `[SEP]` included (longer texts are
/// truncated by the tokenizer). The arena is sized for it by `build.rs`.
const MAX_TOKENS: usize = 128;
const _: () = assert!(
    MAX_TOKENS == consts::BUILD_MAX_TOKENS,
    "keep build.rs in step"
);

/// The sentence the firmware embeds (printed as `text:` so the host side uses the same).
const TEXT: &str =
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.";

/// The model, in flash.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.blob"));

/// The scratch arena: 4-byte aligned as `microbert::scratch_bytes` asks.
#[repr(C, align(4))]
struct Arena([u8; ARENA_BYTES]);

/// All zero, so it lands in `.bss` (zeroed by cortex-m-rt's reset handler, no flash image).
static ARENA: ConstStaticCell<Arena> = ConstStaticCell::new(Arena([0; ARENA_BYTES]));

#[entry]
fn main() -> ! {
    let painted = stack::paint();
    let status = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
            #[cfg(feature = "defmt")]
            defmt::error!("embedding failed");
            debug::EXIT_FAILURE
        }
    };
    let peak = stack::peak();
    hprintln!(
        "stack: peak {} bytes (painted {} bytes below the entry frame)",
        peak,
        painted
    );
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Everything that can fail, for one message.
enum Error {
    Blob(microbert::BlobError),
    Tokenize(microbert::TokenizeError),
    Run(microbert::RunError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "blob: {e}"),
            Self::Tokenize(e) => write!(f, "tokenizer: {e}"),
            Self::Run(e) => write!(f, "encoder: {e}"),
        }
    }
}

fn run() -> Result<(), Error> {
    hprintln!("microbert cortex-m4f: scalar kernels");
    let model = microbert::parse(BLOB).map_err(Error::Blob)?;
    hprintln!(
        "model: {} layers, hidden {}, vocab {}, blob {} bytes in flash",
        model.config.num_hidden_layers,
        model.config.hidden_size,
        model.config.vocab_size,
        BLOB.len()
    );
    let mut ids = [0u32; MAX_TOKENS];
    let enc = microbert::Tokenizer::new(&model)
        .encode(TEXT, &mut ids)
        .map_err(Error::Tokenize)?;
    hprintln!("text: {}", TEXT);
    hprintln!(
        "tokens: {}{}",
        enc.len,
        if enc.truncated { " (truncated)" } else { "" }
    );

    let arena = &mut ARENA.take().0;
    hprintln!(
        "arena: {} bytes static (scratch for {} tokens), {} needed for this text",
        ARENA_BYTES,
        MAX_TOKENS,
        microbert::scratch_bytes(&model, enc.len)
    );
    let mut pooled = [0i32; HIDDEN];
    microbert::Encoder::new(&model, microbert::Scalar)
        .embed(&ids[..enc.len], arena, &mut pooled)
        .map_err(Error::Run)?;

    let hash = microbert::output::hash(&pooled);
    hprintln!("hash: {:016x}", hash);
    #[cfg(feature = "defmt")]
    defmt::info!("hash {=u64:016x}", hash);
    hprint!("pooled (Q.16, {}):", HIDDEN);
    for v in pooled {
        hprint!(" {}", v);
    }
    hprintln!();
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Stack painting (see the crate docs).
mod stack {
    /// The paint.
    pub(crate) const PAINT: u32 = 0xC0DE_5EED;
    /// Left unpainted below the stack pointer at entry, for the painting loop's own frame.
    const MARGIN: usize = 256;

    unsafe extern "C" {
        /// Top of the stack (cortex-m-rt: end of RAM).
        static _stack_start: u32;
        /// Lowest address the stack may reach (cortex-m-rt: end of `.bss` / `.uninit`).
        static _stack_end: u32;
    }

    fn bounds() -> (usize, usize) {
        // Only the addresses of the linker symbols are taken, never their values.
        (
            core::ptr::addr_of!(_stack_end) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    /// Paints `[_stack_end, sp - MARGIN)`; returns the bytes painted.
    pub(crate) fn paint() -> usize {
        let (low, _) = bounds();
        let sp = cortex_m::register::msp::read() as usize;
        let high = (sp - MARGIN) & !3;
        let mut p = low;
        while p < high {
            // SAFETY: `[_stack_end, sp - MARGIN)` is RAM that cortex-m-rt reserves for the
            // stack and that no frame uses yet (the stack grows down from `sp`, and this
            // function's own frame lies above `sp - MARGIN`); no Rust object lives there.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
        high.saturating_sub(low)
    }

    /// Bytes between the top of the stack and the lowest word that no longer holds the paint.
    pub(crate) fn peak() -> usize {
        let (low, top) = bounds();
        let mut p = low;
        // SAFETY: reads of aligned words inside the RAM region reserved for the stack.
        while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        top - p
    }
}
