//! The VNNI tiers (AVX-VNNI on `ymm`, AVX-512 VNNI on `zmm`): one generic register-tile
//! GEMM over packed panels ([`panels`]), instantiated per register width ([`Simd`]: `ymm.rs`,
//! `zmm.rs`) and per dot-product instruction ([`Dot`]). The AMX tier (`amx.rs`) runs the
//! same operands and packing on AMX tiles.
//!
//! **int8 products with `vpdpbusd`.** The instruction multiplies *unsigned* bytes of its
//! first operand by *signed* bytes of the second and adds each group of four products to
//! an i32 lane (wrapping; the saturating form `vpdpbusds` is not used). The activations
//! are the unsigned side: an int8 activation `x` enters as the byte `x ^ 0x80 = x + 128`,
//! so a lane accumulates `sum (x + 128) w = sum x w + 128 sum w`; each tile starts its
//! accumulators at `-128 * sum_k w[c][k]` instead of zero, and the result is the
//! reference's `sum x w` modulo 2^32 (every step wraps like the reference's `i32` sums).
//! An activation with a zero point (`Lhs::U8 { values, zero_point }`) enters as it is,
//! and the start is `-zero_point * sum w`. Each product `u8 x i8` is at most 32,640 in
//! magnitude and four of them fit an i32: nothing saturates.
//!
//! The per-channel sums `sum_k w[c][k]` sit after the panels ([`panels::Panels::sums`]):
//! computed once when weights are prepared (`HostKernels::prepare_model`), or by the call
//! after packing an operand that was not prepared (attention keys), with the same
//! instruction on bytes of ones.
//!
//! **Attention P.V** (`Lhs::U16 x Rhs::Depths`, on the `zmm` tier): u16 probabilities
//! times int8 values with `vpdpwssd` (i16 x i16 pairs, wrapping): `p = p' + 32768` with
//! `p' = p ^ 0x8000` as i16, the values packed as int8 pairs and sign-extended to i16 by
//! the kernel's load (`vpmovsxbw`: a packed head takes one byte per value, not two), and
//! the accumulators start at `32768 * sum_j v[j][t]`. Measured on the AMD EPYC (Zen 5) this tier was
//! verified on: `vpdpwssd zmm`, `vpmaddwd zmm` and `vpdpbusd zmm` each issue two per cycle
//! (12 independent chains), so the fused form saves `vpmaddwd` + `vpaddd`'s separate add.
//!
//! **int16 activations** (`Lhs::I16`, the calibrated blobs' q/k/v inputs) run as two
//! `vpdpbusd` products on the same prepared int8 quads: `x = 256 hi + lo` with the high
//! byte `hi = x >> 8` (int8, offset by 128 as above) and the low byte `lo = x & 0xff` (u8,
//! no offset), and `sum x w = 256 sum hi w + sum lo w` modulo 2^32 ([`split_i16`]). Twice
//! the int8 work, at the int8 tile's rate: measured faster than one `vpdpwssd` product on
//! the weights sign-extended in the loop (the previous form: 50 GMAC/s on `ymm` and 167 on
//! `zmm` against about 233 and 450 for int8, AMD EPYC Zen 5).
//!
//! Tile geometry is in each [`MicroKernel`] (`MR` rows x `NR` channels, `KU` depths per
//! group); the driver [`gemm_panels`] runs every panel over the row tiles of the call, the
//! last one with fewer rows.

pub(crate) mod amx;
pub(crate) mod panels;
pub(crate) mod ymm;
pub(crate) mod zmm;

use crate::avx2::{resize, with_buffer};
use core::cell::Cell;
use microbert::kernels::{MatMut, MatRef};
use panels::{Group, Panels};

