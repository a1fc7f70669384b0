//! The wire types of the blob, shared by the runtime's parser and xtask's writer.
//!
//! `docs/blob-format.md` is the normative description; this module is its executable form.
//! After the fixed [`Header`], a format-2 body is a sequence of tagged sections, each a
//! [`SectionHeader`] (kind, flags, payload length) and a postcard payload; [`SectionKind`]
//! lists the kinds this runtime knows, with the rules each follows. The payload types are
//! [`Config`], [`TokenizerSection`], [`EmbeddingsSection`], [`LayerSection`] (one section per
//! encoder layer), [`MlmHead`] and [`Provenance`]. A format-1 body (the legacy layout) is the
//! same values without section headers: `Config`, `TokenizerSection`, `EmbeddingsSection`,
//! `num_hidden_layers` x `LayerSection`, [`HeadSection`]. Tensors are borrowed byte slices
//! ([`Tensor`]).

use serde::{Deserialize, Serialize};

/// Magic bytes that open every blob.
pub const MAGIC: [u8; 8] = *b"uBERTq8\0";
/// The format version xtask writes, and the newest this runtime reads.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this runtime reads (the legacy layout without sections).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes in the fixed header: magic, version (u32 LE), total length (u64 LE), checksum (u64 LE).
pub const HEADER_LEN: usize = 8 + 4 + 8 + 8;

/// Element type of a tensor. Multi-byte elements are little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// Signed 8-bit integer; weights use [-127, 127] only.
    I8,
    /// Unsigned 8-bit integer (shifts).
    U8,
    /// Signed 32-bit integer, little-endian (multipliers, biases, fixed-point vectors).
    I32,
}

impl DType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I32 => 4,
        }
    }

    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I32 => "i32",
        }
    }
}

/// A tensor borrowed from the blob: a name for reports, a type, a 2-D shape (`[n, 1]` for
/// vectors), and the raw little-endian bytes. No alignment is assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tensor<'a> {
    /// Name of the tensor, after the checkpoint key it came from.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// `[rows, cols]`.
    pub shape: [u32; 2],
    /// The elements, row-major, little-endian.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub data: &'a [u8],
}

fn as_bytes<S: serde::Serializer>(data: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(data)
}

/// How the sequence output becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pooling {
    /// Mean over all tokens (``[CLS]`` and ``[SEP]`` included), as sentence-transformers does.
    Mean,
    /// The `[CLS]` token's hidden state.
    Cls,
}

/// How positions map to rows of the position table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PositionMode {
    /// Only the trained positions `0..max_position_embeddings`.
    Absolute,
    /// Su Jianlin's hierarchical decomposition: up to `max_position_embeddings^2` positions.
    Hierarchical,
}

/// Model hyper-parameters and the fixed-point constants the converter derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Tokens in the vocabulary.
    pub vocab_size: u32,
    /// Width of the hidden states (`d`).
    pub hidden_size: u32,
    /// Encoder layers.
    pub num_hidden_layers: u32,
    /// Attention heads per layer.
    pub num_attention_heads: u32,
    /// Width of the feed-forward block.
    pub intermediate_size: u32,
    /// Rows of the trained position table.
    pub max_position_embeddings: u32,
    /// Rows of the token-type table.
    pub type_vocab_size: u32,
    /// LayerNorm epsilon in Q.32 units of the variance (`eps * 2^32`, rounded, at least 1).
    pub layer_norm_eps_q32: u64,
    /// Pooling used for embeddings.
    pub pooling: Pooling,
    /// Position mode.
    pub position_mode: PositionMode,
    /// Hierarchical-position `alpha` in Q.16 (0.4 is 26214).
    pub position_alpha_q16: i32,
    /// `beta = alpha / (1 - alpha)` in Q.16, used by hierarchical positions.
    pub position_beta_q16: i32,
    /// Attention logits: the multiplier of `log2(e) * 256 / (sqrt(head_dim) * 127 * 2^32)`.
    /// With a query row's range `amax_q` (int8 step `amax_q / 127`) and a key's
    /// power-of-two scale `2^e_k`, `z = acc * amax_q * 2^e_k * multiplier / 2^shift` turns a
    /// Q.K int8 dot product into `log2(e) * score` in Q.8.
    pub attention_logit_multiplier: i32,
    /// Shift paired with `attention_logit_multiplier`.
    pub attention_logit_shift: u8,
}

