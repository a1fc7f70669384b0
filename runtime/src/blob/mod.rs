//! Model blobs: parse and validate once, then borrow every tensor zero-copy.
//!
//! [`parse`] checks, in order: the header length, magic, format version (1 or 2), total
//! length, the checksum over the body; then, for format 2, the structure of every section
//! (`section.rs`: bounds, flags, order, duplicates, unknown required kinds, required kinds
//! present; a WordPiece or a Unigram tokenizer) before any payload is decoded, and then each
//! payload in a fixed order (config, tokenizer, embeddings, encoder layers, MLM head, provenance), each fully consumed and
//! validated against the config (`validate.rs`). Format 1, the legacy layout without
//! sections, is decoded value by value (`legacy.rs`) through the same validation. Only a blob
//! that passes all of it becomes a [`ModelView`]; inference never re-checks and never panics
//! on a parsed view. The wire format is specified in `docs/blob-format.md`.

pub mod format;
mod legacy;
mod section;
#[cfg(test)]
mod tests;
mod validate;

pub use format::{
    ClassifierKind, ClassifierSection, Config, DType, Dense, EmbeddingTable, EmbeddingsSection,
    FORMAT_VERSION, HEADER_LEN, HeadSection, Header, InputFormat, LayerNorm, LayerSection, Licence,
    MAGIC, MlmHead, NumericsSection, OLDEST_FORMAT_VERSION, Package, Pooling, PositionMode,
    Provenance, QuantizedInput, SECTION_HEADER_LEN, SectionHeader, SectionKind, Tensor,
    TokenizerSection, UNIGRAM_SCORE_FRAC_BITS, UnigramSection, fnv1a64,
};
pub use format::{LabelsSection, PoolerSection, TEMPLATE_PIECE_LEN, TaskHeads, TemplateSection};
pub use section::{Section, Sections, sections};

use crate::error::BlobError;
use section::{Layout, decode};

/// Decodes and validates a Unigram tokenizer payload (kind 20) on its own, for tools and
/// tests that hold the section without a whole model; ids are checked against the number
/// of pieces.
///
/// # Errors
/// [`BlobError::Decode`], [`BlobError::SectionTrailingBytes`] or [`BlobError::BadVocab`].
pub fn decode_unigram(payload: &[u8]) -> Result<UnigramSection<'_>, BlobError> {
    let u: UnigramSection<'_> = decode(payload, SectionKind::UnigramTokenizer)?;
    let n = (u.offsets.len() / 4).saturating_sub(1);
    validate::unigram(&u, u32::try_from(n).unwrap_or(u32::MAX))?;
    Ok(u)
}

/// A parsed, validated model: configuration and borrowed tensors.
#[derive(Debug, Clone, Copy)]
pub struct ModelView<'a> {
    /// Hyper-parameters and fixed-point constants.
    pub config: Config,
    /// The WordPiece tokenizer's settings and vocabulary; `None` for a model that carries
    /// only a SentencePiece Unigram tokenizer ([`Self::unigram`], XLM-R models): a blob
    /// always has at least one of the two.
    pub tokenizer: Option<TokenizerSection<'a>>,
    /// Embedding tables and their LayerNorm.
    pub embeddings: EmbeddingsSection<'a>,
    /// Heads after the encoder.
    pub head: HeadSection<'a>,
    /// Where the model came from and how it was converted (format 2 blobs written with a
    /// provenance section; `None` for format 1).
    pub provenance: Option<Provenance<'a>>,
    /// How each layer quantises its dense inputs; `None`: every input int8.
    pub numerics: Option<NumericsSection<'a>>,
    /// The SentencePiece Unigram tokenizer (XLM-R models), when the blob has one.
    pub unigram: Option<UnigramSection<'a>>,
    /// The pooler, classifier and labels (format 2 sections 7 to 10; none in format 1).
    pub tasks: TaskHeads<'a>,
    /// The tokenizer's pair template when it is not BERT's (section 11).
    pub pair_template: Option<crate::tokenizer::Template>,
    /// The encoded layers, validated; decoded one at a time by [`Self::layers`].
    layers: &'a [u8],
    /// Whether each layer in `layers` is wrapped in a section header (format 2).
    framed: bool,
    /// The blob's header.
    pub header: Header,
}

