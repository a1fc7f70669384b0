//! The wire types of the blob body, shared by the runtime's parser and xtask's writer.
//!
//! `docs/blob-format.md` is the normative description; this module is its executable form.
//! After the fixed header, the body is a sequence of postcard values, in this order:
//! [`Config`], [`TokenizerSection`], [`EmbeddingsSection`], `num_hidden_layers` x
//! [`LayerSection`], [`HeadSection`]. Tensors are borrowed byte slices ([`Tensor`]).

use serde::{Deserialize, Serialize};

/// Magic bytes that open every blob.
pub const MAGIC: [u8; 8] = *b"uBERTq8\0";
/// The format version this runtime reads and xtask writes.
pub const FORMAT_VERSION: u32 = 1;
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

/// Heads after the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSection<'a> {
    /// Present for `BertForMaskedLM` checkpoints.
    #[serde(borrow)]
    pub mlm: Option<MlmHead<'a>>,
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
    /// Encodes the header for a body, as the writer does.
    pub fn seal(body: &[u8]) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let total = (HEADER_LEN + body.len()) as u64;
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
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
