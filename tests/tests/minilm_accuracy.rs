//! all-MiniLM-L6-v2, integer runtime vs candle's f32 `BertModel` on the same safetensors:
//! cosine of the mean-pooled, L2-normalised embeddings on 500 Wikipedia leads (the seeded
//! test split, disjoint from calibration) and 500 movie-review sentences, each cut at 256
//! tokens; and Spearman's correlation of the two models' similarities over 1,000 pairs.

mod common;

use common::{Oracle, blob_bytes, cosine, hf_tokenizer, ids_cut, runtime_embed, spearman, summary};
use microbert_tests::corpus;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MAX_TOKENS: usize = 256;

fn test_texts() -> Vec<String> {
    let mut texts = corpus::wiki_split().test;
    texts.truncate(500);
    let mut reviews = corpus::movie_reviews();
    reviews.shuffle(&mut ChaCha8Rng::seed_from_u64(7));
    texts.extend(reviews.into_iter().take(500));
    texts
}

#[test]
fn minilm_int8_matches_f32_oracle() {
    let texts = test_texts();
    assert_eq!(texts.len(), 1000);
    let tok = hf_tokenizer("minilm");
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| ids_cut(&tok, t, MAX_TOKENS)).collect();

    let oracle = Oracle::load("minilm");
    let reference: Vec<Vec<f32>> = ids.iter().map(|i| oracle.embed(i)).collect();

    let bytes = blob_bytes("minilm");
    let model = microbert::parse(&bytes).expect("blob parses");
    // Two threads: the runtime is single-threaded per sequence.
    let ours: Vec<Vec<f32>> = std::thread::scope(|s| {
        let half = ids.len() / 2;
        let (a, b) = ids.split_at(half);
        let model = &model;
        let ha = s.spawn(move || {
            a.iter()
                .map(|i| runtime_embed(model, i))
                .collect::<Vec<_>>()
        });
        let hb = s.spawn(move || {
            b.iter()
                .map(|i| runtime_embed(model, i))
                .collect::<Vec<_>>()
        });
        let mut v = ha.join().expect("thread");
        v.extend(hb.join().expect("thread"));
        v
    });

    let cos: Vec<f64> = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let (min, p1, p50, mean) = summary(&cos);
    let worst = cos
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    println!(
        "cosine(int8, f32) over {} texts: min {min:.5} p1 {p1:.5} p50 {p50:.5} mean {mean:.5} (worst: {} tokens, {:?})",
        cos.len(),
        ids[worst].len(),
        texts[worst].chars().take(80).collect::<String>()
    );

    let mut rng = ChaCha8Rng::seed_from_u64(1234);
    let (mut s_ours, mut s_ref) = (Vec::new(), Vec::new());
    while s_ours.len() < 1000 {
        let (i, j) = (
            rng.random_range(0..texts.len()),
            rng.random_range(0..texts.len()),
        );
        if i == j {
            continue;
        }
        s_ours.push(cosine(&ours[i], &ours[j]));
        s_ref.push(cosine(&reference[i], &reference[j]));
    }
    let rho = spearman(&s_ours, &s_ref);
    println!("Spearman(similarities) over 1000 pairs: {rho:.5}");

    assert!(mean >= 0.995, "mean cosine {mean:.5} < 0.995");
    assert!(min >= 0.98, "min cosine {min:.5} < 0.98");
    assert!(rho >= 0.99, "Spearman {rho:.5} < 0.99");
}
