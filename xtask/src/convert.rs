//! The converter: a Hugging Face BERT checkpoint -> a microbert blob (the `cargo xtask
//! convert` command around it is `convert_cmd`).
//!
//! The blob is format 2 (`docs/blob-format.md`, `runtime/src/blob/format.rs`):
//! `Header::seal(body)`, then the body's sections in increasing kind order, each a
//! `SectionHeader` and the postcard encoding of its payload: `Config`, `TokenizerSection`
//! (WordPiece), `EmbeddingsSection`, one `LayerSection` per encoder layer, the `MlmHead` when
//! the checkpoint has one, and `Provenance` (source, safetensors hash, converter version and
//! commit, settings, licence: see `provenance.rs`). The quantisation follows the doc comments
//! of those wire types:
//! - dense weights: int8, one symmetric scale per output channel `ws_c = max|W_c| / 127`;
//!   requantisation multiplier `ws_c / 127` (the input's int8 step is `amax / 127`); Q.16 bias;
//! - embedding tables: int8 per row, row multiplier `s_r * 65536` (int8 -> Q.16);
//! - LayerNorm gamma and beta in Q.16;
//! - the MLM decoder is the (tied) word table, requantised per vocabulary row by `s_v / 127`.
//!
//! After writing, the blob is parsed and validated by the runtime's own `microbert::parse`.

pub mod numerics;
mod provenance;

pub use numerics::{InputPlan, LayerNumerics, Numerics};
pub use provenance::{Converter, Package as SourcePackage, Source};

use crate::checkpoint::Checkpoint;
use crate::quantize::{
    QuantError, RowQuant, encode_multiplier, q16_vector, quant_error, quantize_rows,
};
use anyhow::{Context, Result, anyhow, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use microbert::blob::format::{
    ClassifierKind, ClassifierSection, Config, DType, Dense, EmbeddingTable, EmbeddingsSection,
    Header, InputFormat, LabelsSection, LayerNorm, LayerSection, Licence, MlmHead, NumericsSection,
    Package, PoolerSection, Pooling, PositionMode, Provenance, SectionHeader, SectionKind,
    TEMPLATE_PIECE_LEN, TemplateSection, Tensor, TokenizerSection,
};
use std::collections::BTreeSet;

/// Conversion settings that are not in the checkpoint, and what the provenance section
/// records about the conversion.
#[derive(Debug, Clone)]
pub struct Options {
    /// Overrides the checkpoint's pooling.
    pub pooling: Option<Pooling>,
    /// Position mode.
    pub positions: PositionMode,
    /// Hierarchical alpha.
    pub alpha: f64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The `--keep-vocab` spec the checkpoint was reduced with (recorded, not applied here).
    pub keep_vocab: Option<String>,
    /// Where the checkpoint came from; `None`: its origin as loaded and the hash of the
    /// safetensors bytes given to [`convert`].
    pub source: Option<Source>,
    /// The converter recorded in the provenance.
    pub converter: Converter,
    /// How each layer quantises its dense inputs (from calibration); `None`: int8
    /// everywhere, no smoothing.
    pub numerics: Option<Numerics>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pooling: None,
            positions: PositionMode::Hierarchical,
            alpha: 0.4,
            progress: false,
            keep_vocab: None,
            source: None,
            converter: Converter::without_commit(),
            numerics: None,
        }
    }
}

/// One line of the quantisation report.
#[derive(Debug, Clone)]
pub enum ReportRow {
    /// An int8 weight tensor.
    Weight {
        /// Blob tensor name.
        name: String,
        /// `[rows, cols]`.
        shape: [usize; 2],
        /// Error figures.
        err: QuantError,
    },
    /// A Q.16 vector (bias, LayerNorm).
    Vector {
        /// Blob tensor name.
        name: String,
        /// Elements.
        len: usize,
        /// Largest |x|.
        max_abs: f64,
        /// Largest rounding error.
        max_err: f64,
    },
}

/// The result of a conversion.
#[derive(Debug)]
pub struct Converted {
    /// The sealed blob (header + body).
    pub blob: Vec<u8>,
    /// Per-tensor error report.
    pub rows: Vec<ReportRow>,
    /// Checkpoint keys that were read but not stored, with the reason.
    pub ignored: Vec<String>,
    /// Notes (settings chosen and where they came from).
    pub notes: Vec<String>,
    /// Size of the f32 checkpoint's safetensors file.
    pub safetensors_len: usize,
    /// The provenance section as the runtime reads it back from the blob (its `Display`).
    pub provenance: String,
}

/// Prints the report to stdout: every tensor, then the ten worst weights.
pub fn print_report(c: &Converted) {
    for n in &c.notes {
        println!("note: {n}");
    }
    for k in &c.ignored {
        println!("ignored: {k}");
    }
    println!(
        "{:<58} {:>12} {:>9} {:>10} {:>7}",
        "tensor", "shape", "max|w|", "rel.rms", "SNR dB"
    );
    for row in &c.rows {
        match row {
            ReportRow::Weight { name, shape, err } => println!(
                "{:<58} {:>12} {:>9.4} {:>10.3e} {:>7.2}",
                name,
                format!("{}x{}", shape[0], shape[1]),
                err.max_abs,
                err.rel_rms,
                err.snr_db
            ),
            ReportRow::Vector {
                name,
                len,
                max_abs,
                max_err,
            } => println!(
                "{:<58} {:>12} {:>9.4} {:>10} max abs rounding error {:.2e}",
                name, len, max_abs, "q16", max_err
            ),
        }
    }
    let mut weights: Vec<(&str, &QuantError)> = c
        .rows
        .iter()
        .filter_map(|r| match r {
            ReportRow::Weight { name, err, .. } => Some((name.as_str(), err)),
            ReportRow::Vector { .. } => None,
        })
        .collect();
    weights.sort_by(|a, b| a.1.snr_db.total_cmp(&b.1.snr_db));
    println!("worst weight tensors (lowest SNR):");
    for (name, err) in weights.iter().take(10) {
        println!(
            "  {:<58} rel.rms {:.3e}  SNR {:.2} dB",
            name, err.rel_rms, err.snr_db
        );
    }
    let worst_vec = c
        .rows
        .iter()
        .filter_map(|r| match r {
            ReportRow::Vector { max_err, .. } => Some(*max_err),
            ReportRow::Weight { .. } => None,
        })
        .fold(0f64, f64::max);
    println!("worst Q.16 rounding error over biases and LayerNorms: {worst_vec:.2e}");
    println!("provenance (in the blob):\n{}", c.provenance);
    println!(
        "blob: {} bytes ({:.2} MB); f32 safetensors: {} bytes ({:.2} MB); ratio {:.2}",
        c.blob.len(),
        c.blob.len() as f64 / 1e6,
        c.safetensors_len,
        c.safetensors_len as f64 / 1e6,
        c.safetensors_len as f64 / c.blob.len().max(1) as f64
    );
}

