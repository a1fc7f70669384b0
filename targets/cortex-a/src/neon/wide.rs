//! Products of 16-bit activations with int8 weights: `Lhs::I16` (W8A16 inputs) on every
//! NEON build (plain, dotprod, i8mm), and `Lhs::U8` with a zero point on the plain build
//! (with the dot-product extension uint8 rows run the int8 kernels, see `bytes`), whose
//! elements `q - zero_point` lie in [-255, 255] and so are exact int16 values as well.
//!
//! Rows are taken [`MR`] at a time: their activations over a chunk of at most [`KC`]
//! depths are copied (int16) or widened with the zero point subtracted (uint8) into a stack
//! panel of i16, once per chunk for all the output channels ([`Wide::pack`]: 8 depths of
//! each row after another, zero-padded to a multiple of 8 depths). The weights are read in place
//! (the blob's int8: prepared operands pass `Prepared::raw`, since the i8mm layout serves
//! only the int8 products). A 4x4 tile ([`wide_4x4`]) then needs, per 8 depths, the 4 panel
//! rows (2 `ldp`), 4 weight loads of 8 bytes and their `sxtl` (`vmovl_s8`), and 32
//! `smlal`/`smlal2` (`vmlal_s16`/`vmlal_high_s16`, 4 lanes each): 128 multiply-accumulates.
//!
//! Exactness: an int16 times an int8 is at most 2^15 * 2^7 = 2^22 in magnitude, exact in
//! an i32 lane; the lanes accumulate, and are summed, modulo 2^32, which is what the scalar
//! reference's wrapping i32 sum computes in any order. (The converter's bound
//! `qmax * 127 * depth < 2^31` keeps the true sums in range; exactness does not need it.)

use core::arch::aarch64::{
    int16x8_t, vaddvq_s32, vdupq_n_s16, vdupq_n_s32, vget_low_s16, vld1_s8, vld1q_s16,
    vmlal_high_s16, vmlal_s16, vmovl_s8,
};
use microbert::kernels::{MatMut, MatRef};

/// Rows of a tile (and of the panel).
const MR: usize = 4;
/// Output channels of a tile.
const NR: usize = 4;
/// Depths per panel chunk (a multiple of [`STEP`]): the panel is `MR * KC * 2` bytes of stack.
const KC: usize = 512;
/// Depths per step of the inner loop (one 8-lane i16 vector per row).
const STEP: usize = 8;

/// A left operand this module multiplies: every element a 16-bit value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wide<'a> {
    /// int16 activations, as they are.
    I16(MatRef<'a, i16>),
    /// uint8 values and their zero point: element `q - zero_point` (with the dot-product
    /// extension these run the int8 kernels instead).
    #[cfg(not(target_feature = "dotprod"))]
    U8(MatRef<'a, u8>, u8),
}

impl Wide<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::I16(m) => m.rows(),
            #[cfg(not(target_feature = "dotprod"))]
            Self::U8(m, _) => m.rows(),
        }
    }

    fn depth(&self) -> usize {
        match self {
            Self::I16(m) => m.cols(),
            #[cfg(not(target_feature = "dotprod"))]
            Self::U8(m, _) => m.cols(),
        }
    }

    /// Packs rows `r0..r0 + rows` (`rows <= MR`) and depths `k0..k0 + kc` into `panel`:
    /// depth `8 s + t` of row `i` goes to `(s * rows + i) * 8 + t`; the padding of the last
    /// step is zero.
    fn pack(&self, panel: &mut [i16], r0: usize, rows: usize, k0: usize, kc: usize) {
        for i in 0..rows {
            match self {
                Self::I16(m) => pack_row(panel, rows, i, &m.row(r0 + i)[k0..k0 + kc], |x| x),
                #[cfg(not(target_feature = "dotprod"))]
                Self::U8(m, zp) => {
                    let zp = i16::from(*zp);
                    pack_row(panel, rows, i, &m.row(r0 + i)[k0..k0 + kc], |q| {
                        i16::from(q) - zp
                    });
                }
            }
        }
    }
}

/// Row `i` of a panel of `rows` rows (see [`Wide::pack`]) from `src`, each element
/// through `f`.
#[inline(always)]
fn pack_row<T: Copy>(panel: &mut [i16], rows: usize, i: usize, src: &[T], f: impl Fn(T) -> i16) {
    let mut steps = src.chunks_exact(STEP);
    for (s, x) in (&mut steps).enumerate() {
        for (d, &x) in panel[(s * rows + i) * STEP..][..STEP].iter_mut().zip(x) {
            *d = f(x);
        }
    }
    let rest = steps.remainder();
    if !rest.is_empty() {
        let s = src.len() / STEP;
        for (t, d) in panel[(s * rows + i) * STEP..][..STEP]
            .iter_mut()
            .enumerate()
        {
            *d = rest.get(t).map_or(0, |&x| f(x));
        }
    }
}

