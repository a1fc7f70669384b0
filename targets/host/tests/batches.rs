//! Texts packed into one pass ([`microbert::Encoder::embed_batch`]) give the bits each
//! gives alone: batches of mixed lengths (blocks shared by several texts, texts crossing
//! block boundaries, one-token texts) on the tiny fixture for the scalar reference and the
//! host tier with 1 to 3 threads, and on MiniLM with real review lengths. A bad text
//! fails the batch with its own error and leaves nothing half-written in `pooled`.

use microbert::blob::PositionMode;
use microbert::{Encoder, Kernels, RunError, Scalar};
use microbert_host::{HostKernels, Threads};
use std::path::PathBuf;

/// Deterministic values in `[lo, hi)`.
struct Draw(u64);

impl Draw {
    fn next(&mut self, lo: u32, hi: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (self.0 % u64::from(hi - lo)) as u32
    }
}

/// `count` texts of `lengths`-drawn lengths with ids past the special tokens.
fn texts(draw: &mut Draw, count: usize, (lo, hi): (u32, u32), vocab: u32) -> Vec<Vec<u32>> {
    (0..count)
        .map(|_| {
            let n = draw.next(lo, hi);
            (0..n).map(|_| draw.next(5, vocab)).collect()
        })
        .collect()
}

/// Each text alone with `encoder`, then all of them in one batch: equal vectors.
fn batch_equals_one_by_one<K: Kernels + Sync + Copy>(
    encoder: Encoder<'_, '_, K>,
    batches: &[Vec<Vec<u32>>],
    threads: &[usize],
    what: &str,
) {
    let d = encoder.model().config.hidden_size as usize;
    for (b, batch) in batches.iter().enumerate() {
        let mut want = vec![0i32; batch.len() * d];
        for (ids, out) in batch.iter().zip(want.chunks_exact_mut(d)) {
            let mut arena = vec![0u8; encoder.plan(ids.len()).arena_bytes()];
            encoder.embed(ids, &mut arena, out).expect("embeds alone");
        }
        let refs: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        for &t in threads {
            let encoder = encoder.with_parallel(Threads::new(t));
            let mut arena = vec![0u8; encoder.batch_plan(&refs).arena_bytes()];
            let mut got = vec![0i32; batch.len() * d];
            encoder
                .embed_batch(&refs, &mut arena, &mut got)
                .expect("embeds the batch");
            let lengths: Vec<usize> = batch.iter().map(Vec::len).collect();
            assert!(
                got == want,
                "{what}: batch {b} (lengths {lengths:?}), {t} threads differs from one by one"
            );
        }
    }
}

fn fixture() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/tiny/model.blob");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn tiny_fixture_batches_equal_one_by_one() {
    let bytes = fixture();
    let model = microbert::parse(&bytes).expect("fixture parses");
    let vocab = model.config.vocab_size;
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let mut batches: Vec<Vec<Vec<u32>>> = [1, 2, 3, 7, 16, 33]
        .iter()
        .map(|&count| texts(&mut draw, count, (1, 65), vocab))
        .collect();
    batches.push(texts(&mut draw, 40, (1, 4), vocab)); // many texts in one block
    batches.push(vec![vec![7; 64], vec![9], vec![11; 24], vec![13; 23]]);
    batch_equals_one_by_one(Encoder::new(&model, Scalar), &batches, &[1, 2], "scalar");
    let prepared = HostKernels::detect().prepare_model(&model);
    let host = prepared.encoder(&model).expect("prepared");
    batch_equals_one_by_one(host, &batches, &[1, 2, 3], "host");
}

#[test]
fn a_bad_text_fails_the_batch_with_its_error() {
    let bytes = fixture();
    let model = microbert::parse(&bytes).expect("fixture parses");
    let encoder = Encoder::new(&model, Scalar).with_positions(PositionMode::Absolute);
    let d = model.config.hidden_size as usize;
    let (good, long) = (vec![5u32, 6, 7], vec![5u32; 65]);
    let out_of_vocab = vec![5, model.config.vocab_size];
    let cases: [(Vec<&[u32]>, RunError); 3] = [
        (vec![&good, &[]], RunError::EmptyInput),
        (
            vec![&good, &long],
            RunError::TooManyTokens { len: 65, max: 64 },
        ),
        (
            vec![&out_of_vocab, &good],
            RunError::TokenOutOfVocab {
                position: 1,
                id: model.config.vocab_size,
                vocab_size: model.config.vocab_size,
            },
        ),
    ];
    for (texts, error) in cases {
        let mut arena = vec![0u8; encoder.batch_plan(&texts).arena_bytes()];
        let mut pooled = vec![1234i32; texts.len() * d];
        let got = encoder.embed_batch(&texts, &mut arena, &mut pooled);
        assert_eq!(got, Err(error));
        assert!(pooled.iter().all(|&x| x == 1234), "nothing written");
    }
    let texts: [&[u32]; 2] = [&good, &good];
    let mut arena = vec![0u8; encoder.batch_plan(&texts).arena_bytes()];
    let short = encoder.batch_plan(&texts).arena_bytes() - 1;
    let mut pooled = vec![0i32; 2 * d];
    assert!(matches!(
        encoder.embed_batch(&texts, &mut arena[..short], &mut pooled),
        Err(RunError::ScratchTooSmall { .. })
    ));
    assert_eq!(
        encoder.embed_batch(&texts, &mut arena, &mut pooled[..d]),
        Err(RunError::OutputSize {
            given: d,
            needed: 2 * d
        })
    );
    assert_eq!(encoder.embed_batch(&[], &mut arena, &mut []), Ok(()));
}

/// MiniLM (`cargo xtask prepare` converts it) on review-like lengths (5 to 60 tokens) and
/// a batch with a 512-token text. Missing: a failure under `CI=true`, a one-line skip
/// elsewhere.
#[test]
fn minilm_batches_equal_one_by_one() {
    let path = microbert_tests::corpus::cache_dir()
        .join("blobs")
        .join("minilm.blob");
    let Some(bytes) = microbert_tests::require::require(
        std::fs::read(&path),
        path.display(),
        "cargo xtask prepare",
    ) else {
        return;
    };
    let model = microbert::parse(&bytes).expect("MiniLM parses");
    let vocab = model.config.vocab_size;
    let mut draw = Draw(7);
    let mut batches = vec![texts(&mut draw, 32, (5, 61), vocab)];
    let mut mixed = texts(&mut draw, 5, (5, 61), vocab);
    mixed.insert(2, texts(&mut draw, 1, (512, 513), vocab).remove(0));
    batches.push(mixed);
    let prepared = HostKernels::detect().prepare_model(&model);
    let host = prepared.encoder(&model).expect("prepared");
    batch_equals_one_by_one(host, &batches, &[1, 2], "MiniLM");
}
