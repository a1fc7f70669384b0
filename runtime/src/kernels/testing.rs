//! The kernel conformance suite (feature `test-utils`): every backend runs it and must be
//! bit-identical to [`Scalar`] on every case.
//!
//! Cases cover shapes 0, 1, tile-1, tile+1 and odd lengths, the extreme values -127 and
//! 127, all-equal rows, and the rounding cases of every requantisation. Inputs come from a
//! small deterministic generator so the suite needs no allocator or RNG crate; the caller
//! provides the buffers' backing storage through fixed-size arrays.
//!
//! ```no_run
//! // In a backend crate's `tests/conformance.rs` (the suite takes a while unoptimised):
//! microbert::kernels::testing::run_all(&microbert::Scalar);
//! ```

use super::{
    Gemm, Kernels, LayerNormParams, LeI32s, Lhs, LogitScale, MatMut, MatRef, Prepared, PvScale,
    Requant, Rhs, Scalar,
};

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

/// Output rows times their stride, at most.
const OUT: usize = 33 * 40;

/// Runs products on a backend and on [`Scalar`] and compares them.
struct Products<'k, K> {
    k: &'k K,
    got: [i32; OUT],
    want: [i32; OUT],
}

impl<'k, K: Kernels> Products<'k, K> {
    fn new(k: &'k K) -> Self {
        Self {
            k,
            got: [0; OUT],
            want: [0; OUT],
        }
    }

    /// `a x b` into outputs of stride `ldo` prefilled with different values: identical
    /// results required, including the elements between rows a kernel must not touch.
    fn check(&mut self, what: &str, case: usize, a: Lhs<'_>, b: Rhs<'_>, ldo: usize) {
        let (m, n) = (a.rows(), b.channels());
        let len = if m == 0 { 0 } else { (m - 1) * ldo + n };
        self.got[..len].fill(-1);
        self.want[..len].fill(-1);
        let outs = (
            MatMut::new(&mut self.got[..len], m, n, ldo),
            MatMut::new(&mut self.want[..len], m, n, ldo),
        );
        let (Some(go), Some(wo)) = outs else {
            panic!("{what}: bad test shape in case {case}");
        };
        match (Gemm::new(a, b, go), Gemm::new(a, b, wo)) {
            (Some(g), Some(w)) => {
                self.k.gemm(g);
                Scalar.gemm(w);
            }
            _ => panic!("{what}: operands disagree in case {case}"),
        }
        check(
            what,
            self.k.name(),
            case,
            &self.got[..len],
            &self.want[..len],
        );
    }
}