impl<'a> ModelView<'a> {
    /// The encoder layers in order. Each was validated by [`parse`].
    pub fn layers(&self) -> Layers<'a> {
        Layers {
            rest: self.layers,
            left: self.config.num_hidden_layers,
            framed: self.framed,
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
        for d in self
            .tasks
            .pooler
            .iter()
            .chain(self.tasks.classifier.map(|c| c.1).iter())
        {
            dense_tensors(d, &mut f);
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

    /// The format of a dense input of layer `layer` (int8 without a numerics section).
    pub fn input_format(&self, layer: usize, input: QuantizedInput) -> InputFormat {
        self.numerics
            .map_or(InputFormat::Int8, |n| n.format(layer, input))
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
    framed: bool,
}

impl<'a> Iterator for Layers<'a> {
    type Item = LayerSection<'a>;

    fn next(&mut self) -> Option<LayerSection<'a>> {
        if self.left == 0 {
            return None;
        }
        // Every layer was decoded and validated by `parse`, so this cannot fail; a failure
        // would end the iteration early, which `Encoder` reports as an error.
        let payload = if self.framed {
            let (head, rest) = self.rest.split_first_chunk::<SECTION_HEADER_LEN>()?;
            let len = usize::try_from(SectionHeader::from_bytes(*head).len).ok()?;
            let (payload, rest) = rest.split_at_checked(len)?;
            self.rest = rest;
            payload
        } else {
            self.rest
        };
        let (layer, rest) = postcard::take_from_bytes::<LayerSection<'a>>(payload).ok()?;
        if !self.framed {
            self.rest = rest;
        }
        self.left -= 1;
        Some(layer)
    }
}

/// Reads and checks the fixed header: length, magic, version (one this runtime reads:
/// [`OLDEST_FORMAT_VERSION`] to [`FORMAT_VERSION`]), total length, checksum.
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
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
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

/// Parses and validates a blob of format 1 or 2. The returned view borrows from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ModelView<'_>, BlobError> {
    let header = parse_header(bytes)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    if header.version == 1 {
        return legacy::parse(body, header);
    }
    let layout = Layout::read(body)?;
    let config: Config = decode(layout.config, SectionKind::Config)?;
    validate::config(&config)?;
    if layout.layer_count != config.num_hidden_layers {
        return Err(BlobError::SectionCount {
            section: SectionKind::EncoderLayer.name(),
            found: layout.layer_count,
            expected: config.num_hidden_layers,
        });
    }
    let tokenizer = match layout.tokenizer {
        Some(payload) => {
            let t: TokenizerSection<'_> = decode(payload, SectionKind::WordPieceTokenizer)?;
            validate::tokenizer(&t, &config)?;
            Some(t)
        }
        None => None,
    };
    let embeddings: EmbeddingsSection<'_> = decode(layout.embeddings, SectionKind::Embeddings)?;
    validate::embeddings(&embeddings, &config)?;
    for s in Sections::of_body(layout.layers, 0) {
        let layer: LayerSection<'_> = decode(s?.payload, SectionKind::EncoderLayer)?;
        validate::layer(&layer, &config)?;
    }
    let head = HeadSection {
        mlm: match layout.mlm {
            Some(payload) => Some(decode(payload, SectionKind::MlmHead)?),
            None => None,
        },
    };
    validate::head(&head, &config)?;
    let provenance = match layout.provenance {
        Some(payload) => {
            let p: Provenance<'_> = decode(payload, SectionKind::Provenance)?;
            validate::provenance(&p)?;
            Some(p)
        }
        None => None,
    };
    let numerics = match layout.numerics {
        Some(payload) => {
            let n: NumericsSection<'_> = decode(payload, SectionKind::Numerics)?;
            validate::numerics(&n, &config)?;
            Some(n)
        }
        None => None,
    };
    let unigram = match layout.unigram {
        Some(payload) => {
            let u: UnigramSection<'_> = decode(payload, SectionKind::UnigramTokenizer)?;
            validate::unigram(&u, config.vocab_size)?;
            Some(u)
        }
        None => None,
    };
    let tasks = task_heads(&layout, &config)?;
    let pair_template = match layout.template {
        Some(p) => {
            let t: TemplateSection<'_> = decode(p, SectionKind::PairTemplate)?;
            Some(validate::template(&t, &config)?)
        }
        None => None,
    };
    Ok(ModelView {
        config,
        tokenizer,
        embeddings,
        head,
        provenance,
        numerics,
        unigram,
        tasks,
        pair_template,
        layers: layout.layers,
        framed: true,
        header,
    })
}

/// Decodes and validates the task-head sections (pooler, classifier, labels).
fn task_heads<'a>(layout: &Layout<'a>, config: &Config) -> Result<TaskHeads<'a>, BlobError> {
    let pooler = match layout.pooler {
        Some(p) => Some(decode::<PoolerSection<'_>>(p, SectionKind::Pooler)?.dense),
        None => None,
    };
    let classifier = |payload: Option<&'a [u8]>, kind: SectionKind| match payload {
        Some(p) => decode::<ClassifierSection<'_>>(p, kind).map(|c| Some(c.dense)),
        None => Ok(None),
    };
    let sequence = classifier(layout.sequence, SectionKind::SequenceClassifier)?;
    let token = classifier(layout.token, SectionKind::TokenClassifier)?;
    let classifier = match (sequence, token) {
        (Some(_), Some(_)) => {
            return Err(BlobError::BadHead {
                reason: "a blob carries at most one classifier (sequence or token)",
            });
        }
        (Some(d), None) => Some((ClassifierKind::Sequence, d)),
        (None, Some(d)) => Some((ClassifierKind::Token, d)),
        (None, None) => None,
    };
    let labels = match layout.labels {
        Some(p) => Some(decode::<LabelsSection<'_>>(p, SectionKind::Labels)?.labels),
        None => None,
    };
    let heads = TaskHeads {
        pooler,
        classifier,
        labels,
    };
    validate::task_heads(&heads, config)?;
    Ok(heads)
}