impl Config {
    /// The number of positions the model addresses in a position mode: the trained table's
    /// `n` rows (absolute) or `n * n` (hierarchical).
    pub const fn max_positions(&self, mode: PositionMode) -> usize {
        let n = self.max_position_embeddings as usize;
        match mode {
            PositionMode::Absolute => n,
            PositionMode::Hierarchical => n.saturating_mul(n),
        }
    }
}

/// Vocabulary and normalisation settings of the WordPiece tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerSection<'a> {
    /// Lower-case the text (BERT uncased).
    pub lowercase: bool,
    /// Strip accents (NFD, then drop non-spacing marks).
    pub strip_accents: bool,
    /// Remove control characters and map whitespace to spaces.
    pub clean_text: bool,
    /// Put spaces around CJK ideographs.
    pub handle_chinese_chars: bool,
    /// Words longer than this many characters become `[UNK]`.
    pub max_input_chars_per_word: u32,
    /// Id of `[UNK]`.
    pub unk_id: u32,
    /// Id of `[CLS]`.
    pub cls_id: u32,
    /// Id of `[SEP]`.
    pub sep_id: u32,
    /// Id of `[PAD]`.
    pub pad_id: u32,
    /// Id of `[MASK]`.
    pub mask_id: u32,
    /// Prefix of word-continuation pieces (`##`).
    pub continuing_subword_prefix: &'a str,
    /// All token strings concatenated in id order (UTF-8).
    #[serde(borrow, serialize_with = "as_bytes")]
    pub tokens: &'a [u8],
    /// `vocab_size + 1` u32 LE offsets into `tokens`; token `i` is `tokens[off[i]..off[i+1]]`.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub offsets: &'a [u8],
    /// `vocab_size` u32 LE token ids sorted by token bytes, for binary search.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub sorted_ids: &'a [u8],
}

/// Bits after the binary point of the fixed-point piece scores of [`UnigramSection`].
pub const UNIGRAM_SCORE_FRAC_BITS: u32 = 22;

/// Vocabulary, scores and normaliser of the SentencePiece Unigram tokenizer (XLM-R):
/// kind 20, the alternative to the WordPiece [`TokenizerSection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnigramSection<'a> {
    /// Id of `<unk>` (unknown characters, consecutive ones fused into one).
    pub unk_id: u32,
    /// Id of `<s>` (the template's first token).
    pub bos_id: u32,
    /// Id of `</s>` (the template's last token).
    pub eos_id: u32,
    /// Id of `<pad>`.
    pub pad_id: u32,
    /// Id of `<mask>`.
    pub mask_id: u32,
    /// All piece strings concatenated in id order (UTF-8).
    #[serde(borrow, serialize_with = "as_bytes")]
    pub pieces: &'a [u8],
    /// `vocab + 1` u32 LE offsets into `pieces`.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub offsets: &'a [u8],
    /// `vocab` u32 LE piece ids sorted by piece bytes (strictly increasing).
    #[serde(borrow, serialize_with = "as_bytes")]
    pub sorted_ids: &'a [u8],
    /// `vocab` i32 LE log-probability scores, fixed point with
    /// [`UNIGRAM_SCORE_FRAC_BITS`] fraction bits (exact for SentencePiece's f32 scores of
    /// magnitude at least 1, or zero).
    #[serde(borrow, serialize_with = "as_bytes")]
    pub scores: &'a [u8],
    /// SentencePiece's precompiled normaliser (`precompiled_charsmap`): a u32 LE byte
    /// length, a double-array trie (darts-clone units, u32 LE) over UTF-8 keys, then the
    /// NUL-terminated replacement strings the trie's values point into.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub charsmap: &'a [u8],
}

