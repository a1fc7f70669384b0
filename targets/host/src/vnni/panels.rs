//! The packed right operand of the VNNI tiers: panels of `nr` output channels, each a run
//! of *groups* of depths (`s` bytes per channel per group), followed by one i32 sum per
//! channel.
//!
//! Two element kinds share the layout:
//! - [`Group::Quad`]: four int8 depths `b[c][4g..4g + 4]` (the operand of `vpdpbusd`),
//!   `s = 4`;
//! - [`Group::Pair`]: two int8 depths `b[c][2g], b[c][2g + 1]`, `s = 2`, which the kernel
//!   sign-extends to an i16 pair as it loads them (the operand of `vpdpwssd`), used for the
//!   values of attention P.V.
//!
//! Layout of `n` channels of `depth`: panel `q` (channels `q * nr..q * nr + nr`) starts at
//! byte `q * groups * s * nr`; in it, group `g` is `s * nr` bytes, channel `c % nr` at
//! `s * (c % nr)`. Channels are padded to whole panels and depth to whole groups with
//! zeros (zeros add nothing to a sum, so the padding is exact). After the panels,
//! `panels * nr` little-endian i32: the wrapping sum over the depth of each channel
//! (0 for padding), which turns the offset products back into the reference's sums (see
//! the parent module).

use core::arch::x86_64::{
    __m256i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
    _mm256_set_m128i, _mm256_storeu_si256, _mm256_unpackhi_epi32, _mm256_unpackhi_epi64,
    _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
};
use core::ops::Range;
use microbert::kernels::MatRef;

/// The elements of one group (4 bytes per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Four int8 depths.
    Quad,
    /// Two depths as i16.
    Pair,
}

impl Group {
    /// Depths per group.
    pub(crate) const fn depths(self) -> usize {
        match self {
            Self::Quad => 4,
            Self::Pair => 2,
        }
    }

    /// Bytes per channel per group (one int8 per depth).
    pub(crate) const fn bytes(self) -> usize {
        self.depths()
    }
}

/// Bytes of the packing of `n` channels of `depth` in panels of `nr` (`None` on overflow).
pub(crate) const fn packed_len(n: usize, depth: usize, nr: usize, group: Group) -> Option<usize> {
    let padded = match n.div_ceil(nr).checked_mul(nr) {
        Some(p) => p,
        None => return None,
    };
    let groups = depth.div_ceil(group.depths());
    // `group.bytes()` per channel per group, and 4 for its sum.
    match groups.checked_mul(group.bytes()) {
        Some(b) => match b.checked_add(4) {
            Some(per_channel) => padded.checked_mul(per_channel),
            None => None,
        },
        None => None,
    }
}

/// A packing (borrowed): prepared weights, or a buffer packed by the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panels<'a> {
    data: &'a [u8],
    n: usize,
    groups: usize,
    nr: usize,
    group: Group,
}

impl<'a> Panels<'a> {
    /// A view of a packing of `n` channels of `depth`; `None` unless `data` holds
    /// [`packed_len`] bytes.
    pub(crate) fn new(
        data: &'a [u8],
        n: usize,
        depth: usize,
        nr: usize,
        group: Group,
    ) -> Option<Self> {
        (packed_len(n, depth, nr, group)? <= data.len()).then_some(Self {
            data,
            n,
            groups: depth.div_ceil(group.depths()),
            nr,
            group,
        })
    }

    /// Output channels.
    pub(crate) const fn n(&self) -> usize {
        self.n
    }

    /// The element kind.
    pub(crate) const fn group(&self) -> Group {
        self.group
    }

    /// Groups of depths per panel.
    pub(crate) const fn groups(&self) -> usize {
        self.groups
    }

    /// Panel `q`: `groups * group.bytes() * nr` bytes (empty past the last).
    pub(crate) fn panel(&self, q: usize) -> &'a [u8] {
        let len = self.panel_bytes();
        self.data.get(q * len..(q + 1) * len).unwrap_or_default()
    }

    /// Bytes of one panel.
    const fn panel_bytes(&self) -> usize {
        self.groups * self.group.bytes() * self.nr
    }

    /// The channel sums of panel `q`: `4 * nr` bytes of little-endian i32.
    pub(crate) fn sums(&self, q: usize) -> &'a [u8] {
        let start = self.n.div_ceil(self.nr) * self.panel_bytes() + q * 4 * self.nr;
        self.data
            .get(start..start + 4 * self.nr)
            .unwrap_or_default()
    }
}

