//! The kernel conformance suite (feature `test-utils`): every backend runs it and must be
//! bit-identical to [`Scalar`] on every case.
//!
//! Cases cover shapes 0, 1, tile-1, tile+1 and odd lengths, the extreme values -127 and
//! 127, all-equal rows, and the rounding cases of every requantisation. Inputs come from a
//! small deterministic generator so the suite needs no allocator or RNG crate; the caller
//! provides the buffers' backing storage through fixed-size arrays.
//!
//! ```ignore
//! microbert::kernels::testing::run_all(&MyKernels::detect());
//! ```

use super::scalar::PvScale;
use super::{Kernels, Requant, Scalar};

/// A tiny deterministic generator (xorshift64*), good enough to spread test inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }
    /// An int8 in [-127, 127], with the extremes over-represented.
    pub fn i8(&mut self) -> i8 {
        match self.next_u64() % 8 {
            0 => 127,
            1 => -127,
            _ => self.range(-127, 127) as i8,
        }
    }
}

/// Lengths every kernel is tried at: 0, 1, around common tile sizes, odd and large.
pub const LENGTHS: &[usize] = &[
    0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 384, 385,
];

const MAX_LEN: usize = 512;

fn check<T: PartialEq + core::fmt::Debug>(what: &str, backend: &str, case: usize, a: T, b: T) {
    assert!(
        a == b,
        "{backend}: {what} differs from scalar in case {case}: {a:?} vs {b:?}"
    );
}

/// int8 products at every shape combination drawn from [`LENGTHS`] (m and n up to 33).
pub fn gemm_i8<K: Kernels>(k: &K) {
    let mut rng = Rng::new(1);
    let mut a = [0i8; 33 * MAX_LEN];
    let mut b = [0i8; 33 * MAX_LEN];
    let mut got = [0i32; 33 * 33];
    let mut want = [0i32; 33 * 33];
    let mut case = 0;
    for &m in &[0usize, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33] {
        for &n in &[0usize, 1, 3, 4, 5, 8, 15, 16, 17, 33] {
            for &depth in LENGTHS {
                // Strides larger than depth exercise sub-matrix views (attention heads).
                let lda = depth + (case % 3);
                let ldb = depth + (case % 5);
                if m * lda > a.len() || n * ldb > b.len() {
                    continue;
                }
                for x in a.iter_mut().take(m * lda) {
                    *x = rng.i8();
                }
                for x in b.iter_mut().take(n * ldb) {
                    *x = rng.i8();
                }
                got.fill(-1);
                want.fill(-1);
                k.gemm_i8(m, n, depth, &a, lda, &b, ldb, &mut got[..m * n]);
                Scalar.gemm_i8(m, n, depth, &a, lda, &b, ldb, &mut want[..m * n]);
                check("gemm_i8", k.name(), case, &got[..], &want[..]);
                case += 1;
            }
        }
    }
    // All extremes: the largest accumulators.
    a.fill(-127);
    b.fill(-127);
    k.gemm_i8(3, 5, MAX_LEN, &a, MAX_LEN, &b, MAX_LEN, &mut got[..15]);
    check(
        "gemm_i8 extremes",
        k.name(),
        case,
        got[0],
        127 * 127 * MAX_LEN as i32,
    );
}

/// Probability-weighted sums at every length, including probabilities of 0 and 65,535.
pub fn weighted_sum_u16_i8<K: Kernels>(k: &K) {
    let mut rng = Rng::new(2);
    let mut p = [0u16; MAX_LEN];
    let mut v = [0i8; MAX_LEN * 70];
    let mut got = [0i32; 67];
    let mut want = [0i32; 67];
    let mut case = 0;
    for &n in LENGTHS {
        for &width in &[0usize, 1, 8, 15, 16, 17, 32, 33, 64, 67] {
            let ldv = width + case % 3;
            // Probabilities summing to about 65,535, as softmax produces.
            let mut left: i64 = 65_535;
            for (j, pj) in p.iter_mut().enumerate().take(n) {
                let x = if j + 1 == n {
                    left
                } else {
                    rng.range(0, left / 2)
                };
                left -= x;
                *pj = x as u16;
            }
            if n == 1 {
                p[0] = 65_535;
            }
            for x in v.iter_mut().take(n * ldv) {
                *x = rng.i8();
            }
            k.weighted_sum_u16_i8(&p[..n], &v, ldv, &mut got[..width]);
            Scalar.weighted_sum_u16_i8(&p[..n], &v, ldv, &mut want[..width]);
            check(
                "weighted_sum_u16_i8",
                k.name(),
                case,
                &got[..width],
                &want[..width],
            );
            case += 1;
        }
    }
}