// ---------------------------------------------------------------------------------------
// Owned tensors, borrowed into the wire types only to serialise them.

struct OwnedTensor {
    name: String,
    dtype: DType,
    shape: [u32; 2],
    data: Vec<u8>,
}

impl OwnedTensor {
    fn wire(&self) -> Tensor<'_> {
        Tensor {
            name: &self.name,
            dtype: self.dtype,
            shape: self.shape,
            data: &self.data,
        }
    }

    fn i8(name: String, rows: usize, cols: usize, values: &[i8]) -> Result<Self> {
        Ok(Self {
            name,
            dtype: DType::I8,
            shape: [dim(rows)?, dim(cols)?],
            data: values.iter().map(|&v| v as u8).collect(),
        })
    }

    fn i32(name: String, values: &[i32]) -> Result<Self> {
        Ok(Self {
            name,
            dtype: DType::I32,
            shape: [dim(values.len())?, 1],
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
    }

    fn u8(name: String, values: &[u8]) -> Result<Self> {
        Ok(Self {
            name,
            dtype: DType::U8,
            shape: [dim(values.len())?, 1],
            data: values.to_vec(),
        })
    }
}

fn dim(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| anyhow!("dimension {n} does not fit in u32"))
}

/// Multipliers and shifts for a list of real multipliers.
fn encode_all(ms: impl Iterator<Item = f64>) -> (Vec<i32>, Vec<u8>) {
    ms.map(encode_multiplier).unzip()
}

struct OwnedDense {
    weight: OwnedTensor,
    multiplier: OwnedTensor,
    shift: OwnedTensor,
    bias: OwnedTensor,
    input_smoothing: Option<OwnedTensor>,
}

impl OwnedDense {
    fn wire(&self) -> Dense<'_> {
        Dense {
            weight: self.weight.wire(),
            multiplier: self.multiplier.wire(),
            shift: self.shift.wire(),
            bias: self.bias.wire(),
            input_smoothing: self.input_smoothing.as_ref().map(OwnedTensor::wire),
        }
    }
}

struct OwnedTable {
    weight: OwnedTensor,
    row_multiplier: OwnedTensor,
    row_shift: OwnedTensor,
}

impl OwnedTable {
    fn wire(&self) -> EmbeddingTable<'_> {
        EmbeddingTable {
            weight: self.weight.wire(),
            row_multiplier: self.row_multiplier.wire(),
            row_shift: self.row_shift.wire(),
        }
    }
}

struct OwnedLayerNorm {
    gamma: OwnedTensor,
    beta: OwnedTensor,
}

