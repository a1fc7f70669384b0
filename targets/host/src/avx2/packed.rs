//! The AVX2 GEMM on packed weights: `b` re-laid out in panels of [`NR`] output channels so
//! that the inner loop needs no horizontal sums.
//!
//! Layout ([`Panels`]): panel `q` holds channels `16q..16q + 16`; within it, for each pair
//! of depths `(2p, 2p + 1)`, 32 bytes `b[c][2p], b[c][2p + 1]` for the 16 channels in
//! order. Depth is padded to even and channels to a whole panel with zeros (zeros add
//! nothing to a sum, so the padding is exact).
//!
//! Inner loop, per pair of depths: the panel's 32 bytes are sign-extended into two `ymm` of
//! eight (channel, depth pair) words (`vpmovsxbw`); each of [`MR`] rows of `a` (widened to
//! i16 once per call) broadcasts its own pair (`vpbroadcastd`) and `vpmaddwd` gives, per
//! 32-bit lane, the two products of one channel summed: lane `j` of the accumulator is
//! output channel `16q + 8h + j` itself. A `6 x 16` tile keeps 12 accumulators, 2 weight
//! vectors, a broadcast and a product in the 16 `ymm` registers (about 3% faster than
//! `4 x 16` on Zen 3, with fewer instructions per multiply-accumulate; unrolling by two did
//! not help, nor did replacing the broadcasts or the widening by plain loads in timing-only
//! experiments: the `vpmaddwd` + `vpaddd` pairs on the vector pipes are what is left).
//! Exactness is as in the parent module (i16 products cannot saturate `vpmaddwd`; `vpaddd`
//! wraps like the reference's sums).
//!
//! A panel (16 channels x depth bytes: 6 KiB at depth 384, 24 KiB at 1,536) stays in L1
//! while every row tile of the call passes over it; panels are contiguous, so the weights
//! stream through the caches in order once per call.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpackhi_epi16,
    _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi8, _mm_unpacklo_epi16,
    _mm_unpacklo_epi32, _mm_unpacklo_epi64, _mm256_add_epi32, _mm256_cvtepi8_epi16,
    _mm256_cvtepu8_epi16, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_set1_epi16,
    _mm256_set1_epi32, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_sub_epi16,
};

use core::ops::Range;
use microbert::kernels::{MatMut, MatRef};

/// Rows of `a` per register tile.
pub(crate) const MR: usize = 6;
/// Output channels per panel (two vectors of eight i32 lanes).
pub(crate) const NR: usize = 16;
/// Bytes of one panel per pair of depths.
const PAIR_BYTES: usize = 2 * NR;

/// Bytes of `n` channels of `depth` weights in panels (`None` on overflow): whole panels of
/// an even depth.
pub(crate) const fn panel_len(n: usize, depth: usize) -> Option<usize> {
    match n.div_ceil(NR).checked_mul(depth.div_ceil(2)) {
        Some(x) => x.checked_mul(PAIR_BYTES),
        None => None,
    }
}

/// Index in a packing of element `k` of channel `c` (`pairs` pairs of depths per panel).
const fn at(pairs: usize, c: usize, k: usize) -> usize {
    c / NR * pairs * PAIR_BYTES + k / 2 * PAIR_BYTES + 2 * (c % NR) + k % 2
}

/// `n` channels of `depth` weights packed in panels, borrowed (the prepared weights of a
/// model, or a buffer packed by the call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panels<'a> {
    data: &'a [i8],
    n: usize,
    depth: usize,
}

impl<'a> Panels<'a> {
    /// A view of a packing; `None` unless `data` holds [`panel_len`] bytes.
    pub(crate) fn new(data: &'a [i8], n: usize, depth: usize) -> Option<Self> {
        (panel_len(n, depth)? <= data.len()).then_some(Self { data, n, depth })
    }

    /// Pairs of depths per panel.
    pub(crate) fn pairs(&self) -> usize {
        self.depth.div_ceil(2)
    }
}

