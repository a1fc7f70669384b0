//! Kernels with Helium (MVE, integer): Cortex-M55, M85.
//!
//! **GEMM** (`Lhs::I8` x channel-major or prepared weights): 3 rows at a time, read in
//! place, against every pair of output channels in one call of [`kernel::tile_i8_3x2`]:
//! `VMLADAVA.S8` over 16 depths, tail-predicated, 12 instructions per 96
//! multiply-accumulates in the inner loop (8 MAC per instruction). A last panel of 1 or 2
//! rows repeats its first row in the missing places and keeps the real rows' sums (through
//! a small stack buffer), as does an odd last channel.
//!
//! **P.V** (`Lhs::U16` x `Rhs::Depths`): the values of a chunk of keys are transposed into
//! a stack buffer (at most [`VT_BYTES`]) as `v + 128` (0..=255, so both factors are
//! unsigned), the probabilities are read in place, and [`kernel::tile_u16_3x2`] runs
//! `VMLADAVA.U16` over 8 keys per step (`VLDRB.U16` widens the values as it loads them);
//! `sum p v = sum p (v + 128) - 128 sum p`, exact modulo 2^32 as the scalar i32 sum.
//!
//! **int16 activations** (`Lhs::I16` x channel-major or prepared weights, the calibrated
//! q/k/v inputs): the same tile as [`kernel::tile_i16_3x2`], `VMLADAVA.S16` over 8 depths
//! with the weights sign-extended by `VLDRB.S16` as they load (read in place): 12
//! instructions per 48 multiply-accumulates (4 MAC per instruction).
//!
//! **uint8 with a zero point** (`Lhs::U8`, the calibrated FFN2 input): the rows of a block
//! are copied to a stack buffer (at most [`U8_BYTES`]) as `q - 128` (`q ^ 0x80`, an int8
//! in -128..=127, exact for `VMLADAVA.S8`), the int8 GEMM runs on them, and each channel
//! gets `(128 - zero_point) sum_k w[c][k]`: `sum (q - z) w = sum (q - 128) w + (128 - z) sum
//! w`, exact modulo 2^32 as the scalar i32 sum. The inner loop is the int8 one (8 MAC per
//! instruction); the copy and the weight sums are `O(rows depth + channels depth)`.
//!
//! Every other operand kind goes to the DSP kernels ([`crate::dsp`]), which fall back to the
//! scalar reference for what they do not handle.

mod kernel;

use kernel::Tile;
use microbert::kernels::{Gemm, Lhs, MatMut, MatRef, Rhs, scalar};

/// Rows per panel.
const MR: usize = 3;
/// Channel pairs of a short panel per call (its sums go through a stack buffer).
const SHORT_PAIRS: usize = 16;
/// Bytes of the transposed values of one key chunk (P.V).
pub const VT_BYTES: usize = 4096;
/// Bytes of the shifted uint8 rows of one block (`Lhs::U8`): 3 rows of up to 1,536 depths
/// (MiniLM's FFN2); deeper rows go to the DSP kernels.
pub const U8_BYTES: usize = MR * 1536;

/// `out = a x b` for the operand kinds Helium accelerates, the DSP kernels for the rest.
pub fn gemm(g: Gemm<'_, '_>) {
    if g.rows() == 0 || g.channels() == 0 || g.depth() == 0 {
        return scalar::gemm(g);
    }
    let (a, b, mut out) = g.parts();
    match (a, b) {
        (Lhs::I8(x), Rhs::Channels(w)) => dense(Variant::I8, x, w, &mut out, 0),
        (Lhs::I8(x), Rhs::Prepared(p)) => dense(Variant::I8, x, p.raw(), &mut out, 0),
        (Lhs::I16(x), Rhs::Channels(w)) => dense(Variant::I16, x, w, &mut out, 0),
        (Lhs::I16(x), Rhs::Prepared(p)) => dense(Variant::I16, x, p.raw(), &mut out, 0),
        (Lhs::U8 { values, zero_point }, Rhs::Channels(w)) if values.cols() <= U8_BYTES / MR => {
            dense_u8(values, zero_point, w, &mut out)
        }
        (Lhs::U8 { values, zero_point }, Rhs::Prepared(p)) if values.cols() <= U8_BYTES / MR => {
            dense_u8(values, zero_point, p.raw(), &mut out)
        }
        (Lhs::U16(p), Rhs::Depths(v)) if v.cols() <= VT_BYTES => weighted(p, v, &mut out),
        _ => {
            if let Some(g) = Gemm::new(a, b, out) {
                crate::dsp::gemm(g);
            }
        }
    }
}

/// The element type of a kernel variant.
#[derive(Clone, Copy)]
enum Variant {
    /// int8 rows x int8 channels, 16 per step.
    I8,
    /// int16 rows x int8 channels, 8 per step.
    I16,
    /// u16 rows x u8 channels, 8 per step.
    U16,
}

