//! The left operand of the int8 kernels (`dot`, `mmla`): int8 rows as they are, or uint8
//! rows with a zero point, which enter those kernels as `q - 128` (`q ^ 0x80`, an int8 in
//! [-128, 127]).
//!
//! `sum_k (q - zp) w = sum_k (q - 128) w + (128 - zp) sum_k w`, and the kernels compute the
//! weight sums with the products: a uint8 block packs one row fewer than its tile holds and
//! a row of ones in the free place, whose sums are `sum_k w` for every channel of the tile.
//! Exact modulo 2^32 as the scalar i32 sum: `sdot` and `smmla` multiply any two int8 (-128
//! included) exactly and accumulate in i32 lanes modulo 2^32, and the identity holds in the
//! integers.

use microbert::kernels::MatRef;

/// Rows of int8 values for the int8 kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bytes<'a> {
    /// int8 activations.
    I8(MatRef<'a, i8>),
    /// uint8 values and their zero point: element `q - zero_point`.
    U8(MatRef<'a, u8>, u8),
}

impl Bytes<'_> {
    /// Rows.
    pub(super) fn rows(&self) -> usize {
        match self {
            Self::I8(m) => m.rows(),
            Self::U8(m, _) => m.rows(),
        }
    }

    /// Depth.
    pub(super) fn depth(&self) -> usize {
        match self {
            Self::I8(m) => m.cols(),
            Self::U8(m, _) => m.cols(),
        }
    }

    /// Rows of the operand a block of a `tile`-row kernel takes: one fewer for uint8, whose
    /// blocks end with the row of ones.
    pub(super) fn block(&self, tile: usize) -> usize {
        match self {
            Self::I8(_) => tile,
            Self::U8(..) => tile - 1,
        }
    }

    /// Packs depths `k0..k0 + kc` of rows `r0..r0 + rows` (as int8) and, for uint8, a row of
    /// ones after them, `C` depths at a time: chunk `q` of packed row `i` goes to
    /// `pack[at(i, q)..]`.
    pub(super) fn pack<const C: usize>(
        &self,
        pack: &mut [i8],
        (r0, rows): (usize, usize),
        (k0, kc): (usize, usize),
        at: impl Fn(usize, usize) -> usize,
    ) {
        for i in 0..rows {
            let at = |q| at(i, q);
            match self {
                Self::I8(m) => scatter::<C, _>(pack, &m.row(r0 + i)[k0..k0 + kc], at, |x| x),
                Self::U8(m, _) => {
                    scatter::<C, _>(pack, &m.row(r0 + i)[k0..k0 + kc], at, |q| (q ^ 0x80) as i8);
                }
            }
        }
        if let Self::U8(..) = self {
            for q in 0..kc.div_ceil(C) {
                let len = C.min(kc - q * C);
                pack[at(rows, q)..][..len].fill(1);
            }
        }
    }

    /// The output of a row from its sum `acc` over the packed values and, for uint8, the
    /// sum of the block's row of ones (`ones`: `sum_k w` of the same channel).
    #[inline(always)]
    pub(super) fn finish(&self, acc: i32, ones: impl FnOnce() -> i32) -> i32 {
        match self {
            Self::I8(_) => acc,
            Self::U8(_, zp) => acc.wrapping_add((128 - i32::from(*zp)).wrapping_mul(ones())),
        }
    }
}

/// `src` through `f` into `pack`, `C` elements at a time, chunk `q` at `at(q)`.
#[inline(always)]
fn scatter<const C: usize, T: Copy>(
    pack: &mut [i8],
    src: &[T],
    at: impl Fn(usize) -> usize,
    f: impl Fn(T) -> i8,
) {
    let mut chunks = src.chunks_exact(C);
    for (q, c) in (&mut chunks).enumerate() {
        for (d, &x) in pack[at(q)..][..C].iter_mut().zip(c) {
            *d = f(x);
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (d, &x) in pack[at(src.len() / C)..][..rest.len()].iter_mut().zip(rest) {
            *d = f(x);
        }
    }
}
