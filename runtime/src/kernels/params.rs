//! Typed parameters of the per-row kernels, borrowed zero-copy from the blob.
//!
//! The blob stores multi-byte values little-endian with no alignment, so they cannot be
//! borrowed as `&[i32]`; [`LeI32s`] is the typed view of such bytes (its constructor checks
//! the length), and [`Requant`], [`LayerNormParams`] and [`LogitScale`] bundle what one
//! kernel call needs, with checked constructors where the parts must agree.

use crate::blob::format::MAX_SHIFT;

/// Little-endian `i32` values borrowed from a blob (any alignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeI32s<'a>(&'a [u8]);

impl<'a> LeI32s<'a> {
    /// The values of `bytes`; `None` unless its length is a multiple of 4.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(4) {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// Number of values.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value `i`, if present.
    #[inline]
    pub fn get(&self, i: usize) -> Option<i32> {
        match self
            .0
            .get(i.checked_mul(4)?..i.checked_mul(4)?.checked_add(4)?)
        {
            Some(&[a, b, c, d]) => Some(i32::from_le_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// Value `i`, or 0 past the end.
    #[inline]
    pub fn at(&self, i: usize) -> i32 {
        self.get(i).unwrap_or(0)
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The values from `start` on.
    pub fn from(&self, start: usize) -> Self {
        Self(self.0.get(start.saturating_mul(4)..).unwrap_or_default())
    }

    /// The little-endian bytes (`4 * len()`), for SIMD loads.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// Requantisation of one dense layer's output channels:
/// `y[c] ~= acc[c] * amax * multiplier[c] / 2^shift[c] + bias[c]`, saturated (the exact
/// rounding steps are in [`super::scalar::requantize_row`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requant<'a> {
    multiplier: LeI32s<'a>,
    shift: &'a [u8],
    bias: Option<LeI32s<'a>>,
}

impl<'a> Requant<'a> {
    /// The parameters of `multiplier.len()` channels; `None` unless `shift` (and `bias`,
    /// when given) have one entry per channel and every shift is at most [`MAX_SHIFT`].
    /// (Blob validation guarantees multipliers are non-negative.)
    pub fn new(multiplier: LeI32s<'a>, shift: &'a [u8], bias: Option<LeI32s<'a>>) -> Option<Self> {
        let n = multiplier.len();
        let ok = shift.len() == n
            && bias.is_none_or(|b| b.len() == n)
            && shift.iter().all(|&s| s <= MAX_SHIFT);
        ok.then_some(Self {
            multiplier,
            shift,
            bias,
        })
    }

    /// Output channels.
    pub const fn channels(&self) -> usize {
        self.multiplier.len()
    }

    /// Q0.31-style multipliers, one per channel.
    pub const fn multiplier(&self) -> LeI32s<'a> {
        self.multiplier
    }

    /// Shifts, one per channel, at most [`MAX_SHIFT`].
    pub const fn shift(&self) -> &'a [u8] {
        self.shift
    }

    /// Q.16 biases, one per channel, if the layer has them.
    pub const fn bias(&self) -> Option<LeI32s<'a>> {
        self.bias
    }

    /// The parameters of channels `start..` (empty past the end).
    pub fn from(&self, start: usize) -> Self {
        Self {
            multiplier: self.multiplier.from(start),
            shift: self.shift.get(start..).unwrap_or_default(),
            bias: self.bias.map(|b| b.from(start)),
        }
    }
}

/// LayerNorm parameters: `gamma` and `beta` in Q.16 (one per element of a row) and the
/// epsilon in Q.32 units of the variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerNormParams<'a> {
    gamma: LeI32s<'a>,
    beta: LeI32s<'a>,
    eps_q32: u64,
}

impl<'a> LayerNormParams<'a> {
    /// `None` unless `gamma` and `beta` have the same length.
    pub fn new(gamma: LeI32s<'a>, beta: LeI32s<'a>, eps_q32: u64) -> Option<Self> {
        (gamma.len() == beta.len()).then_some(Self {
            gamma,
            beta,
            eps_q32,
        })
    }

    /// Q.16 scales.
    pub const fn gamma(&self) -> LeI32s<'a> {
        self.gamma
    }

    /// Q.16 offsets.
    pub const fn beta(&self) -> LeI32s<'a> {
        self.beta
    }

    /// Epsilon, `eps * 2^32`.
    pub const fn eps_q32(&self) -> u64 {
        self.eps_q32
    }
}

/// The fixed-point factor of attention logits: `multiplier / 2^shift` stands for
/// `log2(e) * 256 / (sqrt(head_dim) * 127 * 2^32)` (see
/// [`crate::blob::Config::attention_logit_multiplier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogitScale {
    /// Non-negative multiplier.
    pub multiplier: i32,
    /// Its shift, at most [`MAX_SHIFT`].
    pub shift: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_values_and_checked_bundles() {
        let bytes = [1u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(LeI32s::new(&bytes[..7]).is_none());
        let v = LeI32s::new(&bytes).unwrap();
        assert_eq!((v.len(), v.at(0), v.at(1), v.at(2)), (2, 1, -1, 0));
        let mut it = v.iter();
        assert_eq!((it.next(), it.next(), it.next()), (Some(1), Some(-1), None));
        assert_eq!(v.from(1).at(0), -1);
        assert!(Requant::new(v, &[1, 2], Some(v)).is_some());
        assert!(Requant::new(v, &[1], None).is_none());
        assert!(Requant::new(v, &[1, MAX_SHIFT + 1], None).is_none());
        assert!(LayerNormParams::new(v, v.from(1), 1).is_none());
    }
}
