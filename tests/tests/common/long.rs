//! The f32 oracle for long documents: candle-transformers' `BertModel` with its position
//! table replaced by the hierarchical table the runtime streams (DESIGN.md, decision 6).
//!
//! The table is built here in f64 (stored as f32) from Su Jianlin's original form,
//! `u_i = (p_i - alpha p_0) / (1 - alpha)` and `q_{i n + j} = alpha u_i + (1 - alpha) u_j`,
//! not from the runtime's simplified `p_j + beta (p_i - p_0)`: the two are equal in exact
//! arithmetic, so agreement checks the simplification as well as the integer pipeline.
//! Rows below `n` are copied from the trained table unchanged (they are exactly the
//! trained positions in both forms).
//!
//! candle materialises the `n x n` attention scores, so this oracle is practical up to
//! about 8,192 tokens (12 heads x 8,192^2 x 4 bytes = 3.2 GB per score tensor).
//!
//! Shared by `tests/long_documents.rs` (as `common::long`) and
//! `examples/candle_embed.rs` (through `#[path]`), so it depends on nothing else in
//! `common`.

use anyhow::{Context, Result, bail, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;

/// The checkpoint key of the trained position table (possibly under a `bert.` prefix).
const POSITION_KEY: &str = "embeddings.position_embeddings.weight";

/// Rows `0..rows` of the hierarchical position table built from the trained table `p`
/// (`n` rows of `d` values, row-major) with `alpha`: row `k` is
/// `alpha u_{k div n} + (1 - alpha) u_{k mod n}`, row `k < n` is `p_k`.
pub fn hierarchical_table(p: &[f32], n: usize, d: usize, alpha: f64, rows: usize) -> Vec<f32> {
    assert_eq!(p.len(), n * d, "trained table is {n} x {d}");
    assert!(
        rows <= n * n,
        "{rows} rows exceed the {n} x {n} hierarchical positions"
    );
    assert!((0.0..1.0).contains(&alpha), "alpha {alpha} outside [0, 1)");
    let u: Vec<f64> = (0..n * d)
        .map(|x| (f64::from(p[x]) - alpha * f64::from(p[x % d])) / (1.0 - alpha))
        .collect();
    let mut q = Vec::with_capacity(rows * d);
    q.extend_from_slice(&p[..n.min(rows) * d]);
    for k in n..rows {
        let (i, j) = (k / n, k % n);
        q.extend((0..d).map(|c| (alpha * u[i * d + c] + (1.0 - alpha) * u[j * d + c]) as f32));
    }
    q
}

/// candle's f32 `BertModel` reading up to `rows` tokens through hierarchical positions.
pub struct LongOracle {
    model: BertModel,
    device: Device,
    rows: usize,
}

impl LongOracle {
    /// Loads the checkpoint in `dir` (`config.json`, `model.safetensors`) with a position
    /// table of `rows` rows built with `alpha` (the blob's: `position_alpha_q16 / 65536`).
    pub fn load(dir: &Path, rows: usize, alpha: f64) -> Result<Self> {
        let mut config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).context("config.json")?,
        )
        .context("config.json parses")?;
        let device = Device::Cpu;
        let mut tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .context("model.safetensors loads")?;
        let Some(key) = tensors
            .keys()
            .find(|k| k.as_str() == POSITION_KEY || k.ends_with(&format!(".{POSITION_KEY}")))
            .cloned()
        else {
            bail!("the checkpoint has no {POSITION_KEY}");
        };
        let trained = tensors[&key].to_dtype(DType::F32)?;
        let (n, d) = trained.dims2()?;
        ensure!(
            n == config.max_position_embeddings,
            "position table has {n} rows, config says {}",
            config.max_position_embeddings
        );
        let p: Vec<f32> = trained.flatten_all()?.to_vec1()?;
        let q = hierarchical_table(&p, n, d, alpha, rows);
        tensors.insert(key, Tensor::from_vec(q, (rows, d), &device)?);
        config.max_position_embeddings = rows;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).context("BertModel loads")?;
        Ok(Self {
            model,
            device,
            rows,
        })
    }

    /// Mean-pooled, L2-normalised embedding of one unpadded sequence (at most `rows` ids).
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        ensure!(
            ids.len() <= self.rows,
            "{} tokens but the oracle's table has {} rows",
            ids.len(),
            self.rows
        );
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, None)?.squeeze(0)?;
        let h: Vec<Vec<f32>> = hidden.to_vec2()?;
        let d = h.first().map_or(0, Vec::len);
        let mut mean = vec![0f64; d];
        for row in &h {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-30);
        Ok(mean.iter().map(|x| (x / norm) as f32).collect())
    }
}
