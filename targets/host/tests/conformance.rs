//! The runtime's kernel conformance suite on the host backend, plus end-to-end checks:
//! the tiny fixture blob and (when it has been prepared) the real MiniLM blob, embedded by
//! the scalar reference and by [`HostKernels::detect`], must give byte-identical pooled
//! Q.16 vectors.

use microbert::{Encoder, Kernels, ModelView, Tokenizer};
use microbert_host::{Backend, HostKernels};
use std::path::PathBuf;

/// Says which backend runs, so the test log shows whether AVX2 was exercised.
fn detected() -> HostKernels {
    let k = HostKernels::detect();
    match k.backend() {
        Backend::Avx2 => eprintln!("conformance: backend `{}` (AVX2 detected)", k.name()),
        _ => eprintln!(
            "conformance: backend `{}`: this CPU lacks AVX2, only the scalar path is checked",
            k.name()
        ),
    }
    k
}

#[test]
fn kernels_match_scalar_bit_for_bit() {
    let k = detected();
    microbert::kernels::testing::run_all(&k);
    // The forced reference passes too (it is the oracle, so this checks the plumbing).
    microbert::kernels::testing::run_all(&HostKernels::scalar());
}

/// The shapes the encoder uses, at full size: dense layers (m up to 16, k 384 and 1536),
/// strided attention Q.K (depth 32, stride 384), P.V over long rows, the MLM head (m = 1).
#[test]
fn encoder_shapes_match_scalar() {
    let k = detected();
    let mut rng = microbert::kernels::testing::Rng::new(7);
    let mut gen_i8 = |len: usize| -> Vec<i8> { (0..len).map(|_| rng.i8()).collect() };
    for &(m, n, depth, lda, ldb) in &[
        (16, 1536, 384, 384, 384),
        (16, 384, 1536, 1536, 1536),
        (13, 384, 384, 384, 384),
        (16, 128, 32, 384, 384),
        (5, 517, 32, 384, 384),
        (1, 1000, 384, 384, 384),
        (16, 300, 40, 41, 47),
    ] {
        let a = gen_i8((m - 1) * lda + depth);
        let b = gen_i8((n - 1) * ldb + depth);
        let mut got = vec![-1i32; m * n];
        let mut want = vec![-2i32; m * n];
        k.gemm_i8(m, n, depth, &a, lda, &b, ldb, &mut got);
        microbert::Scalar.gemm_i8(m, n, depth, &a, lda, &b, ldb, &mut want);
        assert_eq!(got, want, "gemm_i8 m {m} n {n} depth {depth}");
    }
    let mut prng = microbert::kernels::testing::Rng::new(8);
    for &(keys, width, ldv) in &[
        (128usize, 32usize, 384usize),
        (1024, 32, 384),
        (700, 48, 50),
    ] {
        // Arbitrary u16 probabilities (not summing to 65,535): the sums still agree
        // modulo 2^32, as the scalar reference's wrapping release arithmetic does.
        let p: Vec<u16> = (0..keys).map(|_| prng.range(0, 65_535) as u16).collect();
        let v: Vec<i8> = (0..(keys - 1) * ldv + width)
            .map(|i| if i % 7 == 0 { -128 } else { prng.i8() })
            .collect();
        let mut got = vec![-1i32; width];
        let mut want = vec![-2i32; width];
        k.weighted_sum_u16_i8(&p, &v, ldv, &mut got);
        // The reference in wrapping arithmetic (test builds check overflow).
        for (t, w) in want.iter_mut().enumerate() {
            *w = p.iter().enumerate().fold(0i32, |s, (j, &pj)| {
                s.wrapping_add(i32::from(pj) * i32::from(v[j * ldv + t]))
            });
        }
        assert_eq!(got, want, "weighted_sum keys {keys} width {width}");
    }
}

/// The cache directory of fetched models and converted blobs (as `xtask` lays it out).
fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("MICROBERT_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("microbert")))
        .unwrap_or_else(|| {
            var("HOME")
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
                .join("microbert")
        })
}

fn pooled<K: Kernels>(model: &ModelView<'_>, k: K, ids: &[u32]) -> Vec<i32> {
    let mut arena = vec![0u32; microbert::scratch_bytes(model, ids.len()).div_ceil(4)];
    let mut out = vec![0i32; model.config.hidden_size as usize];
    Encoder::new(model, k)
        .embed(ids, bytemuck::cast_slice_mut(&mut arena), &mut out)
        .expect("embeds");
    out
}

fn both_backends_agree(bytes: &[u8], what: &str) {
    let model = microbert::parse(bytes).expect("blob parses");
    let tokenizer = Tokenizer::new(&model);
    let texts = [
        "Hello world.",
        "The quick brown fox jumps over the lazy dog, twice; then it naps.",
        "Integer-only inference: int8 weights, i32 accumulators, fixed-point softmax and \
         LayerNorm, and not a single floating-point operation between the token ids and \
         the pooled vector. Long documents read through hierarchical positions.",
        "",
    ];
    let k = detected();
    for text in texts {
        let mut ids = vec![0u32; model.max_tokens().min(256)];
        let enc = tokenizer.encode(text, &mut ids).expect("tokenizes");
        let ids = &ids[..enc.len];
        let want = pooled(&model, microbert::Scalar, ids);
        let got = pooled(&model, k, ids);
        assert_eq!(
            got,
            want,
            "{what}: {} differs from scalar on {text:?}",
            k.name()
        );
    }
    eprintln!(
        "conformance: {what}: {} == scalar on {} texts",
        k.name(),
        texts.len()
    );
}

#[test]
fn tiny_fixture_embeddings_are_identical() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/tiny/model.blob");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    both_backends_agree(&bytes, "tiny fixture");
}

#[test]
fn minilm_embeddings_are_identical_if_prepared() {
    let path = cache_dir().join("blobs").join("minilm.blob");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!(
            "conformance: {} not found (run `cargo xtask prepare`): MiniLM check skipped",
            path.display()
        );
        return;
    };
    both_backends_agree(&bytes, "MiniLM");
}
