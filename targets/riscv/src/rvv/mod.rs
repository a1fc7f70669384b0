//! RVV 1.0 kernels. The operands come as `MatRef`/`MatMut` views (every row holds its
//! columns) whose shapes `RvvKernels::gemm` checked to agree and be non-empty; the `asm!`
//! loops run on raw pointers within those bounds.
//!
//! Register use: `gemm` accumulators v8, v12, v16, v20 (`e32, m4`), widened operands
//! v24-v31 (`e16, m2`), raw bytes v4-v7, reduction v1-v2. `weighted_sum` accumulators v8
//! (`e32, m8`), raw bytes v4 (`m2`), widened values v16 (`m4`). No masks (v0 unused).

use core::arch::asm;
use microbert::kernels::{MatMut, MatRef};

/// Dot products of rows `a0`, `a1` with rows `b0`, `b1` over `depth` bytes:
/// `[a0.b0, a0.b1, a1.b0, a1.b1]`, wrapping modulo 2^32 as the scalar i32 sum.
///
/// # Safety
/// `depth >= 1` and each of the four pointers is valid for reads of `depth` bytes.
#[inline(never)]
unsafe fn tile_2x2(
    a0: *const i8,
    a1: *const i8,
    b0: *const i8,
    b1: *const i8,
    depth: usize,
) -> [i32; 4] {
    let (r00, r01, r10, r11): (i64, i64, i64, i64);
    // SAFETY: each strip loads `vl <= rem` bytes from each pointer and advances it by `vl`,
    // so the loop reads exactly `depth` bytes per pointer (caller's contract; `depth >= 1`
    // makes the do-while loop sound). It writes no memory, uses no stack and clobbers only
    // the listed vector registers (rustc treats `vl`/`vtype` as clobbered by any asm).
    unsafe {
        asm!(
            "vsetvli {t}, zero, e32, m4, ta, ma",
            "vmv.v.i v8, 0",
            "vmv.v.i v12, 0",
            "vmv.v.i v16, 0",
            "vmv.v.i v20, 0",
            "2:",
            "vsetvli {vl}, {rem}, e16, m2, tu, ma",
            "vle8.v v4, ({a0})",
            "vle8.v v5, ({a1})",
            "vle8.v v6, ({b0})",
            "vle8.v v7, ({b1})",
            "vsext.vf2 v24, v4",
            "vsext.vf2 v26, v5",
            "vsext.vf2 v28, v6",
            "vsext.vf2 v30, v7",
            "vwmacc.vv v8, v24, v28",
            "vwmacc.vv v12, v24, v30",
            "vwmacc.vv v16, v26, v28",
            "vwmacc.vv v20, v26, v30",
            "add {a0}, {a0}, {vl}",
            "add {a1}, {a1}, {vl}",
            "add {b0}, {b0}, {vl}",
            "add {b1}, {b1}, {vl}",
            "sub {rem}, {rem}, {vl}",
            "bnez {rem}, 2b",
            "vsetvli {t}, zero, e32, m4, ta, ma",
            "vmv.s.x v1, zero",
            "vredsum.vs v2, v8, v1",
            "vmv.x.s {r00}, v2",
            "vredsum.vs v2, v12, v1",
            "vmv.x.s {r01}, v2",
            "vredsum.vs v2, v16, v1",
            "vmv.x.s {r10}, v2",
            "vredsum.vs v2, v20, v1",
            "vmv.x.s {r11}, v2",
            t = out(reg) _,
            vl = out(reg) _,
            rem = inout(reg) depth => _,
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            r00 = out(reg) r00,
            r01 = out(reg) r01,
            r10 = out(reg) r10,
            r11 = out(reg) r11,
            out("v1") _, out("v2") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack, readonly),
        );
    }
    // `vmv.x.s` sign-extends the 32-bit sum: the low 32 bits are the i32 result.
    [r00 as i32, r01 as i32, r10 as i32, r11 as i32]
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` (`b`: one row per output channel). The caller
/// (`RvvKernels::gemm`) checked that the shapes agree and are not empty.
pub(crate) fn gemm(a: MatRef<'_, i8>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let (m, n, depth) = (a.rows(), b.rows(), a.cols());
    let (lda, ldb, ldo) = (a.ld(), b.ld(), out.ld());
    let (a, b, out) = (a.data(), b.data(), out.data_mut());
    // A missing second row or column repeats the first; its sums are dropped.
    for r in (0..m).step_by(2) {
        let r1 = (r + 1).min(m - 1);
        let (a0, a1) = (a[r * lda..].as_ptr(), a[r1 * lda..].as_ptr());
        for c in (0..n).step_by(2) {
            let c1 = (c + 1).min(n - 1);
            let (b0, b1) = (b[c * ldb..].as_ptr(), b[c1 * ldb..].as_ptr());
            // SAFETY: rows r, r1 < m of `a` and c, c1 < n of `b` each hold `depth >= 1`
            // bytes from their start (the `MatRef` invariant, checked non-empty by the caller).
            let s = unsafe { tile_2x2(a0, a1, b0, b1, depth) };
            out[r * ldo + c] = s[0];
            if c1 != c {
                out[r * ldo + c1] = s[1];
            }
            if r1 != r {
                out[r1 * ldo + c] = s[2];
                if c1 != c {
                    out[r1 * ldo + c1] = s[3];
                }
            }
        }
    }
}

/// One strip of columns of the weighted sum: `out[t] = sum_j p[j] * v[j * ldv + t]` for
/// `t < vl`, with `vl = min(avl, VLMAX)` for `e16, m4`; returns `vl`.
///
/// # Safety
/// `avl >= 1`, `np >= 1`; `p` readable for `np` u16; for every `j < np`, `v + j * ldv`
/// readable for `avl` bytes; `out` writable for `avl` i32.
#[inline(never)]
unsafe fn weighted_strip(
    p: *const u16,
    np: usize,
    v: *const i8,
    ldv: usize,
    avl: usize,
    out: *mut i32,
) -> usize {
    let vl: usize;
    // SAFETY: `vl <= avl` (RVV guarantees it), so each `vle8.v` reads `vl <= avl` bytes of
    // row `j < np` and `vse32.v` writes `vl <= avl` i32 (caller's contract); `lhu` reads
    // `np` u16. `e32, m8` has the same VLMAX as `e16, m4`, so `vsetvli zero, zero` keeps
    // `vl`. No stack; only the listed registers are clobbered.
    unsafe {
        asm!(
            "vsetvli {vl}, {avl}, e16, m4, ta, ma",
            "vsetvli zero, zero, e32, m8, ta, ma",
            "vmv.v.i v8, 0",
            "vsetvli zero, zero, e16, m4, ta, ma",
            "2:",
            "lhu {pj}, 0({p})",
            "vle8.v v4, ({v})",
            "vsext.vf2 v16, v4",
            "vwmaccus.vx v8, {pj}, v16",
            "addi {p}, {p}, 2",
            "add {v}, {v}, {ldv}",
            "addi {np}, {np}, -1",
            "bnez {np}, 2b",
            "vsetvli zero, zero, e32, m8, ta, ma",
            "vse32.v v8, ({out})",
            vl = out(reg) vl,
            avl = in(reg) avl,
            pj = out(reg) _,
            p = inout(reg) p => _,
            v = inout(reg) v => _,
            ldv = in(reg) ldv,
            np = inout(reg) np => _,
            out = in(reg) out,
            out("v4") _, out("v5") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            options(nostack),
        );
    }
    vl
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` (attention P.V), row by row. The caller checked
/// that the shapes agree and are not empty.
pub(crate) fn weighted_sums(p: MatRef<'_, u16>, v: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    for r in 0..p.rows() {
        weighted_row(p.row(r), v, out.row_mut(r));
    }
}

/// One row of [`weighted_sums`]: `v` has `p.len()` rows of at least `out.len()` values.
fn weighted_row(p: &[u16], v: MatRef<'_, i8>, out: &mut [i32]) {
    let width = out.len();
    if p.is_empty() || width == 0 || v.rows() < p.len() || v.cols() < width {
        return;
    }
    let (ldv, v) = (v.ld(), v.data());
    let mut t0 = 0;
    while t0 < width {
        let dst = &mut out[t0..];
        // SAFETY: `avl = width - t0 >= 1` and `p.len() >= 1`; row `j < p.len()` of `v`
        // from column `t0` holds `width - t0` bytes (checked above with the `MatRef`
        // invariant); `dst` holds `width - t0` i32.
        let vl = unsafe {
            weighted_strip(
                p.as_ptr(),
                p.len(),
                v[t0..].as_ptr(),
                ldv,
                width - t0,
                dst.as_mut_ptr(),
            )
        };
        t0 += vl.max(1);
    }
}