/// One SIMD register of i32 lanes and the operations the tiles need. Every method is
/// `#[inline(always)]` and only ever inlined into a function that enables the register's
/// instruction set (the tier's entry points), which is what makes calling it sound.
pub(crate) trait Simd: Copy {
    /// i32 lanes.
    const LANES: usize;
    /// All lanes `x`.
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn splat(x: i32) -> Self;
    /// `4 * LANES` bytes from `p` (unaligned).
    ///
    /// # Safety
    /// The tier's instruction set; `p` readable for `4 * LANES` bytes.
    unsafe fn load(p: *const u8) -> Self;
    /// `2 * LANES` int8 from `p` (unaligned), each sign-extended to i16 in place: lane `i`
    /// holds bytes `2i` and `2i + 1` as a pair of i16 (`vpmovsxbw`).
    ///
    /// # Safety
    /// The tier's instruction set; `p` readable for `2 * LANES` bytes.
    unsafe fn load_i8_pairs(p: *const u8) -> Self;
    /// Lane-wise wrapping `a * b` (low 32 bits).
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn mullo(a: Self, b: Self) -> Self;
    /// `acc + sum of four u8(a) x i8(b)` per lane, wrapping (`vpdpbusd`).
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn dpbusd(acc: Self, a: Self, b: Self) -> Self;
    /// `acc + sum of two i16(a) x i16(b)` per lane, wrapping (`vpdpwssd`).
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn dpwssd(acc: Self, a: Self, b: Self) -> Self;
    /// Stores the first `n <= LANES` lanes at `p`.
    ///
    /// # Safety
    /// The tier's instruction set; `p` writable for `n` i32.
    unsafe fn store(p: *mut i32, v: Self, n: usize);
}

/// The dot-product instruction of a packing's groups.
pub(crate) trait Dot {
    /// The element kind it reads.
    const GROUP: Group;
    /// The left operand that makes [`Self::dot`] sum a group (all elements 1).
    const ONES: i32;
    /// One register of a panel's group (`GROUP.bytes() * V::LANES` bytes at `p`) as the
    /// operand of [`Self::dot`].
    ///
    /// # Safety
    /// The tier's instruction set; `p` readable for `GROUP.bytes() * V::LANES` bytes.
    unsafe fn load<V: Simd>(p: *const u8) -> V;
    /// `acc + a . b` per lane over one group.
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn dot<V: Simd>(acc: V, a: V, b: V) -> V;
}

/// `vpdpbusd`: u8 activations, int8 weights, groups of four.
pub(crate) struct Quads;

impl Dot for Quads {
    const GROUP: Group = Group::Quad;
    const ONES: i32 = 0x0101_0101;
    #[inline(always)]
    unsafe fn load<V: Simd>(p: *const u8) -> V {
        // SAFETY: the caller's.
        unsafe { V::load(p) }
    }
    #[inline(always)]
    unsafe fn dot<V: Simd>(acc: V, a: V, b: V) -> V {
        // SAFETY: the caller's.
        unsafe { V::dpbusd(acc, a, b) }
    }
}

/// `vpdpwssd`: i16 activations, pairs of int8 weights sign-extended to i16 as they are
/// loaded.
pub(crate) struct Pairs;

impl Dot for Pairs {
    const GROUP: Group = Group::Pair;
    const ONES: i32 = 0x0001_0001;
    #[inline(always)]
    unsafe fn load<V: Simd>(p: *const u8) -> V {
        // SAFETY: the caller's.
        unsafe { V::load_i8_pairs(p) }
    }
    #[inline(always)]
    unsafe fn dot<V: Simd>(acc: V, a: V, b: V) -> V {
        // SAFETY: the caller's.
        unsafe { V::dpwssd(acc, a, b) }
    }
}

/// A register-tile micro-kernel: its geometry and its tile, for any row count up to `MR`.
pub(crate) trait MicroKernel {
    /// Rows of the left operand per register tile.
    const MR: usize;
    /// Output channels per panel.
    const NR: usize;
    /// Depths per group (4 for `vpdpbusd`, 2 for `vpdpwssd`).
    const KU: usize;
    /// The element kind of its panels.
    const GROUP: Group;
    /// One tile of `rows` (`1..=MR`) rows; see [`Tile`].
    ///
    /// # Safety
    /// The tier's instruction set; `t` as [`Tile`] documents, for `rows` rows.
    unsafe fn tile(rows: usize, t: &Tile, out: *mut i32);
}