impl OwnedLayerNorm {
    fn wire(&self) -> LayerNorm<'_> {
        LayerNorm {
            gamma: self.gamma.wire(),
            beta: self.beta.wire(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The conversion.

/// Reads tensors by key, checks their shapes, records what was used and what it cost.
struct Reader<'a> {
    ck: &'a Checkpoint,
    /// `"bert."` for `BertFor*` checkpoints, `""` for a bare `BertModel`.
    prefix: &'static str,
    used: BTreeSet<String>,
    rows: Vec<ReportRow>,
    bar: ProgressBar,
}

impl Reader<'_> {
    /// Reads `key` (a full checkpoint key) and checks its shape.
    fn read(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.ck.f32(key)?;
        if t.shape != shape {
            bail!(
                "tensor `{key}` has shape {:?}, expected {:?} from config.json",
                t.shape,
                shape
            );
        }
        self.used.insert(key.to_owned());
        self.bar.inc(1);
        Ok(t.data)
    }

    /// The blob name of a checkpoint key: the key without the `bert.` prefix.
    fn blob_name(&self, key: &str) -> String {
        key.strip_prefix(self.prefix).unwrap_or(key).to_owned()
    }

    /// A Q.16 vector.
    fn vector(&mut self, key: &str, len: usize) -> Result<OwnedTensor> {
        let data = self.read(key, &[len])?;
        self.vector_of(key, &data)
    }

    /// A Q.16 vector of values derived from checkpoint key `key` (already read).
    fn vector_of(&mut self, key: &str, data: &[f32]) -> Result<OwnedTensor> {
        let (q, max_err) = q16_vector(data);
        let name = self.blob_name(key);
        self.rows.push(ReportRow::Vector {
            name: name.clone(),
            len: data.len(),
            max_abs: data.iter().fold(0f64, |a, &x| a.max(f64::from(x).abs())),
            max_err,
        });
        OwnedTensor::i32(name, &q)
    }

    fn weight_row(&mut self, key: &str, shape: [usize; 2], data: &[f32], q: &RowQuant) {
        self.rows.push(ReportRow::Weight {
            name: self.blob_name(key),
            shape,
            err: quant_error(data, shape[1], q),
        });
    }

    /// `base.weight` `[out, in]` and `base.bias` `[out]`, for an input quantised as `plan`
    /// says: SmoothQuant factors `f` (the runtime multiplies input element `j` by `f_j`)
    /// divide weight column `j` before quantisation; the multipliers carry the input's step
    /// (`amax / 127`, `/ qmax`, `/ 255`); an unsigned input with an offset `o` adds
    /// `o * sum_j w[c][j]` to every output, which the bias takes back (with the quantised
    /// weights, so the fold is exact for the integer product).
    fn dense(
        &mut self,
        base: &str,
        out: usize,
        input: usize,
        plan: &InputPlan,
    ) -> Result<OwnedDense> {
        let key = format!("{base}.weight");
        let mut w = self.read(&key, &[out, input])?;
        if let Some(f) = &plan.smoothing {
            ensure!(
                f.len() == input,
                "{base}: {} smoothing factors for {input} inputs",
                f.len()
            );
            for row in w.chunks_exact_mut(input) {
                for (x, &fj) in row.iter_mut().zip(f) {
                    *x = (f64::from(*x) / fj) as f32;
                }
            }
        }
        let q = quantize_rows(&w, out, input);
        self.weight_row(&key, [out, input], &w, &q);
        let levels = match plan.format {
            InputFormat::Int8 => 127.0,
            InputFormat::Int16 => f64::from(microbert::quant::i16_qmax(input)),
            InputFormat::Uint8Offset { .. } => 255.0,
        };
        let (m, s) = encode_all(q.scales.iter().map(|s| s / levels));
        let name = self.blob_name(base);
        let bias_key = format!("{base}.bias");
        let bias = match plan.format {
            InputFormat::Uint8Offset { offset_q16 } => {
                let offset = f64::from(offset_q16) / crate::quantize::Q16;
                let b = self.read(&bias_key, &[out])?;
                let folded: Vec<f32> = b
                    .iter()
                    .zip(q.q.chunks_exact(input.max(1)))
                    .zip(&q.scales)
                    .map(|((&b, row), &sc)| {
                        let sum: f64 = row.iter().map(|&x| f64::from(x)).sum();
                        (f64::from(b) - offset * sum * sc) as f32
                    })
                    .collect();
                self.vector_of(&bias_key, &folded)?
            }
            _ => self.vector(&bias_key, out)?,
        };
        let input_smoothing = match &plan.smoothing {
            Some(f) => {
                let q16: Vec<i32> = f
                    .iter()
                    .map(|&x| crate::quantize::saturate_i32(x * crate::quantize::Q16))
                    .collect();
                Some(OwnedTensor::i32(format!("{name}.input_smoothing"), &q16)?)
            }
            None => None,
        };
        Ok(OwnedDense {
            weight: OwnedTensor::i8(self.blob_name(&key), out, input, &q.q)?,
            multiplier: OwnedTensor::i32(format!("{name}.multiplier"), &m)?,
            shift: OwnedTensor::u8(format!("{name}.shift"), &s)?,
            bias,
            input_smoothing,
        })
    }

    /// `base.weight` `[rows, hidden]`, int8 per row; also returns the row scales.
    fn table(&mut self, base: &str, rows: usize, hidden: usize) -> Result<(OwnedTable, Vec<f64>)> {
        let key = format!("{base}.weight");
        let w = self.read(&key, &[rows, hidden])?;
        self.table_of(&key, &w, rows, hidden)
    }

    /// [`Self::table`] of values `w` (`[rows, hidden]`) read from checkpoint key `key`.
    fn table_of(
        &mut self,
        key: &str,
        w: &[f32],
        rows: usize,
        hidden: usize,
    ) -> Result<(OwnedTable, Vec<f64>)> {
        let base = key.strip_suffix(".weight").unwrap_or(key);
        let q = quantize_rows(w, rows, hidden);
        self.weight_row(key, [rows, hidden], w, &q);
        let (m, s) = encode_all(q.scales.iter().map(|s| s * crate::quantize::Q16));
        let name = self.blob_name(base);
        let table = OwnedTable {
            weight: OwnedTensor::i8(self.blob_name(key), rows, hidden, &q.q)?,
            row_multiplier: OwnedTensor::i32(format!("{name}.row_multiplier"), &m)?,
            row_shift: OwnedTensor::u8(format!("{name}.row_shift"), &s)?,
        };
        Ok((table, q.scales))
    }

    /// `base.{weight,bias}`, or the legacy `base.{gamma,beta}`.
    fn layer_norm(&mut self, base: &str, hidden: usize) -> Result<OwnedLayerNorm> {
        let (g, b) = if self.ck.has(&format!("{base}.weight"))? {
            ("weight", "bias")
        } else if self.ck.has(&format!("{base}.gamma"))? {
            ("gamma", "beta")
        } else {
            bail!("missing tensor `{base}.weight` (or legacy `{base}.gamma`)");
        };
        Ok(OwnedLayerNorm {
            gamma: self.vector(&format!("{base}.{g}"), hidden)?,
            beta: self.vector(&format!("{base}.{b}"), hidden)?,
        })
    }
}

/// Refuses what the runtime cannot run, naming it; `Ok(true)` for an XLM-R checkpoint
/// (SentencePiece Unigram tokenizer, positions offset by `pad_token_id + 1`).
fn check_architecture(ck: &Checkpoint, names: &[String]) -> Result<bool> {
    let c = &ck.config;
    let model_type = c.model_type.as_deref().unwrap_or("<missing>");
    let xlmr = matches!(model_type, "xlm-roberta" | "xlm_roberta");
    if xlmr {
        ensure!(
            ck.unigram.is_some(),
            "unsupported tokenizer: model_type `{model_type}` needs a SentencePiece Unigram \
             tokenizer.json (model type Unigram); {} was read instead",
            ck.vocab_source
        );
        let pad = c.pad_token_id.unwrap_or(1);
        ensure!(
            usize::try_from(pad).is_ok_and(|p| p + 1 < c.max_position_embeddings),
            "pad_token_id {pad} leaves no usable positions of max_position_embeddings {}",
            c.max_position_embeddings
        );
    } else if matches!(model_type, "roberta" | "camembert")
        || names.iter().any(|n| n.starts_with("roberta."))
    {
        bail!(
            "unsupported architecture: model_type `{model_type}` (RoBERTa-style positions): of \
             the RoBERTa family only XLM-R (`xlm-roberta`, a SentencePiece Unigram \
             tokenizer.json) is supported; RoBERTa's byte-level BPE and CamemBERT's \
             tokenizers are not"
        );
    } else if model_type != "bert" {
        bail!(
            "unsupported architecture: model_type is `{model_type}` (architectures {:?}); only `bert` and `xlm-roberta` are supported",
            c.architectures
        );
    }
    if !xlmr && ck.unigram.is_some() {
        bail!("unsupported tokenizer: a Unigram tokenizer.json with model_type `{model_type}`");
    }
    if c.hidden_act != "gelu" {
        bail!(
            "unsupported activation: hidden_act is `{}`; only `gelu` (erf) is supported",
            c.hidden_act
        );
    }
    if let Some(p) = c.position_embedding_type.as_deref()
        && p != "absolute"
    {
        bail!("unsupported position_embedding_type `{p}`; only `absolute` is supported");
    }
    ensure!(
        c.num_attention_heads > 0 && c.hidden_size.is_multiple_of(c.num_attention_heads),
        "hidden_size {} is not a multiple of num_attention_heads {}",
        c.hidden_size,
        c.num_attention_heads
    );
    ensure!(
        c.layer_norm_eps > 0.0 && c.layer_norm_eps < 1.0,
        "layer_norm_eps {} is outside (0, 1)",
        c.layer_norm_eps
    );
    Ok(xlmr)
}

/// Keys the blob does not need: why each is dropped, or `None` when it is not ignorable.
fn ignorable(key: &str, prefix: &str) -> Option<&'static str> {
    let k = key.strip_prefix(prefix).unwrap_or(key);
    if k == "embeddings.position_ids" {
        Some("position ids buffer (positions are implicit)")
    } else if k.starts_with("pooler.") {
        Some("BERT pooler (not used by mean/CLS pooling or the MLM head)")
    } else if key.starts_with("lm_head.") {
        Some("RoBERTa MLM head (not supported)")
    } else if key.starts_with("cls.seq_relationship.") {
        Some("next-sentence-prediction head (not supported)")
    } else {
        None
    }
}

