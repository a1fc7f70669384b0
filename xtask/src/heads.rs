//! `cargo xtask gen-heads`: all-MiniLM-L6-v2 checkpoints with task heads, for the heads'
//! f32 oracle test (`tests/tests/task_heads.rs`). No registry ships classifier weights, so
//! each checkpoint is the real encoder and its real pretrained pooler
//! (`nreimers/MiniLM-L6-H384-uncased`'s `pooler.dense`, in the package's safetensors) under
//! the `bert.` prefix, plus a `classifier` with seeded random weights of realistic scale:
//! every row is a seeded random combination of the centred f32 features of real texts
//! (pooler outputs, or token states), scaled so that its logit has a standard deviation of
//! [`LOGIT_STD`] over those texts, and a bias that centres it (plus a seeded offset), so
//! labels change from text to text as a fine-tuned head's do (without the centring, the
//! shared component of the pooled vectors decides every argmax). The features come from
//! the converter's own f32 reference (`crate::reference`) on 64 calibration texts,
//! disjoint from the test texts. Five checkpoints, written as Hugging Face directories
//! (`config.json` with the architecture and `id2label`, `model.safetensors`, the
//! tokenizer files) and converted like any other (calibrated numerics) into
//! `$CACHE/blobs/minilm-{sequence,score,token,sentiment,segment}.blob`:
//!
//! - `minilm-sequence`: `BertForSequenceClassification`, 3 labels;
//! - `minilm-score`: `BertForSequenceClassification`, 1 label (a cross-encoder's raw
//!   score, `problem_type` `regression`);
//! - `minilm-token`: `BertForTokenClassification`, 5 labels;
//! - `minilm-sentiment`: `BertForSequenceClassification`, `negative`/`positive`, a real
//!   head trained on movie reviews in f32 (`cargo xtask train-head sentiment`,
//!   `crate::train_head`);
//! - `minilm-segment`: `BertForTokenClassification`, `B`/`I`, a Chinese word-segmentation
//!   tagger trained in f32 (`cargo xtask train-head tag`).
//!
//! Deterministic (seeded); regenerated when this file, the converter or the MiniLM
//! package changes (a key in each directory's stamp).

use crate::cache::{Key, cache_dir};
use crate::checkpoint::{Checkpoint, Files};
use crate::convert::{Converter, Options, Source, convert};
use crate::reference::Reference;
use crate::train_head::Head;
use anyhow::{Context, Result, anyhow, ensure};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Standard deviation of each logit over real texts.
const LOGIT_STD: f64 = 2.0;
/// Texts the logit statistics are taken on.
const STAT_TEXTS: usize = 64;
/// Tokens per statistics text at most.
const STAT_TOKENS: usize = 128;
const STAMP: &str = ".microbert-heads";

/// Where a checkpoint's classifier weights come from.
#[derive(Clone, Copy)]
pub enum Weights {
    /// Seeded random rows of realistic scale ([`classifier`]).
    Seeded(u64),
    /// Trained in f32 on the frozen encoder by this `crate::train_head` function.
    Trained(fn(&Checkpoint) -> Result<Head>),
}

/// One generated checkpoint.
pub struct HeadSpec {
    name: &'static str,
    architecture: &'static str,
    labels: &'static [&'static str],
    problem_type: Option<&'static str>,
    /// Where the classifier comes from.
    pub weights: Weights,
}

/// The trained segmentation checkpoint (`minilm-segment`).
pub fn segmentation_spec() -> HeadSpec {
    HeadSpec {
        name: "minilm-segment",
        architecture: "BertForTokenClassification",
        labels: &crate::train_head::TAGS,
        problem_type: None,
        weights: Weights::Trained(crate::train_head::segmentation),
    }
}

/// The trained sentiment checkpoint (`minilm-sentiment`).
pub fn sentiment_spec() -> HeadSpec {
    HeadSpec {
        name: "minilm-sentiment",
        architecture: "BertForSequenceClassification",
        labels: &crate::train_head::LABELS,
        problem_type: Some("single_label_classification"),
        weights: Weights::Trained(crate::train_head::sentiment),
    }
}

const SPECS: [HeadSpec; 3] = [
    HeadSpec {
        name: "minilm-sequence",
        architecture: "BertForSequenceClassification",
        labels: &["negative", "neutral", "positive"],
        problem_type: Some("single_label_classification"),
        weights: Weights::Seeded(0x5E9),
    },
    HeadSpec {
        name: "minilm-score",
        architecture: "BertForSequenceClassification",
        labels: &["score"],
        problem_type: Some("regression"),
        weights: Weights::Seeded(0x5C0),
    },
    HeadSpec {
        name: "minilm-token",
        architecture: "BertForTokenClassification",
        labels: &["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
        problem_type: None,
        weights: Weights::Seeded(0x70C),
    },
];

/// splitmix64, and Gaussians by Box-Muller: enough for seeded weights, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * core::f64::consts::PI * v).cos()
    }
}

