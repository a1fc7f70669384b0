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

/// What [`dot_4xn`] computes: the panel against `channels` output channels, `ldb` bytes
/// apart from `w`, storing channel `c`'s 4 sums at `out + 4 c` (row 0), `+ ldo` (row 1),
/// `+ 2 ldo`, `+ 3 ldo`.
#[repr(C)]
pub(crate) struct Panel {
    pub(crate) panel: *const u32,
    pub(crate) w: *const i8,
    pub(crate) ldb: usize,
    pub(crate) iterations: usize,
    pub(crate) channels: usize,
    pub(crate) out: *mut i32,
    /// Output row stride in bytes.
    pub(crate) ldo: usize,
}

/// [`dot_4x1`] over every channel of a panel in one call: per channel the 16-depth loop
/// above, then 4 stores and the next channel's pointers from a 28-byte stack frame (23
/// instructions per channel instead of a call's 40 or so).
///
/// # Safety
/// `p.iterations >= 1`, `p.channels >= 1`; `p.panel` as for [`dot_4x1`]; every channel
/// `w + c ldb` (`c < channels`) readable for `16 * iterations` bytes; the 4 output rows hold
/// `channels` `i32` each.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn dot_4xn(p: *const Panel) {
    core::arch::naked_asm!(
        isa!(),
        "push {{r4-r11, lr}}",
        "sub sp, #28",
        // Frame: the 7 words of `Panel` (panel, w of the current channel, ldb, iterations,
        // channels left, out of the current channel, ldo).
        "ldm r0, {{r1, r2, r3, r4, r5, r6, r7}}",
        "stm sp, {{r1, r2, r3, r4, r5, r6, r7}}",
        "3:",
        "ldr r0, [sp, #0]",
        "ldr r1, [sp, #4]",
        "ldr r2, [sp, #12]",
        "movs r4, #0",
        "movs r5, #0",
        "movs r6, #0",
        "movs r7, #0",
        "2:",
        step!(),
        step!(),
        step!(),
        step!(),
        "subs r2, r2, #1",
        "bne 2b",
        "ldr r3, [sp, #20]",
        "ldr r8, [sp, #24]",
        "str r5, [r3, r8]",
        "add r9, r3, r8, lsl #1",
        "str r4, [r3], #4",
        "str r6, [r9]",
        "str r7, [r9, r8]",
        "str r3, [sp, #20]",
        "ldr r1, [sp, #4]",
        "ldr r2, [sp, #8]",
        "add r1, r1, r2",
        "str r1, [sp, #4]",
        "ldr r2, [sp, #16]",
        "subs r2, r2, #1",
        "str r2, [sp, #16]",
        "bne 3b",
        "add sp, #28",
        "pop {{r4-r11, pc}}",
    )
}