/// One embedding table, int8 with a fixed-point scale per row: the Q.16 value of element
/// `(r, c)` is `round(w[r][c] * row_multiplier[r] / 2^row_shift[r])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingTable<'a> {
    /// i8 `[rows, hidden]`.
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// i32 `[rows, 1]`, non-negative.
    #[serde(borrow)]
    pub row_multiplier: Tensor<'a>,
    /// u8 `[rows, 1]`, at most [`MAX_SHIFT`].
    #[serde(borrow)]
    pub row_shift: Tensor<'a>,
}

/// LayerNorm parameters: gamma and beta in Q.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerNorm<'a> {
    /// i32 `[hidden, 1]`.
    #[serde(borrow)]
    pub gamma: Tensor<'a>,
    /// i32 `[hidden, 1]`.
    #[serde(borrow)]
    pub beta: Tensor<'a>,
}

/// A dense (linear) layer `y = x W^T + b` with int8 weights and per-output-channel
/// requantisation. For an int8 input row quantised from Q.16 with range `amax`
/// (`x_q = round(127 x / amax)`), output channel `c` in Q.16 is
/// `round(acc * amax * multiplier[c] / 2^shift[c]) + bias[c]` with `acc = sum x_q w_q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dense<'a> {
    /// i8 `[out, in]`, values in [-127, 127].
    #[serde(borrow)]
    pub weight: Tensor<'a>,
    /// i32 `[out, 1]`, non-negative.
    #[serde(borrow)]
    pub multiplier: Tensor<'a>,
    /// u8 `[out, 1]`, at most [`MAX_SHIFT`].
    #[serde(borrow)]
    pub shift: Tensor<'a>,
    /// i32 `[out, 1]`, Q.16.
    #[serde(borrow)]
    pub bias: Tensor<'a>,
    /// Optional SmoothQuant factor per input channel, i32 `[in, 1]` Q.16: the input is
    /// multiplied by it before quantisation (the weight columns were divided by it).
    #[serde(borrow)]
    pub input_smoothing: Option<Tensor<'a>>,
}

/// Largest shift a multiplier may carry.
pub const MAX_SHIFT: u8 = 96;

/// Embeddings: word, position and token-type tables, then LayerNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingsSection<'a> {
    /// `[vocab_size, hidden]`.
    #[serde(borrow)]
    pub word: EmbeddingTable<'a>,
    /// `[max_position_embeddings, hidden]`.
    #[serde(borrow)]
    pub position: EmbeddingTable<'a>,
    /// `[type_vocab_size, hidden]`.
    #[serde(borrow)]
    pub token_type: EmbeddingTable<'a>,
    /// Embedding LayerNorm.
    #[serde(borrow)]
    pub layer_norm: LayerNorm<'a>,
}

/// One encoder layer, named after the checkpoint's `encoder.layer.N.*` modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSection<'a> {
    /// `attention.self.query`.
    #[serde(borrow)]
    pub query: Dense<'a>,
    /// `attention.self.key`.
    #[serde(borrow)]
    pub key: Dense<'a>,
    /// `attention.self.value`.
    #[serde(borrow)]
    pub value: Dense<'a>,
    /// `attention.output.dense`.
    #[serde(borrow)]
    pub attention_output: Dense<'a>,
    /// `attention.output.LayerNorm`.
    #[serde(borrow)]
    pub attention_layer_norm: LayerNorm<'a>,
    /// `intermediate.dense`.
    #[serde(borrow)]
    pub intermediate: Dense<'a>,
    /// `output.dense`.
    #[serde(borrow)]
    pub output: Dense<'a>,
    /// `output.LayerNorm`.
    #[serde(borrow)]
    pub output_layer_norm: LayerNorm<'a>,
}

