//! `gemm_i8` with the dot-product extension (`sdot`, Armv8.2-A DotProd: Cortex-A55, A76 and
//! later), built with `-C target-feature=+dotprod`.
//!
//! `sdot vd.4s, vn.16b, vm.4b[g]` adds to each i32 lane `i` of `vd` the dot product of bytes
//! `4i..4i+4` of `vn` with bytes `4g..4g+4` of `vm`. The left operand (at most 16 rows in
//! the encoder, reused across every output channel) is packed once per 512 columns of
//! depth so that one 16-byte vector holds 4 consecutive depth bytes of 4 rows; the right
//! operand (the weights, read once) stays in place and one 16-byte load per output column
//! covers 16 depth bytes as 4 lane groups. An 8x4 tile then needs, per 16 bytes of depth,
//! 2 `ld1` of the packed rows (4 registers each), 4 `ld1` of weight rows and 32 `sdot`
//! (512 multiply-accumulates), plus the loop counter and branch: 40 instructions, 0.078
//! per multiply-accumulate. A 4x4 tile covers the last 1-4 rows: 23 instructions for 256.
//!
//! uint8 activations with a zero point run the same kernels: packed as `q - 128`, 7 rows
//! per block and a row of ones as the 8th (or the 4th of a 4x4 tile), whose sums give the
//! correction `(128 - zero_point) * sum w` (see `bytes`).
//!
//! Registers: accumulators v16-v23 (row group `rg`, column `c` in `v(16 + 4 rg + c)`,
//! lane `i` = row `4 rg + i`), packed rows v24-v31 (`v(24 + 4 rg + g)` = depth group `g`),
//! weight rows v0-v3. All of them are caller-saved, so the asm saves nothing.

use super::Bytes;
use core::arch::asm;
use microbert::kernels::{MatMut, MatRef};

/// Depth packed per panel: the packed copy of the left operand is `8 * KC` bytes of stack.
const KC: usize = 512;
/// Rows of the large tile.
const MR: usize = 8;
/// Columns of a tile.
const NR: usize = 4;

/// Runs `steps` iterations of the 8x4 tile: 16 bytes of depth each.
///
/// # Safety
/// `pack` must be readable for `steps * 128` bytes, each `b[c]` for `steps * 16` bytes, and
/// `steps >= 1`.
#[inline(never)]
unsafe fn kernel_8x4(pack: *const i8, b: [*const i8; NR], steps: usize, acc: &mut [i32; 32]) {
    // SAFETY: the loop reads `128 * steps` bytes from `pack` and `16 * steps` bytes from
    // each `b[c]` (caller's contract) and writes the 32 i32 of `acc` (a `&mut [i32; 32]`,
    // 4-byte aligned as `ld1`/`st1` of `.4s` need); it uses no stack and clobbers only the
    // registers listed.
    unsafe {
        asm!(
            ".arch_extension dotprod",
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}]",
            "ld1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{acc1}]",
            "2:",
            "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{a}], #64",
            "ld1 {{v28.16b, v29.16b, v30.16b, v31.16b}}, [{a}], #64",
            "ld1 {{v0.16b}}, [{b0}], #16",
            "ld1 {{v1.16b}}, [{b1}], #16",
            "ld1 {{v2.16b}}, [{b2}], #16",
            "ld1 {{v3.16b}}, [{b3}], #16",
            "sdot v16.4s, v24.16b, v0.4b[0]",
            "sdot v17.4s, v24.16b, v1.4b[0]",
            "sdot v18.4s, v24.16b, v2.4b[0]",
            "sdot v19.4s, v24.16b, v3.4b[0]",
            "sdot v20.4s, v28.16b, v0.4b[0]",
            "sdot v21.4s, v28.16b, v1.4b[0]",
            "sdot v22.4s, v28.16b, v2.4b[0]",
            "sdot v23.4s, v28.16b, v3.4b[0]",
            "sdot v16.4s, v25.16b, v0.4b[1]",
            "sdot v17.4s, v25.16b, v1.4b[1]",
            "sdot v18.4s, v25.16b, v2.4b[1]",
            "sdot v19.4s, v25.16b, v3.4b[1]",
            "sdot v20.4s, v29.16b, v0.4b[1]",
            "sdot v21.4s, v29.16b, v1.4b[1]",
            "sdot v22.4s, v29.16b, v2.4b[1]",
            "sdot v23.4s, v29.16b, v3.4b[1]",
            "sdot v16.4s, v26.16b, v0.4b[2]",
            "sdot v17.4s, v26.16b, v1.4b[2]",
            "sdot v18.4s, v26.16b, v2.4b[2]",
            "sdot v19.4s, v26.16b, v3.4b[2]",
            "sdot v20.4s, v30.16b, v0.4b[2]",
            "sdot v21.4s, v30.16b, v1.4b[2]",
            "sdot v22.4s, v30.16b, v2.4b[2]",
            "sdot v23.4s, v30.16b, v3.4b[2]",
            "sdot v16.4s, v27.16b, v0.4b[3]",
            "sdot v17.4s, v27.16b, v1.4b[3]",
            "sdot v18.4s, v27.16b, v2.4b[3]",
            "sdot v19.4s, v27.16b, v3.4b[3]",
            "sdot v20.4s, v31.16b, v0.4b[3]",
            "sdot v21.4s, v31.16b, v1.4b[3]",
            "sdot v22.4s, v31.16b, v2.4b[3]",
            "sdot v23.4s, v31.16b, v3.4b[3]",
            "subs {steps}, {steps}, #1",
            "b.ne 2b",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}]",
            "st1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{acc1}]",
            acc = in(reg) acc.as_mut_ptr(),
            acc1 = in(reg) acc.as_mut_ptr().wrapping_add(16),
            a = inout(reg) pack => _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            b2 = inout(reg) b[2] => _,
            b3 = inout(reg) b[3] => _,
            steps = inout(reg) steps => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