fn tokenizer_tables(vocab: &[String]) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut tokens = Vec::new();
    let mut offsets = Vec::with_capacity((vocab.len() + 1) * 4);
    offsets.extend(0u32.to_le_bytes());
    for t in vocab {
        tokens.extend(t.as_bytes());
        let off = u32::try_from(tokens.len()).context("vocabulary text exceeds 4 GiB")?;
        offsets.extend(off.to_le_bytes());
    }
    let mut ids: Vec<u32> = (0..dim(vocab.len())?).collect();
    ids.sort_by(|&a, &b| {
        vocab[a as usize]
            .as_bytes()
            .cmp(vocab[b as usize].as_bytes())
    });
    for pair in ids.windows(2) {
        if vocab[pair[0] as usize] == vocab[pair[1] as usize] {
            bail!(
                "the vocabulary holds the token `{}` twice (ids {} and {})",
                vocab[pair[0] as usize],
                pair[0].min(pair[1]),
                pair[0].max(pair[1])
            );
        }
    }
    let sorted = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    Ok((tokens, offsets, sorted))
}

/// The blob of `ck` with the default options: what vocabulary reduction tokenizes its
/// corpus with ([`crate::vocab::FullBlob`]).
pub fn full_blob(ck: &Checkpoint) -> Result<Vec<u8>> {
    Ok(convert(ck, &Options::default())?.blob)
}

