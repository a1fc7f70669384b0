//! The Helium micro-kernels: 3 rows x 2 output channels, every channel pair of a row panel
//! in one call, tail-predicated over the depth (`DLSTP`/`LETP`: any depth, no padding, no
//! read past a row: inactive lanes are neither loaded nor summed).
//!
//! Per iteration (16 int8 depths, or 8 u16 ones): 5 vector loads (3 rows, 2 channels) and
//! 6 `VMLADAVA` (each the dot product of one row and one channel over the vector, added to
//! a general register, modulo 2^32 as the scalar i32 sum), plus `LETP`: 12 instructions
//! for 96 int8 multiply-accumulates (8 MAC per instruction; CMSIS-NN's 4-row int8 loop
//! about 5.8), or 48 for the i16 x i8 (int16 activations) and u16 x u8 (P.V) variants.
//! Loads and multiplies alternate so that a dual-beat core (Cortex-M55) overlaps them.
//!
//! Registers: accumulators r0, r2, r4, r6, r8, r10 (`VMLADAVA` takes even registers only),
//! rows r1, r3, r9, channels r5, r7 (the widening `VLDRB.U16` takes a low base register),
//! output r11, loop count lr, r12 scratch; vectors q0-q4
//! (q4 is callee-saved under the AAPCS and is saved). The per-call values the loop reloads
//! live in a 24-byte stack frame.

/// What one call computes: rows `a[0..3]` times channel pairs `(b0 + 2 k ldb, b1 + 2 k ldb)`
/// for `k < pairs`, into `out + 8 k` (row 0), `+ ldo` (row 1), `+ 2 ldo` (row 2).
#[repr(C)]
pub(crate) struct Tile {
    /// The 3 rows' first elements.
    pub(crate) a: [*const u8; 3],
    /// The first pair's two channels.
    pub(crate) b0: *const u8,
    pub(crate) b1: *const u8,
    /// Row 0's output for the first pair.
    pub(crate) out: *mut i32,
    /// Elements of depth (at least 1).
    pub(crate) depth: usize,
    /// Channel pairs (at least 1).
    pub(crate) pairs: usize,
    /// Bytes from a channel pointer after the loop to the next pair's (`2 ldb - b_advance`).
    pub(crate) b_delta: isize,
    /// Bytes the loop advances a row pointer (16 per iteration).
    pub(crate) a_advance: usize,
    /// Output row stride in bytes, minus 8.
    pub(crate) ldo_minus_8: isize,
}

/// One kernel from its element instructions: the loop-start, the row and channel loads
/// with their post-increments, and the multiply-accumulate.
macro_rules! tile_kernel {
    ($name:ident, $dlstp:literal, $load_a:literal, $load_b:literal, $b_step:literal, $mla:literal) => {
        /// See the module docs and [`Tile`].
        ///
        /// # Safety
        /// `t.depth >= 1`, `t.pairs >= 1`; each row pointer reads `depth` elements; for
        /// every `k < pairs` both channels `b0 + 2 k ldb` and `b1 + 2 k ldb` read `depth`
        /// elements (their stride is what `b_delta` encodes); the 3 output rows hold
        /// `2 pairs` `i32` at `out`, `out + ldo`, `out + 2 ldo`.
        #[unsafe(naked)]
        pub(crate) unsafe extern "C" fn $name(t: *const Tile) {
            core::arch::naked_asm!(
                isa!(),
                "push {{r3-r11, lr}}",
                "vpush {{d8-d9}}",
                "sub sp, #24",
                // Frame: depth, pairs, b_delta, a_advance, ldo_minus_8.
                "ldr r12, [r0, #24]",
                "str r12, [sp, #0]",
                "ldr r12, [r0, #28]",
                "str r12, [sp, #4]",
                "ldr r12, [r0, #32]",
                "str r12, [sp, #8]",
                "ldr r12, [r0, #36]",
                "str r12, [sp, #12]",
                "ldr r12, [r0, #40]",
                "str r12, [sp, #16]",
                "ldr r1, [r0, #0]",
                "ldr r3, [r0, #4]",
                "ldr r9, [r0, #8]",
                "ldr r5, [r0, #12]",
                "ldr r7, [r0, #16]",
                "ldr r11, [r0, #20]",
                "1:",
                "movs r0, #0",
                "movs r2, #0",
                "movs r4, #0",
                "movs r6, #0",
                "mov.w r8, #0",
                "mov.w r10, #0",
                "ldr r12, [sp, #0]",
                concat!($dlstp, " lr, r12"),
                "2:",
                concat!($load_a, " q0, [r1], #16"),
                concat!($load_b, " q3, [r5], ", $b_step),
                concat!($mla, " r0, q0, q3"),
                concat!($load_b, " q4, [r7], ", $b_step),
                concat!($mla, " r2, q0, q4"),
                concat!($load_a, " q1, [r3], #16"),
                concat!($mla, " r4, q1, q3"),
                concat!($mla, " r6, q1, q4"),
                concat!($load_a, " q2, [r9], #16"),
                concat!($mla, " r8, q2, q3"),
                concat!($mla, " r10, q2, q4"),
                "letp lr, 2b",
                "ldr r12, [sp, #16]",
                "strd r0, r2, [r11], #8",
                "add r0, r11, r12",
                "strd r4, r6, [r0]",
                "add r0, r0, r12",
                "strd r8, r10, [r0, #8]",
                "ldr r12, [sp, #12]",
                "subs r1, r1, r12",
                "subs r3, r3, r12",
                "subs r9, r9, r12",
                "ldr r12, [sp, #8]",
                "add r5, r5, r12",
                "add r7, r7, r12",
                "ldr r12, [sp, #4]",
                "subs r12, r12, #1",
                "str r12, [sp, #4]",
                "bne 1b",
                "add sp, #24",
                "vpop {{d8-d9}}",
                "pop {{r3-r11, pc}}",
            )
        }
    };
}

tile_kernel!(
    tile_i8_3x2,
    "dlstp.8",
    "vldrb.8",
    "vldrb.8",
    "#16",
    "vmladava.s8"
);
tile_kernel!(
    tile_i16_3x2,
    "dlstp.16",
    "vldrh.s16",
    "vldrb.s16",
    "#8",
    "vmladava.s16"
);
tile_kernel!(
    tile_u16_3x2,
    "dlstp.16",
    "vldrh.u16",
    "vldrb.u16",
    "#8",
    "vmladava.u16"
);