/// One register tile: rows `r0..r0 + rows` of the left operand by one panel.
pub(crate) struct Tile {
    /// The tile's first row of left-operand groups (one 32-bit word per group).
    pub(crate) a: *const u32,
    /// Words from one row to the next.
    pub(crate) lda: usize,
    /// Groups (the panel's depth).
    pub(crate) groups: usize,
    /// The panel: `groups * GROUP.bytes() * NR` bytes.
    pub(crate) panel: *const u8,
    /// Its channel sums: `4 * NR` bytes of little-endian i32.
    pub(crate) sums: *const u8,
    /// The accumulators start at `factor * sum`.
    pub(crate) factor: i32,
    /// Output channels of this panel to store (`1..=NR`).
    pub(crate) cols: usize,
    /// Stride of the output.
    pub(crate) ldo: usize,
}

/// The tile body for `R` rows and `NV` registers of channels.
///
/// # Safety
/// The tier's instruction set for `V`; `t.a` readable for `R` rows of `t.groups` words
/// (`t.lda` apart), `t.panel` for `t.groups` groups of `NV * D::GROUP.bytes() * V::LANES`
/// bytes, `t.sums`
/// for `NV * 4 * V::LANES` bytes, and `out` writable at `r * t.ldo + c` for every
/// `r < R`, `c < t.cols`.
#[inline(always)]
pub(crate) unsafe fn tile<V: Simd, D: Dot, const R: usize, const NV: usize>(
    t: &Tile,
    out: *mut i32,
) {
    let lanes = V::LANES;
    let reg_bytes = D::GROUP.bytes() * lanes;
    let group_bytes = NV * reg_bytes;
    // SAFETY: the caller's guarantees cover every pointer formed and read below.
    unsafe {
        let factor = V::splat(t.factor);
        let start: [V; NV] =
            core::array::from_fn(|v| V::mullo(V::load(t.sums.add(v * 4 * lanes)), factor));
        let mut acc = [start; R];
        let rows: [*const u32; R] = core::array::from_fn(|r| t.a.add(r * t.lda));
        let mut bp = t.panel;
        for g in 0..t.groups {
            let w: [V; NV] = core::array::from_fn(|v| D::load(bp.add(v * reg_bytes)));
            bp = bp.add(group_bytes);
            for r in 0..R {
                let x = V::splat(rows[r].add(g).read() as i32);
                for v in 0..NV {
                    acc[r][v] = D::dot(acc[r][v], x, w[v]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = out.add(r * t.ldo);
            for (v, a) in acc_r.iter().enumerate() {
                let c = v * lanes;
                if c < t.cols {
                    V::store(dst.add(c), *a, (t.cols - c).min(lanes));
                }
            }
        }
    }
}

/// Implements [`MicroKernel`] for a kernel type: its register type, dot product,
/// `MR`, registers per panel, and the row counts `1..MR` of the last tile.
macro_rules! micro_kernel {
    ($(#[$doc:meta])* $name:ident: $v:ty, $dot:ty, mr = $mr:literal, nv = $nv:literal,
     short = [$($r:literal),*]) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl $crate::vnni::MicroKernel for $name {
            const MR: usize = $mr;
            const NR: usize = $nv * <$v as $crate::vnni::Simd>::LANES;
            const KU: usize = <$dot as $crate::vnni::Dot>::GROUP.depths();
            const GROUP: $crate::vnni::panels::Group = <$dot as $crate::vnni::Dot>::GROUP;
            #[inline(always)]
            unsafe fn tile(rows: usize, t: &$crate::vnni::Tile, out: *mut i32) {
                // SAFETY: the caller's (for `rows` rows, which each arm passes on).
                unsafe {
                    match rows {
                        $($r => $crate::vnni::tile::<$v, $dot, $r, $nv>(t, out),)*
                        _ => $crate::vnni::tile::<$v, $dot, $mr, $nv>(t, out),
                    }
                }
            }
        }
    };
}
pub(crate) use micro_kernel;

/// `out[r][c] = factor * sum_c + sum_g a[r][g] . b[c][g]` over the panels of `b`, `a`
/// given as `out.rows()` rows of `lda >= b.groups()` words.
///
/// # Safety
/// The tier's instruction set for `K`; `b` packed with `K::NR` channels per panel and
/// `K::GROUP`; `a.len() >= (out.rows() - 1) * lda + b.groups()` when there are rows;
/// `out.cols() == b.n()`.
#[inline(always)]
pub(crate) unsafe fn gemm_panels<K: MicroKernel>(
    a: &[u32],
    lda: usize,
    b: Panels<'_>,
    factor: i32,
    mut out: MatMut<'_, i32>,
) {
    let (m, n, groups) = (out.rows(), b.n(), b.groups());
    debug_assert!(b.group() == K::GROUP && K::GROUP.depths() == K::KU);
    debug_assert!(out.cols() == n && lda >= groups);
    debug_assert!(m == 0 || a.len() >= (m - 1) * lda + groups);
    let ldo = out.ld();
    let out = out.data_mut();
    for q in 0..n.div_ceil(K::NR) {
        let (panel, sums) = (b.panel(q), b.sums(q));
        debug_assert!(panel.len() >= groups * K::GROUP.bytes() * K::NR && sums.len() >= 4 * K::NR);
        let c0 = q * K::NR;
        for r0 in (0..m).step_by(K::MR) {
            let t = Tile {
                a: a.as_ptr().wrapping_add(r0 * lda),
                lda,
                groups,
                panel: panel.as_ptr(),
                sums: sums.as_ptr(),
                factor,
                cols: K::NR.min(n - c0),
                ldo,
            };
            // SAFETY: the caller's instruction set; rows `r0..r0 + rows` of `a` hold
            // `groups` words each (checked above), the panel and its sums have `K::NR`
            // channels, and `out` (the `MatMut` invariant: rows `0..m` of stride `ldo`
            // with `c0 + cols <= n <= ldo`) holds every element the tile stores.
            unsafe { K::tile((m - r0).min(K::MR), &t, out.as_mut_ptr().add(r0 * ldo + c0)) };
        }
    }
}

/// Writes the channel sums of a packing (`data`, of `n` channels of `depth` in panels of
/// `NV * V::LANES`): `sum_g ONES . b[c][g]` with the kernel's own dot product, wrapping.
///
/// # Safety
/// The tier's instruction set for `V`.
#[inline(always)]
pub(crate) unsafe fn fill_sums<V: Simd, D: Dot, const NV: usize>(
    data: &mut [u8],
    n: usize,
    depth: usize,
) {
    let nr = NV * V::LANES;
    let Some(len) = panels::packed_len(n, depth, nr, D::GROUP).filter(|&l| l <= data.len()) else {
        return;
    };
    let groups = depth.div_ceil(D::GROUP.depths());
    let panels = n.div_ceil(nr);
    let reg_bytes = D::GROUP.bytes() * V::LANES;
    let panel_bytes = groups * NV * reg_bytes;
    let (body, sums) = data[..len].split_at_mut(panels * panel_bytes);
    for (panel, dst) in body
        .chunks_exact(panel_bytes.max(1))
        .zip(sums.chunks_exact_mut(4 * nr))
    {
        // SAFETY: the caller's instruction set; the panel holds `groups` groups of
        // `NV * reg_bytes` bytes and `dst` the panel's `nr` i32 (stored unaligned, in
        // the machine's little-endian order).
        unsafe {
            let ones = V::splat(D::ONES);
            let mut acc = [V::splat(0); NV];
            for g in 0..groups {
                for (v, a) in acc.iter_mut().enumerate() {
                    let w = D::load::<V>(panel.as_ptr().add((g * NV + v) * reg_bytes));
                    *a = D::dot(*a, ones, w);
                }
            }
            for (v, a) in acc.iter().enumerate() {
                V::store(
                    dst.as_mut_ptr().cast::<i32>().add(v * V::LANES),
                    *a,
                    V::LANES,
                );
            }
        }
    }
}

std::thread_local! {
    /// The left operand as words of groups, reused across calls on this thread.
    static A_WORDS: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A right operand packed by the call itself (when it was not prepared beforehand).
    static B_PACKED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The low bytes of int16 activations as words ([`split_i16`]).
    static A_LOW: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// The product of the low bytes.
    static LOW_OUT: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// Rows of int8 activations as `vpdpbusd` words: four bytes `x ^ 0x80` per word, zero
/// past the depth (the packed weights are zero there). Returns the words per row.
pub(crate) fn quads_of_i8(a: MatRef<'_, i8>, out: &mut Vec<u32>) -> usize {
    words_of(
        a,
        out,
        4,
        |w| w ^ 0x8080_8080,
        |x| u32::from(x as u8 ^ 0x80),
    )
}

/// Rows of u8 activations as `vpdpbusd` words, as they are.
pub(crate) fn quads_of_u8(a: MatRef<'_, u8>, out: &mut Vec<u32>) -> usize {
    words_of(a, out, 4, |w| w, u32::from)
}

/// Rows of int16 activations split into bytes as `vpdpbusd` words, `x = 256 hi + lo`: the
/// high bytes `hi = x >> 8` (int8) offset by 128 as [`quads_of_i8`] writes them, into `hi`,
/// and the low bytes `lo = x & 0xff` (u8) as they are, into `lo`; zero past the depth (the
/// packed weights are zero there). Returns the words per row.
pub(crate) fn split_i16(a: MatRef<'_, i16>, hi: &mut Vec<u32>, lo: &mut Vec<u32>) -> usize {
    use core::arch::x86_64::{
        _mm_and_si128, _mm_loadu_si128, _mm_packs_epi16, _mm_packus_epi16, _mm_set1_epi8,
        _mm_set1_epi16, _mm_srai_epi16, _mm_storeu_si128, _mm_xor_si128,
    };
    let (m, depth) = (a.rows(), a.cols());
    let words = depth.div_ceil(4);
    // Every word is written below.
    resize(hi, m * words, true);
    resize(lo, m * words, true);
    let k16 = depth & !15;
    let rows = hi
        .chunks_exact_mut(words.max(1))
        .zip(lo.chunks_exact_mut(words.max(1)));
    for (r, (h, l)) in rows.take(m).enumerate() {
        let row = a.row(r);
        for k in (0..k16).step_by(16) {
            // SAFETY: SSE2 is part of x86-64; `k + 16 <= depth` elements of the row are
            // read, and 16 bytes (words `k / 4..k / 4 + 4`, inside the row's `words`) are
            // written to each of `h` and `l`. The shift leaves i8 values and the mask u8
            // ones, so the packs do not saturate.
            unsafe {
                let x0 = _mm_loadu_si128(row.as_ptr().add(k).cast());
                let x1 = _mm_loadu_si128(row.as_ptr().add(k + 8).cast());
                let high = _mm_packs_epi16(_mm_srai_epi16::<8>(x0), _mm_srai_epi16::<8>(x1));
                let mask = _mm_set1_epi16(0xff);
                let low = _mm_packus_epi16(_mm_and_si128(x0, mask), _mm_and_si128(x1, mask));
                let offset = _mm_xor_si128(high, _mm_set1_epi8(0x80u8 as i8));
                _mm_storeu_si128(h.as_mut_ptr().add(k / 4).cast(), offset);
                _mm_storeu_si128(l.as_mut_ptr().add(k / 4).cast(), low);
            }
        }
        let tail = row.get(k16..).unwrap_or_default();
        let ws = h.iter_mut().zip(l.iter_mut()).skip(k16 / 4);
        for ((hw, lw), quad) in ws.zip(tail.chunks(4)) {
            let byte = |f: fn(i16) -> u8| {
                quad.iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &x)| acc | u32::from(f(x)) << (8 * i))
            };
            *hw = byte(|x| (x >> 8) as u8 ^ 0x80);
            *lw = byte(|x| x as u8);
        }
    }
    words
}

/// Rows of u16 probabilities as `vpdpwssd` words: `p ^ 0x8000` (`p - 32768` as i16) in
/// each half, zero past the depth.
pub(crate) fn pairs_of_u16(a: MatRef<'_, u16>, out: &mut Vec<u32>) -> usize {
    words_of(a, out, 2, |w| w ^ 0x8000_8000, |x| u32::from(x ^ 0x8000))
}

/// Packs each row of `a` into little-endian words of `per` elements (`per * size_of::<T>()
/// == 4`), mapping whole words with `word` and the elements of a partial last word with
/// `elem`; returns the words per row.
#[inline(always)]
fn words_of<T: microbert::kernels::Element + bytemuck::Pod>(
    a: MatRef<'_, T>,
    out: &mut Vec<u32>,
    per: usize,
    word: impl Fn(u32) -> u32,
    elem: impl Fn(T) -> u32,
) -> usize {
    let (m, depth) = (a.rows(), a.cols());
    let words = depth.div_ceil(per);
    // Every word is written below.
    resize(out, m * words, true);
    let bits = 32 / per;
    for (r, dst) in out.chunks_exact_mut(words.max(1)).take(m).enumerate() {
        let row = a.row(r);
        let whole = row.chunks_exact(per);
        let tail = whole.remainder();
        for (d, w) in dst.iter_mut().zip(whole) {
            *d = word(u32::from_le_bytes(
                bytemuck::cast_slice::<T, u8>(w)
                    .try_into()
                    .unwrap_or_default(),
            ));
        }
        if let Some(d) = dst.get_mut(depth / per) {
            *d = tail
                .iter()
                .enumerate()
                .fold(0, |acc, (i, &x)| acc | elem(x) << (bits * i));
        }
    }
    words
}

/// The activations of a VNNI product.
#[derive(Clone, Copy)]
pub(crate) enum Act<'a> {
    /// int8: offset by 128.
    I8(MatRef<'a, i8>),
    /// u8 with a zero point.
    U8(MatRef<'a, u8>, u8),
    /// int16: two products, of the high and the low bytes ([`split_i16`]).
    I16(MatRef<'a, i16>),
}

/// What a VNNI tier provides to the shared drivers below.
pub(crate) trait VnniTier {
    /// Channels per panel of its int8 GEMM.
    const NR: usize;
    /// `out = act x b` on panels packed for this tier, starting from `factor * sums`.
    ///
    /// # Safety
    /// As [`gemm_panels`] for the tier's kernel, on a CPU with the tier's features.
    unsafe fn gemm_quads(a: &[u32], lda: usize, b: Panels<'_>, factor: i32, out: MatMut<'_, i32>);
    /// Packs `b` for [`Self::gemm_quads`] into `out`, sums included; false when too short.
    ///
    /// # Safety
    /// A CPU with the tier's features.
    unsafe fn pack(b: MatRef<'_, i8>, out: &mut [u8]) -> bool;
}

/// Bytes of `n` channels of `depth` packed for tier `T` (`None` on overflow).
pub(crate) const fn prepared_len<T: VnniTier>(n: usize, depth: usize) -> Option<usize> {
    panels::packed_len(n, depth, T::NR, Group::Quad)
}

/// `out = act x b^T` with `b` prepared for tier `T` (`bytes`), or packed by the call when
/// `bytes` is too short for the shape.
///
/// # Safety
/// A CPU with the tier's features; `act`'s depth is `b.cols()`, `out` is
/// `act.rows() x b.rows()`.
pub(crate) unsafe fn gemm<T: VnniTier>(
    act: Act<'_>,
    b: MatRef<'_, i8>,
    prepared: Option<&[u8]>,
    out: MatMut<'_, i32>,
) {
    let (n, depth) = (b.rows(), b.cols());
    match prepared.and_then(|bytes| Panels::new(bytes, n, depth, T::NR, Group::Quad)) {
        // SAFETY: the caller's.
        Some(p) => unsafe { run::<T>(act, p, out) },
        None => with_buffer(&B_PACKED, |packed| {
            let Some(len) = prepared_len::<T>(n, depth) else {
                return;
            };
            // `pack` writes every byte.
            resize(packed, len, true);
            // SAFETY: the caller's.
            if unsafe { T::pack(b, packed) }
                && let Some(p) = Panels::new(packed, n, depth, T::NR, Group::Quad)
            {
                // SAFETY: as above.
                unsafe { run::<T>(act, p, out) };
            }
        }),
    }
}

/// `out = act x b^T` on panels `b` of the tier: one `vpdpbusd` product for int8 and u8,
/// two for int16 (the high bytes into `out`, the low ones into a buffer, then
/// `out = 256 out + low`, wrapping like the reference's sums).
///
/// # Safety
/// As [`VnniTier::gemm_quads`]: a CPU with the tier's features, `act`'s depth `b`'s and
/// `out` `act.rows() x b.n()`.
unsafe fn run<T: VnniTier>(act: Act<'_>, b: Panels<'_>, mut out: MatMut<'_, i32>) {
    with_buffer(&A_WORDS, |words| {
        let (lda, factor) = match act {
            Act::I8(a) => (quads_of_i8(a, words), -128),
            Act::U8(a, zp) => (quads_of_u8(a, words), -i32::from(zp)),
            Act::I16(a) => {
                return with_buffer(&A_LOW, |lo| {
                    with_buffer(&LOW_OUT, |low| {
                        let lda = split_i16(a, words, lo);
                        let (m, n) = (out.rows(), out.cols());
                        // `gemm_quads` writes every element.
                        resize(low, m * n, true);
                        let Some(low_out) = MatMut::contiguous(low, m, n) else {
                            return;
                        };
                        // SAFETY: the caller's; `words` and `lo` hold `m` rows of `lda`
                        // words.
                        unsafe {
                            T::gemm_quads(words, lda, b, -128, out.reborrow());
                            T::gemm_quads(lo, lda, b, 0, low_out);
                        }
                        for (r, l) in low.chunks_exact(n.max(1)).take(m).enumerate() {
                            for (o, &l) in out.row_mut(r).iter_mut().zip(l) {
                                *o = o.wrapping_mul(256).wrapping_add(l);
                            }
                        }
                    })
                });
            }
        };
        // SAFETY: the caller's; `words` holds the rows, `lda` words each.
        unsafe { T::gemm_quads(words, lda, b, factor, out) }
    });
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` (attention P.V) with `vpdpwssd` on the `zmm`
/// tier (see the module docs).
///
/// # Safety
/// A CPU with AVX-512 F, BW and VNNI and AVX2; `p.cols() == v.rows()`, `out` is
/// `p.rows() x v.cols()`.
pub(crate) unsafe fn weighted_sums_zmm(
    p: MatRef<'_, u16>,
    v: MatRef<'_, i8>,
    out: MatMut<'_, i32>,
) {
    let (keys, width) = (v.rows(), v.cols());
    with_buffer(&B_PACKED, |packed| {
        let Some(len) = prepared_depths_len_zmm(keys, width) else {
            return;
        };
        resize(packed, len, true);
        // SAFETY: the caller's (AVX-512 F, BW, VNNI, AVX2); `packed` holds `len` bytes.
        if unsafe { prepare_depths_zmm(v, packed) } {
            // SAFETY: the caller's; `packed` is the values' packing.
            unsafe { weighted_sums_zmm_packed(p, packed, width, keys, out) };
        }
    });
}

/// Bytes of [`prepare_depths_zmm`]'s packing of `keys` values of `width` (`None` when the
/// size overflows).
pub(crate) fn prepared_depths_len_zmm(keys: usize, width: usize) -> Option<usize> {
    panels::packed_len(width, keys, zmm::PV_NR, Group::Pair)
}

/// Packs the values `v` (`[keys, width]`) for [`weighted_sums_zmm_packed`]: pairs of keys
/// as int8 pairs, with each channel's sum after the panels; false when `out` is short.
///
/// # Safety
/// A CPU with AVX-512 F, BW and VNNI and AVX2.
pub(crate) unsafe fn prepare_depths_zmm(v: MatRef<'_, i8>, out: &mut [u8]) -> bool {
    let (keys, width) = (v.rows(), v.cols());
    // SAFETY: the caller's (AVX2); `pack_depth_pairs` checks the length of `out`.
    if !unsafe { panels::pack_depth_pairs(v, zmm::PV_NR, out) } {
        return false;
    }
    // SAFETY: the caller's instruction set; `out` starts with that packing.
    unsafe { zmm::fill_pair_sums(out, width, keys) };
    true
}

/// The P.V product on values [`prepare_depths_zmm`] packed (`width` channels, `keys`
/// depths); nothing when `packed` is too short for that shape (the caller checks first).
///
/// # Safety
/// A CPU with AVX-512 F, BW and VNNI and AVX2; `p.cols() == keys`, `out` is
/// `p.rows() x width`.
pub(crate) unsafe fn weighted_sums_zmm_packed(
    p: MatRef<'_, u16>,
    packed: &[u8],
    width: usize,
    keys: usize,
    out: MatMut<'_, i32>,
) {
    with_buffer(&A_WORDS, |words| {
        let lda = pairs_of_u16(p, words);
        if let Some(b) = Panels::new(packed, width, keys, zmm::PV_NR, Group::Pair) {
            // SAFETY: the caller's; `words` holds `rows` rows of `lda` words.
            unsafe { zmm::gemm_pairs(words, lda, b, 1 << 15, out) };
        }
    });
}