/// Converts a loaded checkpoint into a sealed, validated blob.
pub fn convert(ck: &Checkpoint, opts: &Options) -> Result<Converted> {
    let names = ck.names()?;
    let xlmr = check_architecture(ck, &names)?;
    let c = &ck.config;
    ensure!(
        opts.alpha > 0.0 && opts.alpha < 1.0,
        "--alpha {} is outside (0, 1)",
        opts.alpha
    );
    let prefix = if names
        .iter()
        .any(|n| n == "bert.embeddings.word_embeddings.weight")
    {
        "bert."
    } else if names
        .iter()
        .any(|n| n == "roberta.embeddings.word_embeddings.weight")
    {
        "roberta."
    } else {
        ""
    };
    // XLM-R reads position `pad_token_id + 1 + k` for token `k`: the runtime's row `k` is
    // the trained row `k + skip`, and the first `skip` rows are dropped.
    let skip = if xlmr {
        usize::try_from(c.pad_token_id.unwrap_or(1))? + 1
    } else {
        0
    };
    let positions = c.max_position_embeddings - skip;
    let (d, ff, vocab_size) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    // An XLM-R word table may have rows past the tokenizer's pieces (multilingual-e5-small:
    // 250,037 rows, 250,002 pieces); those ids are never produced, and are kept.
    ensure!(
        ck.vocab.len() == vocab_size || (xlmr && ck.vocab.len() < vocab_size),
        "the vocabulary ({}) has {} tokens but config.json says vocab_size {}",
        ck.vocab_source,
        ck.vocab.len(),
        vocab_size
    );
    let mut notes = vec![format!("checkpoint {}", ck.origin)];
    let (pooling, pooling_source) = match (opts.pooling, ck.pooling) {
        (Some(p), _) => (p, "--pooling"),
        (None, Some(p)) => (p, "1_Pooling/config.json"),
        (None, None) => (Pooling::Mean, "default (no 1_Pooling/config.json)"),
    };
    notes.push(format!("pooling {pooling:?} (source: {pooling_source})"));
    let has_mlm = names.iter().any(|n| n.starts_with("cls.predictions."));
    let total = 5 + c.num_hidden_layers * 16 + if has_mlm { 5 } else { 0 };
    let bar = if opts.progress {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} quantising [{bar:40}] {pos}/{len} tensors")
                .map_err(|e| anyhow!("{e}"))?
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut r = Reader {
        ck,
        prefix,
        used: BTreeSet::new(),
        rows: Vec::new(),
        bar,
    };

    // Config.
    let head_dim = (d / c.num_attention_heads) as f64;
    let logit = core::f64::consts::LOG2_E * 256.0 / (head_dim.sqrt() * 127.0 * 4_294_967_296.0);
    let (logit_m, logit_s) = encode_multiplier(logit);
    let alpha_q16 = (opts.alpha * 65536.0).round() as i32;
    let beta_q16 = crate::quantize::saturate_i32(opts.alpha / (1.0 - opts.alpha) * 65536.0);
    let config = Config {
        vocab_size: dim(vocab_size)?,
        hidden_size: dim(d)?,
        num_hidden_layers: dim(c.num_hidden_layers)?,
        num_attention_heads: dim(c.num_attention_heads)?,
        intermediate_size: dim(ff)?,
        max_position_embeddings: dim(positions)?,
        type_vocab_size: dim(c.type_vocab_size)?,
        layer_norm_eps_q32: (c.layer_norm_eps * 4_294_967_296.0).round().max(1.0) as u64,
        pooling,
        position_mode: opts.positions,
        position_alpha_q16: alpha_q16,
        position_beta_q16: beta_q16,
        attention_logit_multiplier: logit_m,
        attention_logit_shift: logit_s,
    };
    notes.push(format!(
        "positions {:?}, alpha {} (q16 {alpha_q16}, beta q16 {beta_q16})",
        opts.positions, opts.alpha
    ));
    let mut body = Vec::new();
    push_section(&mut body, SectionKind::Config, &config)?;

    // Tokenizer: WordPiece (kind 2) here; a Unigram one is kind 20, written last.
    let t = &ck.tokenizer;
    let special = |s: &str| -> Result<u32> {
        let id = ck
            .vocab
            .iter()
            .position(|v| v == s)
            .ok_or_else(|| anyhow!("the vocabulary has no special token {s}"))?;
        dim(id)
    };
    let unigram = match &ck.unigram {
        Some(u) => {
            notes.push(format!(
                "tokenizer: SentencePiece Unigram from {} ({} pieces, charsmap {} bytes), \
                 XLM-R template <s> $A </s>; positions offset by {skip} (the first {skip} of \
                 {} trained rows dropped)",
                ck.vocab_source,
                ck.vocab.len(),
                u.charsmap.len(),
                c.max_position_embeddings
            ));
            Some(crate::e5s1::SectionBytes::from_parts(
                &ck.vocab,
                &u.scores,
                u.charsmap.clone(),
                u.ids,
            )?)
        }
        None => None,
    };
    let template = if unigram.is_none() {
        notes.push(format!(
            "tokenizer from {} (vocabulary from {}): lowercase {}, strip_accents {}, clean_text {}, \
             handle_chinese_chars {}, max_input_chars_per_word {}, prefix `{}`",
            t.source,
            ck.vocab_source,
            t.lowercase,
            t.strip_accents,
            t.clean_text,
            t.handle_chinese_chars,
            t.max_input_chars_per_word,
            t.continuing_subword_prefix
        ));
        let (tokens, offsets, sorted_ids) = tokenizer_tables(&ck.vocab)?;
        let tokenizer = TokenizerSection {
            lowercase: t.lowercase,
            strip_accents: t.strip_accents,
            clean_text: t.clean_text,
            handle_chinese_chars: t.handle_chinese_chars,
            max_input_chars_per_word: t.max_input_chars_per_word,
            unk_id: special("[UNK]")?,
            cls_id: special("[CLS]")?,
            sep_id: special("[SEP]")?,
            pad_id: special("[PAD]")?,
            mask_id: special("[MASK]")?,
            continuing_subword_prefix: &t.continuing_subword_prefix,
            tokens: &tokens,
            offsets: &offsets,
            sorted_ids: &sorted_ids,
        };
        push_section(&mut body, SectionKind::WordPieceTokenizer, &tokenizer)?;
        let template = pair_template(t.post_processor.as_ref(), &special)?;
        if let Some(pieces) = &template {
            notes.push(format!(
                "pair template from tokenizer.json ({} pieces, not BERT's)",
                pieces.len() / TEMPLATE_PIECE_LEN
            ));
        }
        template
    } else {
        None
    };

    // Embeddings.
    let e = format!("{prefix}embeddings");
    let (word, word_scales) = r.table(&format!("{e}.word_embeddings"), vocab_size, d)?;
    let (position, _) = {
        let key = format!("{e}.position_embeddings.weight");
        let w = r.read(&key, &[c.max_position_embeddings, d])?;
        r.table_of(&key, &w[skip * d..], positions, d)?
    };
    let (token_type, _) = r.table(&format!("{e}.token_type_embeddings"), c.type_vocab_size, d)?;
    let ln = r.layer_norm(&format!("{e}.LayerNorm"), d)?;
    let embeddings = EmbeddingsSection {
        word: word.wire(),
        position: position.wire(),
        token_type: token_type.wire(),
        layer_norm: ln.wire(),
    };
    push_section(&mut body, SectionKind::Embeddings, &embeddings)?;
    drop((word, position, token_type, ln));

    // Encoder layers.
    let plain = LayerNumerics::plain();
    if let Some(n) = &opts.numerics {
        ensure!(
            n.layers.len() == c.num_hidden_layers,
            "numerics for {} layers, the model has {}",
            n.layers.len(),
            c.num_hidden_layers
        );
    }
    for i in 0..c.num_hidden_layers {
        let l = format!("{prefix}encoder.layer.{i}");
        let plan = opts
            .numerics
            .as_ref()
            .and_then(|n| n.layers.get(i))
            .unwrap_or(&plain);
        let query = r.dense(&format!("{l}.attention.self.query"), d, d, &plan.attention)?;
        let key = r.dense(&format!("{l}.attention.self.key"), d, d, &plan.attention)?;
        let value = r.dense(&format!("{l}.attention.self.value"), d, d, &plan.attention)?;
        let context = InputPlan::int8();
        let attention_output = r.dense(&format!("{l}.attention.output.dense"), d, d, &context)?;
        let attention_ln = r.layer_norm(&format!("{l}.attention.output.LayerNorm"), d)?;
        let intermediate = r.dense(
            &format!("{l}.intermediate.dense"),
            ff,
            d,
            &plan.intermediate,
        )?;
        let output = r.dense(&format!("{l}.output.dense"), d, ff, &plan.output)?;
        let output_ln = r.layer_norm(&format!("{l}.output.LayerNorm"), d)?;
        let layer = LayerSection {
            query: query.wire(),
            key: key.wire(),
            value: value.wire(),
            attention_output: attention_output.wire(),
            attention_layer_norm: attention_ln.wire(),
            intermediate: intermediate.wire(),
            output: output.wire(),
            output_layer_norm: output_ln.wire(),
        };
        push_section(&mut body, SectionKind::EncoderLayer, &layer)?;
    }

    // MLM head, decoder tied to the word table.
    let mlm = if has_mlm {
        if names.iter().any(|n| n == "cls.predictions.decoder.weight") {
            let dec = ck.f32("cls.predictions.decoder.weight")?;
            let word = ck.f32(&format!("{e}.word_embeddings.weight"))?;
            if dec.shape != word.shape || dec.data != word.data {
                bail!(
                    "unsupported MLM head: cls.predictions.decoder.weight differs from the word \
                     embeddings (only a decoder tied to the word table is supported)"
                );
            }
            r.used.insert("cls.predictions.decoder.weight".to_owned());
        }
        let transform = r.dense("cls.predictions.transform.dense", d, d, &InputPlan::int8())?;
        let ln = r.layer_norm("cls.predictions.transform.LayerNorm", d)?;
        let bias = r.vector("cls.predictions.bias", vocab_size)?;
        if names.iter().any(|n| n == "cls.predictions.decoder.bias") {
            let a = ck.f32("cls.predictions.decoder.bias")?;
            let b = ck.f32("cls.predictions.bias")?;
            ensure!(
                a.data == b.data,
                "unsupported MLM head: cls.predictions.decoder.bias differs from cls.predictions.bias"
            );
            r.used.insert("cls.predictions.decoder.bias".to_owned());
        }
        let (m, s) = encode_all(word_scales.iter().map(|s| s / 127.0));
        notes.push(
            "MLM head: decoder tied to the word table (requantised per vocabulary row)".to_owned(),
        );
        Some((
            transform,
            ln,
            OwnedTensor::i32("cls.predictions.decoder.multiplier".to_owned(), &m)?,
            OwnedTensor::u8("cls.predictions.decoder.shift".to_owned(), &s)?,
            bias,
        ))
    } else {
        None
    };
    if let Some((transform, ln, m, s, bias)) = &mlm {
        let head = MlmHead {
            transform: transform.wire(),
            layer_norm: ln.wire(),
            decoder_multiplier: m.wire(),
            decoder_shift: s.wire(),
            decoder_bias: bias.wire(),
        };
        push_section(&mut body, SectionKind::MlmHead, &head)?;
    }
    let tasks = task_heads(&mut r, &names, &mut notes)?;
    r.bar.finish_and_clear();

    // Every checkpoint key must be used or knowingly ignored.
    let mut ignored = Vec::new();
    let mut unknown = Vec::new();
    for n in &names {
        if r.used.contains(n) {
            continue;
        }
        match ignorable(n, prefix) {
            Some(why) => ignored.push(format!("{n}: {why}")),
            None => unknown.push(n.as_str()),
        }
    }
    if !unknown.is_empty() {
        bail!(
            "unsupported tensors in the checkpoint (a head or module microbert does not run): {}",
            unknown.join(", ")
        );
    }

    // Provenance, last (the highest kind).
    let settings = [
        ("pooling", format!("{pooling:?}").to_lowercase()),
        ("pooling_source", pooling_source.to_owned()),
        ("positions", format!("{:?}", opts.positions).to_lowercase()),
        ("alpha", opts.alpha.to_string()),
        (
            "keep_vocab",
            opts.keep_vocab.clone().unwrap_or_else(|| "none".to_owned()),
        ),
        ("vocab_size", vocab_size.to_string()),
        (
            "tokenizer_settings",
            if unigram.is_some() {
                "tokenizer.json (SentencePiece Unigram)".to_owned()
            } else {
                t.source.to_owned()
            },
        ),
        ("vocabulary", ck.vocab_source.to_owned()),
        (
            "weights",
            "int8 symmetric, one scale per output channel, round to nearest".to_owned(),
        ),
        ("embeddings", "int8, one scale per row".to_owned()),
        (
            "numerics",
            opts.numerics.as_ref().map_or_else(
                || "int8 inputs, no smoothing".to_owned(),
                |n| n.description.clone(),
            ),
        ),
    ]
    .into_iter()
    .chain(xlmr.then(|| ("position_offset", skip.to_string())))
    .chain(tasks.as_ref().map(|t| ("head", t.describe())))
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join("\n");
    let source = match &opts.source {
        Some(s) => s.clone(),
        None => Source::in_memory(&ck.origin, ck),
    };
    let converter = &opts.converter;
    let provenance = Provenance {
        package: source.package.as_ref().map(|p| Package {
            registry: &p.registry,
            name: &p.name,
            version: &p.version,
        }),
        checkpoint: &source.checkpoint,
        safetensors_sha256: source.safetensors_sha256,
        converter: converter.name,
        converter_version: converter.version,
        converter_commit: converter.commit.as_deref(),
        settings: &settings,
        licence: source
            .licence
            .as_ref()
            .map(|(name, source)| Licence { name, source }),
    };
    push_section(&mut body, SectionKind::Provenance, &provenance)?;
    if let Some(t) = &tasks {
        if let Some(p) = &t.pooler {
            push_section(
                &mut body,
                SectionKind::Pooler,
                &PoolerSection { dense: p.wire() },
            )?;
        }
        let kind = match t.kind {
            ClassifierKind::Sequence => SectionKind::SequenceClassifier,
            ClassifierKind::Token => SectionKind::TokenClassifier,
        };
        let classifier = ClassifierSection {
            dense: t.classifier.wire(),
        };
        push_section(&mut body, kind, &classifier)?;
        let labels = t.labels.join("\n");
        push_section(
            &mut body,
            SectionKind::Labels,
            &LabelsSection { labels: &labels },
        )?;
    }
    if let Some(pieces) = &template {
        push_section(
            &mut body,
            SectionKind::PairTemplate,
            &TemplateSection { pieces },
        )?;
    }
    if let Some(n) = &opts.numerics {
        let entries: Vec<u8> = n
            .layers
            .iter()
            .flat_map(|l| [l.attention.format, l.intermediate.format, l.output.format])
            .flat_map(NumericsSection::entry)
            .collect();
        push_section(
            &mut body,
            SectionKind::Numerics,
            &NumericsSection { inputs: &entries },
        )?;
    }

    if let Some(u) = &unigram {
        push_section(&mut body, SectionKind::UnigramTokenizer, &u.section())?;
    }

    let mut blob = Header::seal(&body).to_vec();
    blob.extend(body);
    let view = microbert::parse(&blob)
        .map_err(|e| anyhow!("the converted blob does not validate: {e}"))?;
    let provenance = view
        .provenance
        .map(|p| p.to_string())
        .ok_or_else(|| anyhow!("the converted blob has no provenance section"))?;
    Ok(Converted {
        blob,
        rows: r.rows,
        ignored,
        notes,
        safetensors_len: ck.safetensors.len(),
        provenance,
    })
}