/// Packs the channels of `b` (`b.rows()` channels of `b.cols()` depths) into `out`, which
/// holds at least [`panel_len`] bytes, with SIMD transposes for whole blocks of 8 channels
/// by 16 depths. Padding (channels to a whole panel, depth to even) is zero: zeros add
/// nothing to a sum, so the padding is exact.
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_channels(b: MatRef<'_, i8>, out: &mut [i8]) {
    let (n, depth, ldb) = (b.rows(), b.cols(), b.ld());
    let Some(len) = panel_len(n, depth).filter(|&l| l <= out.len()) else {
        return;
    };
    let out = &mut out[..len];
    // Whole panels of an even depth are written byte for byte below.
    if !(n.is_multiple_of(NR) && depth.is_multiple_of(2)) {
        out.fill(0);
    }
    let pairs = depth.div_ceil(2);
    let (n8, k16) = (n & !7, depth & !15);
    let panel_bytes = pairs * PAIR_BYTES;
    let src = b.data();
    for c0 in (0..n8).step_by(8) {
        let dst = out
            .as_mut_ptr()
            .wrapping_add(c0 / NR * panel_bytes + 2 * (c0 % NR));
        for k0 in (0..k16).step_by(16) {
            // SAFETY: rows `c0..c0 + 8 <= n` of `b` hold `k0 + 16 <= depth` elements (the
            // `MatRef` invariant); the 8 stores of 16 bytes go to pairs `k0 / 2..k0 / 2 + 8`
            // of channels `c0..c0 + 8` of their panel, inside `out` (`panel_len` bytes).
            unsafe {
                let src = src.as_ptr().add(c0 * ldb + k0);
                let rows: [__m128i; 8] =
                    core::array::from_fn(|r| _mm_loadu_si128(src.add(r * ldb).cast()));
                let cols = transpose_8x8_u16(rows);
                for (p, col) in cols.iter().enumerate() {
                    let at = (k0 / 2 + p) * PAIR_BYTES;
                    _mm_storeu_si128(dst.add(at).cast(), *col);
                }
            }
        }
    }
    let fill = |out: &mut [i8], channels: Range<usize>, depths: Range<usize>| {
        for c in channels {
            let row = b.row(c);
            for k in depths.clone() {
                if let (Some(d), Some(&x)) = (out.get_mut(at(pairs, c, k)), row.get(k)) {
                    *d = x;
                }
            }
        }
    };
    fill(out, 0..n8, k16..depth);
    fill(out, n8..n, 0..depth);
}

/// Packs the transpose of `v` into `out` (at least [`panel_len`]`(v.cols(), v.rows())`
/// bytes): channel `t < v.cols()` has depth `v.rows()`, element `j` being `v[j][t]` (the
/// values of attention: channels = features, depth = keys).
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_depths(v: MatRef<'_, i8>, out: &mut [i8]) {
    let (keys, width, ldv) = (v.rows(), v.cols(), v.ld());
    let Some(len) = panel_len(width, keys).filter(|&l| l <= out.len()) else {
        return;
    };
    let out = &mut out[..len];
    if !(width.is_multiple_of(NR) && keys.is_multiple_of(2)) {
        out.fill(0);
    }
    let pairs = keys.div_ceil(2);
    let panel_bytes = pairs * PAIR_BYTES;
    let (w16, k2) = (width & !15, keys & !1);
    let src = v.data();
    for t0 in (0..w16).step_by(NR) {
        let dst = out.as_mut_ptr().wrapping_add(t0 / NR * panel_bytes);
        for j in (0..k2).step_by(2) {
            // SAFETY: rows `j, j + 1 < keys` hold `t0 + 16 <= width` elements of `v` (the
            // `MatRef` invariant); the 32 bytes stored are pair `j / 2` of the panel of
            // channels `t0..t0 + 16`, inside `out`.
            unsafe {
                let r0 = _mm_loadu_si128(src.as_ptr().add(j * ldv + t0).cast());
                let r1 = _mm_loadu_si128(src.as_ptr().add((j + 1) * ldv + t0).cast());
                let at = dst.add(j / 2 * PAIR_BYTES);
                _mm_storeu_si128(at.cast(), _mm_unpacklo_epi8(r0, r1));
                _mm_storeu_si128(at.add(16).cast(), _mm_unpackhi_epi8(r0, r1));
            }
        }
    }
    // The ragged channels and the odd last key, element by element.
    for j in 0..keys {
        let row = v.row(j);
        let ts = if j < k2 { w16..width } else { 0..width };
        for t in ts {
            if let (Some(d), Some(&x)) = (out.get_mut(at(pairs, t, j)), row.get(t)) {
                *d = x;
            }
        }
    }
}

