//! Model blobs: parse and validate once, then borrow every tensor zero-copy.
//!
//! [`parse`] checks, in order: the header length, magic, format version, total length, the
//! checksum over the body, then decodes each postcard section and validates every length,
//! shape and value range against the config. Only a blob that passes all of it becomes a
//! [`ModelView`]; inference never re-checks and never panics on a parsed view.
//! The wire format is specified in `docs/blob-format.md`.

pub mod format;
mod validate;

pub use format::{
    Config, DType, Dense, EmbeddingTable, EmbeddingsSection, FORMAT_VERSION, HEADER_LEN,
    HeadSection, Header, LayerNorm, LayerSection, MAGIC, MlmHead, Pooling, PositionMode, Tensor,
    TokenizerSection, fnv1a64,
};

use crate::error::BlobError;

/// A parsed, validated model: configuration and borrowed tensors.
#[derive(Debug, Clone, Copy)]
pub struct ModelView<'a> {
    /// Hyper-parameters and fixed-point constants.
    pub config: Config,
    /// Tokenizer settings and vocabulary.
    pub tokenizer: TokenizerSection<'a>,
    /// Embedding tables and their LayerNorm.
    pub embeddings: EmbeddingsSection<'a>,
    /// Heads after the encoder.
    pub head: HeadSection<'a>,
    /// The encoded layer sections, validated; decoded one at a time by [`Self::layers`].
    layers: &'a [u8],
    /// The blob's header.
    pub header: Header,
}

impl<'a> ModelView<'a> {
    /// The encoder layers in order. Each was validated by [`parse`].
    pub fn layers(&self) -> Layers<'a> {
        Layers {
            rest: self.layers,
            left: self.config.num_hidden_layers,
        }
    }

    /// Every tensor in the blob, in storage order, for reports.
    pub fn for_each_tensor(&self, mut f: impl FnMut(&Tensor<'a>)) {
        let e = &self.embeddings;
        for t in [&e.word, &e.position, &e.token_type] {
            f(&t.weight);
            f(&t.row_multiplier);
            f(&t.row_shift);
        }
        f(&e.layer_norm.gamma);
        f(&e.layer_norm.beta);
        for layer in self.layers() {
            for d in [
                &layer.query,
                &layer.key,
                &layer.value,
                &layer.attention_output,
            ] {
                dense_tensors(d, &mut f);
            }
            f(&layer.attention_layer_norm.gamma);
            f(&layer.attention_layer_norm.beta);
            dense_tensors(&layer.intermediate, &mut f);
            dense_tensors(&layer.output, &mut f);
            f(&layer.output_layer_norm.gamma);
            f(&layer.output_layer_norm.beta);
        }
        if let Some(mlm) = &self.head.mlm {
            dense_tensors(&mlm.transform, &mut f);
            f(&mlm.layer_norm.gamma);
            f(&mlm.layer_norm.beta);
            f(&mlm.decoder_multiplier);
            f(&mlm.decoder_shift);
            f(&mlm.decoder_bias);
        }
    }

    /// The largest number of tokens the model reads in the position mode of its config.
    pub fn max_tokens(&self) -> usize {
        self.config.max_positions(self.config.position_mode)
    }
}

fn dense_tensors<'a>(d: &Dense<'a>, f: &mut impl FnMut(&Tensor<'a>)) {
    f(&d.weight);
    f(&d.multiplier);
    f(&d.shift);
    f(&d.bias);
    if let Some(s) = &d.input_smoothing {
        f(s);
    }
}

/// Iterator over the encoder layers of a [`ModelView`].
#[derive(Debug, Clone)]
pub struct Layers<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Layers<'a> {
    type Item = LayerSection<'a>;

    fn next(&mut self) -> Option<LayerSection<'a>> {
        if self.left == 0 {
            return None;
        }
        // Every layer was decoded and validated by `parse`, so this cannot fail; a failure
        // would end the iteration early, which `Encoder` reports as an error.
        let (layer, rest) = postcard::take_from_bytes::<LayerSection<'a>>(self.rest).ok()?;
        self.rest = rest;
        self.left -= 1;
        Some(layer)
    }
}

/// Reads and checks the fixed header: length, magic, version, total length, checksum.
pub fn parse_header(bytes: &[u8]) -> Result<Header, BlobError> {
    let Some((head, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(BlobError::TooShort {
            len: bytes.len(),
            needed: HEADER_LEN,
        });
    };
    let (magic, rest) = head.split_at(8);
    if magic != MAGIC {
        return Err(BlobError::BadMagic);
    }
    let (version, rest) = rest.split_at(4);
    let (total, checksum) = rest.split_at(8);
    let version = u32::from_le_bytes(le_array(version));
    if version != FORMAT_VERSION {
        return Err(BlobError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let total_len = u64::from_le_bytes(le_array(total));
    if total_len != bytes.len() as u64 {
        return Err(BlobError::LengthMismatch {
            header: total_len,
            actual: bytes.len(),
        });
    }
    let checksum = u64::from_le_bytes(le_array(checksum));
    let actual = fnv1a64(body);
    if actual != checksum {
        return Err(BlobError::ChecksumMismatch {
            expected: checksum,
            actual,
        });
    }
    Ok(Header {
        version,
        total_len,
        checksum,
    })
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

fn take<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    section: &'static str,
) -> Result<(T, &'a [u8]), BlobError> {
    postcard::take_from_bytes(bytes).map_err(|_| BlobError::Decode { section })
}

/// Parses and validates a blob. The returned view borrows from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ModelView<'_>, BlobError> {
    let header = parse_header(bytes)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let (config, rest) = take::<Config>(body, "config")?;
    validate::config(&config)?;
    let (tokenizer, rest) = take::<TokenizerSection<'_>>(rest, "tokenizer")?;
    validate::tokenizer(&tokenizer, &config)?;
    let (embeddings, rest) = take::<EmbeddingsSection<'_>>(rest, "embeddings")?;
    validate::embeddings(&embeddings, &config)?;
    let layers_start = rest;
    let mut rest = rest;
    for _ in 0..config.num_hidden_layers {
        let (layer, r) = take::<LayerSection<'_>>(rest, "layer")?;
        validate::layer(&layer, &config)?;
        rest = r;
    }
    let layers_len = layers_start.len() - rest.len();
    let layers = layers_start.get(..layers_len).unwrap_or_default();
    let (head, rest) = take::<HeadSection<'_>>(rest, "head")?;
    validate::head(&head, &config)?;
    if !rest.is_empty() {
        return Err(BlobError::TrailingBytes { count: rest.len() });
    }
    Ok(ModelView {
        config,
        tokenizer,
        embeddings,
        head,
        layers,
        header,
    })
}
