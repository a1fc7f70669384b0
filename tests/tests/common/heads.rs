//! The f32 oracle of the task heads: candle-transformers' `BertModel` (under the `bert.`
//! prefix) with the pooler (`bert.pooler.dense`, tanh) and the classifier (`classifier`)
//! written out with candle ops, on a Hugging Face `BertForSequenceClassification` or
//! `BertForTokenClassification` checkpoint. Nothing here is shared with the runtime or the
//! converter. Used by `tests/task_heads.rs` and the `candle_classify` / `candle_tag`
//! examples.

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config as CandleConfig};
use std::path::Path;

/// candle's encoder and heads on one checkpoint.
pub struct HeadOracle {
    bert: BertModel,
    pooler: Option<Linear>,
    classifier: Linear,
    labels: Vec<String>,
    device: Device,
}

impl HeadOracle {
    /// The checkpoint in `dir` (config.json, model.safetensors): the labels come from
    /// `id2label`, the pooler is loaded for a sequence classifier (architecture
    /// `BertForSequenceClassification`) and not for a token classifier.
    pub fn load(dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("config.json"))
            .with_context(|| format!("reading {}/config.json", dir.display()))?;
        let config: CandleConfig = serde_json::from_str(&text).context("config.json")?;
        let raw: serde_json::Value = serde_json::from_str(&text).context("config.json")?;
        let architecture = raw["architectures"][0].as_str().unwrap_or("");
        let pooler = match architecture {
            "BertForSequenceClassification" => true,
            "BertForTokenClassification" => false,
            other => bail!("{}: architecture {other:?} has no task head", dir.display()),
        };
        let id2label = raw["id2label"].as_object();
        let count = raw["num_labels"]
            .as_u64()
            .map(|n| n as usize)
            .or_else(|| id2label.map(serde_json::Map::len))
            .context("config.json has neither num_labels nor id2label")?;
        let labels = (0..count)
            .map(|i| {
                id2label
                    .and_then(|m| m.get(&i.to_string()))
                    .and_then(|v| v.as_str())
                    .map_or_else(|| format!("LABEL_{i}"), str::to_owned)
            })
            .collect();
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .with_context(|| format!("loading {}/model.safetensors", dir.display()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let d = config.hidden_size;
        let bert = BertModel::load(vb.pp("bert"), &config).context("BertModel")?;
        let pooler = match pooler {
            true => Some(candle_nn::linear(d, d, vb.pp("bert.pooler.dense")).context("pooler")?),
            false => None,
        };
        let classifier = candle_nn::linear(d, count, vb.pp("classifier")).context("classifier")?;
        Ok(Self {
            bert,
            pooler,
            classifier,
            labels,
            device,
        })
    }

    /// The labels, by id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Whether this is a sequence classifier (it has a pooler).
    pub fn classifies_sequences(&self) -> bool {
        self.pooler.is_some()
    }

    /// Last hidden states `[n, d]` of one input.
    pub fn hidden(&self, ids: &[u32], types: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let types = Tensor::new(types, &self.device)?.unsqueeze(0)?;
        Ok(self.bert.forward(&ids, &types, None)?.squeeze(0)?)
    }

    /// The pooler output `[1, d]`: tanh(pooler(h[CLS])).
    pub fn pooled(&self, hidden: &Tensor) -> Result<Tensor> {
        let pooler = self
            .pooler
            .as_ref()
            .context("a token classifier has no pooler")?;
        Ok(pooler.forward(&hidden.i(0..1)?)?.tanh()?)
    }

    /// Sequence logits: classifier(tanh(pooler(h[CLS]))).
    pub fn classify(&self, hidden: &Tensor) -> Result<Vec<f32>> {
        let pooled = self.pooled(hidden)?;
        Ok(self.classifier.forward(&pooled)?.squeeze(0)?.to_vec1()?)
    }

    /// Token logits `[n, labels]`.
    pub fn tag(&self, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
        Ok(self.classifier.forward(hidden)?.to_vec2()?)
    }
}

/// The softmax of logits.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}