/// Appends one section: its header (kind, the kind's flags, payload length) and the
/// postcard encoding of `value`.
fn push_section<T: serde::Serialize>(
    body: &mut Vec<u8>,
    kind: SectionKind,
    value: &T,
) -> Result<()> {
    let payload = postcard::to_allocvec(value)?;
    let header = SectionHeader::new(kind, payload.len()).ok_or_else(|| {
        anyhow!(
            "the {} section is {} bytes, more than a section can hold (u32 length)",
            kind.name(),
            payload.len()
        )
    })?;
    body.extend(header.to_bytes());
    body.extend(payload);
    Ok(())
}

/// A task head read from a `BertFor{Sequence,Token}Classification` checkpoint.
struct OwnedTaskHead {
    kind: ClassifierKind,
    /// `bert.pooler.dense` (sequence classification only).
    pooler: Option<OwnedDense>,
    /// `classifier`, `[num_labels, hidden]`.
    classifier: OwnedDense,
    /// `id2label`, in id order.
    labels: Vec<String>,
}

impl OwnedTaskHead {
    fn describe(&self) -> String {
        let what = match self.kind {
            ClassifierKind::Sequence => "sequence classification (pooler + classifier)",
            ClassifierKind::Token => "token classification",
        };
        format!("{what}, {} labels", self.labels.len())
    }
}

