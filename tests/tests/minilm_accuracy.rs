//! all-MiniLM-L6-v2, integer runtime vs candle's f32 `BertModel` on the same safetensors:
//! cosine of the mean-pooled, L2-normalised embeddings.
//!
//! - `minilm_int8_matches_f32_oracle`: Wikipedia leads (the seeded test split) and movie
//!   reviews (the first of their seeded permutation), half each, cut at 256 tokens, all
//!   disjoint from the converter's calibration texts; and Spearman's correlation of the two
//!   models' similarities over 1,000 pairs. CI runs [`CI_TEXTS`] of them;
//!   `MICROBERT_ACCURACY_TEXTS=1000` (what `cargo xtask accuracy` sets) the full set.
//! - `minilm_short_texts_match_f32_oracle`: very short real texts (Wikipedia titles of 3 to
//!   6 tokens, `[CLS]` and `[SEP]` included: names of people, places, events), where a
//!   mean over few tokens averages little of the quantisation error away. CI runs
//!   [`SHORT_TEXTS`] of them, the full run all.

mod common;

use common::{Oracle, blob_bytes, cosine, hf_tokenizer, ids_cut, runtime_embed, spearman, summary};
use microbert::ModelView;
use microbert_tests::corpus;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MAX_TOKENS: usize = 256;
/// Texts CI runs (half leads, half reviews).
const CI_TEXTS: usize = 200;
/// The full set.
const ALL_TEXTS: usize = 1000;
/// Short texts CI runs (evenly spaced over all titles of 3 to 6 tokens); with
/// `MICROBERT_ACCURACY_TEXTS` set, all of them (about 8,900).
const SHORT_TEXTS: usize = 400;

/// `MICROBERT_ACCURACY_TEXTS` (an even number up to [`ALL_TEXTS`]), else [`CI_TEXTS`].
fn texts_to_run() -> usize {
    match std::env::var("MICROBERT_ACCURACY_TEXTS") {
        Ok(v) => {
            let n: usize = v
                .parse()
                .unwrap_or_else(|_| panic!("MICROBERT_ACCURACY_TEXTS={v:?} is not a number"));
            assert!(
                (2..=ALL_TEXTS).contains(&n) && n.is_multiple_of(2),
                "MICROBERT_ACCURACY_TEXTS={n}: choose an even number from 2 to {ALL_TEXTS}"
            );
            n
        }
        Err(_) => CI_TEXTS,
    }
}

fn test_texts(n: usize) -> Vec<String> {
    let mut texts = corpus::wiki_split().test;
    texts.truncate(n / 2);
    texts.extend(corpus::review_split().test.into_iter().take(n / 2));
    texts
}

/// The runtime's embeddings of `ids`, on both cores.
fn ours(model: &ModelView<'_>, ids: &[Vec<u32>]) -> Vec<Vec<f32>> {
    std::thread::scope(|s| {
        let (a, b) = ids.split_at(ids.len() / 2);
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
    })
}

/// Prints the summary of `cos` and names the worst text.
fn report(what: &str, cos: &[f64], ids: &[Vec<u32>], texts: &[String]) -> (f64, f64) {
    let (min, p1, p50, mean) = summary(cos);
    let worst = cos
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    println!(
        "{what}: cosine(int8, f32) over {} texts: min {min:.5} p1 {p1:.5} p50 {p50:.5} mean {mean:.5} (worst: {} tokens, {:?})",
        cos.len(),
        ids[worst].len(),
        texts[worst].chars().take(80).collect::<String>()
    );
    (min, mean)
}

/// Per text, the runtime's pooled MiniLM vector (the blob `cargo xtask prepare` made) and
/// candle's f32 one, on the same ids.
fn int8_and_f32(ids: &[Vec<u32>]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let oracle = Oracle::load("minilm");
    let reference: Vec<Vec<f32>> = ids.iter().map(|i| oracle.embed(i)).collect();
    let bytes = blob_bytes("minilm");
    let model = microbert::parse(&bytes).expect("blob parses");
    (ours(&model, ids), reference)
}

/// The cosine of each pair of vectors.
fn cosines(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| cosine(a, b)).collect()
}

#[test]
fn minilm_int8_matches_f32_oracle() {
    let texts = test_texts(texts_to_run());
    let tok = hf_tokenizer("minilm");
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| ids_cut(&tok, t, MAX_TOKENS)).collect();
    let (ours, reference) = int8_and_f32(&ids);
    let cos = cosines(&ours, &reference);
    let (min, mean) = report("leads and reviews", &cos, &ids, &texts);
    let long: Vec<f64> = cos
        .iter()
        .zip(&ids)
        .filter(|(_, i)| i.len() >= 20)
        .map(|(&c, _)| c)
        .collect();
    let (long_min, _, _, long_mean) = summary(&long);
    println!(
        "texts of 20 tokens or more: {} texts, min {long_min:.5}, mean {long_mean:.5}",
        long.len()
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

    assert!(mean >= 0.9990, "mean cosine {mean:.5} < 0.9990");
    assert!(min >= 0.996, "min cosine {min:.5} < 0.996");
    assert!(
        long_min >= 0.998,
        "min cosine over texts of >= 20 tokens {long_min:.5} < 0.998"
    );
    assert!(rho >= 0.999, "Spearman {rho:.5} < 0.999");
}

#[test]
fn minilm_short_texts_match_f32_oracle() {
    let tok = hf_tokenizer("minilm");
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    for title in corpus::wiki_titles() {
        let i = ids_cut(&tok, &title, MAX_TOKENS);
        if (3..=6).contains(&i.len()) {
            texts.push(title);
            ids.push(i);
        }
    }
    assert!(
        ids.len() >= SHORT_TEXTS,
        "only {} titles of 3 to 6 tokens",
        ids.len()
    );
    if std::env::var_os("MICROBERT_ACCURACY_TEXTS").is_none() {
        let step = ids.len() / SHORT_TEXTS;
        texts = texts.into_iter().step_by(step).take(SHORT_TEXTS).collect();
        ids = ids.into_iter().step_by(step).take(SHORT_TEXTS).collect();
    }
    let (ours, reference) = int8_and_f32(&ids);
    let cos = cosines(&ours, &reference);
    let (min, mean) = report("titles of 3 to 6 tokens", &cos, &ids, &texts);
    assert!(mean >= 0.998, "mean cosine {mean:.5} < 0.998");
    assert!(min >= 0.99, "min cosine {min:.5} < 0.99");
}
