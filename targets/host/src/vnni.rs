//! The VNNI tiers (AVX-VNNI on `ymm`, AVX-512 VNNI on `zmm`): one generic register-tile
//! GEMM over packed panels ([`panels`]), instantiated per register width ([`Simd`]: `ymm.rs`,
//! `zmm.rs`) and per dot-product instruction ([`Dot`]).
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
//! `p' = p ^ 0x8000` as i16, the values widened to i16 when packed, and the accumulators
//! start at `32768 * sum_j v[j][t]`. Measured on the AMD EPYC (Zen 5) this tier was
//! verified on: `vpdpwssd zmm`, `vpmaddwd zmm` and `vpdpbusd zmm` each issue two per cycle
//! (12 independent chains), so the fused form saves `vpmaddwd` + `vpaddd`'s separate add.
//!
//! **int16 activations** (`Lhs::I16`) run on the same prepared int8 quads: [`tile_i16`]
//! sign-extends each group's weights in the loop and uses `vpdpwssd`, at half the
//! multiply-accumulates per instruction of `vpdpbusd`.
//!
//! Tile geometry is in each [`MicroKernel`] (`MR` rows x `NR` channels, `KU` depths per
//! group); the driver [`gemm_panels`] runs every panel over the row tiles of the call, the
//! last one with fewer rows.

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
    /// All 64-bit halves `x` (four i16 activations).
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn splat64(x: i64) -> Self;
    /// `2 * LANES` int8 from `p` sign-extended to `2 * LANES` i16 (unaligned).
    ///
    /// # Safety
    /// The tier's instruction set; `p` readable for `2 * LANES` bytes.
    unsafe fn load_widened(p: *const u8) -> Self;
    /// The sums of adjacent lane pairs: `a`'s pairs, then `b`'s, in order.
    ///
    /// # Safety
    /// The tier's instruction set.
    unsafe fn pair_sums(a: Self, b: Self) -> Self;
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
    unsafe fn dot<V: Simd>(acc: V, a: V, b: V) -> V {
        // SAFETY: the caller's.
        unsafe { V::dpbusd(acc, a, b) }
    }
}

/// `vpdpwssd`: i16 activations, i16 weights, pairs.
pub(crate) struct Pairs;

