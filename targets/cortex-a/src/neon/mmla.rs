//! `gemm_i8` with the int8 matrix-multiply extension (`smmla`, Armv8.6-A I8MM: Cortex-A510,
//! A710, X2 and later, Neoverse V1/N2), built with `-C target-feature=+i8mm` (and
//! `+dotprod`, which every such core has and which the other products keep using).
//!
//! `smmla vd.4s, vn.16b, vm.16b` treats `vn` as a 2x8 int8 matrix (two rows of 8 depths),
//! `vm` as another 2x8 (two output channels of 8 depths) and adds their 2x2 product to the
//! i32 lanes of `vd` (`[r0c0, r0c1, r1c0, r1c1]`): 32 multiply-accumulates per instruction,
//! twice `sdot`'s. An 8x8 register tile (16 accumulators v16-v31) then needs per 8 depths
//! one `ld1` of the 8 packed rows (4 registers), one `ld1` of 8 prepared channels and 16
//! `smmla`, plus the counter and branch: 20 instructions per 512 multiply-accumulates,
//! 0.039 per MAC (`cargo xtask asm-report`).
//!
//! The weights must be in that pair-interleaved order, so this path runs on prepared
//! weights only ([`prepare`]: panels of 8 channels, per 8 depths 4 pairs of channels of 8
//! bytes each, zero-padded to multiples of 8 in both directions; the size of the int8
//! weights, rounded up). Products with the blob's weights (`Rhs::Channels`, attention Q.K)
//! keep the `sdot` kernel: repacking the weights on every call would cost as much as the
//! product saves. The left operand is packed per call, 8 rows at a time, like the `sdot`
//! path's; uint8 activations with a zero point 7 rows at a time as `q - 128`, with a row of
//! ones as the 8th for the correction `(128 - zero_point) * sum w` (see `bytes`).

use super::Bytes;
use core::arch::asm;
use microbert::kernels::{MatMut, MatRef};

/// Rows (and channels) of the tile.
const T: usize = 8;
/// Depth packed per panel (a multiple of 8): the packed rows are `T * KC` bytes of stack.
const KC: usize = 2048;
/// Bytes of one 8-depth step of a packed panel (8 rows or 8 channels of 8 bytes).
const STEP: usize = 64;

/// Bytes of the prepared copy of `channels x depth` weights.
pub(crate) const fn prepared_len(channels: usize, depth: usize) -> usize {
    channels.div_ceil(T) * depth.div_ceil(8) * STEP
}

/// Writes the prepared copy of `w` into `out` (at least `prepared_len(w.rows(), w.cols())`
/// bytes): channel `c`'s depth `k` goes to panel `c / 8`, step `k / 8`, pair `(c % 8) / 2`,
/// half `c % 2`, byte `k % 8`; padding is zero.
pub(crate) fn prepare(w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
    let (n, depth) = (w.rows(), w.cols());
    let len = prepared_len(n, depth);
    let Some(out) = out.get_mut(..len) else {
        return false;
    };
    out.fill(0);
    let steps = depth.div_ceil(8);
    for c in 0..n {
        let (panel, pair, half) = (c / T, (c % T) / 2, c % 2);
        for (s, chunk) in w.row(c).chunks(8).enumerate() {
            let at = (panel * steps + s) * STEP + pair * 16 + half * 8;
            for (o, &x) in out[at..at + chunk.len()].iter_mut().zip(chunk) {
                *o = x as u8;
            }
        }
    }
    true
}