/// The masked-language-model head (`cls.predictions`); the decoder weight is the word
/// embedding table (tied), requantised per vocabulary row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlmHead<'a> {
    /// `cls.predictions.transform.dense`.
    #[serde(borrow)]
    pub transform: Dense<'a>,
    /// `cls.predictions.transform.LayerNorm`.
    #[serde(borrow)]
    pub layer_norm: LayerNorm<'a>,
    /// i32 `[vocab_size, 1]`: requantisation multiplier of each decoder row.
    #[serde(borrow)]
    pub decoder_multiplier: Tensor<'a>,
    /// u8 `[vocab_size, 1]`.
    #[serde(borrow)]
    pub decoder_shift: Tensor<'a>,
    /// i32 `[vocab_size, 1]`, Q.16 (`cls.predictions.bias`).
    #[serde(borrow)]
    pub decoder_bias: Tensor<'a>,
}

/// Heads after the encoder: in format 1 the last value of the body; in format 2 a view
/// assembled from the head sections present ([`SectionKind::MlmHead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSection<'a> {
    /// Present for `BertForMaskedLM` checkpoints.
    #[serde(borrow)]
    pub mlm: Option<MlmHead<'a>>,
}

/// The BERT pooler (`bert.pooler.dense`, hidden x hidden): `tanh(dense(h[CLS]))`, the
/// input of a sequence classifier. The payload of [`SectionKind::Pooler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerSection<'a> {
    /// `pooler.dense`, `[hidden, hidden]`.
    #[serde(borrow)]
    pub dense: Dense<'a>,
}

/// A classifier (`classifier`, `[num_labels, hidden]`): the payload of
/// [`SectionKind::SequenceClassifier`] (reading the pooler output) and of
/// [`SectionKind::TokenClassifier`] (reading each token's last hidden state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierSection<'a> {
    /// `classifier`, `[num_labels, hidden]`, `1 <= num_labels <= hidden`.
    #[serde(borrow)]
    pub dense: Dense<'a>,
}

/// The classifier's label names (`id2label`), in label order, joined by `\n`: the payload
/// of [`SectionKind::Labels`]. Each name is non-empty and free of control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsSection<'a> {
    /// The names joined by `\n` (no trailing newline).
    pub labels: &'a str,
}

/// Bytes of one [`TemplateSection`] piece: kind, token type, id (u32 LE).
pub const TEMPLATE_PIECE_LEN: usize = 6;

/// The tokenizer's pair template (`tokenizers`' post-processor for two sequences), when it
/// is not BERT's `[CLS] $A [SEP] $B [SEP]` with types 0/1: the payload of
/// [`SectionKind::PairTemplate`]. Each piece is [`TEMPLATE_PIECE_LEN`] bytes: a kind (0
/// the first sequence, 1 the second, 2 a special token), the token type of its ids, and
/// the special token's id (u32 LE, 0 for a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSection<'a> {
    /// The pieces, in order.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub pieces: &'a [u8],
}

/// Which classifier a blob carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClassifierKind {
    /// `BertForSequenceClassification`: one row of logits per input, from the pooler.
    Sequence,
    /// `BertForTokenClassification`: one row of logits per token.
    Token,
}

/// The task heads of a format-2 blob (sections 7 to 10), validated: the pooler, at most one
/// classifier and its labels. Format-1 blobs have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskHeads<'a> {
    /// The pooler ([`SectionKind::Pooler`]); present whenever `classifier` is a sequence
    /// classifier.
    pub pooler: Option<Dense<'a>>,
    /// The classifier and which kind it is.
    pub classifier: Option<(ClassifierKind, Dense<'a>)>,
    /// The label names joined by `\n` ([`SectionKind::Labels`]), one per classifier row.
    pub labels: Option<&'a str>,
}

impl<'a> TaskHeads<'a> {
    /// Rows of the classifier (its number of labels), if there is one.
    pub fn num_labels(&self) -> Option<usize> {
        self.classifier.map(|(_, d)| d.weight.shape[0] as usize)
    }

    /// The name of label `i` (from the blob, else `None`).
    pub fn label(&self, i: usize) -> Option<&'a str> {
        self.labels?.split('\n').nth(i)
    }
}

