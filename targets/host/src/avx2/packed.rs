//! The AVX2 GEMM on packed weights: `b` re-laid out in panels of [`NR`] output channels so
//! that the inner loop needs no horizontal sums.
//!
//! Layout ([`PackedB`]): panel `q` holds channels `16q..16q + 16`; within it, for each pair
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
    _mm256_madd_epi16, _mm256_set1_epi32, _mm256_setzero_si256, _mm256_storeu_si256,
};

use core::ops::Range;

/// Rows of `a` per register tile.
pub(crate) const MR: usize = 6;
/// Output channels per panel (two vectors of eight i32 lanes).
pub(crate) const NR: usize = 16;
/// Bytes of one panel per pair of depths.
const PAIR_BYTES: usize = 2 * NR;

/// Weights `b` (`n` rows of `depth` int8, the `Kernels::gemm_i8` operand) in panels.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedB {
    data: Vec<i8>,
    n: usize,
    depth: usize,
}

impl PackedB {
    /// Packs `n` rows of `depth` elements of `b`, `ldb` apart; `None` when `b` does not hold
    /// them (see `microbert::kernels::strided_covers`).
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn new(n: usize, depth: usize, b: &[i8], ldb: usize) -> Option<Self> {
        let mut p = Self::default();
        // SAFETY: AVX2 is the caller's guarantee.
        unsafe { p.repack(n, depth, b, ldb) }.then_some(p)
    }

    /// Sizes the storage for `n x depth` and records the shape when the operand is
    /// `covered` (holds what the shape addresses); `false` and an empty packing otherwise.
    /// Whole panels of an even depth are written byte for byte by the packers, so only
    /// other shapes get their storage zeroed (the padding must be 0).
    fn reset(&mut self, n: usize, depth: usize, covered: bool) -> bool {
        self.n = 0;
        self.depth = 0;
        if n > 0 && depth > 0 && !covered {
            self.data.clear();
            return false;
        }
        let len = n.div_ceil(NR) * depth.div_ceil(2) * PAIR_BYTES;
        let whole = n.is_multiple_of(NR) && depth.is_multiple_of(2);
        resize(&mut self.data, len, whole);
        self.n = n;
        self.depth = depth;
        true
    }

    /// Index in `data` of element `k` of channel `c`.
    fn at(&self, c: usize, k: usize) -> usize {
        c / NR * self.pairs() * PAIR_BYTES + k / 2 * PAIR_BYTES + 2 * (c % NR) + k % 2
    }

    /// Copies `b[c][k]` for `c` in `channels`, `k` in `depths` into place.
    fn fill(&mut self, b: &[i8], ldb: usize, channels: Range<usize>, depths: Range<usize>) {
        for c in channels {
            let row = b.get(c * ldb..).unwrap_or_default();
            for k in depths.clone() {
                let at = self.at(c, k);
                if let (Some(d), Some(&x)) = (self.data.get_mut(at), row.get(k)) {
                    *d = x;
                }
            }
        }
    }