/// Products of every operand kind at shape combinations drawn from [`LENGTHS`] (m and n
/// up to 33), with strides wider than the rows (attention heads' sub-matrices) and output
/// strides wider than `n`; weights as channel rows, as depth rows and prepared by `k`.
pub fn gemm<K: Kernels>(k: &K) {
    let mut rng = Rng::new(1);
    let mut a = [0i8; 33 * MAX_LEN];
    let mut au8 = [0u8; 33 * MAX_LEN];
    let mut a16 = [0i16; 33 * MAX_LEN];
    let mut au16 = [0u16; 33 * MAX_LEN];
    let mut b = [0i8; 33 * MAX_LEN];
    let mut prepared = [0u8; 36 * MAX_LEN * 2];
    let mut products = Products::new(k);
    let mut case = 0;
    for &m in &[0usize, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33] {
        for &n in &[0usize, 1, 3, 4, 5, 8, 15, 16, 17, 33] {
            for &depth in LENGTHS {
                let lda = depth + (case % 3);
                let ldb = depth + (case % 5);
                let ldo = n + (case % 2) * 3;
                if m * lda > a.len() || n * ldb > b.len() || m * ldo > OUT {
                    continue;
                }
                for i in 0..m * lda {
                    a[i] = rng.i8();
                    au8[i] = rng.range(0, 255) as u8;
                    a16[i] = match rng.next_u64() % 4 {
                        0 => 8191,
                        1 => -8191,
                        _ => rng.range(-8191, 8191) as i16,
                    };
                    au16[i] = rng.range(0, 65_535) as u16;
                }
                for x in b.iter_mut().take(n * ldb) {
                    *x = rng.i8();
                }
                let (Some(ai8), Some(vu8), Some(ai16), Some(au16m), Some(bc)) = (
                    MatRef::new(&a, m, depth, lda),
                    MatRef::new(&au8, m, depth, lda),
                    MatRef::new(&a16, m, depth, lda),
                    MatRef::new(&au16, m, depth, lda),
                    MatRef::new(&b, n, depth, ldb),
                ) else {
                    continue;
                };
                let zero_point = rng.range(0, 255) as u8;
                let lhs = [
                    Lhs::I8(ai8),
                    Lhs::U8 {
                        values: vu8,
                        zero_point,
                    },
                    Lhs::I16(ai16),
                    Lhs::U16(au16m),
                ];
                let plen = k.prepared_len(n, depth);
                let ready =
                    plen > 0 && plen <= prepared.len() && k.prepare(bc, &mut prepared[..plen]);
                for a in lhs {
                    products.check("gemm channels", case, a, Rhs::Channels(bc), ldo);
                    if ready {
                        let p = Rhs::Prepared(Prepared::new(bc, &prepared[..plen]));
                        products.check("gemm prepared", case, a, p, ldo);
                    }
                    // Prepared bytes too short for the shape: the blob's weights are used.
                    let short = Rhs::Prepared(Prepared::new(
                        bc,
                        &prepared[..plen.saturating_sub(1).min(8)],
                    ));
                    products.check("gemm short prepared", case, a, short, ldo);
                }
                // Depth-major right operand (the values of attention): `b` as
                // `depth` rows of `n`.
                if let Some(bd) = MatRef::new(&b, depth, n, n + case % 3) {
                    for a in lhs {
                        products.check("gemm depths", case, a, Rhs::Depths(bd), ldo);
                    }
                }
                case += 1;
            }
        }
    }
    // All extremes: the largest int8 accumulators.
    a.fill(-127);
    b.fill(-127);
    let mut got = [0i32; 15];
    let (Some(ai8), Some(bc), Some(out)) = (
        MatRef::new(&a, 3, MAX_LEN, MAX_LEN),
        MatRef::new(&b, 5, MAX_LEN, MAX_LEN),
        MatMut::new(&mut got, 3, 5, 5),
    ) else {
        panic!("bad extreme shape");
    };
    if let Some(g) = Gemm::new(Lhs::I8(ai8), Rhs::Channels(bc), out) {
        k.gemm(g);
    }
    check(
        "gemm extremes",
        k.name(),
        case,
        got[0],
        127 * 127 * MAX_LEN as i32,
    );
}