/// Where a converted checkpoint came from, how it was converted, and its licence: the
/// payload of the optional [`SectionKind::Provenance`] section. Informative only: nothing
/// in inference reads it. Every string is free of control characters except the `\n`
/// that separates the lines of [`Self::settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance<'a> {
    /// The registry package the checkpoint was unpacked from, when the converter knew it.
    #[serde(borrow)]
    pub package: Option<Package<'a>>,
    /// The checkpoint: its path inside [`Self::package`], or the directory it was read from.
    pub checkpoint: &'a str,
    /// SHA-256 of the checkpoint's `model.safetensors` as read (before any vocabulary
    /// reduction).
    pub safetensors_sha256: [u8; 32],
    /// The program that wrote the blob (`xtask`).
    pub converter: &'a str,
    /// Its version (the xtask package version).
    pub converter_version: &'a str,
    /// The source revision it was built from (`git rev-parse HEAD`, `-dirty` appended when
    /// the working tree had uncommitted changes), when known.
    pub converter_commit: Option<&'a str>,
    /// The conversion settings: one or more `key=value` lines joined by `\n` (no trailing
    /// newline; keys are lower-case ASCII letters, digits and `_`).
    pub settings: &'a str,
    /// The licence the checkpoint states, when it states one.
    #[serde(borrow)]
    pub licence: Option<Licence<'a>>,
}

impl<'a> Provenance<'a> {
    /// The `(key, value)` pairs of [`Self::settings`], in order.
    pub fn settings(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.settings
            .split('\n')
            .map(|l| l.split_once('=').unwrap_or((l, "")))
    }

    /// The SHA-256 of the safetensors file as 64 lower-case hex digits.
    pub fn safetensors_sha256_hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.safetensors_sha256) {
            for (o, nibble) in pair.iter_mut().zip([b >> 4, b & 15]) {
                *o = char::from_digit(u32::from(nibble), 16).map_or(b'0', |c| c as u8);
            }
        }
        out
    }
}

/// One line per item, each indented by two spaces, no final newline: what `cargo xtask
/// convert` and `microbert inspect` print under `provenance:`.
impl core::fmt::Display for Provenance<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.package {
            Some(p) => write!(
                f,
                "  checkpoint          {} in {} package {} {}",
                self.checkpoint, p.registry, p.name, p.version
            )?,
            None => write!(f, "  checkpoint          {}", self.checkpoint)?,
        }
        let hex = self.safetensors_sha256_hex();
        let hex = core::str::from_utf8(&hex).unwrap_or_default();
        write!(f, "\n  safetensors sha256  {hex}")?;
        write!(
            f,
            "\n  converter           {} {}",
            self.converter, self.converter_version
        )?;
        match self.converter_commit {
            Some(c) => write!(f, ", commit {c}")?,
            None => f.write_str(", commit not recorded")?,
        }
        match &self.licence {
            Some(l) => write!(
                f,
                "\n  licence             {} (stated in {})",
                l.name, l.source
            )?,
            None => f.write_str("\n  licence             not stated by the checkpoint")?,
        }
        f.write_str("\n  settings:")?;
        for (key, value) in self.settings() {
            write!(f, "\n    {key:<18} {value}")?;
        }
        Ok(())
    }
}

/// A registry package (`registry` `pypi` or `npm`, its `name` and `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package<'a> {
    /// `pypi` or `npm`.
    pub registry: &'a str,
    /// Package name in that registry.
    pub name: &'a str,
    /// Pinned version.
    pub version: &'a str,
}

/// A licence and where the converter read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence<'a> {
    /// As stated (e.g. `Apache-2.0`, `apache-2.0`, `MIT`).
    pub name: &'a str,
    /// Where it was stated (`config.json`, `README.md`, `models/minilm.toml`).
    pub source: &'a str,
}

/// Bytes of a [`SectionHeader`].
pub const SECTION_HEADER_LEN: usize = 2 + 2 + 4;

