//! The DSP micro-kernel: 4 rows x 1 output channel over 16 depths per iteration.
//!
//! Operands per 4 depths `k..k+4`:
//! - the weights: one `LDR` of 4 int8 bytes `b0 b1 b2 b3` straight from flash (any
//!   alignment: Armv7-M `LDR` reads unaligned words), split by `SXTB16` into the even pair
//!   `[b0, b2]` and, rotated by 8, the odd pair `[b1, b3]` (two sign-extended halfwords);
//! - the activations of the 4 rows, already widened by the caller into a panel of 16-bit
//!   pairs in the same order: per row an even word `[a0, a2]` and an odd word `[a1, a3]`,
//!   the 4 rows' 8 words contiguous, so two `LDM` of 4 registers fetch them;
//! - `SMLAD acc, even_w, even_a, acc` adds `b0 a0 + b2 a2`, the odd pair `b1 a1 + b3 a3`.
//!
//! Per 16 depths (64 multiply-accumulates): 4 `LDR`, 8 `SXTB16`, 8 `LDM`, 32 `SMLAD`, `SUBS`
//! and `BNE`: 54 instructions, 1.19 MAC per instruction. `SMLAD` adds modulo 2^32 (it only
//! sets the Q flag on overflow), as the scalar i32 sum does.
//!
//! Registers: r0 panel, r1 weights, r2 iterations, r3 even weights, r4-r7 the 4 rows'
//! accumulators, r8 odd weights, r9-r12 activation words; the accumulators' address is kept
//! on the stack during the loop.

/// One 4-depth step: `LDR` the weights, split them, 2 `LDM` of activation words, 8 `SMLAD`.
macro_rules! step {
    () => {
        concat!(
            "ldr r3, [r1], #4\n",
            "sxtb16 r8, r3, ror #8\n",
            "sxtb16 r3, r3\n",
            "ldm r0!, {{r9, r10, r11, r12}}\n",
            "smlad r4, r3, r9, r4\n",
            "smlad r4, r8, r10, r4\n",
            "smlad r5, r3, r11, r5\n",
            "smlad r5, r8, r12, r5\n",
            "ldm r0!, {{r9, r10, r11, r12}}\n",
            "smlad r6, r3, r9, r6\n",
            "smlad r6, r8, r10, r6\n",
            "smlad r7, r3, r11, r7\n",
            "smlad r7, r8, r12, r7\n",
        )
    };
}

/// `acc[i] += sum_k a_i(k) * w(k)` over `16 * iterations` depths (modulo 2^32).
///
/// # Safety
/// `iterations >= 1`; `panel` is 4-byte aligned and readable for `128 * iterations` bytes
/// (the 4 rows' pairs in the layout of the module docs); `w` is readable for
/// `16 * iterations` bytes (any alignment); `acc` is valid for reading and writing 4 `i32`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn dot_4x1(
    panel: *const u32,
    w: *const i8,
    iterations: usize,
    acc: *mut [i32; 4],
) {
    core::arch::naked_asm!(
        isa!(),
        "push {{r3-r11, lr}}",
        "ldm r3, {{r4, r5, r6, r7}}",
        "2:",
        step!(),
        step!(),
        step!(),
        step!(),
        "subs r2, r2, #1",
        "bne 2b",
        "pop {{r3}}",
        "stm r3, {{r4, r5, r6, r7}}",
        "pop {{r4-r11, pc}}",
    )
}