/// `cargo xtask gen-heads`: makes (or reuses) every head checkpoint and blob; returns the
/// blob paths.
pub fn prepare() -> Result<Vec<PathBuf>> {
    let minilm = crate::fetch::ensure_model("minilm")?;
    let stamp = crate::fetch::model(&crate::recipe::load("minilm")?)?.stamp;
    let key = Key::new("microbert heads v3")
        .field("generator", include_bytes!("heads.rs"))
        .field("trainer", include_bytes!("train_head.rs"))
        .field("split", include_bytes!("../../tests/src/corpus.rs"))
        .field("converter", crate::blobs::converter_identity())
        .field("minilm", &stamp)
        .hex();
    let root = cache_dir()?;
    let mut out = Vec::new();
    let mut todo = Vec::new();
    let specs = [
        &SPECS[0],
        &SPECS[1],
        &SPECS[2],
        &sentiment_spec(),
        &segmentation_spec(),
    ];
    for spec in specs {
        let dir = root.join("models").join(spec.name);
        let blob = root.join("blobs").join(format!("{}.blob", spec.name));
        let fresh = std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s.trim() == key)
            && std::fs::read(&blob).is_ok_and(|b| microbert::parse(&b).is_ok());
        if fresh {
            println!("{}: reused {}", spec.name, blob.display());
        } else {
            todo.push((spec, dir, blob.clone()));
        }
        out.push(blob);
    }
    if todo.is_empty() {
        return Ok(out);
    }
    let ck = Checkpoint::load(&Files::Dir(minilm.clone()))?;
    let mut features = None;
    let mut numerics = None;
    for (spec, dir, blob) in todo {
        let head = match spec.weights {
            Weights::Seeded(seed) => {
                if features.is_none() {
                    features = Some(Features::of(&ck)?);
                }
                let f = features.as_ref().ok_or_else(|| anyhow!("no features"))?;
                let token = spec.architecture == "BertForTokenClassification";
                let (weight, bias) = classifier(
                    if token { &f.tokens } else { &f.pooled },
                    spec.labels.len(),
                    seed,
                );
                Head {
                    weight,
                    bias,
                    pooler: None,
                }
            }
            Weights::Trained(train) => train(&ck)?,
        };
        write_checkpoint(&ck, &minilm, spec, &dir, &head)?;
        let head = Checkpoint::load(&Files::Dir(dir.clone()))?;
        let opts = Options {
            source: Some(Source::detect(&dir, &head)?),
            converter: Converter::current(),
            ..Options::default()
        };
        if numerics.is_none() {
            let texts = crate::calibrate::Texts::default_set()?;
            let recipe = crate::calibrate::NumericsRecipe::Default;
            numerics = Some(crate::calibrate::calibrate(&head, &opts, &texts, recipe)?.numerics);
        }
        let converted = convert(
            &head,
            &Options {
                numerics: numerics.clone(),
                ..opts
            },
        )?;
        if let Some(parent) = blob.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&blob, &converted.blob)
            .with_context(|| format!("writing {}", blob.display()))?;
        std::fs::write(dir.join(STAMP), &key)?;
        println!(
            "{}: converted {} ({} bytes)",
            spec.name,
            blob.display(),
            converted.blob.len()
        );
    }
    Ok(out)
}

/// A checkpoint's pretrained BERT pooler in f64: `tanh(dense(h[CLS]))`.
pub struct Pooler {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Pooler {
    /// Reads `pooler.dense` of an encoder checkpoint (keys without the `bert.` prefix).
    pub fn of(ck: &Checkpoint) -> Result<Self> {
        Self::find(ck)?.context("the encoder needs a pretrained pooler")
    }

    /// `pooler.dense` of an encoder checkpoint (keys with or without the `bert.` prefix),
    /// or `None` when it has none (a `BertForMaskedLM` drops it).
    pub fn find(ck: &Checkpoint) -> Result<Option<Self>> {
        let Some(prefix) = ["", "bert."]
            .into_iter()
            .find(|p| ck.has(&format!("{p}pooler.dense.weight")).unwrap_or(false))
        else {
            return Ok(None);
        };
        let d = ck.config.hidden_size;
        let w = ck.f32(&format!("{prefix}pooler.dense.weight"))?.data;
        let b = ck.f32(&format!("{prefix}pooler.dense.bias"))?.data;
        ensure!(
            w.len() == d * d && b.len() == d,
            "pooler.dense has another shape"
        );
        Ok(Some(Self { w, b }))
    }

