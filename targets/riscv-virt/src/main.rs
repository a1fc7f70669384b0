//! microbert on bare-metal riscv64 with the vector extension (qemu `virt`, M-mode).
//!
//! Embeds [`TEXT`] with `microbert_riscv::RvvKernels` (RVV 1.0 `asm!` kernels, bit-exact with
//! the scalar reference) and prints on the virt board's 16550 UART the pooled vector's hash
//! (16 hex digits), the pooled Q.16 vector and the peak stack, then stops qemu through the
//! SiFive test device with status 0 (1 on any error, trap or panic).
//! `cargo xtask firmware` compares the hash with the host CLI's on the same blob.
//!
//! No runtime crate: `_start` (below) sets the stack and global pointer, turns on the FPU
//! and vector unit in `mstatus` (vector instructions trap while `mstatus.VS` is Off), zeroes
//! `.bss` and calls [`main`]. The blob is `include_bytes!`-ed into the image; the scratch
//! arena is a `static` in `.bss` handed out once by `static_cell::ConstStaticCell` (no heap,
//! no `static mut`). Peak stack: the stack is painted at entry and scanned at the end.
#![no_std]
#![no_main]

use core::fmt::{self, Write as _};
use static_cell::ConstStaticCell;

mod consts {
    include!(concat!(env!("OUT_DIR"), "/model_consts.rs"));
}
use consts::{ARENA_BYTES, HIDDEN};

/// Longest token sequence accepted; the arena is sized for it by `build.rs`.
const MAX_TOKENS: usize = 128;
const _: () = assert!(
    MAX_TOKENS == consts::BUILD_MAX_TOKENS,
    "keep build.rs in step"
);

/// The sentence (the same as the Cortex-M firmware's; printed as `text:`).
const TEXT: &str =
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.";

static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.blob"));

#[repr(C, align(8))]
struct Arena([u8; ARENA_BYTES]);
static ARENA: ConstStaticCell<Arena> = ConstStaticCell::new(Arena([0; ARENA_BYTES]));

core::arch::global_asm!(
    r#"
    .section .text.start, "ax"
    .global _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, _stack_start
    la t0, trap_entry
    csrw mtvec, t0
    /* mstatus.FS = Initial (bit 13), mstatus.VS = Initial (bit 9). */
    li t0, (1 << 13) | (1 << 9)
    csrs mstatus, t0
    la t0, _sbss
    la t1, _ebss
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  call main
3:  j 3b

    .align 4
trap_entry:
    la sp, _stack_start
    csrr a0, mcause
    csrr a1, mepc
    csrr a2, mtval
    call trap
4:  j 4b
"#
);

/// The virt board's NS16550A UART (transmit holding register at offset 0).
struct Uart;
const UART: usize = 0x1000_0000;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: the UART's transmit register is a device register at a fixed address on
            // qemu virt; a byte write sends one character (qemu needs no FIFO polling).
            unsafe { core::ptr::write_volatile(UART as *mut u8, b) };
        }
        Ok(())
    }
}

macro_rules! println {
    ($($t:tt)*) => {{ let _ = writeln!(Uart, $($t)*); }};
}

/// Stops qemu through the SiFive test device (0x10_0000) with `code`.
fn exit(code: u32) -> ! {
    let value = if code == 0 {
        0x5555
    } else {
        (code << 16) | 0x3333
    };
    // SAFETY: the test device is a fixed-address device register on qemu virt.
    unsafe { core::ptr::write_volatile(0x10_0000 as *mut u32, value) };
    #[allow(clippy::empty_loop)]
    loop {}
}

#[unsafe(no_mangle)]
extern "C" fn main() -> ! {
    let painted = stack::paint();
    let status = match run() {
        Ok(()) => 0,
        Err(e) => {
            println!("error: {e}");
            1
        }
    };
    let peak = stack::peak();
    println!("stack: peak {peak} bytes (painted {painted} bytes below the entry frame)");
    exit(status)
}

#[unsafe(no_mangle)]
extern "C" fn trap(mcause: usize, mepc: usize, mtval: usize) -> ! {
    println!("trap: mcause {mcause:#x} mepc {mepc:#x} mtval {mtval:#x}");
    exit(2)
}

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
    let kernels = microbert_riscv::RvvKernels::new();
    println!(
        "microbert riscv64 virt: {} kernels",
        microbert::Kernels::name(&kernels)
    );
    let model = microbert::parse(BLOB).map_err(Error::Blob)?;
    println!(
        "model: {} layers, hidden {}, vocab {}, blob {} bytes",
        model.config.num_hidden_layers,
        model.config.hidden_size,
        model.config.vocab_size,
        BLOB.len()
    );
    let mut ids = [0u32; MAX_TOKENS];
    let enc = microbert::Tokenizer::new(&model)
        .encode(TEXT, &mut ids)
        .map_err(Error::Tokenize)?;
    println!("text: {TEXT}");
    println!("tokens: {}", enc.len);
    let arena = &mut ARENA.take().0;
    println!(
        "arena: {ARENA_BYTES} bytes static (scratch for {MAX_TOKENS} tokens), {} needed for this text",
        microbert::scratch_bytes(&model, enc.len)
    );
    let mut pooled = [0i32; HIDDEN];
    microbert::Encoder::new(&model, kernels)
        .embed(&ids[..enc.len], arena, &mut pooled)
        .map_err(Error::Run)?;
    println!("hash: {:016x}", microbert::output::hash(&pooled));
    let _ = write!(Uart, "pooled (Q.16, {HIDDEN}):");
    for v in pooled {
        let _ = write!(Uart, " {v}");
    }
    println!();
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    exit(1)
}

/// Stack painting, as in the Cortex-M firmware.
mod stack {
    const PAINT: u64 = 0xC0DE_5EED_C0DE_5EED;
    const MARGIN: usize = 512;

    unsafe extern "C" {
        static _stack_start: u64;
        static _stack_end: u64;
    }

    fn bounds() -> (usize, usize) {
        (
            core::ptr::addr_of!(_stack_end) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    fn sp() -> usize {
        let sp: usize;
        // SAFETY: reads the stack pointer register only.
        unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
        sp
    }

    pub(crate) fn paint() -> usize {
        let (low, _) = bounds();
        let high = (sp() - MARGIN) & !7;
        let mut p = low;
        while p < high {
            // SAFETY: `[_stack_end, sp - MARGIN)` is the linker script's stack region below
            // every live frame; no Rust object lives there.
            unsafe { core::ptr::write_volatile(p as *mut u64, PAINT) };
            p += 8;
        }
        high.saturating_sub(low)
    }

    pub(crate) fn peak() -> usize {
        let (low, top) = bounds();
        let mut p = low;
        // SAFETY: aligned reads inside the stack region.
        while p < top && unsafe { core::ptr::read_volatile(p as *const u64) } == PAINT {
            p += 8;
        }
        top - p
    }
}