/// The pooler and classifier of a classification checkpoint (`None` for the others), or a
/// refusal naming what the runtime cannot run.
fn task_heads(
    r: &mut Reader<'_>,
    names: &[String],
    notes: &mut Vec<String>,
) -> Result<Option<OwnedTaskHead>> {
    let c = &r.ck.config;
    let d = c.hidden_size;
    let arch = c.architectures.first().map_or("<none>", String::as_str);
    let has_classifier = names.iter().any(|n| n.starts_with("classifier."));
    let kind = match arch {
        "BertForSequenceClassification" => ClassifierKind::Sequence,
        "BertForTokenClassification" => ClassifierKind::Token,
        _ if has_classifier => bail!(
            "unsupported head: the checkpoint has `classifier.*` tensors but its architecture \
             is `{arch}`; only BertForSequenceClassification and BertForTokenClassification \
             classifiers are supported"
        ),
        _ => return Ok(None),
    };
    if let Some(p) = c.problem_type.as_deref()
        && p == "multi_label_classification"
    {
        bail!(
            "unsupported head: problem_type `{p}` scores each label with its own sigmoid; \
             microbert's classifier outputs are softmax logits (single_label_classification) \
             or one regression score"
        );
    }
    let shape =
        r.ck.f32("classifier.weight")
            .map_err(|e| anyhow!("{arch} without a usable classifier: {e}"))?
            .shape;
    let [num_labels, input] = shape[..] else {
        bail!("classifier.weight has shape {shape:?}, expected [num_labels, hidden]");
    };
    ensure!(
        input == d,
        "classifier.weight reads {input} features, the encoder gives {d}"
    );
    ensure!(
        (1..=d).contains(&num_labels),
        "unsupported head: {num_labels} labels; the runtime runs 1 to hidden_size ({d}) labels"
    );
    let labels: Vec<String> = match &c.id2label {
        Some(map) => {
            ensure!(
                map.len() == num_labels,
                "config.json id2label names {} labels, classifier.weight has {num_labels} rows",
                map.len()
            );
            (0..num_labels)
                .map(|i| {
                    map.get(&i.to_string())
                        .cloned()
                        .ok_or_else(|| anyhow!("config.json id2label has no label {i}"))
                })
                .collect::<Result<_>>()?
        }
        None => (0..num_labels).map(|i| format!("LABEL_{i}")).collect(),
    };
    if let Some(l) = labels
        .iter()
        .find(|l| l.is_empty() || l.chars().any(char::is_control))
    {
        bail!("config.json id2label: label {l:?} is empty or holds a control character");
    }
    let pooler = match kind {
        ClassifierKind::Sequence => {
            let base = format!("{}pooler.dense", r.prefix);
            ensure!(
                r.ck.has(&format!("{base}.weight"))?,
                "BertForSequenceClassification without `{base}.weight`: the classifier reads \
                 the pooler's output"
            );
            Some(r.dense(&base, d, d, &InputPlan::int16())?)
        }
        ClassifierKind::Token => None,
    };
    // The heads' inputs are int16 (docs/blob-format.md, kinds 7-9).
    let classifier = r.dense("classifier", num_labels, d, &InputPlan::int16())?;
    let head = OwnedTaskHead {
        kind,
        pooler,
        classifier,
        labels,
    };
    notes.push(format!("head: {}", head.describe()));
    Ok(Some(head))
}