/// Sets `v`'s length to `len`, zeroed unless `overwritten` (the caller then writes every
/// element before reading any; skipping the zeroing matters for the small per-call buffers).
pub(crate) fn resize<T: Copy + Default>(v: &mut Vec<T>, len: usize, overwritten: bool) {
    if !overwritten {
        v.clear();
    }
    v.resize(len, T::default());
}

/// The transpose of an 8 x 8 matrix of 16-bit words, one row per register.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_8x8_u16(r: [__m128i; 8]) -> [__m128i; 8] {
    let t = [
        _mm_unpacklo_epi16(r[0], r[1]),
        _mm_unpackhi_epi16(r[0], r[1]),
        _mm_unpacklo_epi16(r[2], r[3]),
        _mm_unpackhi_epi16(r[2], r[3]),
        _mm_unpacklo_epi16(r[4], r[5]),
        _mm_unpackhi_epi16(r[4], r[5]),
        _mm_unpacklo_epi16(r[6], r[7]),
        _mm_unpackhi_epi16(r[6], r[7]),
    ];
    // Words 0-1, 2-3, 4-5, 6-7 of rows 0-3 (u[0..4]) and of rows 4-7 (u[4..8]).
    let u = [
        _mm_unpacklo_epi32(t[0], t[2]),
        _mm_unpackhi_epi32(t[0], t[2]),
        _mm_unpacklo_epi32(t[1], t[3]),
        _mm_unpackhi_epi32(t[1], t[3]),
        _mm_unpacklo_epi32(t[4], t[6]),
        _mm_unpackhi_epi32(t[4], t[6]),
        _mm_unpacklo_epi32(t[5], t[7]),
        _mm_unpackhi_epi32(t[5], t[7]),
    ];
    [
        _mm_unpacklo_epi64(u[0], u[4]),
        _mm_unpackhi_epi64(u[0], u[4]),
        _mm_unpacklo_epi64(u[1], u[5]),
        _mm_unpackhi_epi64(u[1], u[5]),
        _mm_unpacklo_epi64(u[2], u[6]),
        _mm_unpackhi_epi64(u[2], u[6]),
        _mm_unpacklo_epi64(u[3], u[7]),
        _mm_unpackhi_epi64(u[3], u[7]),
    ]
}

