//! `gemm_i8` without the dot-product extension (Cortex-A53/A72 class): 4x4 register tiles of
//! row dot products. Per 16 bytes of depth and (row, column) pair: `smull` (low 8 lanes),
//! `smlal2` (high 8 lanes) into i16 and `sadalp` into i32. Two products of values in
//! [-127, 127] sum to at most 2 * 16,129 = 32,258 < 32,767, so the i16 step is exact.

use core::arch::aarch64::{
    int8x16_t, int32x4_t, vaddvq_s32, vdupq_n_s8, vdupq_n_s32, vget_low_s8, vld1q_s8,
    vmlal_high_s8, vmull_s8, vpadalq_s16,
};
use microbert::kernels::{MatMut, MatRef};

/// Rows and columns of the main tile.
const T: usize = 4;

/// Dot products of `MR` rows of `a` with `NR` rows of `b` over `depth`:
/// `res[i][j] = sum_k a[i][k] * b[j][k]` (wrapping, as the scalar i32 sum).
///
/// # Safety
/// Every pointer in `a` and `b` must be valid for reads of `depth` bytes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const MR: usize, const NR: usize>(
    a: [*const i8; MR],
    b: [*const i8; NR],
    depth: usize,
) -> [[i32; NR]; MR] {
    let mut acc: [[int32x4_t; NR]; MR] = [[vdupq_n_s32(0); NR]; MR];
    let mut va: [int8x16_t; MR] = [vdupq_n_s8(0); MR];
    let mut vb: [int8x16_t; NR] = [vdupq_n_s8(0); NR];
    let mut k = 0;
    while k + 16 <= depth {
        for i in 0..MR {
            // SAFETY: `k + 16 <= depth` and `a[i]` is readable for `depth` bytes (caller).
            va[i] = unsafe { vld1q_s8(a[i].add(k)) };
        }
        for j in 0..NR {
            // SAFETY: as above for `b[j]`.
            vb[j] = unsafe { vld1q_s8(b[j].add(k)) };
        }
        for i in 0..MR {
            for j in 0..NR {
                let lo = vmull_s8(vget_low_s8(va[i]), vget_low_s8(vb[j]));
                let both = vmlal_high_s8(lo, va[i], vb[j]);
                acc[i][j] = vpadalq_s16(acc[i][j], both);
            }
        }
        k += 16;
    }
    let mut res = [[0i32; NR]; MR];
    for i in 0..MR {
        for j in 0..NR {
            res[i][j] = vaddvq_s32(acc[i][j]);
        }
    }
    while k < depth {
        for i in 0..MR {
            // SAFETY: `k < depth`: inside the caller's `depth` readable bytes.
            let x = i32::from(unsafe { *a[i].add(k) });
            for j in 0..NR {
                // SAFETY: as above for `b[j]`.
                let w = i32::from(unsafe { *b[j].add(k) });
                res[i][j] = res[i][j].wrapping_add(x * w);
            }
        }
        k += 1;
    }
    res
}

/// The 4x4 tile, kept out of line so `cargo xtask asm-report` finds its inner loop.
///
/// # Safety
/// As [`tile`].
#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn tile_4x4(a: [*const i8; T], b: [*const i8; T], depth: usize) -> [[i32; T]; T] {
    // SAFETY: forwarded contract.
    unsafe { tile::<T, T>(a, b, depth) }
}

/// Row pointers `first..first + count` of a matrix at stride `ld`.
fn rows<const R: usize>(x: &[i8], first: usize, ld: usize) -> [*const i8; R] {
    // `wrapping_add` keeps this safe; the pointers are only read under `gemm`'s checks.
    core::array::from_fn(|i| x.as_ptr().wrapping_add((first + i) * ld))
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` on NEON.
///
/// # Safety
/// The shapes `super::gemm`'s caller checked: `m, n, depth >= 1`, `a` is `m x depth`, `b`
/// is `n x depth`, `out` is `m x n` (every row of each holds its columns: the view
/// invariant).
#[target_feature(enable = "neon")]
pub(super) unsafe fn gemm(a: MatRef<'_, i8>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let (m, n, depth) = (a.rows(), b.rows(), a.cols());
    let (lda, ldb, ldo) = (a.ld(), b.ld(), out.ld());
    let (a, b, out) = (a.data(), b.data(), out.data_mut());
    let (m4, n4) = (m - m % T, n - n % T);
    for r in (0..m4).step_by(T) {
        let pa = rows::<T>(a, r, lda);
        for c in (0..n4).step_by(T) {
            // SAFETY: rows r..r+4 < m of `a` and c..c+4 < n of `b` each hold `depth`
            // bytes (this function's contract).
            let res = unsafe { tile_4x4(pa, rows::<T>(b, c, ldb), depth) };
            for (i, row) in res.iter().enumerate() {
                out[(r + i) * ldo + c..][..T].copy_from_slice(row);
            }
        }
        for c in n4..n {
            // SAFETY: rows r..r+4 of `a` and row c < n of `b` hold `depth` bytes.
            let res = unsafe { tile::<T, 1>(pa, rows::<1>(b, c, ldb), depth) };
            for (i, row) in res.iter().enumerate() {
                out[(r + i) * ldo + c] = row[0];
            }
        }
    }
    for r in m4..m {
        let pa = rows::<1>(a, r, lda);
        for c in (0..n4).step_by(T) {
            // SAFETY: row r < m of `a` and rows c..c+4 < n of `b` hold `depth` bytes.
            let res = unsafe { tile::<1, T>(pa, rows::<T>(b, c, ldb), depth) };
            out[r * ldo + c..][..T].copy_from_slice(&res[0]);
        }
        for c in n4..n {
            // SAFETY: row r < m of `a` and row c < n of `b` hold `depth` bytes.
            let res = unsafe { tile::<1, 1>(pa, rows::<1>(b, c, ldb), depth) };
            out[r * ldo + c] = res[0][0];
        }
    }
}
