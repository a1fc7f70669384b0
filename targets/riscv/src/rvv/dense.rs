//! Dense products on RVV: int8 weights (one row per output channel) times int8, int16 or
//! uint8-with-a-zero-point activations, in 2x2 tiles of row dot products.
//!
//! One loop (the `tile_2x2!` macro) for every activation type: under `e16, m2` the two activation
//! rows of a strip become i16 lanes (int8: `vle8.v` then `vsext.vf2`; int16: `vle16.v` as
//! they are), the two weight rows are loaded with `vle8.v` (EMUL 1, no `vtype` change) and
//! widened with `vsext.vf2`, and `vwmacc.vv` accumulates the four i16 x i16 products into
//! i32 lanes (`m4`), tail-undisturbed so that the last partial strip keeps the other lanes;
//! one `vredsum.vs` per output at the end. uint8 activations are widened with the zero point
//! subtracted (`q - zp` is in [-255, 255], an exact i16) into a small stack panel of two
//! rows, per chunk of [`KC`] depths, and then run the int16 loop ([`gemm_u8`]).
//!
//! Exactness: an i16 times an i8 is at most 2^22 in magnitude; the i32 lanes accumulate and
//! the reduction sums them modulo 2^32, as the scalar reference's wrapping i32 sum does in
//! any order (the converter's bounds keep the true sums in range; exactness does not need
//! them).
//!
//! Register use: accumulators v8, v12, v16, v20 (`e32, m4`), widened operands v24-v31
//! (`e16, m2`), raw bytes v4-v7, reduction v1-v2.

use core::arch::asm;
use microbert::kernels::{Element, MatMut, MatRef};

/// Depths per chunk of [`gemm_u8`]'s widened rows: 2 rows x 1024 x 2 bytes = 4 KiB of stack.
const KC: usize = 1024;