/// Row quantisation, logits, requantisation, softmax, LayerNorm and GELU on random and
/// edge-case rows.
pub fn row_kernels<K: Kernels>(k: &K) {
    let mut rng = Rng::new(3);
    let mut row = [0i32; MAX_LEN];
    let mut got_q = [0i8; MAX_LEN];
    let mut want_q = [0i8; MAX_LEN];
    let mut got = [0i32; MAX_LEN];
    let mut want = [0i32; MAX_LEN];
    let mut mult = [0u8; MAX_LEN * 4];
    let mut shift = [0u8; MAX_LEN];
    let mut bias = [0u8; MAX_LEN * 4];
    let mut amaxes = [0u32; MAX_LEN];
    let mut exps = [0u32; MAX_LEN];
    let mut got_p = [0u16; MAX_LEN];
    let mut want_p = [0u16; MAX_LEN];
    let mut case = 0;
    for &n in LENGTHS {
        for scale in [0i64, 1, 1 << 8, 1 << 16, 1 << 20, 1 << 24, i32::MAX as i64] {
            for x in row.iter_mut().take(n) {
                *x = rng.range(-scale, scale) as i32;
            }
            if n > 2 && case % 4 == 0 {
                row[0] = i32::MAX;
                row[1] = i32::MIN;
            }
            let r = &mut row[..n];
            let ga = k.quantize_row_i8(r, &mut got_q[..n]);
            let wa = Scalar.quantize_row_i8(r, &mut want_q[..n]);
            check(
                "quantize_row_i8",
                k.name(),
                case,
                (ga, &got_q[..n]),
                (wa, &want_q[..n]),
            );

            // Requantisation with multipliers and shifts over their whole range.
            for c in 0..n {
                let m = rng.range(0, i32::MAX as i64) as i32;
                mult[c * 4..c * 4 + 4].copy_from_slice(&m.to_le_bytes());
                shift[c] = rng.range(0, 96) as u8;
                let b = rng.range(-(1 << 24), 1 << 24) as i32;
                bias[c * 4..c * 4 + 4].copy_from_slice(&b.to_le_bytes());
            }
            let acc: [i32; MAX_LEN] = core::array::from_fn(|i| {
                i32::from(got_q[i % n.max(1)]) * rng.range(-127 * 1536, 127 * 1536) as i32
            });
            let rq = Requant {
                multiplier: &mult[..n * 4],
                shift: &shift[..n],
                bias: &bias[..n * 4],
            };
            k.requantize_row(&acc[..n], ga, &rq, &mut got[..n]);
            Scalar.requantize_row(&acc[..n], ga, &rq, &mut want[..n]);
            check("requantize_row", k.name(), case, &got[..n], &want[..n]);

            // Logits (key exponents over their whole range) and softmax.
            for e in exps.iter_mut().take(n) {
                *e = rng.range(0, 25) as u32;
            }
            for a in amaxes.iter_mut().take(n) {
                *a = rng.range(0, 1 << 22) as u32;
            }
            got[..n].copy_from_slice(&acc[..n]);
            want[..n].copy_from_slice(&acc[..n]);
            let m = rng.range(1 << 30, i32::MAX as i64) as i32;
            let s = rng.range(40, 96) as u8;
            k.attention_logits_row(&mut got[..n], ga, &exps[..n], m, s);
            Scalar.attention_logits_row(&mut want[..n], ga, &exps[..n], m, s);
            check(
                "attention_logits_row",
                k.name(),
                case,
                &got[..n],
                &want[..n],
            );
            let gs: PvScale = k.softmax_row(&want[..n], &amaxes[..n], &mut got_p[..n]);
            let ws = Scalar.softmax_row(&want[..n], &amaxes[..n], &mut want_p[..n]);
            check(
                "softmax_row",
                k.name(),
                case,
                (gs, &got_p[..n]),
                (ws, &want_p[..n]),
            );

            // The context scale: the softmax's own factor, then factors over the whole
            // non-negative range (including those whose products saturate).
            for (i, factor_q32) in [
                gs.factor_q32,
                0,
                1,
                (1 << 32) - 1,
                1 << 32,
                (1 << 31) + 1,
                rng.range(0, 1 << 40),
                (rng.next_u64() >> 1) as i64,
                i64::MAX - rng.range(0, 1 << 32),
                i64::MAX,
            ]
            .into_iter()
            .enumerate()
            {
                let scale = PvScale { factor_q32 };
                let pv = if i % 2 == 0 { &acc[..n] } else { &row[..n] };
                k.pv_scale_row(pv, scale, &mut got[..n]);
                Scalar.pv_scale_row(pv, scale, &mut want[..n]);
                check("pv_scale_row", k.name(), case, &got[..n], &want[..n]);
            }

            // LayerNorm with gamma/beta drawn from the bias and multiplier bytes.
            got[..n].copy_from_slice(&row[..n]);
            want[..n].copy_from_slice(&row[..n]);
            let eps = rng.range(1, 1 << 20) as u64;
            k.layer_norm_row(&mut got[..n], &mult[..n * 4], &bias[..n * 4], eps);
            Scalar.layer_norm_row(&mut want[..n], &mult[..n * 4], &bias[..n * 4], eps);
            check("layer_norm_row", k.name(), case, &got[..n], &want[..n]);

            got[..n].copy_from_slice(&row[..n]);
            want[..n].copy_from_slice(&row[..n]);
            k.gelu_row(&mut got[..n]);
            Scalar.gelu_row(&mut want[..n]);
            check("gelu_row", k.name(), case, &got[..n], &want[..n]);
            case += 1;
        }
    }
    // GELU at every table boundary and its neighbours.
    let mut x = -(9 << 16);
    while x < 9 << 16 {
        let mut g = [x - 1, x, x + 1];
        let mut w = g;
        k.gelu_row(&mut g);
        Scalar.gelu_row(&mut w);
        check("gelu_row boundary", k.name(), x as usize, g, w);
        x += 1 << 10;
    }
}