/// Section flag: a reader that does not know the section's kind must refuse the blob
/// (PNG's critical chunks); without it, such a reader skips the section (ancillary).
pub const FLAG_REQUIRED: u16 = 1;

/// The flag bits format 2 defines. The others are reserved: writers set them to 0 and
/// readers refuse a section that has one set (a new flag is a format version change).
pub const DEFINED_FLAGS: u16 = FLAG_REQUIRED;

/// The fixed header of a section: kind (u16 LE), flags (u16 LE), payload length in bytes
/// (u32 LE). The payload follows immediately; the next section starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    /// The section kind ([`SectionKind::code`] for the known ones).
    pub kind: u16,
    /// [`FLAG_REQUIRED`] and reserved bits.
    pub flags: u16,
    /// Payload bytes.
    pub len: u32,
}

impl SectionHeader {
    /// The header the writer puts before `kind`'s payload of `len` bytes, with the flags
    /// the kind is defined with; `None` when `len` does not fit in a u32.
    pub fn new(kind: SectionKind, len: usize) -> Option<Self> {
        Some(Self {
            kind: kind.code(),
            flags: kind.flags(),
            len: u32::try_from(len).ok()?,
        })
    }

    /// Little-endian encoding.
    pub fn to_bytes(self) -> [u8; SECTION_HEADER_LEN] {
        let mut out = [0u8; SECTION_HEADER_LEN];
        let (kind, rest) = out.split_at_mut(2);
        let (flags, len) = rest.split_at_mut(2);
        kind.copy_from_slice(&self.kind.to_le_bytes());
        flags.copy_from_slice(&self.flags.to_le_bytes());
        len.copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes the little-endian encoding.
    pub fn from_bytes(b: [u8; SECTION_HEADER_LEN]) -> Self {
        let [k0, k1, f0, f1, l0, l1, l2, l3] = b;
        Self {
            kind: u16::from_le_bytes([k0, k1]),
            flags: u16::from_le_bytes([f0, f1]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        }
    }

    /// Whether [`FLAG_REQUIRED`] is set.
    pub const fn required(self) -> bool {
        self.flags & FLAG_REQUIRED != 0
    }
}

/// The section kinds this runtime knows. Codes are never reused; 0 is never assigned.
/// A blob lists its sections in increasing code order (a repeatable kind's sections are
/// therefore consecutive), so the canonical blob of a model is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SectionKind {
    /// [`Config`]: required, exactly once (and so always the first section).
    Config,
    /// [`TokenizerSection`] (WordPiece): required, exactly once, unless the blob carries a
    /// [`UnigramSection`] instead (exactly one of the two: [`crate::BlobError::TwoTokenizers`]).
    WordPieceTokenizer,
    /// [`EmbeddingsSection`]: required, exactly once.
    Embeddings,
    /// [`LayerSection`]: required, repeatable: exactly `num_hidden_layers` sections, in layer
    /// order.
    EncoderLayer,
    /// [`MlmHead`]: optional (an embedding reader may skip it), at most once.
    MlmHead,
    /// [`Provenance`]: optional, at most once.
    Provenance,
    /// [`NumericsSection`]: how each layer quantises its dense inputs (int16, unsigned with
    /// an offset); required when present (ignoring it would misread the multipliers), at
    /// most once. Without it every dense input is int8.
    Numerics,
    /// [`UnigramSection`] (SentencePiece Unigram, XLM-R): required when present, at most
    /// once, never beside a [`TokenizerSection`].
    UnigramTokenizer,
    /// [`PoolerSection`]: optional, at most once.
    Pooler,
    /// [`ClassifierSection`] of a sequence classifier (after the pooler): optional, at
    /// most once, needs the pooler; not with a token classifier.
    SequenceClassifier,
    /// [`ClassifierSection`] of a token classifier: optional, at most once.
    TokenClassifier,
    /// [`LabelsSection`]: optional, at most once, needs a classifier.
    Labels,
    /// [`TemplateSection`]: optional (only sentence pairs read it), at most once; absent:
    /// BERT's pair template.
    PairTemplate,
}

impl SectionKind {
    /// Every known kind, in code order.
    pub const ALL: [Self; 13] = [
        Self::Config,
        Self::WordPieceTokenizer,
        Self::Embeddings,
        Self::EncoderLayer,
        Self::MlmHead,
        Self::Provenance,
        Self::Pooler,
        Self::SequenceClassifier,
        Self::TokenClassifier,
        Self::Labels,
        Self::PairTemplate,
        Self::Numerics,
        Self::UnigramTokenizer,
    ];