/// Runs `steps` 8-depth steps of the 8x8 tile, adding to `acc` (`acc[16 * p + 4 * q + l]`:
/// row pair `p`, channel pair `q`, lane `l` of `[r0c0, r0c1, r1c0, r1c1]`).
///
/// # Safety
/// `a` and `b` are readable for `64 * steps` bytes each, and `steps >= 1`.
#[inline(never)]
unsafe fn kernel_8x8(a: *const i8, b: *const u8, steps: usize, acc: &mut [i32; 64]) {
    // SAFETY: the loop reads `64 * steps` bytes from each of `a` and `b` (caller's contract)
    // and reads and writes the 64 i32 of `acc` (a `&mut [i32; 64]`, 4-byte aligned as
    // `ld1`/`st1` of `.4s` need); no stack, only the listed registers clobbered.
    unsafe {
        asm!(
            ".arch_extension i8mm",
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}], #64",
            "ld1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{acc}], #64",
            "ld1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{acc}], #64",
            "ld1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{acc}]",
            "2:",
            "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{a}], #64",
            "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{b}], #64",
            "smmla v16.4s, v0.16b, v4.16b",
            "smmla v17.4s, v0.16b, v5.16b",
            "smmla v18.4s, v0.16b, v6.16b",
            "smmla v19.4s, v0.16b, v7.16b",
            "smmla v20.4s, v1.16b, v4.16b",
            "smmla v21.4s, v1.16b, v5.16b",
            "smmla v22.4s, v1.16b, v6.16b",
            "smmla v23.4s, v1.16b, v7.16b",
            "smmla v24.4s, v2.16b, v4.16b",
            "smmla v25.4s, v2.16b, v5.16b",
            "smmla v26.4s, v2.16b, v6.16b",
            "smmla v27.4s, v2.16b, v7.16b",
            "smmla v28.4s, v3.16b, v4.16b",
            "smmla v29.4s, v3.16b, v5.16b",
            "smmla v30.4s, v3.16b, v6.16b",
            "smmla v31.4s, v3.16b, v7.16b",
            "subs {steps}, {steps}, #1",
            "b.ne 2b",
            "sub {acc}, {acc}, #192",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{acc}], #64",
            "st1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{acc}], #64",
            "st1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{acc}], #64",
            "st1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{acc}]",
            acc = inout(reg) acc.as_mut_ptr() => _,
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            steps = inout(reg) steps => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

/// Packs rows `r0..r0 + rows` (`rows <= 8`, the row of ones of a uint8 operand included)
/// and depths `k0..k0 + kc` of `a`: row `2p + h`, depth `8s + t` goes to
/// `64 s + 16 p + 8 h + t`; missing rows and depths are zero.
fn pack_a(pack: &mut [i8], a: Bytes<'_>, r0: usize, rows: usize, k0: usize, kc: usize) {
    let steps = kc.div_ceil(8);
    pack[..steps * STEP].fill(0);
    a.pack::<8>(pack, (r0, rows), (k0, kc), |i, s| {
        s * STEP + (i / 2) * 16 + (i % 2) * 8
    });
}

/// `out[r][c] = sum_k a(r, k) * w[c][k]` with `prepared` the [`prepare`]d copy of the `n`
/// channels of `w` (at least `prepared_len(n, a.depth())` bytes, checked by the caller);
/// `m, n, depth >= 1`. A uint8 operand takes 7 rows per tile, the 8th being its row of ones
/// ([`Bytes`]).
pub(crate) fn gemm(a: Bytes<'_>, prepared: &[u8], n: usize, mut out: MatMut<'_, i32>) {
    let (m, depth) = (a.rows(), a.depth());
    let steps_total = depth.div_ceil(8);
    assert!(
        prepared.len() >= prepared_len(n, depth),
        "i8mm: prepared weights shorter than their shape"
    );
    let ldo = out.ld();
    let out = out.data_mut();
    let mut pack = [0i8; T * KC];
    for r0 in (0..m).step_by(a.block(T)) {
        let rows = a.block(T).min(m - r0);
        for k0 in (0..depth).step_by(KC) {
            let kc = KC.min(depth - k0);
            let steps = kc.div_ceil(8);
            pack_a(&mut pack, a, r0, rows, k0, kc);
            for c0 in (0..n).step_by(T) {
                let cols = T.min(n - c0);
                let start = ((c0 / T) * steps_total + k0 / 8) * STEP;
                let b = &prepared[start..start + steps * STEP];
                let mut acc = [0i32; 64];
                // SAFETY: `pack` holds `steps * 64` packed bytes (`kc <= KC`) and `b` is a
                // slice of `steps * 64` bytes; `steps >= 1` because `kc >= 1`.
                unsafe { kernel_8x8(pack.as_ptr(), b.as_ptr(), steps, &mut acc) };
                let sum =
                    |i: usize, j: usize| acc[16 * (i / 2) + 4 * (j / 2) + 2 * (i % 2) + j % 2];
                for i in 0..rows {
                    for j in 0..cols {
                        let v = a.finish(sum(i, j), || sum(rows, j));
                        let o = &mut out[(r0 + i) * ldo + c0 + j];
                        *o = if k0 == 0 { v } else { o.wrapping_add(v) };
                    }
                }
            }
        }
    }
}