/// Runs one variant over the 3 rows `a` (pointers to `depth` elements each) and channels
/// `c0..c0 + 2 pairs` of `w` (rows `ldb` bytes apart, each `depth` bytes), into `dst`
/// (3 rows of `2 pairs` sums, `ldo` elements apart).
///
/// # Safety
/// As [`kernel::tile_i8_3x2`]: every row pointer reads `depth` elements, every channel
/// `depth` bytes, and `dst` holds the 3 rows; `depth >= 1`, `pairs >= 1`.
unsafe fn run(
    variant: Variant,
    a: [*const u8; 3],
    b0: *const u8,
    ldb: usize,
    depth: usize,
    pairs: usize,
    dst: *mut i32,
    ldo: usize,
) {
    let (per_step, a_bytes, b_bytes) = match variant {
        Variant::I8 => (16, 16, 16),
        Variant::I16 | Variant::U16 => (8, 16, 8),
    };
    let steps = depth.div_ceil(per_step);
    let t = Tile {
        a,
        b0,
        b1: b0.wrapping_add(ldb),
        out: dst,
        depth,
        pairs,
        b_delta: (2 * ldb) as isize - (steps * b_bytes) as isize,
        a_advance: steps * a_bytes,
        ldo_minus_8: (4 * ldo) as isize - 8,
    };
    // SAFETY: the caller's contract is the kernel's.
    unsafe {
        match variant {
            Variant::I8 => kernel::tile_i8_3x2(&t),
            Variant::I16 => kernel::tile_i16_3x2(&t),
            Variant::U16 => kernel::tile_u16_3x2(&t),
        }
    }
}

/// One row panel of any operand: the rows `r0..r0 + rows` (`rows <= MR`) as 3 pointers
/// (missing rows repeat the first), against all `n` channels of `w`, into `out`.
///
/// # Safety
/// `a[i]` reads `depth` elements of the variant's type; each of the `n` rows of `w`
/// (`ldb` apart from `b`) holds `depth` bytes; `out` has rows `r0..r0 + rows` of `n`.
unsafe fn panel(
    variant: Variant,
    a: [*const u8; 3],
    rows: usize,
    b: *const u8,
    ldb: usize,
    n: usize,
    depth: usize,
    out: &mut MatMut<'_, i32>,
    r0: usize,
) {
    let ldo = out.ld();
    let pairs = n / 2;
    if rows == MR && pairs > 0 {
        let dst = out.data_mut()[r0 * ldo..].as_mut_ptr();
        // SAFETY: the 3 output rows `r0..r0 + 3` hold `n >= 2 pairs` sums each (the
        // `MatMut` invariant); the rest is the caller's contract.
        unsafe { run(variant, a, b, ldb, depth, pairs, dst, ldo) };
    } else {
        // Short panels: through `buf`, `SHORT_PAIRS` pairs per call.
        let mut buf = [[0i32; 2 * SHORT_PAIRS]; MR];
        let mut c0 = 0;
        while c0 + 2 <= n {
            let k = SHORT_PAIRS.min((n - c0) / 2);
            // SAFETY: `buf` holds 3 rows of `2 SHORT_PAIRS >= 2 k` sums, rows
            // `2 SHORT_PAIRS` apart; channels `c0..c0 + 2 k` exist.
            unsafe {
                run(
                    variant,
                    a,
                    b.wrapping_add(c0 * ldb),
                    ldb,
                    depth,
                    k,
                    buf.as_mut_ptr().cast(),
                    2 * SHORT_PAIRS,
                );
            }
            for (i, sums) in buf.iter().enumerate().take(rows) {
                out.row_mut(r0 + i)[c0..c0 + 2 * k].copy_from_slice(&sums[..2 * k]);
            }
            c0 += 2 * k;
        }
    }
    if n % 2 == 1 {
        // The last channel twice (`ldb = 0`), one pair, through `buf`.
        let mut buf = [[0i32; 2]; MR];
        // SAFETY: channel `n - 1` holds `depth` bytes; `buf` holds 3 rows of 2, 2 apart.
        unsafe {
            run(
                variant,
                a,
                b.wrapping_add((n - 1) * ldb),
                0,
                depth,
                1,
                buf.as_mut_ptr().cast(),
                2,
            );
        }
        for (i, sums) in buf.iter().enumerate().take(rows) {
            out.row_mut(r0 + i)[n - 1] = sums[0];
        }
    }
}

/// The first-element pointers of rows `r0..r0 + rows` of `a`, the first repeated for
/// missing rows.
fn row_pointers<T: microbert::kernels::Element>(
    a: MatRef<'_, T>,
    r0: usize,
    rows: usize,
) -> [*const u8; 3] {
    core::array::from_fn(|i| a.row(r0 + if i < rows { i } else { 0 }).as_ptr().cast())
}