/// Probability-weighted sums of value rows (`Lhs::U16 x Rhs::Depths`, attention P.V) at
/// every length, probabilities summing to about 65,535 as softmax produces them, and over
/// the whole u16 range.
pub fn weighted_sums<K: Kernels>(k: &K) {
    const MAX_ROWS: usize = 17;
    let mut rng = Rng::new(2);
    let mut p = [0u16; MAX_ROWS * MAX_LEN];
    let mut v = [0i8; MAX_LEN * 70];
    let mut products = Products::new(k);
    let mut case = 0;
    for &rows in &[1usize, 2, 5, 17] {
        for &keys in LENGTHS {
            for &width in &[0usize, 1, 8, 15, 16, 17, 32, 33, 64, 67] {
                if keys == 0 || rows * keys > p.len() {
                    continue;
                }
                let ldv = width + case % 3;
                for r in 0..rows {
                    let row = &mut p[r * keys..(r + 1) * keys];
                    if r % 2 == 0 {
                        // As softmax produces them.
                        let mut left: i64 = 65_535;
                        for (j, pj) in row.iter_mut().enumerate() {
                            let x = if j + 1 == keys {
                                left
                            } else {
                                rng.range(0, left / 2)
                            };
                            left -= x;
                            *pj = x as u16;
                        }
                    } else {
                        for pj in row.iter_mut() {
                            *pj = match rng.next_u64() % 6 {
                                0 => 0,
                                1 => u16::MAX,
                                2 => 32_768,
                                _ => rng.range(0, 65_535) as u16,
                            };
                        }
                    }
                }
                for x in v.iter_mut().take(keys * ldv) {
                    *x = rng.i8();
                }
                let (Some(pm), Some(vm)) = (
                    MatRef::new(&p, rows, keys, keys),
                    MatRef::new(&v, keys, width, ldv),
                ) else {
                    continue;
                };
                products.check("weighted sums", case, Lhs::U16(pm), Rhs::Depths(vm), width);
                case += 1;
            }
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
    let mut got_16 = [0i16; MAX_LEN];
    let mut want_16 = [0i16; MAX_LEN];
    let mut got_u8 = [0u8; MAX_LEN];
    let mut want_u8 = [0u8; MAX_LEN];
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
            let (Some(m4), Some(b4)) = (LeI32s::new(&mult[..n * 4]), LeI32s::new(&bias[..n * 4]))
            else {
                panic!("bad parameter lengths");
            };

            // The dense-input quantisers: smoothed int8 (factors from the bias bytes, so
            // some are negative or large), int16 at several `qmax`, unsigned with offsets.
            let ga = k.quantize_row_i8_scaled(r, b4, &mut got_q[..n]);
            let wa = Scalar.quantize_row_i8_scaled(r, b4, &mut want_q[..n]);
            let what = "quantize_row_i8_scaled";
            check(what, k.name(), case, (ga, &got_q[..n]), (wa, &want_q[..n]));
            for (qmax, factors) in [(32_767, None), (9_000, Some(b4)), (1, None)] {
                let gi = k.quantize_row_i16(r, factors, qmax, &mut got_16[..n]);
                let wi = Scalar.quantize_row_i16(r, factors, qmax, &mut want_16[..n]);
                let what = "quantize_row_i16";
                check(
                    what,
                    k.name(),
                    case,
                    (gi, &got_16[..n]),
                    (wi, &want_16[..n]),
                );
            }
            for offset in [0, 11_141, 1 << 20, i32::MAX] {
                let gu = k.quantize_row_u8_offset(r, offset, &mut got_u8[..n]);
                let wu = Scalar.quantize_row_u8_offset(r, offset, &mut want_u8[..n]);
                let what = "quantize_row_u8_offset";
                check(
                    what,
                    k.name(),
                    case,
                    (gu, &got_u8[..n]),
                    (wu, &want_u8[..n]),
                );
            }
            let rqs = [
                Requant::new(m4, &shift[..n], Some(b4)),
                Requant::new(m4, &shift[..n], None),
            ];
            for rq in rqs.iter().flatten() {
                k.requantize_row(&acc[..n], ga, rq, &mut got[..n]);
                Scalar.requantize_row(&acc[..n], ga, rq, &mut want[..n]);
                check("requantize_row", k.name(), case, &got[..n], &want[..n]);
            }

            // Logits (key exponents over their whole range) and softmax.
            for e in exps.iter_mut().take(n) {
                *e = rng.range(0, 25) as u32;
            }
            for a in amaxes.iter_mut().take(n) {
                *a = rng.range(0, 1 << 22) as u32;
            }
            got[..n].copy_from_slice(&acc[..n]);
            want[..n].copy_from_slice(&acc[..n]);
            let scale = LogitScale {
                multiplier: rng.range(1 << 30, i32::MAX as i64) as i32,
                shift: rng.range(40, 96) as u8,
            };
            k.attention_logits_row(&mut got[..n], ga, &exps[..n], scale);
            Scalar.attention_logits_row(&mut want[..n], ga, &exps[..n], scale);
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
            let Some(ln) = LayerNormParams::new(m4, b4, eps) else {
                panic!("bad LayerNorm lengths");
            };
            k.layer_norm_row(&mut got[..n], &ln);
            Scalar.layer_norm_row(&mut want[..n], &ln);
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

/// Runs the whole suite; panics with the first difference.
pub fn run_all<K: Kernels>(k: &K) {
    gemm(k);
    weighted_sums(k);
    row_kernels(k);
}

#[cfg(test)]
mod tests {
    #[test]
    fn scalar_passes_its_own_suite() {
        super::run_all(&super::Scalar);
    }
}