/// Runs `steps` iterations of the 4x4 tile (the first 16 entries of `acc`).
///
/// # Safety
/// `pack` must be readable for `steps * 64` bytes, each `b[c]` for `steps * 16` bytes, and
/// `steps >= 1`.
#[inline(never)]
unsafe fn kernel_4x4(pack: *const i8, b: [*const i8; NR], steps: usize, acc: &mut [i32; 32]) {
    // SAFETY: the loop reads `64 * steps` bytes from `pack` and `16 * steps` bytes from
    // each `b[c]` (caller's contract) and writes the first 16 i32 of `acc`; no stack, and
    // only the listed registers are clobbered.
    unsafe {
        asm!(
            ".arch_extension dotprod",
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}]",
            "2:",
            "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{a}], #64",
            "ld1 {{v0.16b}}, [{b0}], #16",
            "ld1 {{v1.16b}}, [{b1}], #16",
            "ld1 {{v2.16b}}, [{b2}], #16",
            "ld1 {{v3.16b}}, [{b3}], #16",
            "sdot v16.4s, v24.16b, v0.4b[0]",
            "sdot v17.4s, v24.16b, v1.4b[0]",
            "sdot v18.4s, v24.16b, v2.4b[0]",
            "sdot v19.4s, v24.16b, v3.4b[0]",
            "sdot v16.4s, v25.16b, v0.4b[1]",
            "sdot v17.4s, v25.16b, v1.4b[1]",
            "sdot v18.4s, v25.16b, v2.4b[1]",
            "sdot v19.4s, v25.16b, v3.4b[1]",
            "sdot v16.4s, v26.16b, v0.4b[2]",
            "sdot v17.4s, v26.16b, v1.4b[2]",
            "sdot v18.4s, v26.16b, v2.4b[2]",
            "sdot v19.4s, v26.16b, v3.4b[2]",
            "sdot v16.4s, v27.16b, v0.4b[3]",
            "sdot v17.4s, v27.16b, v1.4b[3]",
            "sdot v18.4s, v27.16b, v2.4b[3]",
            "sdot v19.4s, v27.16b, v3.4b[3]",
            "subs {steps}, {steps}, #1",
            "b.ne 2b",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}]",
            acc = in(reg) acc.as_mut_ptr(),
            a = inout(reg) pack => _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            b2 = inout(reg) b[2] => _,
            b3 = inout(reg) b[3] => _,
            steps = inout(reg) steps => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            options(nostack),
        );
    }
}

