//! microbert on a Cortex-M4F (and, built by `targets/cortex-m55`, on a Cortex-M55), bare
//! metal: no heap, no OS, no floating point in inference.
//!
//! Embeds `app::TEXT` with the DSP kernels of `microbert-cortex-m-kernels` (feature `dsp`,
//! the default; the runtime's scalar reference without it) and prints, over semihosting, the
//! pooled vector's hash (`microbert::output::hash`, 16 hex digits), the pooled Q.16 vector,
//! the arena size and the peak stack, then exits with status 0 (1 on any error). With a blob
//! that has a sequence classifier (`cargo xtask firmware`'s bert-tiny carries a sentiment
//! head) it also classifies `app::REVIEWS` and prints their integer logits and labels.
//! `cargo xtask firmware` builds it, runs it under `qemu-system-arm -machine mps2-an386` and
//! compares the hash and the logits with the host CLI's on the same blob. With feature `icount` it also
//! counts the embedding's instructions (SysTick under `qemu -icount shift=0`, see
//! `firmware-common/icount.rs`; `profile` and `sweep` add a per-kernel breakdown and longer
//! texts).
//!
//! Memory:
//! - the model blob is `include_bytes!`-ed into flash (`.rodata`) and parsed zero-copy;
//! - the scratch arena is one `static` in `.bss`, handed out once as `&'static mut` by a
//!   `static_cell::ConstStaticCell` (no `static mut`, no heap, no `unsafe` for it; a second
//!   `take` would panic). Its size is `PLAN.arena_bytes()`, a `const fn` of the model's
//!   dimensions and `MAX_TOKENS` (no build script parses the blob). Keeping it out of the
//!   stack keeps the stack small
//!   and makes both show up separately in the memory report;
//! - token ids and the pooled vector are small arrays on the stack.
//!
//! Peak stack is measured by painting: at entry every word between the end of static RAM
//! (`_stack_end`) and a little below the current stack pointer is filled with
//! [`stack::PAINT`]; after the embedding the lowest overwritten word gives the deepest the
//! stack went.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio, hprintln};

#[cfg(feature = "defmt")]
use defmt_semihosting as _;

/// What the scratch arena is declared for: bert-tiny with the vocabulary `cargo xtask
/// firmware` keeps (`--keep-vocab 20000`) (hidden, heads, intermediate, vocabulary), up to
/// `app::MAX_TOKENS` tokens, with the int16 and uint8 dense inputs of the calibrated
/// numerics (the recipes' default) and the task heads' input row (the blob's sentiment
/// classifier, `Encoder::classify`). The application checks the blob against it.
const PLAN: microbert::Plan =
    microbert::Plan::new(microbert::Dims::new(128, 2, 512, 20_000), app::MAX_TOKENS)
        .with_int16_inputs()
        .with_uint8_inputs()
        .with_heads();

#[path = "../../firmware-common/app.rs"]
mod app;

#[cfg(feature = "icount")]
#[path = "../../firmware-common/icount.rs"]
mod icount;

/// The kernels of this build: DSP (`dsp`) or Helium (`mve`, the Cortex-M55 package), else
/// the scalar reference.
#[cfg(any(feature = "dsp", feature = "mve"))]
const KERNELS: microbert_cortex_m_kernels::CortexMKernels =
    microbert_cortex_m_kernels::CortexMKernels::new();
#[cfg(not(any(feature = "dsp", feature = "mve")))]
const KERNELS: microbert::Scalar = microbert::Scalar;

/// The board, from the package that builds this program (`targets/cortex-m` or
/// `targets/cortex-m55`, which shares it).
const BOARD: &str = match env!("CARGO_PKG_NAME").as_bytes() {
    b"microbert-cortex-m55" => "cortex-m55",
    _ => "cortex-m4f",
};

#[entry]
fn main() -> ! {
    #[cfg(feature = "icount")]
    let counting = cortex_m::Peripherals::take().map(|p| {
        icount::start(p.SYST);
        app::Counting {
            counter: icount::counter(),
            profile: cfg!(feature = "profile"),
            sweep: cfg!(feature = "sweep"),
            check: cfg!(feature = "check"),
        }
    });
    #[cfg(not(feature = "icount"))]
    let counting = None;
    let status = match hio::hstdout() {
        Ok(mut console) => {
            let (status, _hash) = app::main_counted(KERNELS, BOARD, &mut console, counting);
            #[cfg(feature = "defmt")]
            match _hash {
                Some(hash) => defmt::info!("hash {=u64:016x}", hash),
                None => defmt::error!("embedding failed"),
            }
            status
        }
        Err(()) => 1,
    };
    debug::exit(if status == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[path = "../../firmware-common/stack.rs"]
mod stack;