    /// The kind's code in [`SectionHeader::kind`].
    pub const fn code(self) -> u16 {
        match self {
            Self::Config => 1,
            Self::WordPieceTokenizer => 2,
            Self::Embeddings => 3,
            Self::EncoderLayer => 4,
            Self::MlmHead => 5,
            Self::Provenance => 6,
            Self::Pooler => 7,
            Self::SequenceClassifier => 8,
            Self::TokenClassifier => 9,
            Self::Labels => 10,
            Self::PairTemplate => 11,
            Self::Numerics => 16,
            Self::UnigramTokenizer => 20,
        }
    }

    /// The known kind with this code.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Name for messages and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::WordPieceTokenizer => "wordpiece tokenizer",
            Self::Embeddings => "embeddings",
            Self::EncoderLayer => "encoder layer",
            Self::MlmHead => "mlm head",
            Self::Provenance => "provenance",
            Self::Numerics => "numerics",
            Self::UnigramTokenizer => "unigram tokenizer",
            Self::Pooler => "pooler",
            Self::SequenceClassifier => "sequence classifier",
            Self::TokenClassifier => "token classifier",
            Self::Labels => "labels",
            Self::PairTemplate => "pair template",
        }
    }

    /// Whether a reader that did not know this kind would have to refuse the blob: true when
    /// ignoring the section would change what the rest of the blob computes. The writer sets
    /// [`FLAG_REQUIRED`] exactly when this is true, and readers check that it is.
    pub const fn required(self) -> bool {
        matches!(
            self,
            Self::Config
                | Self::WordPieceTokenizer
                | Self::Embeddings
                | Self::EncoderLayer
                | Self::Numerics
                | Self::UnigramTokenizer
        )
    }

    /// Whether every blob must carry the kind (the encoder cannot run without it). The
    /// others may be absent: the optional heads and provenance, and the numerics section,
    /// whose absence means int8 dense inputs everywhere. So a section boundary after which
    /// no mandatory kind follows cuts the blob into a valid one (with a re-sealed checksum:
    /// the checksum guards against damage, not against a deliberate re-seal).
    pub const fn mandatory(self) -> bool {
        matches!(
            self,
            Self::Config | Self::WordPieceTokenizer | Self::Embeddings | Self::EncoderLayer
        )
    }

    /// Whether the kind may occur more than once (consecutively).
    pub const fn repeatable(self) -> bool {
        matches!(self, Self::EncoderLayer)
    }

    /// The flags a section of this kind carries.
    pub const fn flags(self) -> u16 {
        if self.required() { FLAG_REQUIRED } else { 0 }
    }
}

/// The dense inputs of an encoder layer whose quantisation a blob may choose (the attention
/// output's input, the context, is always int8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QuantizedInput {
    /// The LayerNorm output read by the query, key and value projections (one input).
    Attention,
    /// The attention block's LayerNorm output read by `intermediate.dense` (FFN1).
    Intermediate,
    /// The GELU output read by `output.dense` (FFN2).
    Output,
}

impl QuantizedInput {
    /// Every input, in storage order.
    pub const ALL: [Self; 3] = [Self::Attention, Self::Intermediate, Self::Output];

    /// Index in a layer's entries.
    pub const fn index(self) -> usize {
        match self {
            Self::Attention => 0,
            Self::Intermediate => 1,
            Self::Output => 2,
        }
    }
}

