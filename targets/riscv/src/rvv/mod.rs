//! RVV 1.0 kernels. The operands come as `MatRef`/`MatMut` views (every row holds its
//! columns) whose shapes `RvvKernels::gemm` checked to agree and be non-empty; the `asm!`
//! loops run on raw pointers within those bounds.
//!
//! The dense products (int8, int16 and uint8 activations with int8 weights) are in
//! [`dense`]; the P.V product (`weighted_sums`) is here. Register use of `weighted_strip`:
//! accumulators v8 (`e32, m8`), raw bytes v4 (`m2`), widened values v16 (`m4`). No masks
//! (v0 unused).

mod dense;

pub(crate) use dense::{gemm, gemm_i16, gemm_u8};

use core::arch::asm;
use microbert::kernels::{MatMut, MatRef};

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