/// Packs the channels of `b` (`b.rows()` channels of `b.cols()` int8 depths) as
/// [`Group::Quad`]s into `out`, which holds at least [`packed_len`] bytes (`nr` a multiple
/// of 8); returns false (writing nothing) when it does not. Blocks of 8 channels by 4
/// quads are transposed as 4 x 4 matrices of 32-bit words, two per `ymm`; the ragged
/// edges are copied byte by byte. The sums are left zero (see [`Panels::sums`]): the
/// tier computes them with its own instruction.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_quads(b: MatRef<'_, i8>, nr: usize, out: &mut [u8]) -> bool {
    let (n, depth, ldb) = (b.rows(), b.cols(), b.ld());
    let Some(len) = packed_len(n, depth, nr, Group::Quad).filter(|&l| l <= out.len()) else {
        return false;
    };
    debug_assert!(nr.is_multiple_of(8));
    let out = &mut out[..len];
    let groups = depth.div_ceil(4);
    let panel_bytes = groups * 4 * nr;
    let panels = n.div_ceil(nr);
    let (body, sums) = out.split_at_mut(panels * panel_bytes);
    sums.fill(0);
    // Padding channels and the tail of a partial last group stay zero.
    if !(n.is_multiple_of(nr) && depth.is_multiple_of(4)) {
        body.fill(0);
    }
    let (n8, d16) = (n & !7, depth & !15);
    let src = b.data();
    for c0 in (0..n8).step_by(8) {
        let dst = body
            .as_mut_ptr()
            .wrapping_add(c0 / nr * panel_bytes + 4 * (c0 % nr));
        for k0 in (0..d16).step_by(16) {
            // SAFETY: rows `c0..c0 + 8 <= n` of `b` hold `k0 + 16 <= depth` elements (the
            // `MatRef` invariant); the four 32-byte stores are channels `c0..c0 + 8` (inside
            // one panel, `nr` being a multiple of 8) of groups `k0 / 4..k0 / 4 + 4`, inside
            // `body`.
            unsafe {
                let row = |r: usize| _mm_loadu_si128(src.as_ptr().add((c0 + r) * ldb + k0).cast());
                let r: [__m256i; 4] =
                    core::array::from_fn(|i| _mm256_set_m128i(row(i + 4), row(i)));
                let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
                let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
                let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
                let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
                let g = [
                    _mm256_unpacklo_epi64(t0, t2),
                    _mm256_unpackhi_epi64(t0, t2),
                    _mm256_unpacklo_epi64(t1, t3),
                    _mm256_unpackhi_epi64(t1, t3),
                ];
                for (i, v) in g.iter().enumerate() {
                    _mm256_storeu_si256(dst.add((k0 / 4 + i) * 4 * nr).cast(), *v);
                }
            }
        }
    }
    let mut fill = |channels: Range<usize>, depths: Range<usize>| {
        for c in channels {
            let row = b.row(c);
            let base = c / nr * panel_bytes + 4 * (c % nr);
            for k in depths.clone() {
                if let (Some(d), Some(&x)) =
                    (body.get_mut(base + k / 4 * 4 * nr + k % 4), row.get(k))
                {
                    *d = x as u8;
                }
            }
        }
    };
    fill(0..n8, d16..depth);
    fill(n8..n, 0..depth);
    true
}

/// Packs the transpose of `v` (`[keys, width]`: channel `t` has depth `keys`, element `j`
/// being `v[j][t]`) as [`Group::Pair`]s into `out` (at least
/// [`packed_len`]`(width, keys, nr, Pair)` bytes, `nr` a multiple of 16); false when it is
/// too short. Per pair of keys and 16 channels: the two rows' bytes interleaved
/// (`vpunpcklbw` / `vpunpckhbw`); the ragged edges element by element. Sums are left zero.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn pack_depth_pairs(v: MatRef<'_, i8>, nr: usize, out: &mut [u8]) -> bool {
    let (keys, width, ldv) = (v.rows(), v.cols(), v.ld());
    let Some(len) = packed_len(width, keys, nr, Group::Pair).filter(|&l| l <= out.len()) else {
        return false;
    };
    debug_assert!(nr.is_multiple_of(16));
    let out = &mut out[..len];
    let groups = keys.div_ceil(2);
    let panel_bytes = groups * 2 * nr;
    let panels = width.div_ceil(nr);
    let (body, sums) = out.split_at_mut(panels * panel_bytes);
    sums.fill(0);
    if !(width.is_multiple_of(nr) && keys.is_multiple_of(2)) {
        body.fill(0);
    }
    let (w16, k2) = (width & !15, keys & !1);
    let src = v.data();
    for t0 in (0..w16).step_by(16) {
        let dst = body
            .as_mut_ptr()
            .wrapping_add(t0 / nr * panel_bytes + 2 * (t0 % nr));
        for j in (0..k2).step_by(2) {
            // SAFETY: rows `j, j + 1 < keys` hold `t0 + 16 <= width` elements of `v` (the
            // `MatRef` invariant); the 32 bytes stored are channels `t0..t0 + 16` (inside one
            // panel, `nr` being a multiple of 16) of group `j / 2`, inside `body`.
            unsafe {
                let r0 = _mm_loadu_si128(src.as_ptr().add(j * ldv + t0).cast());
                let r1 = _mm_loadu_si128(src.as_ptr().add((j + 1) * ldv + t0).cast());
                // Channels 0-7, then 8-15, each as its two keys' bytes.
                let at = dst.add(j / 2 * 2 * nr);
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
            let at = t / nr * panel_bytes + j / 2 * 2 * nr + 2 * (t % nr) + j % 2;
            if let (Some(d), Some(&x)) = (body.get_mut(at), row.get(t)) {
                *d = x as u8;
            }
        }
    }
    true
}