    /// [`Self::new`] into this value's storage (reused across calls), with SIMD
    /// transposes for whole blocks of 8 channels by 16 depths; `false` (and an empty
    /// packing) when `b` does not hold the rows.
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn repack(&mut self, n: usize, depth: usize, b: &[i8], ldb: usize) -> bool {
        let covered = microbert::kernels::strided_covers(n, depth, ldb, b.len());
        if !self.reset(n, depth, covered) {
            return false;
        }
        let (n8, k16) = (n & !7, depth & !15);
        let panel_bytes = self.pairs() * PAIR_BYTES;
        for c0 in (0..n8).step_by(8) {
            let dst = self
                .data
                .as_mut_ptr()
                .wrapping_add(c0 / NR * panel_bytes + 2 * (c0 % NR));
            for k0 in (0..k16).step_by(16) {
                // SAFETY: rows `c0..c0 + 8 <= n` of `b` hold `k0 + 16 <= depth` elements
                // (`reset` checked `strided_covers`); the 8 stores of 16 bytes go to pairs
                // `k0 / 2..k0 / 2 + 8` of channels `c0..c0 + 8` of their panel, inside
                // `data` (sized for every panel and pair).
                unsafe {
                    let src = b.as_ptr().add(c0 * ldb + k0);
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
        self.fill(b, ldb, 0..n8, k16..depth);
        self.fill(b, ldb, n8..n, 0..depth);
        true
    }

    /// Packs the transpose of `v`: channel `t < width` has depth `keys`, element `j` being
    /// `v[j * ldv + t]` (the values of attention, channels = features, depth = keys);
    /// `false` (and an empty packing) when `v` does not hold `keys` rows of `width`.
    ///
    /// # Safety
    /// AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn repack_columns(
        &mut self,
        keys: usize,
        width: usize,
        v: &[i8],
        ldv: usize,
    ) -> bool {
        let covered = microbert::kernels::strided_covers(keys, width, ldv, v.len());
        if !self.reset(width, keys, covered) {
            return false;
        }
        let panel_bytes = self.pairs() * PAIR_BYTES;
        let (w16, k2) = (width & !15, keys & !1);
        for t0 in (0..w16).step_by(NR) {
            let dst = self.data.as_mut_ptr().wrapping_add(t0 / NR * panel_bytes);
            for j in (0..k2).step_by(2) {
                // SAFETY: rows `j, j + 1 < keys` hold `t0 + 16 <= width` elements of `v`
                // (checked above); the 32 bytes stored are pair `j / 2` of the panel of
                // channels `t0..t0 + 16`, inside `data`.
                unsafe {
                    let r0 = _mm_loadu_si128(v.as_ptr().add(j * ldv + t0).cast());
                    let r1 = _mm_loadu_si128(v.as_ptr().add((j + 1) * ldv + t0).cast());
                    let at = dst.add(j / 2 * PAIR_BYTES);
                    _mm_storeu_si128(at.cast(), _mm_unpacklo_epi8(r0, r1));
                    _mm_storeu_si128(at.add(16).cast(), _mm_unpackhi_epi8(r0, r1));
                }
            }
        }
        // The ragged channels and the odd last key, element by element.
        for j in 0..keys {
            let row = v.get(j * ldv..).unwrap_or_default();
            let ts = if j < k2 { w16..width } else { 0..width };
            for t in ts {
                let at = self.at(t, j);
                if let (Some(d), Some(&x)) = (self.data.get_mut(at), row.get(t)) {
                    *d = x;
                }
            }
        }
        true
    }

    /// Output channels.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Depth (elements per channel).
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Pairs of depths per panel.
    pub(crate) fn pairs(&self) -> usize {
        self.depth.div_ceil(2)
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

/// Widens `m` rows of `depth` elements of `a` (`lda` apart) to i16 pairs: word `p` of row
/// `r` is `a[r][2p]` (low half) and `a[r][2p + 1]` (high half), zero past `depth`.
///
/// # Safety
/// AVX2; `a` holds `(m - 1) * lda + depth` elements (`m > 0`).
#[target_feature(enable = "avx2")]
unsafe fn widen_pairs(m: usize, depth: usize, a: &[i8], lda: usize, out: &mut Vec<i32>) {
    let pairs = depth.div_ceil(2);
    let k16 = depth & !15;
    // The vector loop writes every word when the depth is a multiple of 16; the tail
    // below ORs into zeroed words.
    resize(out, m * pairs, k16 == depth);
    for r in 0..m {
        let dst = out.as_mut_ptr().wrapping_add(r * pairs);
        for k in (0..k16).step_by(16) {
            // SAFETY: `r * lda + k + 16 <= (m - 1) * lda + depth <= a.len()` as
            // `k + 16 <= depth`; the 32 bytes stored are words `k / 2..k / 2 + 8` of row `r`,
            // inside its `pairs >= k / 2 + 8` words.
            unsafe {
                let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(a.as_ptr().add(r * lda + k).cast()));
                _mm256_storeu_si256(dst.add(k / 2).cast(), x);
            }
        }
        let row = a.get(r * lda..r * lda + depth).unwrap_or_default();
        let words = out.get_mut(r * pairs..(r + 1) * pairs).unwrap_or_default();
        for (k, &x) in row.iter().enumerate().skip(k16) {
            if let Some(w) = words.get_mut(k / 2) {
                let half = u32::from(x as i16 as u16) << (16 * (k % 2));
                *w = (*w as u32 | half) as i32;
            }
        }
    }
}

/// `out[r * n + c] = sum_k a[r * lda + k] * b[c][k]` with `b` packed (see
/// `Kernels::gemm_i8`; `n` and `depth` are the packing's).
///
/// # Safety
/// The CPU must support AVX2; `m > 0`; `a` must hold `(m - 1) * lda + depth` elements and
/// `out` `m * n`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_packed(
    m: usize,
    a: &[i8],
    lda: usize,
    b: &PackedB,
    out: &mut [i32],
    a_pairs: &mut Vec<i32>,
) {
    debug_assert!(m > 0 && (m - 1) * lda + b.depth <= a.len() && m * b.n <= out.len());
    // SAFETY: AVX2 and the bounds on `a` are the caller's.
    unsafe { widen_pairs(m, b.depth, a, lda, a_pairs) };
    // SAFETY: AVX2; `a_pairs` now holds `m` rows of `b.pairs()` words.
    unsafe { gemm_pairs(m, a_pairs, b, out) };
}

/// `out[r * n + c] = sum_p a[r][p] . b[c][p]` over pairs of depths, `a` given as i16 pairs
/// (`m` rows of `b.pairs()` words).
///
/// # Safety
/// The CPU must support AVX2; `a` holds `m * b.pairs()` words and `out` `m * b.n` elements.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gemm_pairs(m: usize, a: &[i32], b: &PackedB, out: &mut [i32]) {
    let (n, pairs) = (b.n, b.pairs());
    debug_assert!(a.len() >= m * pairs && out.len() >= m * n);
    if n == 0 || b.depth == 0 {
        out.iter_mut().take(m * n).for_each(|o| *o = 0);
        return;
    }
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
                n,
            };
            // SAFETY: AVX2 is enabled here; the tile's rows `r0..r0 + rows` have `pairs`
            // words each in `a` (`m * pairs` long), the panel holds `pairs` pairs of
            // depths, and `out` holds `m * n` with `c0 + cols <= n`.
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
    n: usize,
}

impl Tile<'_> {
    /// # Safety
    /// AVX2; `self.a` holds `R * pairs` words, `self.panel` `pairs * PAIR_BYTES` bytes, and
    /// `out` the rows `r0..r0 + R` of `n` elements with `c0 + cols <= n`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run<const R: usize>(&self, out: &mut [i32]) {
        debug_assert!(self.a.len() >= R * self.pairs);
        debug_assert!(self.panel.len() >= self.pairs * PAIR_BYTES);
        debug_assert!((self.r0 + R) * self.n <= out.len() && self.c0 + self.cols <= self.n);
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
            let start = (self.r0 + r) * self.n + self.c0;
            if self.cols == NR {
                // SAFETY: `start + 16 <= (r0 + r) * n + n <= out.len()`.
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