/// The pair template of tokenizer.json's post-processor as [`TemplateSection`] pieces, or
/// `None` when it is BERT's (`[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1`, what a blob without the
/// section means) or there is none. `special` gives a token's id in the vocabulary (special
/// tokens are looked up by name, so a reduced vocabulary's renumbering is followed).
fn pair_template(
    post: Option<&serde_json::Value>,
    special: &dyn Fn(&str) -> Result<u32>,
) -> Result<Option<Vec<u8>>> {
    let Some(post) = post else {
        return Ok(None);
    };
    let kind = post["type"].as_str().unwrap_or("<none>");
    let named = |v: &serde_json::Value| -> Result<u32> {
        let name = v[0]
            .as_str()
            .ok_or_else(|| anyhow!("post_processor {kind}: a special token without a name"))?;
        special(name)
    };
    // (kind, type, id): kind 0 = $A, 1 = $B, 2 = a special token.
    let pieces: Vec<(u8, u8, u32)> = match kind {
        "BertProcessing" => {
            let (cls, sep) = (named(&post["cls"])?, named(&post["sep"])?);
            vec![(2, 0, cls), (0, 0, 0), (2, 0, sep), (1, 1, 0), (2, 1, sep)]
        }
        "RobertaProcessing" => {
            let (cls, sep) = (named(&post["cls"])?, named(&post["sep"])?);
            vec![
                (2, 0, cls),
                (0, 0, 0),
                (2, 0, sep),
                (2, 0, sep),
                (1, 0, 0),
                (2, 0, sep),
            ]
        }
        "TemplateProcessing" => {
            let list = post["pair"]
                .as_array()
                .ok_or_else(|| anyhow!("post_processor TemplateProcessing has no pair template"))?;
            list.iter()
                .map(|p| {
                    let type_id = |x: &serde_json::Value| -> Result<u8> {
                        let t = x["type_id"].as_u64().unwrap_or(0);
                        u8::try_from(t).map_err(|_| anyhow!("pair template: type_id {t}"))
                    };
                    if let Some(s) = p.get("Sequence") {
                        let which = match s["id"].as_str() {
                            Some("A") => 0,
                            Some("B") => 1,
                            other => bail!("pair template: sequence {other:?}"),
                        };
                        Ok((which, type_id(s)?, 0))
                    } else if let Some(t) = p.get("SpecialToken") {
                        let name = t["id"]
                            .as_str()
                            .ok_or_else(|| anyhow!("pair template: special token without id"))?;
                        if let Some(ids) = post["special_tokens"][name]["ids"].as_array() {
                            ensure!(
                                ids.len() == 1,
                                "unsupported pair template: special token {name} stands for {} ids",
                                ids.len()
                            );
                        }
                        Ok((2, type_id(t)?, special(name)?))
                    } else {
                        bail!("unsupported pair template piece {p}")
                    }
                })
                .collect::<Result<_>>()?
        }
        other => bail!(
            "unsupported tokenizer post_processor `{other}`: only BertProcessing, \
             RobertaProcessing and TemplateProcessing are read"
        ),
    };
    if let (Ok(cls), Ok(sep)) = (special("[CLS]"), special("[SEP]"))
        && pieces == [(2, 0, cls), (0, 0, 0), (2, 0, sep), (1, 1, 0), (2, 1, sep)]
    {
        return Ok(None);
    }
    Ok(Some(
        pieces
            .iter()
            .flat_map(|&(k, t, id)| {
                let b = id.to_le_bytes();
                [k, t, b[0], b[1], b[2], b[3]]
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_templates_are_read_from_the_post_processor() {
        let ids = |s: &str| -> Result<u32> {
            match s {
                "[CLS]" => Ok(101),
                "[SEP]" => Ok(102),
                "<s>" => Ok(0),
                "</s>" => Ok(2),
                _ => bail!("no token {s}"),
            }
        };
        let read = |v: serde_json::Value| pair_template(Some(&v), &ids);
        // BERT's, in either spelling: no section.
        let bert = serde_json::json!({"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]});
        assert_eq!(read(bert).unwrap(), None);
        let template = serde_json::json!({"type": "TemplateProcessing",
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"ids": [101]}, "[SEP]": {"ids": [102]}}});
        assert_eq!(read(template).unwrap(), None);
        assert_eq!(pair_template(None, &ids).unwrap(), None);
        // RoBERTa's: six pieces, every type 0.
        let roberta =
            serde_json::json!({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]});
        let pieces = read(roberta).unwrap().expect("not BERT's");
        assert_eq!(pieces.len(), 6 * TEMPLATE_PIECE_LEN);
        assert_eq!(&pieces[..6], &[2, 0, 0, 0, 0, 0]);
        assert_eq!(&pieces[12..18], &[2, 0, 2, 0, 0, 0]);
        let e = read(serde_json::json!({"type": "ByteLevel"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ByteLevel"), "{e}");
    }

    #[test]
    fn duplicate_tokens_are_rejected() {
        let v: Vec<String> = ["a", "b", "a"].iter().map(|s| s.to_string()).collect();
        let e = tokenizer_tables(&v).unwrap_err().to_string();
        assert!(e.contains("`a` twice (ids 0 and 2)"), "{e}");
    }

    #[test]
    fn sorted_ids_sort_by_bytes() {
        let v: Vec<String> = ["b", "##a", "a", "[CLS]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (tokens, offsets, sorted) = tokenizer_tables(&v).unwrap();
        assert_eq!(tokens, b"b##aa[CLS]");
        assert_eq!(offsets.len(), 5 * 4);
        let ids: Vec<u32> = sorted
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(ids, [1, 3, 2, 0]);
    }
}