/// The activation operands the packed GEMM reads, as i16 values: int8 (sign-extended),
/// unsigned 8-bit minus a zero point (zero-extended, then the zero point subtracted: values
/// in [-255, 255]) and int16 as they are. Every product with an int8 weight fits a
/// `vpmaddwd` lane pair exactly.
#[derive(Clone, Copy)]
pub(crate) enum Activations<'a> {
    /// Symmetric int8.
    I8(MatRef<'a, i8>),
    /// Unsigned 8-bit with a zero point.
    U8(MatRef<'a, u8>, u8),
    /// int16.
    I16(MatRef<'a, i16>),
}

impl Activations<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::I8(m) => m.rows(),
            Self::U8(m, _) => m.rows(),
            Self::I16(m) => m.rows(),
        }
    }

    fn depth(&self) -> usize {
        match self {
            Self::I8(m) => m.cols(),
            Self::U8(m, _) => m.cols(),
            Self::I16(m) => m.cols(),
        }
    }

    /// Element `k` of row `r` as the i16 it stands for.
    fn at(&self, r: usize, k: usize) -> i16 {
        match self {
            Self::I8(m) => i16::from(m.at(r, k)),
            Self::U8(m, zp) => i16::from(m.at(r, k)) - i16::from(*zp),
            Self::I16(m) => m.at(r, k),
        }
    }

    /// Elements `k..k + 16` of row `r` as 16 i16 lanes.
    ///
    /// # Safety
    /// AVX2; `r < rows()` and `k + 16 <= depth()`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load16(&self, r: usize, k: usize) -> __m256i {
        // SAFETY: row `r` holds `depth() >= k + 16` elements (the `MatRef` invariant).
        unsafe {
            match self {
                Self::I8(m) => _mm256_cvtepi8_epi16(_mm_loadu_si128(
                    m.data().as_ptr().add(r * m.ld() + k).cast(),
                )),
                Self::U8(m, zp) => _mm256_sub_epi16(
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(
                        m.data().as_ptr().add(r * m.ld() + k).cast(),
                    )),
                    _mm256_set1_epi16(i16::from(*zp)),
                ),
                Self::I16(m) => _mm256_loadu_si256(m.data().as_ptr().add(r * m.ld() + k).cast()),
            }
        }
    }
}

/// Widens the rows of `a` to i16 pairs: word `p` of row `r` is `a[r][2p]` (low half) and
/// `a[r][2p + 1]` (high half), zero past the depth.
///
/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
unsafe fn widen_pairs(a: Activations<'_>, out: &mut Vec<i32>) {
    let (m, depth) = (a.rows(), a.depth());
    let pairs = depth.div_ceil(2);
    let k16 = depth & !15;
    // The vector loop writes every word when the depth is a multiple of 16; the tail
    // below ORs into zeroed words.
    resize(out, m * pairs, k16 == depth);
    for r in 0..m {
        let dst = out.as_mut_ptr().wrapping_add(r * pairs);
        for k in (0..k16).step_by(16) {
            // SAFETY: `r < m` and `k + 16 <= depth`; the 32 bytes stored are words
            // `k / 2..k / 2 + 8` of row `r`, inside its `pairs >= k / 2 + 8` words.
            unsafe { _mm256_storeu_si256(dst.add(k / 2).cast(), a.load16(r, k)) };
        }
        let words = out.get_mut(r * pairs..(r + 1) * pairs).unwrap_or_default();
        for k in k16..depth {
            if let Some(w) = words.get_mut(k / 2) {
                let half = u32::from(a.at(r, k) as u16) << (16 * (k % 2));
                *w = (*w as u32 | half) as i32;
            }
        }
    }
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` with `b` packed (its depth is `a`'s).
///
/// # Safety
/// The CPU must support AVX2; `b` has `a`'s depth and `out` is `a.rows() x b.n()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_packed(
    a: Activations<'_>,
    b: Panels<'_>,
    out: MatMut<'_, i32>,
    a_pairs: &mut Vec<i32>,
) {
    debug_assert!(a.depth() == b.depth && a.rows() == out.rows() && b.n == out.cols());
    // SAFETY: AVX2 is the caller's.
    unsafe { widen_pairs(a, a_pairs) };
    // SAFETY: AVX2; `a_pairs` now holds `a.rows()` rows of `b.pairs()` words.
    unsafe { gemm_pairs(a_pairs, b, out) };
}

/// `out[r][c] = sum_p a[r][p] . b[c][p]` over pairs of depths, `a` given as i16 pairs
/// (`out.rows()` rows of `b.pairs()` words).
///
/// # Safety
/// The CPU must support AVX2; `a` holds `out.rows() * b.pairs()` words and
/// `out.cols() == b.n()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_pairs(a: &[i32], b: Panels<'_>, mut out: MatMut<'_, i32>) {
    let (m, n, pairs) = (out.rows(), b.n, b.pairs());
    debug_assert!(a.len() >= m * pairs && out.cols() == n);
    if n == 0 || b.depth == 0 {
        for r in 0..m {
            out.row_mut(r).fill(0);
        }
        return;
    }
    let ld = out.ld();
    let out = out.data_mut();
    for q in 0..n.div_ceil(NR) {
        let c0 = q * NR;
        let cols = NR.min(n - c0);
        let panel = b.data.get(q * pairs * PAIR_BYTES..).unwrap_or_default();
        debug_assert!(panel.len() >= pairs * PAIR_BYTES);
        for r0 in (0..m).step_by(MR) {
            let t = Tile {
                a: a.get(r0 * pairs..).unwrap_or_default(),
                pairs,
                panel,
                r0,
                c0,
                cols,
                ld,
            };
            // SAFETY: AVX2 is enabled here; the tile's rows `r0..r0 + rows` have `pairs`
            // words each in `a` (`m * pairs` long), the panel holds `pairs` pairs of
            // depths, and `out` holds rows `0..m` of stride `ld` with `c0 + cols <= n <= ld`
            // (the `MatMut` invariant).
            unsafe {
                match m - r0 {
                    1 => t.run::<1>(out),
                    2 => t.run::<2>(out),
                    3 => t.run::<3>(out),
                    4 => t.run::<4>(out),
                    5 => t.run::<5>(out),
                    _ => t.run::<MR>(out),
                }
            }
        }
    }
}

