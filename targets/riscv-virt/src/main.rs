//! microbert on bare-metal riscv64 with the vector extension (qemu `virt`, M-mode).
//!
//! Embeds `app::TEXT` with `microbert_riscv::RvvKernels` (RVV 1.0 `asm!` kernels, bit-exact with
//! the scalar reference) and prints on the virt board's 16550 UART the pooled vector's hash
//! (16 hex digits), the pooled Q.16 vector and the peak stack, then stops qemu through the
//! SiFive test device with status 0 (1 on any error, trap or panic). With a blob that has a
//! sequence classifier it also classifies `app::REVIEWS` (integer logits and labels).
//! `cargo xtask firmware` compares the hash and the logits with the host CLI's on the same
//! blob.
//!
//! No runtime crate: `_start` (below) sets the stack and global pointer, turns on the FPU
//! and vector unit in `mstatus` (vector instructions trap while `mstatus.VS` is Off), zeroes
//! `.bss` and calls [`main`]. The blob is `include_bytes!`-ed into the image; the scratch
//! arena is a `static` in `.bss` handed out once by `static_cell::ConstStaticCell` (no heap,
//! no `static mut`). Peak stack: the stack is painted at entry and scanned at the end.
#![no_std]
#![no_main]

use core::fmt::{self, Write as _};

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
    let (status, _) = app::main(
        microbert_riscv::RvvKernels::new(),
        "riscv64 virt",
        &mut Uart,
    );
    exit(status)
}

#[unsafe(no_mangle)]
extern "C" fn trap(mcause: usize, mepc: usize, mtval: usize) -> ! {
    println!("trap: mcause {mcause:#x} mepc {mepc:#x} mtval {mtval:#x}");
    exit(2)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    exit(1)
}

#[path = "../../firmware-common/stack.rs"]
mod stack;
