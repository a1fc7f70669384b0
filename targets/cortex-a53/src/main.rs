//! microbert on a bare-metal Cortex-A53 (qemu `virt`, AArch64 EL1, NEON).
//!
//! Embeds `app::TEXT` with MiniLM and `microbert_cortex_a::NeonKernels` (bit-exact with the
//! scalar reference) and prints on the virt board's PL011 UART the pooled vector's hash
//! (16 hex digits), the pooled Q.16 vector and the peak stack, then exits qemu through
//! semihosting (`SYS_EXIT`) with status 0 (1 on any error, 2 on an exception, 1 on panic).
//! With a blob that has a sequence classifier (`cargo xtask firmware` gives it
//! `minilm-sentiment.blob`) it also classifies `app::REVIEWS` (integer logits and labels).
//! `cargo xtask firmware` compares the hash and the logits with the host CLI's on the same
//! blob.
//!
//! No runtime crate: `_start` (below) sets the stack, enables FP/NEON (`CPACR_EL1`), installs
//! an exception vector table that reports and exits, turns the MMU on with an identity map
//! (one level-1 table of 1 GB blocks: device memory below 0x4000_0000, normal write-back
//! memory for DRAM; with the MMU off every access would be Device memory), zeroes `.bss`
//! and calls [`main`]. The blob is `include_bytes!`-ed into the image; the scratch arena is a
//! `static` in `.bss` handed out once by `static_cell::ConstStaticCell` (no heap, no
//! `static mut`). Peak stack: the stack is painted at entry and scanned at the end.
#![no_std]
#![no_main]

use core::fmt::{self, Write as _};

/// What the scratch arena is declared for: all-MiniLM-L6-v2 (hidden, heads, intermediate,
/// vocabulary), up to `app::MAX_TOKENS` tokens, with the int16 and uint8 dense inputs of the
/// calibrated numerics (the recipes' default) and the task heads' input row (the sentiment
/// classifier of `minilm-sentiment.blob`, `Encoder::classify`). The application checks the
/// blob against it.
const PLAN: microbert::Plan =
    microbert::Plan::new(microbert::Dims::new(384, 12, 1536, 30_522), app::MAX_TOKENS)
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
    ldr x0, =_stack_start
    mov sp, x0
    mov x0, #(3 << 20)
    msr cpacr_el1, x0
    isb
    adr x0, vectors
    msr vbar_el1, x0
    /* Identity map, level-1 1 GB blocks: [0] device nGnRnE (attr 0), [1] normal WB (attr 1). */
    adrp x1, _l1_table
    mov x2, #0x401
    str x2, [x1]
    ldr x2, =0x40000705
    str x2, [x1, #8]
    msr ttbr0_el1, x1
    mov x2, #0xff00
    msr mair_el1, x2
    /* T0SZ 25 (39-bit VA, walk starts at level 1), inner/outer WB, inner shareable,
       4 KB granule, no TTBR1 walks, 36-bit PA. */
    ldr x2, =(25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 32))
    msr tcr_el1, x2
    isb
    dsb sy
    tlbi vmalle1
    dsb sy
    isb
    mrs x2, sctlr_el1
    orr x2, x2, #1
    orr x2, x2, #(1 << 2)
    orr x2, x2, #(1 << 12)
    bic x2, x2, #(1 << 1)
    msr sctlr_el1, x2
    isb
    ldr x0, =_sbss
    ldr x1, =_ebss
1:  cmp x0, x1
    b.hs 2f
    str xzr, [x0], #8
    b 1b
2:  bl main
3:  b 3b

    .balign 2048
vectors:
    .rept 16
    .balign 128
    b trap_entry
    .endr
trap_entry:
    ldr x0, =_stack_start
    mov sp, x0
    mrs x0, esr_el1
    mrs x1, elr_el1
    mrs x2, far_el1
    bl trap
4:  b 4b
    .ltorg
"#
);

/// The virt board's PL011 UART (data register at offset 0).
struct Uart;
const UART: usize = 0x0900_0000;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: the PL011 data register is a device register at a fixed address on qemu
            // virt (identity-mapped as device memory); a byte write sends one character.
            unsafe { core::ptr::write_volatile(UART as *mut u8, b) };
        }
        Ok(())
    }
}

macro_rules! println {
    ($($t:tt)*) => {{ let _ = writeln!(Uart, $($t)*); }};
}

/// Stops qemu with `code` through semihosting `SYS_EXIT` (`ADP_Stopped_ApplicationExit`).
fn exit(code: u32) -> ! {
    let block: [u64; 2] = [0x2_0026, u64::from(code)];
    // SAFETY: the semihosting trap (`hlt #0xf000`, qemu's `-semihosting`) reads the two-word
    // parameter block and ends the emulation; nothing in Rust's state is touched.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

#[unsafe(no_mangle)]
extern "C" fn main() -> ! {
    let (status, _) = app::main(
        microbert_cortex_a::NeonKernels::new(),
        "cortex-a53 virt",
        &mut Uart,
    );
    exit(status)
}

#[unsafe(no_mangle)]
extern "C" fn trap(esr: usize, elr: usize, far: usize) -> ! {
    println!("exception: ESR_EL1 {esr:#x} ELR_EL1 {elr:#x} FAR_EL1 {far:#x}");
    exit(2)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    exit(1)
}

#[path = "../../firmware-common/stack.rs"]
mod stack;
