//! Shared pieces of the integration tests: locating fetched models and converted blobs,
//! the candle f32 oracle, and running the integer runtime.
#![allow(dead_code, unreachable_pub)]

pub mod heads;
pub mod long;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as CandleConfig};
use microbert::{Encoder, ModelView};
use microbert_host::HostKernels;
use microbert_tests::corpus::cache_dir;
use std::path::PathBuf;

/// A fetched checkpoint directory (`cargo xtask fetch-model NAME`).
pub fn checkpoint_dir(name: &str) -> PathBuf {
    let dir = cache_dir().join("models").join(name);
    assert!(
        dir.join("config.json").exists(),
        "{} is missing: run `cargo xtask fetch-model {name}` (or `cargo xtask prepare`)",
        dir.display()
    );
    dir
}

/// A converted blob (`cargo xtask prepare` converts every fetched model).
pub fn blob_bytes(name: &str) -> Vec<u8> {
    let path = cache_dir().join("blobs").join(format!("{name}.blob"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask prepare` to fetch and convert the models",
            path.display()
        )
    })
}

/// The Hugging Face tokenizer of a checkpoint with its padding and truncation turned off.
pub fn hf_tokenizer(name: &str) -> tokenizers::Tokenizer {
    let path = checkpoint_dir(name).join("tokenizer.json");
    let mut t = tokenizers::Tokenizer::from_file(&path).expect("tokenizer.json loads");
    t.with_padding(None);
    t.with_truncation(None).expect("truncation off");
    t
}

/// Token ids of `text` with [CLS]/[SEP], cut at `max` tokens ([SEP] kept last).
pub fn ids_cut(t: &tokenizers::Tokenizer, text: &str, max: usize) -> Vec<u32> {
    let enc = t.encode(text, true).expect("tokenizes");
    let mut ids = enc.get_ids().to_vec();
    if ids.len() > max {
        let sep = *ids.last().expect("non-empty");
        ids.truncate(max - 1);
        ids.push(sep);
    }
    ids
}

/// candle-transformers' `BertModel` in f32 on the checkpoint's safetensors.
pub struct Oracle {
    model: BertModel,
    device: Device,
}

impl Oracle {
    /// Loads a BertModel checkpoint (keys without prefix, or with `model_type` prefix).
    pub fn load(name: &str) -> Self {
        let dir = checkpoint_dir(name);
        let config: CandleConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).expect("config.json"),
        )
        .expect("config.json parses");
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .expect("safetensors loads");
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).expect("BertModel loads");
        Self { model, device }
    }

    /// Last hidden states `[n, d]` for one unpadded sequence.
    pub fn hidden(&self, ids: &[u32]) -> Vec<Vec<f32>> {
        let input = Tensor::new(ids, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .expect("input tensor");
        let types = input.zeros_like().expect("types");
        let out = self
            .model
            .forward(&input, &types, None)
            .and_then(|t| t.squeeze(0))
            .expect("forward");
        out.to_vec2::<f32>().expect("to_vec2")
    }

    /// Mean-pooled, L2-normalised embedding, as sentence-transformers computes it.
    pub fn embed(&self, ids: &[u32]) -> Vec<f32> {
        let h = self.hidden(ids);
        mean_pool(&h)
    }
}

/// The mean over the rows of `h` (one sequence's hidden states), L2-normalised, as
/// sentence-transformers pools.
pub fn mean_pool(h: &[Vec<f32>]) -> Vec<f32> {
    let d = h.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; d];
    for row in h {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
    mean.iter().map(|x| (x / norm) as f32).collect()
}

/// The integer runtime's pooled, L2-normalised embedding, with the best host backend
/// (bit-identical to the scalar reference: `targets/host/tests/conformance.rs`).
pub fn runtime_embed(model: &ModelView<'_>, ids: &[u32]) -> Vec<f32> {
    let d = model.config.hidden_size as usize;
    let mut arena = vec![0u8; microbert::scratch_bytes(model, ids.len())];
    let mut pooled = vec![0i32; d];
    Encoder::new(model, HostKernels::detect())
        .embed(ids, &mut arena, &mut pooled)
        .expect("runtime embeds");
    let mut out = vec![0f32; d];
    microbert::output::normalize(&pooled, &mut out);
    out
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

/// Ranks with ties averaged (1-based).
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0f64; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Summary statistics of a sample: (min, p1, p50, mean).
pub fn summary(xs: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (
        s[0],
        at(0.01),
        at(0.5),
        s.iter().sum::<f64>() / s.len() as f64,
    )
}
