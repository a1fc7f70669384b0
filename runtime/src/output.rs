//! Output helpers: turning the fixed-point results into what a caller consumes.
//!
//! These run after inference and are the only floating point in the crate (a caller on a
//! core without an FPU gets soft-float here, or keeps the Q.16 vector and the hash).

use crate::blob::format::{FNV_OFFSET, fnv1a64_extend};
use micromath::F32Ext;

/// The pooled Q.16 vector as f32, L2-normalised (all zeros stays zeros).
pub fn normalize(pooled: &[i32], out: &mut [f32]) {
    let scale = 1.0 / 65536.0;
    let mut sum = 0.0f32;
    for (o, &x) in out.iter_mut().zip(pooled) {
        *o = x as f32 * scale;
        sum += *o * *o;
    }
    // micromath's square root is a fast approximation; two Newton steps make it exact to
    // f32 precision.
    let mut norm = F32Ext::sqrt(sum);
    if norm > 0.0 {
        norm = 0.5 * (norm + sum / norm);
        norm = 0.5 * (norm + sum / norm);
    }
    if norm > 0.0 {
        for o in out.iter_mut() {
            *o /= norm;
        }
    }
}

/// Q.16 values as f32 (e.g. MLM logits).
pub fn to_f32(values: &[i32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(values) {
        *o = x as f32 / 65536.0;
    }
}

/// Softmax of Q.16 logits into probabilities (`out`, same length), with the largest logit
/// subtracted first; a single logit (a regression score) gives probability 1.
pub fn softmax(logits: &[i32], out: &mut [f32]) {
    let max = logits.iter().copied().max().unwrap_or(0);
    let mut sum = 0.0f32;
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = F32Ext::exp((x as f32 - max as f32) / 65536.0);
        sum += *o;
    }
    if sum > 0.0 {
        for o in out.iter_mut() {
            *o /= sum;
        }
    }
}

/// FNV-1a 64 over the little-endian bytes of a fixed-point vector: equal hashes on two
/// machines mean bit-identical outputs.
pub fn hash(values: &[i32]) -> u64 {
    values
        .iter()
        .fold(FNV_OFFSET, |h, x| fnv1a64_extend(h, &x.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::fnv1a64;

    #[test]
    fn hash_equals_fnv_of_le_bytes() {
        let v = [1i32, -2, 65536];
        let mut bytes = [0u8; 12];
        for (chunk, x) in bytes.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        assert_eq!(hash(&v), fnv1a64(&bytes));
    }

    #[test]
    fn normalize_gives_unit_norm() {
        let mut out = [0f32; 3];
        normalize(&[3 << 16, 4 << 16, 0], &mut out);
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
        normalize(&[0, 0, 0], &mut out);
        assert_eq!(out, [0.0; 3]);
    }
}