/// Defines a 2x2 tile for activations of type `$t`: `$load` puts rows `a0` and `a1` of a
/// strip into v24 and v26 as i16 (`e16, m2`), `$advance` moves `a0` and `a1` past the strip
/// (`vl` elements; `t` is free to use).
macro_rules! tile_2x2 {
    ($(#[$doc:meta])* $name:ident, $t:ty, [$($load:literal),+ $(,)?], [$($advance:literal),+ $(,)?]) => {
        $(#[$doc])*
        ///
        /// Returns `[a0.b0, a0.b1, a1.b0, a1.b1]` over `depth` elements, wrapping modulo 2^32
        /// as the scalar i32 sum.
        ///
        /// # Safety
        /// `depth >= 1`; `a0` and `a1` are valid for reads of `depth` elements, `b0` and `b1`
        /// of `depth` bytes.
        #[inline(never)]
        unsafe fn $name(
            a0: *const $t,
            a1: *const $t,
            b0: *const i8,
            b1: *const i8,
            depth: usize,
        ) -> [i32; 4] {
            let (r00, r01, r10, r11): (i64, i64, i64, i64);
            // SAFETY: each strip loads `vl <= rem` elements from each pointer and advances it
            // by `vl` elements, so the loop reads exactly `depth` elements per pointer
            // (caller's contract; `depth >= 1` makes the do-while loop sound). It writes no
            // memory, uses no stack and clobbers only the listed vector registers (rustc
            // treats `vl`/`vtype` as clobbered by any asm).
            unsafe {
                asm!(
                    "vsetvli {t}, zero, e32, m4, ta, ma",
                    "vmv.v.i v8, 0",
                    "vmv.v.i v12, 0",
                    "vmv.v.i v16, 0",
                    "vmv.v.i v20, 0",
                    "2:",
                    "vsetvli {vl}, {rem}, e16, m2, tu, ma",
                    $($load,)+
                    "vle8.v v6, ({b0})",
                    "vle8.v v7, ({b1})",
                    "vsext.vf2 v28, v6",
                    "vsext.vf2 v30, v7",
                    "vwmacc.vv v8, v24, v28",
                    "vwmacc.vv v12, v24, v30",
                    "vwmacc.vv v16, v26, v28",
                    "vwmacc.vv v20, v26, v30",
                    $($advance,)+
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
    };
}

tile_2x2!(
    /// The int8 tile: `vle8.v` (EMUL 1) and `vsext.vf2` per activation row.
    tile_2x2,
    i8,
    [
        "vle8.v v4, ({a0})",
        "vle8.v v5, ({a1})",
        "vsext.vf2 v24, v4",
        "vsext.vf2 v26, v5",
    ],
    ["add {a0}, {a0}, {vl}", "add {a1}, {a1}, {vl}"]
);

tile_2x2!(
    /// The int16 tile: one `vle16.v` (EMUL 2) per activation row, 2 bytes per element.
    wide_2x2,
    i16,
    ["vle16.v v24, ({a0})", "vle16.v v26, ({a1})"],
    ["slli {t}, {vl}, 1", "add {a0}, {a0}, {t}", "add {a1}, {a1}, {t}"]
);

/// Activation elements with a 2x2 tile.
trait Tile: Element {
    /// The tile (`tile_2x2` or `wide_2x2`).
    ///
    /// # Safety
    /// As the tile's: `depth >= 1`, `a` readable for `depth` elements, `b` for `depth` bytes.
    unsafe fn tile(a: [*const Self; 2], b: [*const i8; 2], depth: usize) -> [i32; 4];
}

impl Tile for i8 {
    unsafe fn tile(a: [*const i8; 2], b: [*const i8; 2], depth: usize) -> [i32; 4] {
        // SAFETY: forwarded contract.
        unsafe { tile_2x2(a[0], a[1], b[0], b[1], depth) }
    }
}

impl Tile for i16 {
    unsafe fn tile(a: [*const i16; 2], b: [*const i8; 2], depth: usize) -> [i32; 4] {
        // SAFETY: forwarded contract.
        unsafe { wide_2x2(a[0], a[1], b[0], b[1], depth) }
    }
}

/// `out[r * ldo + c] = sum_k a[r][k] * b[c][k]`, or added to it (wrapping) when `add`.
fn tiles<T: Tile>(a: MatRef<'_, T>, b: MatRef<'_, i8>, out: &mut [i32], ldo: usize, add: bool) {
    let (m, n, depth) = (a.rows(), b.rows(), a.cols());
    assert!(b.cols() == depth, "rvv tiles: depths differ");
    if m == 0 || n == 0 || depth == 0 {
        return;
    }
    let (lda, ldb) = (a.ld(), b.ld());
    let (a, b) = (a.data(), b.data());
    let mut put = |at: usize, v: i32| {
        let o = &mut out[at];
        *o = if add { o.wrapping_add(v) } else { v };
    };
    // A missing second row or column repeats the first; its sums are dropped.
    for r in (0..m).step_by(2) {
        let r1 = (r + 1).min(m - 1);
        let pa = [a[r * lda..].as_ptr(), a[r1 * lda..].as_ptr()];
        for c in (0..n).step_by(2) {
            let c1 = (c + 1).min(n - 1);
            let pb = [b[c * ldb..].as_ptr(), b[c1 * ldb..].as_ptr()];
            // SAFETY: rows r, r1 < m of `a` and c, c1 < n of `b` each hold `depth >= 1`
            // elements from their start (the `MatRef` invariant; the depths agree, asserted
            // above).
            let s = unsafe { T::tile(pa, pb, depth) };
            put(r * ldo + c, s[0]);
            if c1 != c {
                put(r * ldo + c1, s[1]);
            }
            if r1 != r {
                put(r1 * ldo + c, s[2]);
                if c1 != c {
                    put(r1 * ldo + c1, s[3]);
                }
            }
        }
    }
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` for int8 activations (`b`: one row per output
/// channel). The caller (`RvvKernels::gemm`) checked that the shapes agree and are not
/// empty.
pub(crate) fn gemm(a: MatRef<'_, i8>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let ldo = out.ld();
    tiles(a, b, out.data_mut(), ldo, false);
}

/// [`gemm`] for int16 activations, read in place.
pub(crate) fn gemm_i16(a: MatRef<'_, i16>, b: MatRef<'_, i8>, mut out: MatMut<'_, i32>) {
    let ldo = out.ld();
    tiles(a, b, out.data_mut(), ldo, false);
}

/// [`gemm`] for uint8 activations with a zero point (element `q - zero_point`): two rows at
/// a time, widened to i16 per chunk of [`KC`] depths, through the int16 tile.
pub(crate) fn gemm_u8(
    a: MatRef<'_, u8>,
    zero_point: u8,
    b: MatRef<'_, i8>,
    mut out: MatMut<'_, i32>,
) {
    let (m, depth) = (a.rows(), a.cols());
    let ldo = out.ld();
    let out = out.data_mut();
    let mut panel = [0i16; 2 * KC];
    for r0 in (0..m).step_by(2) {
        let rows = 2.min(m - r0);
        for k0 in (0..depth).step_by(KC) {
            let kc = KC.min(depth - k0);
            for (i, dst) in panel.chunks_exact_mut(KC).take(rows).enumerate() {
                for (d, &q) in dst.iter_mut().zip(&a.row(r0 + i)[k0..k0 + kc]) {
                    *d = i16::from(q) - i16::from(zero_point);
                }
            }
            let (Some(p), Some(bk)) = (MatRef::new(&panel, rows, kc, KC), b.cols_range(k0, kc))
            else {
                return;
            };
            tiles(p, bk, &mut out[r0 * ldo..], ldo, k0 > 0);
        }
    }
}
