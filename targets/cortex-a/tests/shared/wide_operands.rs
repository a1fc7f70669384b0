//! Edge cases of the 16-bit activation products (`Lhs::I16`, W8A16; `Lhs::U8` with a zero
//! point) with int8 weights, beyond the shared suite's random ones. Included by the
//! conformance tests of the Cortex-A and RISC-V backends.
//!
//! int16 activations at the converter's bound `i16_qmax(depth)` and its negation (the
//! largest sums the converter allows), uniform ones, and ones past the bound (`i16::MIN`,
//! `i16::MAX`, weights -128 and 127) whose sums leave i32 and must wrap exactly as the scalar
//! reference's do; uint8 at 0 and 255 with zero points 0, 128 and 255 (and others); depths
//! around the vector widths and across the kernels' depth chunks (512, 1024), 1 row, odd
//! rows and channels, strides wider than the rows; weights as channel rows and prepared by
//! the backend. Every product must equal `microbert::Scalar`'s bit for bit, output padding
//! between rows included.

use microbert::Scalar;
use microbert::kernels::testing::Rng;
use microbert::kernels::{Gemm, Kernels, Lhs, MatMut, MatRef, Prepared, Rhs};
use microbert::quant::i16_qmax;

/// `(rows, channels)` of the products.
const SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (1, 17),
    (2, 3),
    (3, 5),
    (4, 4),
    (5, 9),
    (7, 7),
    (9, 2),
    (9, 17),
];

/// Depths: 1, around 8/16/32/64/128 (vector widths), across 512 and 1024 (depth chunks),
/// MiniLM's 384 and 1536.
const DEPTHS: [usize; 22] = [
    1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 127, 129, 384, 511, 512, 513, 1023, 1025, 1536, 1537,
];

/// Value patterns of the activations (and of the weights).
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Every element at +-bound (random signs), weights +-127.
    Extremes,
    /// Every element at +bound, every weight 127: the largest true sum.
    AllMax,
    /// Uniform in the range, weights uniform over all of int8 (-128 included).
    Uniform,
    /// Outside the converter's bound: mostly `i16::MIN` (else `i16::MAX`) with mostly -128
    /// (else 127), so that the sums of the deeper products leave i32 and wrap modulo 2^32;
    /// uint8 at the largest `|q - zero_point|` (`255 - zero_point`).
    Wrap,
}

const PATTERNS: [Pattern; 4] = [
    Pattern::Extremes,
    Pattern::AllMax,
    Pattern::Uniform,
    Pattern::Wrap,
];

/// Runs every case on `k`; returns the number of products compared.
pub(crate) fn run<K: Kernels>(k: &K) -> usize {
    let mut rng = Rng::new(16);
    let mut cases = 0;
    for (shape, &(m, n)) in SHAPES.iter().enumerate() {
        for (d, &depth) in DEPTHS.iter().enumerate() {
            let lda = depth + (shape + d) % 3;
            let ldb = depth + (shape + d) % 2 * 5;
            let ldo = n + d % 2 * 3;
            let qmax = i16_qmax(depth);
            for pattern in PATTERNS {
                let w = weights(&mut rng, pattern, n * ldb);
                let b = MatRef::new(&w, n, depth, ldb).expect("weight shape");
                let a16: Vec<i16> = (0..m * lda)
                    .map(|_| {
                        let x = match pattern {
                            Pattern::Extremes => sign(&mut rng) * qmax,
                            Pattern::AllMax => qmax,
                            Pattern::Uniform => rng.range(-i64::from(qmax), i64::from(qmax)) as i32,
                            Pattern::Wrap => {
                                if rng.next_u64().is_multiple_of(8) {
                                    i32::from(i16::MAX)
                                } else {
                                    i32::from(i16::MIN)
                                }
                            }
                        };
                        x as i16
                    })
                    .collect();
                let a = MatRef::new(&a16, m, depth, lda).expect("int16 shape");
                cases += check(k, "int16", Lhs::I16(a), b, ldo);
                for zero_point in [0u8, 128, 255, rng.range(1, 254) as u8] {
                    let au8: Vec<u8> = (0..m * lda)
                        .map(|_| match pattern {
                            Pattern::Extremes => [0, 255][(rng.next_u64() % 2) as usize],
                            Pattern::AllMax => 255,
                            Pattern::Uniform => rng.range(0, 255) as u8,
                            Pattern::Wrap => 255 - zero_point,
                        })
                        .collect();
                    let values = MatRef::new(&au8, m, depth, lda).expect("uint8 shape");
                    let a = Lhs::U8 { values, zero_point };
                    cases += check(k, "uint8", a, b, ldo);
                }
            }
        }
    }
    cases
}

/// `n * ldb` weights of a pattern.
fn weights(rng: &mut Rng, pattern: Pattern, len: usize) -> Vec<i8> {
    (0..len)
        .map(|_| match pattern {
            Pattern::Extremes => (sign(rng) * 127) as i8,
            Pattern::AllMax => 127,
            Pattern::Uniform => rng.range(-128, 127) as i8,
            Pattern::Wrap => {
                if rng.next_u64().is_multiple_of(8) {
                    127
                } else {
                    -128
                }
            }
        })
        .collect()
}

/// -1 or 1.
fn sign(rng: &mut Rng) -> i32 {
    if rng.next_u64().is_multiple_of(2) {
        -1
    } else {
        1
    }
}

/// `a x b` on `k` and on `Scalar`, with the weights as channel rows and, when `k` prepares
/// weights, prepared; panics on the first difference. Returns the products compared.
fn check<K: Kernels>(k: &K, what: &str, a: Lhs<'_>, b: MatRef<'_, i8>, ldo: usize) -> usize {
    let (m, n) = (a.rows(), b.rows());
    let len = (m - 1) * ldo + n;
    let mut want = vec![-7i32; len];
    let g = Gemm::new(
        a,
        Rhs::Channels(b),
        MatMut::new(&mut want, m, n, ldo).unwrap(),
    );
    Scalar.gemm(g.expect("operands agree"));
    let plen = k.prepared_len(n, b.cols());
    let mut prepared = vec![0u8; plen];
    let ready = plen > 0 && k.prepare(b, &mut prepared);
    let mut rhs = vec![("channels", Rhs::Channels(b))];
    if ready {
        rhs.push(("prepared", Rhs::Prepared(Prepared::new(b, &prepared))));
    }
    for (kind, rhs) in &rhs {
        let mut got = vec![-7i32; len];
        let g = Gemm::new(a, *rhs, MatMut::new(&mut got, m, n, ldo).unwrap());
        k.gemm(g.expect("operands agree"));
        if let Some(i) = (0..len).find(|&i| got[i] != want[i]) {
            panic!(
                "{}: {what} x {kind} {m}x{n}, depth {}: output {i} is {} (scalar {})",
                k.name(),
                b.cols(),
                got[i],
                want[i]
            );
        }
    }
    rhs.len()
}