/// How one dense input is quantised per row (token). In every format the row's range
/// `amax` (Q.16) sets the step, and the layer's multipliers were written for that format's
/// step (`amax / 127`, `amax / qmax`, `amax / 255`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InputFormat {
    /// Symmetric int8 in [-127, 127] (the default).
    Int8,
    /// Symmetric int16 in `[-qmax, qmax]`, `qmax = crate::quant::i16_qmax(depth)` (W8A16).
    Int16,
    /// Unsigned 8-bit of `x + offset` (Q.16 offset, non-negative), for one-sided inputs such
    /// as the GELU output (at least -0.17): `q = round(255 (x + offset) / amax)` with
    /// `amax = max(x + offset)`. The offset's contribution to the product,
    /// `-offset * sum_k w[c][k]`, was folded into the layer's bias by the converter.
    Uint8Offset {
        /// Added before quantising, Q.16.
        offset_q16: i32,
    },
}

/// Bytes of one [`NumericsSection`] entry: a format code and an i32 LE offset.
pub const NUMERICS_ENTRY_LEN: usize = 5;

/// Per layer, the [`InputFormat`] of each [`QuantizedInput`]: `num_hidden_layers * 3`
/// entries of [`NUMERICS_ENTRY_LEN`] bytes (format code 0 int8, 1 int16, 2 uint8 with
/// offset; then the offset, i32 LE, 0 unless the code is 2), layer by layer in
/// [`QuantizedInput::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumericsSection<'a> {
    /// The entries.
    #[serde(borrow, serialize_with = "as_bytes")]
    pub inputs: &'a [u8],
}

impl NumericsSection<'_> {
    /// The entry of `input` in `layer` (int8 past the entries, which validation rules out).
    pub fn format(&self, layer: usize, input: QuantizedInput) -> InputFormat {
        let at = (layer * QuantizedInput::ALL.len() + input.index()) * NUMERICS_ENTRY_LEN;
        match self.inputs.get(at..at + NUMERICS_ENTRY_LEN) {
            Some(&[1, ..]) => InputFormat::Int16,
            Some(&[2, a, b, c, d]) => InputFormat::Uint8Offset {
                offset_q16: i32::from_le_bytes([a, b, c, d]),
            },
            _ => InputFormat::Int8,
        }
    }

    /// Encodes entries (the writer's side).
    pub fn entry(format: InputFormat) -> [u8; NUMERICS_ENTRY_LEN] {
        let (code, offset) = match format {
            InputFormat::Int8 => (0u8, 0i32),
            InputFormat::Int16 => (1, 0),
            InputFormat::Uint8Offset { offset_q16 } => (2, offset_q16),
        };
        let o = offset.to_le_bytes();
        [code, o[0], o[1], o[2], o[3]]
    }
}

/// FNV-1a, 64-bit: the blob checksum (over every byte after the header) and the hash of
/// pooled outputs. Not cryptographic; it detects corruption.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_extend(FNV_OFFSET, bytes)
}

/// FNV-1a 64 offset basis (the hash of no bytes).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a 64 hash `h` over more bytes.
pub fn fnv1a64_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The fixed header that precedes the postcard body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Length of the whole blob, header included.
    pub total_len: u64,
    /// [`fnv1a64`] of the body.
    pub checksum: u64,
}

impl Header {
    /// Encodes the header for a body of the current [`FORMAT_VERSION`], as the writer does.
    pub fn seal(body: &[u8]) -> [u8; HEADER_LEN] {
        Self::seal_version(FORMAT_VERSION, body)
    }

    /// Encodes the header for a body of format `version` (tests re-seal modified legacy
    /// blobs with it; xtask writes only [`FORMAT_VERSION`]).
    pub fn seal_version(version: u32, body: &[u8]) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let total = (HEADER_LEN + body.len()) as u64;
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&version.to_le_bytes());
        out[12..20].copy_from_slice(&total.to_le_bytes());
        out[20..28].copy_from_slice(&fnv1a64(body).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