/// `out[out_r0..] = a x w^T` for an int8 (`Variant::I8`) or int16 (`Variant::I16`) `a`
/// (`m x depth`; `w`: `n x depth`, both non-empty; `out` holds rows `out_r0..out_r0 + m`).
fn dense<T: microbert::kernels::Element>(
    variant: Variant,
    a: MatRef<'_, T>,
    w: MatRef<'_, i8>,
    out: &mut MatMut<'_, i32>,
    out_r0: usize,
) {
    let (m, n, depth) = (a.rows(), w.rows(), a.cols());
    debug_assert_eq!(
        core::mem::size_of::<T>(),
        match variant {
            Variant::I8 => 1,
            _ => 2,
        }
    );
    let b = w.data().as_ptr().cast::<u8>();
    for r0 in (0..m).step_by(MR) {
        let rows = MR.min(m - r0);
        // SAFETY: rows of `a` hold `depth` elements of the variant's type and `w`'s `n`
        // rows, `ld` apart from its start, hold `depth` bytes (the `MatRef` invariant);
        // `out` holds rows `out_r0..out_r0 + m` of `n` (`Gemm` and the callers).
        unsafe {
            panel(
                variant,
                row_pointers(a, r0, rows),
                rows,
                b,
                w.ld(),
                n,
                depth,
                out,
                out_r0 + r0,
            );
        }
    }
}

/// `out = (a - zero_point) x w^T` for uint8 `a` (`m x depth`, `depth <= U8_BYTES / MR`):
/// blocks of rows shifted to int8 on the stack through [`dense`], then the zero point's
/// per-channel term.
fn dense_u8(a: MatRef<'_, u8>, zero_point: u8, w: MatRef<'_, i8>, out: &mut MatMut<'_, i32>) {
    let (m, depth) = (a.rows(), a.cols());
    let block = (U8_BYTES / depth) / MR * MR;
    let mut shifted = [0i8; U8_BYTES];
    for r0 in (0..m).step_by(block) {
        let rows = block.min(m - r0);
        for i in 0..rows {
            let dst = &mut shifted[i * depth..(i + 1) * depth];
            for (d, &q) in dst.iter_mut().zip(a.row(r0 + i)) {
                *d = (q ^ 0x80) as i8;
            }
        }
        let Some(x) = MatRef::contiguous(&shifted[..rows * depth], rows, depth) else {
            return;
        };
        dense(Variant::I8, x, w, out, r0);
    }
    // `sum (q - z) w = sum (q - 128) w + (128 - z) sum w`.
    let factor = 128 - i32::from(zero_point);
    for c in 0..w.rows() {
        let sum = w
            .row(c)
            .iter()
            .fold(0i32, |s, &x| s.wrapping_add(i32::from(x)));
        let term = sum.wrapping_mul(factor);
        for r in 0..m {
            let o = &mut out.row_mut(r)[c];
            *o = o.wrapping_add(term);
        }
    }
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` (attention P.V), `v.cols() <= VT_BYTES`.
fn weighted(p: MatRef<'_, u16>, v: MatRef<'_, i8>, out: &mut MatMut<'_, i32>) {
    let (m, keys, width) = (p.rows(), p.cols(), v.cols());
    let chunk = VT_BYTES / width;
    let mut vt = [0u8; VT_BYTES];
    for j0 in (0..keys).step_by(chunk) {
        let kc = chunk.min(keys - j0);
        // Channel `t` becomes a row of `kc` keys: `v + 128` as u8.
        for j in 0..kc {
            for (t, &x) in v.row(j0 + j).iter().enumerate() {
                vt[t * kc + j] = (x as u8) ^ 0x80;
            }
        }
        let first = j0 == 0;
        for r0 in (0..m).step_by(MR) {
            let rows = MR.min(m - r0);
            let mut a = row_pointers(p, r0, rows);
            for ptr in &mut a {
                *ptr = ptr.wrapping_add(2 * j0);
            }
            if first {
                // SAFETY: rows of `p` hold `keys >= j0 + kc` u16, `vt`'s `width` rows of
                // `kc` bytes are initialised, `out` is `m x width` (`Gemm`).
                unsafe { panel(Variant::U16, a, rows, vt.as_ptr(), kc, width, kc, out, r0) };
            } else {
                // Later chunks add: through a copy of the panel's rows.
                let mut part = [0i32; MR * 64];
                let mut t0 = 0;
                while t0 < width {
                    let tw = 64.min(width - t0);
                    let Some(mut sub) =
                        MatMut::new(&mut part[..(rows - 1) * tw + tw], rows, tw, tw)
                    else {
                        return;
                    };
                    // SAFETY: as above; `sub` holds `rows` rows of the `tw` channels
                    // `t0..t0 + tw` of `vt`.
                    unsafe {
                        panel(
                            Variant::U16,
                            a,
                            rows,
                            vt.as_ptr().wrapping_add(t0 * kc),
                            kc,
                            tw,
                            kc,
                            &mut sub,
                            0,
                        );
                    }
                    for i in 0..rows {
                        let dst = &mut out.row_mut(r0 + i)[t0..t0 + tw];
                        for (o, &s) in dst.iter_mut().zip(sub.row_mut(i).iter()) {
                            *o = o.wrapping_add(s);
                        }
                    }
                    t0 += tw;
                }
            }
        }
    }
    // The `v + 128` offset: `- 128 * sum_j p[r][j]`.
    for r in 0..m {
        let sum = p
            .row(r)
            .iter()
            .fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
        let correction = sum.wrapping_mul(128) as i32;
        for o in out.row_mut(r) {
            *o = o.wrapping_sub(correction);
        }
    }
}