/// Sums of `steps` steps of `R` panel rows (`R * 8` i16 per step) with the `NR` weight
/// rows: `res[i][j] = sum_k a[i][k] * w[j][k]` modulo 2^32 for `i < R` (rows past `R` are
/// zero).
///
/// # Safety
/// `panel` is readable for `steps * R * 8` i16 and each `w[j]` for `steps * 8` bytes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const R: usize>(
    panel: *const i16,
    w: [*const i8; NR],
    steps: usize,
) -> [[i32; NR]; MR] {
    let mut acc = [[vdupq_n_s32(0); NR]; R];
    let mut va: [int16x8_t; R] = [vdupq_n_s16(0); R];
    for s in 0..steps {
        for (i, v) in va.iter_mut().enumerate() {
            // SAFETY: `s < steps`: the 8 i16 at `(s * R + i) * 8` are in the panel (caller).
            *v = unsafe { vld1q_s16(panel.add((s * R + i) * STEP)) };
        }
        for (j, &wj) in w.iter().enumerate() {
            // SAFETY: `s < steps`: bytes `8 s..8 s + 8` of `w[j]` are readable (caller).
            let x = vmovl_s8(unsafe { vld1_s8(wj.add(s * STEP)) });
            for (acc, &a) in acc.iter_mut().zip(&va) {
                acc[j] = vmlal_s16(acc[j], vget_low_s16(a), vget_low_s16(x));
                acc[j] = vmlal_high_s16(acc[j], a, x);
            }
        }
    }
    let mut res = [[0i32; NR]; MR];
    for (res, acc) in res.iter_mut().zip(&acc) {
        for (r, &a) in res.iter_mut().zip(acc) {
            *r = vaddvq_s32(a);
        }
    }
    res
}

/// The 4x4 tile, kept out of line so that its inner loop can be found in the disassembly.
///
/// # Safety
/// As [`tile`] with `R = 4`.
#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn wide_4x4(panel: *const i16, w: [*const i8; NR], steps: usize) -> [[i32; NR]; MR] {
    // SAFETY: forwarded contract.
    unsafe { tile::<MR>(panel, w, steps) }
}

/// [`tile`] for `rows` (1 to 4) panel rows over `steps >= 1` steps; the length checks make
/// its contract hold (they run once per tile and chunk).
fn sums(rows: usize, panel: &[i16], w: [&[i8]; NR], steps: usize) -> [[i32; NR]; MR] {
    assert!(
        (1..=MR).contains(&rows)
            && panel.len() >= steps * rows * STEP
            && w.iter().all(|r| r.len() >= steps * STEP),
        "int16 tile: internal shape invariant"
    );
    let (p, w) = (panel.as_ptr(), w.map(<[i8]>::as_ptr));
    // SAFETY: checked above: the panel holds `steps` steps of `rows` rows and every weight
    // row `steps * 8` bytes; the module is compiled only with `target_feature = "neon"`.
    unsafe {
        match rows {
            4 => wide_4x4(p, w, steps),
            3 => tile::<3>(p, w, steps),
            2 => tile::<2>(p, w, steps),
            _ => tile::<1>(p, w, steps),
        }
    }
}

/// `out[r][c] = sum_k a(r, k) * b[c][k]` (`b`: one row of int8 weights per output channel).
/// The caller (`NeonKernels::gemm`) checked that the shapes agree and are not empty.
pub(crate) fn gemm(a: Wide<'_>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let (m, n, depth) = (a.rows(), b.rows(), a.depth());
    let (ldb, ldo) = (b.ld(), out.ld());
    let (bd, out) = (b.data(), out.data_mut());
    let mut panel = [0i16; MR * KC];
    for r0 in (0..m).step_by(MR) {
        let rows = MR.min(m - r0);
        for k0 in (0..depth).step_by(KC) {
            let kc = KC.min(depth - k0);
            let (full, tail) = (kc / STEP, kc % STEP);
            a.pack(&mut panel, r0, rows, k0, kc);
            for c0 in (0..n).step_by(NR) {
                let cols = NR.min(n - c0);
                // Columns past `n` repeat the last one; their sums are dropped.
                let w: [&[i8]; NR] =
                    core::array::from_fn(|j| &bd[(c0 + j.min(cols - 1)) * ldb + k0..][..kc]);
                let mut res = [[0i32; NR]; MR];
                if full > 0 {
                    res = sums(rows, &panel, w, full);
                }
                if tail > 0 {
                    // The last partial step, on zero-padded copies of the weights.
                    let mut wt = [[0i8; STEP]; NR];
                    for (t, r) in wt.iter_mut().zip(w) {
                        t[..tail].copy_from_slice(&r[full * STEP..]);
                    }
                    let last = &panel[full * rows * STEP..];
                    let t = sums(rows, last, wt.each_ref().map(|t| &t[..]), 1);
                    for (res, t) in res.iter_mut().zip(t) {
                        for (r, t) in res.iter_mut().zip(t) {
                            *r = r.wrapping_add(t);
                        }
                    }
                }
                for (i, res) in res.iter().enumerate().take(rows) {
                    store(&mut out[(r0 + i) * ldo + c0..][..cols], res, k0 > 0);
                }
            }
        }
    }
}

/// Writes (or with `add`, adds modulo 2^32) the first `o.len()` sums of a tile row: a whole
/// tile row is one 16-byte store.
#[inline(always)]
fn store(o: &mut [i32], res: &[i32; NR], add: bool) {
    match (<&mut [i32; NR]>::try_from(&mut *o), add) {
        (Ok(o), false) => *o = *res,
        _ => {
            for (o, &v) in o.iter_mut().zip(res) {
                *o = if add { o.wrapping_add(v) } else { v };
            }
        }
    }
}