/// Runs the tile for `groups` row groups (1: 4x4, 2: 8x4) over `steps` packed steps.
/// The length checks make the kernels' contracts hold; they run once per tile.
fn run(pack: &[i8], b: [&[i8]; NR], steps: usize, groups: usize, acc: &mut [i32; 32]) {
    assert!(
        steps >= 1
            && (groups == 1 || groups == 2)
            && pack.len() >= steps * 64 * groups
            && b.iter().all(|r| r.len() >= steps * 16),
        "dotprod tile: internal shape invariant"
    );
    let pb = b.map(<[i8]>::as_ptr);
    if groups == 2 {
        // SAFETY: checked above: `pack` has `steps * 128` bytes, each `b[c]` `steps * 16`.
        unsafe { kernel_8x4(pack.as_ptr(), pb, steps, acc) };
    } else {
        // SAFETY: checked above: `pack` has `steps * 64` bytes, each `b[c]` `steps * 16`.
        unsafe { kernel_4x4(pack.as_ptr(), pb, steps, acc) };
    }
}

/// Packs rows `r0..r0 + rows` (`rows <= 4 * groups`, the row of ones of a uint8 operand
/// included) and depth `k0..k0 + kc` of `a`: the byte of row `4 rg + i` at depth
/// `16 s + 4 g + t` goes to `s * 64 * groups + 64 rg + 16 g + 4 i + t`; missing rows and
/// depth stay zero.
fn pack_a(
    pack: &mut [i8],
    a: Bytes<'_>,
    r0: usize,
    rows: usize,
    groups: usize,
    k0: usize,
    kc: usize,
) {
    let stride = 64 * groups;
    pack[..kc.div_ceil(16) * stride].fill(0);
    a.pack::<4>(pack, (r0, rows), (k0, kc), |i, q| {
        (q / 4) * stride + (i / 4) * 64 + (q % 4) * 16 + (i % 4) * 4
    });
}

/// `out[r][c] = sum_k a(r, k) * b[c][k]` for shapes that `super::gemm`'s caller checked:
/// `m, n, depth >= 1`, `a` is `m x depth`, `b` is `n x depth`, `out` is `m x n`. A uint8
/// operand takes 7 rows per block, the 8th packed row being its row of ones ([`Bytes`]).
pub(super) fn gemm(a: Bytes<'_>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let (m, n, depth) = (a.rows(), b.rows(), a.depth());
    let ldo = out.ld();
    let out = out.data_mut();
    let mut pack = [0i8; MR * KC];
    let mut r0 = 0;
    while r0 < m {
        let rows = (m - r0).min(a.block(MR));
        // The row of ones of a uint8 block is packed row `rows`.
        let groups = (rows + MR - a.block(MR)).div_ceil(4);
        let mut k0 = 0;
        while k0 < depth {
            let kc = (depth - k0).min(KC);
            let (full, tail) = (kc / 16, kc % 16);
            pack_a(&mut pack, a, r0, rows, groups, k0, kc);
            let mut c0 = 0;
            while c0 < n {
                let cols = (n - c0).min(NR);
                let mut acc = [0i32; 32];
                // Columns past `n` repeat the last one; their sums are dropped.
                let brow: [&[i8]; NR] =
                    core::array::from_fn(|j| &b.row(c0 + j.min(cols - 1))[k0..][..kc]);
                if full > 0 {
                    run(&pack[..full * 64 * groups], brow, full, groups, &mut acc);
                }
                if tail > 0 {
                    // The last partial 16 bytes of depth, zero-padded on both sides.
                    let mut bt = [[0i8; 16]; NR];
                    for (t, r) in bt.iter_mut().zip(brow) {
                        t[..tail].copy_from_slice(&r[full * 16..]);
                    }
                    let last = &pack[full * 64 * groups..][..64 * groups];
                    run(last, bt.each_ref().map(|t| &t[..]), 1, groups, &mut acc);
                }
                let sum = |row: usize, c: usize| acc[((row / 4) * 4 + c) * 4 + row % 4];
                for row in 0..rows {
                    for c in 0..cols {
                        let v = a.finish(sum(row, c), || sum(rows, c));
                        let o = &mut out[(r0 + row) * ldo + c0 + c];
                        *o = if k0 == 0 { v } else { o.wrapping_add(v) };
                    }
                }
                c0 += NR;
            }
            k0 += kc;
        }
        r0 += rows;
    }
}