    /// A pooler for an encoder without one: `tanh(scale (x_i - mean_i) / std_i)` per
    /// component of the `[CLS]` states `cls` (a diagonal `pooler.dense`, the mean and the
    /// standard deviation over `cls`). It keeps every component of `[CLS]` (the classifier
    /// then reads any direction) on a common scale, in tanh's near-linear range; diagonal,
    /// its int8 weights are exact (one value per row, the row's own scale).
    pub fn standardising(cls: &[Vec<f32>], scale: f32) -> Self {
        let d = cls.first().map_or(0, Vec::len);
        let n = cls.len().max(1) as f64;
        let mut w = vec![0f32; d * d];
        let mut b = vec![0f32; d];
        for i in 0..d {
            let mean = cls.iter().map(|x| f64::from(x[i])).sum::<f64>() / n;
            let var = cls
                .iter()
                .map(|x| (f64::from(x[i]) - mean).powi(2))
                .sum::<f64>()
                / n;
            let k = f64::from(scale) / var.sqrt().max(1e-6);
            w[i * d + i] = k as f32;
            b[i] = (-k * mean) as f32;
        }
        Self { w, b }
    }

    /// The weights (`[d, d]` row-major) and the bias.
    pub fn weights(self) -> (Vec<f32>, Vec<f32>) {
        (self.w, self.b)
    }