impl Dot for Pairs {
    const GROUP: Group = Group::Pair;
    const ONES: i32 = 0x0001_0001;
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
    /// The panel: `groups * 4 * NR` bytes.
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
/// (`t.lda` apart), `t.panel` for `t.groups` groups of `NV * 4 * V::LANES` bytes, `t.sums`
/// for `NV * 4 * V::LANES` bytes, and `out` writable at `r * t.ldo + c` for every
/// `r < R`, `c < t.cols`.
#[inline(always)]
pub(crate) unsafe fn tile<V: Simd, D: Dot, const R: usize, const NV: usize>(
    t: &Tile,
    out: *mut i32,
) {
    let lanes = V::LANES;
    let group_bytes = NV * 4 * lanes;
    // SAFETY: the caller's guarantees cover every pointer formed and read below.
    unsafe {
        let factor = V::splat(t.factor);
        let start: [V; NV] =
            core::array::from_fn(|v| V::mullo(V::load(t.sums.add(v * 4 * lanes)), factor));
        let mut acc = [start; R];
        let rows: [*const u32; R] = core::array::from_fn(|r| t.a.add(r * t.lda));
        let mut bp = t.panel;
        for g in 0..t.groups {
            let w: [V; NV] = core::array::from_fn(|v| V::load(bp.add(v * 4 * lanes)));
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
        debug_assert!(panel.len() >= groups * 4 * K::NR && sums.len() >= 4 * K::NR);
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
    let panel_bytes = groups * 4 * nr;
    let (body, sums) = data[..len].split_at_mut(panels * panel_bytes);
    for (panel, dst) in body
        .chunks_exact(panel_bytes.max(1))
        .zip(sums.chunks_exact_mut(4 * nr))
    {
        // SAFETY: the caller's instruction set; the panel holds `groups` groups of
        // `NV * 4 * LANES` bytes and `dst` the panel's `nr` i32 (stored unaligned, in
        // the machine's little-endian order).
        unsafe {
            let ones = V::splat(D::ONES);
            let mut acc = [V::splat(0); NV];
            for g in 0..groups {
                for (v, a) in acc.iter_mut().enumerate() {
                    let w = V::load(panel.as_ptr().add((g * NV + v) * 4 * V::LANES));
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

/// The int16 tile (`Lhs::I16` on the int8 quads): each group's `4 * LANES` weight bytes of
/// a register of channels are sign-extended into two registers (channel `j` of a half in
/// lanes `2j` and `2j + 1`: depths 0-1 and 2-3), the row's four i16 activations are
/// broadcast as one 64-bit word, and `vpdpwssd` accumulates both pairs; the adjacent lanes
/// are summed at the end. Signed x signed: no offset, no channel sums. Every step wraps
/// like the reference's `i32` sums.
///
/// # Safety
/// The tier's instruction set for `V`; `a` readable for `R` rows of `2 * t.groups` words
/// (`t.lda` apart, two words per group), the panel as in [`tile`], and `out` writable at
/// `r * t.ldo + c` for every `r < R`, `c < t.cols`.
#[inline(always)]
pub(crate) unsafe fn tile_i16<V: Simd, const R: usize, const NV: usize, const NA: usize>(
    t: &Tile,
    out: *mut i32,
) {
    debug_assert!(NA == 2 * NV);
    let lanes = V::LANES;
    let group_bytes = NV * 4 * lanes;
    // SAFETY: the caller's guarantees cover every pointer formed and read below.
    unsafe {
        let mut acc = [[V::splat(0); NA]; R];
        let rows: [*const u32; R] = core::array::from_fn(|r| t.a.add(r * t.lda));
        let mut bp = t.panel;
        for g in 0..t.groups {
            let w: [V; NA] = core::array::from_fn(|h| V::load_widened(bp.add(h * 2 * lanes)));
            bp = bp.add(group_bytes);
            for r in 0..R {
                let x = V::splat64(rows[r].add(2 * g).cast::<i64>().read_unaligned());
                for h in 0..NA {
                    acc[r][h] = V::dpwssd(acc[r][h], x, w[h]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = out.add(r * t.ldo);
            for v in 0..NV {
                let c = v * lanes;
                if c < t.cols {
                    let sums = V::pair_sums(acc_r[2 * v], acc_r[2 * v + 1]);
                    V::store(dst.add(c), sums, (t.cols - c).min(lanes));
                }
            }
        }
    }
}

/// `out = a x b^T` for int16 activations `a` (as [`quads_of_i16`] words, `lda` per row) on
/// a quad packing `b` of `NV * V::LANES` channels per panel, tiles of `mr` rows; `tile`
/// runs one tile of the given row count (`1..=mr`).
///
/// # Safety
/// The tier's instruction set for `V`; `b` packed with `NV * V::LANES` channels per panel;
/// `a.len() >= (out.rows() - 1) * lda + 2 * b.groups()` when there are rows;
/// `out.cols() == b.n()`; `tile` as [`tile_i16`] for its row count.
#[inline(always)]
pub(crate) unsafe fn gemm_i16_panels(
    a: &[u32],
    lda: usize,
    b: Panels<'_>,
    nr: usize,
    mr: usize,
    mut out: MatMut<'_, i32>,
    tile: impl Fn(usize, &Tile, *mut i32),
) {
    let (m, n, groups) = (out.rows(), b.n(), b.groups());
    debug_assert!(b.group() == Group::Quad && out.cols() == n && lda >= 2 * groups);
    debug_assert!(m == 0 || a.len() >= (m - 1) * lda + 2 * groups);
    let ldo = out.ld();
    let out = out.data_mut();
    for q in 0..n.div_ceil(nr) {
        let panel = b.panel(q);
        debug_assert!(panel.len() >= groups * 4 * nr);
        let c0 = q * nr;
        for r0 in (0..m).step_by(mr) {
            let t = Tile {
                a: a.as_ptr().wrapping_add(r0 * lda),
                lda,
                groups,
                panel: panel.as_ptr(),
                sums: panel.as_ptr(),
                factor: 0,
                cols: nr.min(n - c0),
                ldo,
            };
            // The tile stores inside rows `r0..r0 + rows` of `out` (the `MatMut` invariant:
            // stride `ldo`, `c0 + cols <= n <= ldo`).
            tile(
                (m - r0).min(mr),
                &t,
                out.as_mut_ptr().wrapping_add(r0 * ldo + c0),
            );
        }
    }
}

/// Rows of int16 activations as pairs of words per group of four depths (`x0 | x1 << 16`,
/// `x2 | x3 << 16`), zero past the depth. Returns the words per row (twice the groups).
pub(crate) fn quads_of_i16(a: MatRef<'_, i16>, out: &mut Vec<u32>) -> usize {
    let (m, depth) = (a.rows(), a.cols());
    let words = 2 * depth.div_ceil(4);
    // Every word is written below.
    resize(out, m * words, true);
    for (r, dst) in out.chunks_exact_mut(words.max(1)).take(m).enumerate() {
        let row = a.row(r);
        for (i, d) in dst.iter_mut().enumerate() {
            let at = |k: usize| u32::from(row.get(k).copied().unwrap_or(0) as u16);
            *d = at(2 * i) | at(2 * i + 1) << 16;
        }
    }
    words
}

std::thread_local! {
    /// The left operand as words of groups, reused across calls on this thread.
    static A_WORDS: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A right operand packed by the call itself (when it was not prepared beforehand).
    static B_PACKED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
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

/// The activations of a VNNI product and the factor of the channel sums that corrects
/// them.
#[derive(Clone, Copy)]
pub(crate) enum Act<'a> {
    /// int8: offset by 128.
    I8(MatRef<'a, i8>),
    /// u8 with a zero point.
    U8(MatRef<'a, u8>, u8),
    /// int16 (`vpdpwssd` on the widened weights; no offset).
    I16(MatRef<'a, i16>),
}

impl Act<'_> {
    /// Writes the `vpdpbusd` words; returns the words per row and the sums' factor.
    fn words(&self, out: &mut Vec<u32>) -> (usize, i32) {
        match *self {
            Self::I8(a) => (quads_of_i8(a, out), -128),
            Self::U8(a, zp) => (quads_of_u8(a, out), -i32::from(zp)),
            Self::I16(a) => (quads_of_i16(a, out), 0),
        }
    }
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
    /// `out = a x b` for int16 activations ([`quads_of_i16`] words) on the same panels.
    ///
    /// # Safety
    /// As [`gemm_i16_panels`] for the tier's kernel, on a CPU with the tier's features.
    unsafe fn gemm_i16(a: &[u32], lda: usize, b: Panels<'_>, out: MatMut<'_, i32>);
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
    with_buffer(&A_WORDS, |words| {
        let (lda, factor) = act.words(words);
        let ready = prepared.and_then(|bytes| Panels::new(bytes, n, depth, T::NR, Group::Quad));
        match ready {
            // SAFETY: the caller's; `words` holds `rows` rows of `lda` words.
            Some(p) => unsafe { run::<T>(act, words, lda, p, factor, out) },
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
                    unsafe { run::<T>(act, words, lda, p, factor, out) };
                }
            }),
        }
    });
}

/// The tier's kernel for the activation kind.
///
/// # Safety
/// As [`VnniTier::gemm_quads`] / [`VnniTier::gemm_i16`].
unsafe fn run<T: VnniTier>(
    act: Act<'_>,
    words: &[u32],
    lda: usize,
    b: Panels<'_>,
    factor: i32,
    out: MatMut<'_, i32>,
) {
    // SAFETY: the caller's.
    unsafe {
        match act {
            Act::I16(_) => T::gemm_i16(words, lda, b, out),
            _ => T::gemm_quads(words, lda, b, factor, out),
        }
    }
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
    let nr = zmm::PV_NR;
    with_buffer(&A_WORDS, |words| {
        let lda = pairs_of_u16(p, words);
        with_buffer(&B_PACKED, |packed| {
            let Some(len) = panels::packed_len(width, keys, nr, Group::Pair) else {
                return;
            };
            resize(packed, len, true);
            // SAFETY: the caller's (AVX2); `packed` holds `len` bytes.
            if !unsafe { panels::pack_depth_pairs(v, nr, packed) } {
                return;
            }
            // SAFETY: the caller's instruction set; `packed` is that packing.
            unsafe { zmm::fill_pair_sums(packed, width, keys) };
            if let Some(b) = Panels::new(packed, width, keys, nr, Group::Pair) {
                // SAFETY: the caller's; `words` holds `rows` rows of `lda` words.
                unsafe { zmm::gemm_pairs(words, lda, b, 1 << 15, out) };
            }
        });
    });
}