/// [`Kernels::weighted_sum_block`] against the scalar per-row reference: blocks of 0 to
/// 17 rows, key counts around the SIMD widths (odd ones included), widths around a
/// 16-lane panel, strides wider than the width, probabilities over the whole u16 range.
pub fn weighted_sum_block<K: Kernels>(k: &K) {
    const MAX_ROWS: usize = 17;
    const MAX_KEYS: usize = 70;
    const MAX_WIDTH: usize = 40;
    let mut rng = Rng::new(4);
    let mut p = [0u16; MAX_ROWS * MAX_KEYS];
    let mut v = [0i8; MAX_KEYS * (MAX_WIDTH + 3)];
    let mut got = [0i32; MAX_ROWS * MAX_WIDTH];
    let mut want = [0i32; MAX_ROWS * MAX_WIDTH];
    let mut case = 0;
    for &rows in &[0usize, 1, 2, 4, 5, 16, 17] {
        for &keys in &[1usize, 2, 3, 15, 16, 17, 31, 33, 64, 70] {
            for &width in &[1usize, 7, 8, 15, 16, 17, 32, 33, 40] {
                let ldv = width + case % 3;
                for x in p.iter_mut().take(rows * keys) {
                    *x = match rng.next_u64() % 6 {
                        0 => 0,
                        1 => u16::MAX,
                        2 => 32_768,
                        _ => rng.range(0, 65_535) as u16,
                    };
                }
                for x in v.iter_mut().take(keys * ldv) {
                    *x = rng.i8();
                }
                got.fill(-1);
                want.fill(-1);
                k.weighted_sum_block(rows, keys, &p, &v, ldv, width, &mut got);
                for r in 0..rows {
                    Scalar.weighted_sum_u16_i8(
                        &p[r * keys..(r + 1) * keys],
                        &v,
                        ldv,
                        &mut want[r * width..(r + 1) * width],
                    );
                }
                check("weighted_sum_block", k.name(), case, &got[..], &want[..]);
                case += 1;
            }
        }
    }
}

/// Runs the whole suite; panics with the first difference.
pub fn run_all<K: Kernels>(k: &K) {
    gemm_i8(k);
    weighted_sum_u16_i8(k);
    weighted_sum_block(k);
    row_kernels(k);
}

#[cfg(test)]
mod tests {
    #[test]
    fn scalar_passes_its_own_suite() {
        super::run_all(&super::Scalar);
    }
}