    /// The pooler output of the `[CLS]` row `cls`.
    pub fn apply(&self, cls: &[f32]) -> Vec<f64> {
        let d = self.b.len();
        (0..d)
            .map(|o| {
                let row = &self.w[o * d..(o + 1) * d];
                let z: f64 = row
                    .iter()
                    .zip(cls)
                    .map(|(&a, &x)| f64::from(a) * f64::from(x))
                    .sum();
                (z + f64::from(self.b[o])).tanh()
            })
            .collect()
    }
}

/// f32 features of the statistics texts: the pooler outputs (one per text) and the last
/// hidden states (every token).
struct Features {
    pooled: Vec<Vec<f64>>,
    tokens: Vec<Vec<f64>>,
}

impl Features {
    fn of(ck: &Checkpoint) -> Result<Self> {
        let d = ck.config.hidden_size;
        let reference = Reference::load(ck)?;
        let vocab = microbert_tests::OwnedVocab::from_tokens(&ck.vocab);
        let tok = microbert::Tokenizer::from_section(vocab.section());
        let pooler = Pooler::of(ck)?;
        let texts = microbert_tests::corpus::try_calibration_texts()?;
        let (mut pooled, mut tokens) = (Vec::new(), Vec::new());
        let mut ids = vec![0u32; STAT_TOKENS];
        for text in texts
            .iter()
            .step_by((texts.len() / STAT_TEXTS).max(1))
            .take(STAT_TEXTS)
        {
            let n = tok.encode(text, &mut ids)?.len;
            let last = reference.last_hidden(&ids[..n])?;
            pooled.push(pooler.apply(&last[..d]));
            tokens.extend(
                last.chunks_exact(d)
                    .map(|r| r.iter().map(|&x| f64::from(x)).collect()),
            );
        }
        Ok(Self { pooled, tokens })
    }
}

/// A seeded classifier `[labels, d]` reading the directions `samples` vary along: row `c`
/// is `sum_i g_ci (x_i - mean)` with seeded Gaussian `g` (a random combination of the
/// centred samples, so the principal directions weigh by their variance, as a trained
/// head's discriminative directions do), scaled to a logit standard deviation of
/// [`LOGIT_STD`] over the samples and centred by its bias (plus a seeded offset). A
/// direction drawn uniformly instead would mostly read the low-variance directions, which
/// no trained head relies on, and magnify the encoder's rounding there.
fn classifier(samples: &[Vec<f64>], labels: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let d = samples.first().map_or(0, Vec::len);
    let n = samples.len().max(1) as f64;
    let mut mean = vec![0f64; d];
    for x in samples {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += v / n;
        }
    }
    let mut rng = Rng(seed);
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for _ in 0..labels {
        let mut row = vec![0f64; d];
        for x in samples {
            let g = rng.gauss();
            for ((r, v), m) in row.iter_mut().zip(x).zip(&mean) {
                *r += g * (v - m);
            }
        }
        let logits: Vec<f64> = samples
            .iter()
            .map(|x| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect();
        let mu = logits.iter().sum::<f64>() / n;
        let std = (logits.iter().map(|l| (l - mu).powi(2)).sum::<f64>() / n)
            .sqrt()
            .max(1e-9);
        let scale = LOGIT_STD / std;
        w.extend(row.iter().map(|&x| (x * scale) as f32));
        b.push((-mu * scale + 0.5 * rng.gauss()) as f32);
    }
    (w, b)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Tokenizer files copied from the encoder's directory when it has them.
const TOKENIZER_FILES: [&str; 3] = ["tokenizer.json", "tokenizer_config.json", "vocab.txt"];

/// The name of an encoder tensor `name` in a `BertFor*` checkpoint: under the `bert.` prefix
/// (kept when the encoder's checkpoint already has it), legacy LayerNorm `gamma`/`beta` as
/// `weight`/`bias` (what transformers renames them to on loading); `None` for tensors of
/// another head (a `BertForMaskedLM`'s `cls.*`), which the new checkpoint leaves out.
fn encoder_key(name: &str) -> Option<String> {
    if name.starts_with("cls.") {
        return None;
    }
    let name = match name.strip_prefix("bert.") {
        Some(rest) => rest,
        None => name,
    };
    let name = match (name.strip_suffix(".gamma"), name.strip_suffix(".beta")) {
        (Some(base), _) if base.ends_with("LayerNorm") => format!("{base}.weight"),
        (_, Some(base)) if base.ends_with("LayerNorm") => format!("{base}.bias"),
        _ => name.to_owned(),
    };
    Some(format!("bert.{name}"))
}

/// Writes `dir` as a Hugging Face checkpoint of `spec`: the encoder `ck` (read from
/// `source`, whose tokenizer files are copied) under the `bert.` prefix ([`encoder_key`]),
/// its pooler unless the head is a token classifier (the head's own when the encoder has
/// none), and the head's classifier (`weight [labels, d]`, `bias`).
pub fn write_checkpoint(
    ck: &Checkpoint,
    source: &Path,
    spec: &HeadSpec,
    dir: &Path,
    head: &Head,
) -> Result<()> {
    let (w, b) = (&head.weight[..], &head.bias[..]);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join(STAMP));
    let mut vocabulary = false;
    for f in TOKENIZER_FILES {
        if source.join(f).is_file() {
            std::fs::copy(source.join(f), dir.join(f)).with_context(|| format!("copying {f}"))?;
            vocabulary |= f != "tokenizer_config.json";
        }
    }
    ensure!(
        vocabulary,
        "{} has neither vocab.txt nor tokenizer.json",
        source.display()
    );
    let mut config: Value = serde_json::from_slice(&std::fs::read(source.join("config.json"))?)?;
    let id2label: BTreeMap<String, String> = spec
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), (*l).to_owned()))
        .collect();
    let label2id: BTreeMap<String, usize> = spec
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| ((*l).to_owned(), i))
        .collect();
    config["architectures"] = serde_json::json!([spec.architecture]);
    config["id2label"] = serde_json::json!(id2label);
    config["label2id"] = serde_json::json!(label2id);
    if let Some(p) = spec.problem_type {
        config["problem_type"] = serde_json::json!(p);
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;

    let token = spec.architecture == "BertForTokenClassification";
    let d = ck.config.hidden_size;
    let labels = spec.labels.len();
    ensure!(
        w.len() == labels * d && b.len() == labels,
        "the classifier is not [{labels}, {d}]"
    );
    let st = SafeTensors::deserialize(&ck.safetensors)?;
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let Some(key) = encoder_key(&name) else {
            continue;
        };
        // BertForTokenClassification has no pooler.
        if token && key.starts_with("bert.pooler.") {
            continue;
        }
        owned.push((
            key,
            view.dtype(),
            view.shape().to_vec(),
            view.data().to_vec(),
        ));
    }
    let has_pooler = owned.iter().any(|t| t.0 == "bert.pooler.dense.weight");
    match &head.pooler {
        Some((pw, pb)) if !token => {
            ensure!(
                !has_pooler,
                "the encoder has a pooler of its own; the head brings another"
            );
            ensure!(
                pw.len() == d * d && pb.len() == d,
                "the head's pooler is not [{d}, {d}]"
            );
            owned.push((
                "bert.pooler.dense.weight".to_owned(),
                Dtype::F32,
                vec![d, d],
                f32_bytes(pw),
            ));
            owned.push((
                "bert.pooler.dense.bias".to_owned(),
                Dtype::F32,
                vec![d],
                f32_bytes(pb),
            ));
        }
        _ => ensure!(
            token || has_pooler,
            "the encoder has no pooler (`pooler.dense.weight`) for a sequence classifier"
        ),
    }
    let mut names: Vec<&str> = owned.iter().map(|t| t.0.as_str()).collect();
    names.sort_unstable();
    ensure!(
        names.windows(2).all(|w| w[0] != w[1]),
        "two encoder tensors map to one name"
    );
    owned.push((
        "classifier.weight".to_owned(),
        Dtype::F32,
        vec![spec.labels.len(), d],
        f32_bytes(w),
    ));
    owned.push((
        "classifier.bias".to_owned(),
        Dtype::F32,
        vec![spec.labels.len()],
        f32_bytes(b),
    ));
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, dt, shape, data)| Ok((n.clone(), TensorView::new(*dt, shape.clone(), data)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, None)?;
    std::fs::write(dir.join("model.safetensors"), bytes)?;
    Ok(())
}