/// One register tile: rows `r0..r0 + R` by channels `c0..c0 + cols` (one panel).
struct Tile<'a> {
    /// Widened rows from `r0` on, `pairs` words each.
    a: &'a [i32],
    pairs: usize,
    /// The panel, `pairs * PAIR_BYTES` bytes.
    panel: &'a [i8],
    r0: usize,
    c0: usize,
    cols: usize,
    /// Stride of `out`.
    ld: usize,
}

impl Tile<'_> {
    /// # Safety
    /// AVX2; `self.a` holds `R * pairs` words, `self.panel` `pairs * PAIR_BYTES` bytes, and
    /// `out` the rows `r0..r0 + R` (stride `ld`) up to `c0 + cols` in each.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run<const R: usize>(&self, out: &mut [i32]) {
        debug_assert!(self.a.len() >= R * self.pairs);
        debug_assert!(self.panel.len() >= self.pairs * PAIR_BYTES);
        debug_assert!((self.r0 + R - 1) * self.ld + self.c0 + self.cols <= out.len());
        let rows: [*const i32; R] =
            core::array::from_fn(|r| self.a.as_ptr().wrapping_add(r * self.pairs));
        let mut bp = self.panel.as_ptr();
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for p in 0..self.pairs {
            // SAFETY: pair `p < pairs` of the panel is bytes `p * 32..p * 32 + 32`, and word
            // `p` of each of the `R` rows is inside `self.a` (see the debug assertions).
            unsafe {
                let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.cast()));
                let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.add(16).cast()));
                bp = bp.add(PAIR_BYTES);
                for r in 0..R {
                    let x = _mm256_set1_epi32(rows[r].add(p).read());
                    acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, b0));
                    acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, b1));
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let start = (self.r0 + r) * self.ld + self.c0;
            if self.cols == NR {
                // SAFETY: `start + 16 <= (r0 + r) * ld + c0 + cols <= out.len()`.
                unsafe { store2(out.as_mut_ptr().add(start), acc_r) };
            } else {
                let mut tmp = [0i32; NR];
                // SAFETY: `tmp` holds 16 lanes.
                unsafe { store2(tmp.as_mut_ptr(), acc_r) };
                if let Some(dst) = out.get_mut(start..start + self.cols) {
                    dst.copy_from_slice(tmp.get(..self.cols).unwrap_or_default());
                }
            }
        }
    }
}

/// Stores two vectors of eight i32 lanes at `dst..dst + 16`.
///
/// # Safety
/// AVX2; `dst` valid for 16 i32 writes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store2(dst: *mut i32, v: &[__m256i; 2]) {
    // SAFETY: the caller's.
    unsafe {
        _mm256_storeu_si256(dst.cast(), v[0]);
        _mm256_storeu_si256(dst.add(8).cast(), v[1]);
    }
}
