//! Structure-aware blobs: a config, a vocabulary and every tensor generated from the fuzz
//! input, serialised in the wire format of `docs/blob-format.md` and sealed. Mutating the
//! fixture alone keeps its shape (hidden 32, 2 heads); this reaches every shape the
//! validator admits (hidden 1 to 64, 0 to 2 layers, any head count that divides the
//! hidden size, 1 to 96 FFN channels, with or without an MLM head and SmoothQuant factors)
//! and extreme values (multipliers up to `i32::MAX`, shifts up to 96, saturating biases),
//! which is what the AVX2 == scalar check needs.
//!
//! Each blob carries what parsing it must give ([`Expect`]): valid; exactly one injected
//! defect (a config field out of range, an int8 weight of -128, a shift above 96, a
//! negative multiplier, a wrong dtype, shape or byte length, a broken vocabulary, a
//! trailing byte, a missing section), whose error variant (and index) is known; or huge
//! dimensions within the limits whose tensors do not match (some error past the header,
//! never a model and never a wrapped size).

use crate::tokens::{Vocab, harness_tokens};
use crate::{Input, oracle};
use microbert::BlobError;
use microbert::blob::format::FLAG_REQUIRED;
use microbert::blob::{
    Config, DType, Dense, EmbeddingTable, EmbeddingsSection, HEADER_LEN, InputFormat, LayerNorm,
    LayerSection, MlmHead, NumericsSection, Pooling, PositionMode, SectionHeader, SectionKind,
    Tensor,
};
use serde::Serialize;

/// What parsing a built blob must give.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// A model with this config.
    Valid,
    /// Exactly this error.
    Exact(BlobError),
    /// This variant (the first defect found): compared with [`same_variant`].
    Variant(BlobError),
    /// `BadValue` at this element (the tensor holds no other bad value).
    BadValueAt(usize),
    /// Some error past the header checks that is not `BadConfig` (the config is within
    /// the limits; its sizes disagree with the tensors).
    Mismatch,
}

/// Whether two errors are the same variant.
pub fn same_variant(a: &BlobError, b: &BlobError) -> bool {
    core::mem::discriminant(a) == core::mem::discriminant(b)
}

/// A built blob and what parsing it must give.
#[derive(Debug)]
pub struct Built {
    /// The sealed blob.
    pub blob: Vec<u8>,
    /// The config it was built with.
    pub config: Config,
    /// The expected outcome.
    pub expect: Expect,
}

/// SplitMix64: the bulk of the tensor bytes, seeded from the input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a tensor holds, for values and for the defects that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// int8 weights, [-127, 127].
    Weight,
    /// Non-negative i32 multipliers (also SmoothQuant factors).
    Multiplier,
    /// u8 shifts, at most 96.
    Shift,
    /// Any i32 (biases, LayerNorm gamma and beta).
    Plain,
}

/// A defect to inject into the first tensor of a matching kind at or after an ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    WeightMin,
    ShiftTooLarge,
    NegativeMultiplier,
    WrongDType,
    WrongRows,
    ExtraByte,
    MissingByte,
}

impl Defect {
    fn applies_to(self, kind: Kind, data_len: usize) -> bool {
        match self {
            Self::WeightMin => kind == Kind::Weight && data_len > 0,
            Self::ShiftTooLarge => kind == Kind::Shift && data_len > 0,
            Self::NegativeMultiplier => kind == Kind::Multiplier && data_len > 0,
            Self::MissingByte => data_len > 0,
            Self::WrongDType | Self::WrongRows | Self::ExtraByte => true,
        }
    }
}

#[derive(Debug)]
struct OwnedTensor {
    dtype: DType,
    shape: [u32; 2],
    data: Vec<u8>,
}

impl OwnedTensor {
    fn view(&self) -> Tensor<'_> {
        Tensor {
            name: "synth",
            dtype: self.dtype,
            shape: self.shape,
            data: &self.data,
        }
    }
}

/// The tensor generator: values by a per-tensor style, at most one defect.
struct Gen<'i, 'a> {
    input: &'i mut Input<'a>,
    rng: Rng,
    ordinal: usize,
    defect: Option<(Defect, usize)>,
    injected: Option<Expect>,
}

impl Gen<'_, '_> {
    fn tensor(&mut self, kind: Kind, rows: u32, cols: u32) -> OwnedTensor {
        let count = rows as usize * cols as usize;
        let style = self.input.byte() % 4;
        let rng = &mut self.rng;
        let (dtype, data): (DType, Vec<u8>) = match kind {
            Kind::Weight => {
                let w = (0..count).map(|_| match style {
                    0 => (rng.below(255) as i32 - 127) as i8,
                    1 => (rng.below(7) as i32 - 3) as i8,
                    2 => [127, -127][rng.below(2) as usize],
                    _ => 0,
                });
                (DType::I8, w.map(|x| x as u8).collect())
            }
            Kind::Multiplier => {
                let m = (0..count).map(|_| match style {
                    0 => (1 << 29) + rng.below(1 << 30) as i32,
                    1 => rng.below(1 << 31) as i32,
                    2 => i32::MAX,
                    _ => 0,
                });
                (DType::I32, m.flat_map(i32::to_le_bytes).collect())
            }
            Kind::Shift => {
                let s = (0..count).map(|_| match style {
                    0 => 28 + rng.below(13) as u8,
                    1 => rng.below(97) as u8,
                    2 => 96,
                    _ => 0,
                });
                (DType::U8, s.collect())
            }
            Kind::Plain => {
                let v = (0..count).map(|_| match style {
                    0 => (1 << 16) + rng.below(1 << 17) as i32 - (1 << 16),
                    1 => rng.next() as i32,
                    2 => [i32::MAX, i32::MIN][rng.below(2) as usize],
                    _ => 0,
                });
                (DType::I32, v.flat_map(i32::to_le_bytes).collect())
            }
        };
        let mut t = OwnedTensor {
            dtype,
            shape: [rows, cols],
            data,
        };
        self.maybe_inject(kind, &mut t);
        self.ordinal += 1;
        t
    }

    fn maybe_inject(&mut self, kind: Kind, t: &mut OwnedTensor) {
        let Some((defect, at)) = self.defect else {
            return;
        };
        if self.ordinal < at || self.injected.is_some() || !defect.applies_to(kind, t.data.len()) {
            return;
        }
        let elems = t.data.len() / t.dtype.size();
        let index = self.rng.below(elems as u64) as usize;
        let bad_value = Expect::BadValueAt(index);
        let expect = match defect {
            Defect::WeightMin => {
                t.data[index] = 0x80;
                bad_value
            }
            Defect::ShiftTooLarge => {
                t.data[index] = 97 + self.rng.below(159) as u8;
                bad_value
            }
            Defect::NegativeMultiplier => {
                t.data[4 * index + 3] |= 0x80;
                bad_value
            }
            Defect::WrongDType => {
                t.dtype = match t.dtype {
                    DType::I8 => DType::U8,
                    DType::U8 => DType::I32,
                    DType::I32 => DType::I8,
                };
                Expect::Variant(BlobError::WrongDType { tensor: "" })
            }
            Defect::WrongRows => {
                t.shape[0] = t.shape[0].wrapping_add(1);
                Expect::Variant(BlobError::WrongShape {
                    tensor: "",
                    expected: 0,
                    found: 0,
                })
            }
            Defect::ExtraByte => {
                t.data.push(0);
                Expect::Variant(BlobError::WrongShape {
                    tensor: "",
                    expected: 0,
                    found: 0,
                })
            }
            Defect::MissingByte => {
                t.data.pop();
                Expect::Variant(BlobError::WrongShape {
                    tensor: "",
                    expected: 0,
                    found: 0,
                })
            }
        };
        self.injected = Some(expect);
    }

    fn table(&mut self, rows: u32, d: u32) -> [OwnedTensor; 3] {
        [
            self.tensor(Kind::Weight, rows, d),
            self.tensor(Kind::Multiplier, rows, 1),
            self.tensor(Kind::Shift, rows, 1),
        ]
    }

    fn layer_norm(&mut self, d: u32) -> [OwnedTensor; 2] {
        [
            self.tensor(Kind::Plain, d, 1),
            self.tensor(Kind::Plain, d, 1),
        ]
    }

    fn dense(&mut self, out: u32, input: u32) -> (Vec<OwnedTensor>, bool) {
        let mut v = vec![
            self.tensor(Kind::Weight, out, input),
            self.tensor(Kind::Multiplier, out, 1),
            self.tensor(Kind::Shift, out, 1),
            self.tensor(Kind::Plain, out, 1),
        ];
        let smoothing = self.input.chance(1, 3);
        if smoothing {
            v.push(self.tensor(Kind::Multiplier, input, 1));
        }
        (v, smoothing)
    }
}

fn table_view(t: &[OwnedTensor; 3]) -> EmbeddingTable<'_> {
    EmbeddingTable {
        weight: t[0].view(),
        row_multiplier: t[1].view(),
        row_shift: t[2].view(),
    }
}

fn ln_view(t: &[OwnedTensor; 2]) -> LayerNorm<'_> {
    LayerNorm {
        gamma: t[0].view(),
        beta: t[1].view(),
    }
}

fn dense_view(d: &(Vec<OwnedTensor>, bool)) -> Dense<'_> {
    let (t, smoothing) = d;
    Dense {
        weight: t[0].view(),
        multiplier: t[1].view(),
        shift: t[2].view(),
        bias: t[3].view(),
        input_smoothing: smoothing.then(|| t[4].view()),
    }
}

/// The postcard payload of a section.
fn payload<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard serialises a section")
}

/// Appends a section: its header (the kind's flags) and `payload`.
fn push(body: &mut Vec<u8>, kind: SectionKind, payload: &[u8]) {
    let header = SectionHeader::new(kind, payload.len()).expect("a small section");
    body.extend_from_slice(&header.to_bytes());
    body.extend_from_slice(payload);
}

/// A structural defect of the section layer (format 2), or an unknown section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One byte after the config's payload, inside its section.
    ConfigTrailingByte,
    /// No embeddings section.
    MissingEmbeddings,
    /// The last encoder-layer section left out.
    MissingLayer,
    /// A second config section.
    DuplicateConfig,
    /// A reserved flag bit on the tokenizer section.
    ReservedFlag,
    /// An ancillary section of a kind this runtime does not know, at the end: skipped.
    UnknownAncillary,
    /// The same, marked required: the blob needs a newer runtime.
    UnknownRequired,
}

/// The numerics entries of `layers` layers from the input: every format, offsets up to
/// the limit; optionally one bad entry (returned with its index) or a wrong length.
fn numerics(input: &mut Input<'_>, layers: u32, defect: bool) -> (Vec<u8>, Option<BlobError>) {
    let entries = layers as usize * 3;
    let mut bytes: Vec<u8> = (0..entries)
        .flat_map(|_| {
            let format = match input.byte() % 4 {
                0 => InputFormat::Int8,
                1 => InputFormat::Int16,
                2 => InputFormat::Uint8Offset {
                    offset_q16: input.pick(&[0, 11_141, (1 << 24) - 1]),
                },
                _ => InputFormat::Uint8Offset {
                    offset_q16: input.below(1 << 24) as i32,
                },
            };
            NumericsSection::entry(format)
        })
        .collect();
    if !defect {
        return (bytes, None);
    }
    let wrong_len = |found: usize| BlobError::WrongShape {
        tensor: "numerics",
        expected: entries * 5,
        found,
    };
    let error = match input.byte() % 3 {
        0 if entries > 0 => {
            let index = input.below(entries as u64) as usize;
            let e = &mut bytes[5 * index..5 * index + 5];
            match input.byte() % 3 {
                0 => e[0] = 3 + input.byte() % 253,
                1 => {
                    // int8 or int16 with an offset.
                    e[0] = input.byte() % 2;
                    e[1] = input.byte().max(1);
                }
                _ => {
                    e[0] = 2;
                    let offset = input.pick(&[-1, 1 << 24, i32::MIN, i32::MAX]);
                    e[1..].copy_from_slice(&offset.to_le_bytes());
                }
            }
            BlobError::BadValue {
                tensor: "numerics",
                index,
            }
        }
        1 => {
            bytes.push(0);
            wrong_len(bytes.len())
        }
        _ => {
            bytes.truncate(bytes.len().saturating_sub(1 + input.below(5) as usize));
            if bytes.len() == entries * 5 {
                bytes.push(0);
            }
            wrong_len(bytes.len())
        }
    };
    (bytes, Some(error))
}

/// A valid config of small dimensions drawn from the input.
fn small_config(input: &mut Input<'_>) -> Config {
    let heads = input.range_u32(1, 4);
    let head_dim = input.range_u32(1, 16);
    Config {
        vocab_size: input.range_u32(1, 160),
        hidden_size: heads * head_dim,
        num_hidden_layers: input.range_u32(0, 2),
        num_attention_heads: heads,
        intermediate_size: input.range_u32(1, 96),
        max_position_embeddings: input.range_u32(1, 32),
        type_vocab_size: input.range_u32(1, 3),
        layer_norm_eps_q32: match input.byte() % 4 {
            0 => 1,
            1 => 4295,
            2 => u64::from(u32::MAX),
            _ => input.range(1, u64::from(u32::MAX)),
        },
        pooling: if input.chance(1, 2) {
            Pooling::Cls
        } else {
            Pooling::Mean
        },
        position_mode: if input.chance(1, 2) {
            PositionMode::Hierarchical
        } else {
            PositionMode::Absolute
        },
        position_alpha_q16: match input.byte() % 3 {
            0 => 26_214,
            1 => input.pick(&[1, 65_535]),
            _ => input.range(1, 65_535) as i32,
        },
        position_beta_q16: match input.byte() % 3 {
            0 => 43_690,
            1 => input.pick(&[0, (1 << 24) - 1]),
            _ => input.range(0, (1 << 24) - 1) as i32,
        },
        attention_logit_multiplier: match input.byte() % 3 {
            0 => 1_518_500_250,
            1 => input.pick(&[0, i32::MAX]),
            _ => input.range(0, i32::MAX as u64) as i32,
        },
        attention_logit_shift: input.range(0, 96) as u8,
    }
}

/// Puts one config field out of range; returns the error `validate::config` must give.
fn break_config(input: &mut Input<'_>, c: &mut Config) -> BlobError {
    let bad = |field: &'static str, value: u32| BlobError::BadConfig { field, value };
    match input.byte() % 13 {
        0 => {
            c.vocab_size = input.pick(&[0, (1 << 22) + 1, u32::MAX]);
            bad("vocab_size", c.vocab_size)
        }
        1 => {
            c.hidden_size = input.pick(&[0, 8193, u32::MAX]);
            bad("hidden_size", c.hidden_size)
        }
        2 => {
            c.num_hidden_layers = input.pick(&[257, u32::MAX]);
            bad("num_hidden_layers", c.num_hidden_layers)
        }
        3 => {
            let d = c.hidden_size;
            let non_divisor = (2..d).find(|k| !d.is_multiple_of(*k)).unwrap_or(d + 1);
            c.num_attention_heads = input.pick(&[0, d + 1, non_divisor]);
            bad("num_attention_heads", c.num_attention_heads)
        }
        4 => {
            c.intermediate_size = input.pick(&[0, 65_537, u32::MAX]);
            bad("intermediate_size", c.intermediate_size)
        }
        5 => {
            c.max_position_embeddings = input.pick(&[0, 65_537, u32::MAX]);
            bad("max_position_embeddings", c.max_position_embeddings)
        }
        6 => {
            c.type_vocab_size = input.pick(&[0, 1025, u32::MAX]);
            bad("type_vocab_size", c.type_vocab_size)
        }
        7 => {
            c.layer_norm_eps_q32 = input.pick(&[0, 1 << 32, u64::MAX]);
            bad(
                "layer_norm_eps_q32",
                u32::try_from(c.layer_norm_eps_q32).unwrap_or(u32::MAX),
            )
        }
        8 => {
            c.position_alpha_q16 = input.pick(&[0, -1, 65_536, i32::MIN, i32::MAX]);
            bad("position_alpha_q16", c.position_alpha_q16 as u32)
        }
        9 => {
            c.position_beta_q16 = input.pick(&[-1, 1 << 24, i32::MIN, i32::MAX]);
            bad("position_beta_q16", c.position_beta_q16 as u32)
        }
        10 => {
            c.attention_logit_multiplier = input.pick(&[-1, i32::MIN]);
            bad(
                "attention_logit_multiplier",
                c.attention_logit_multiplier as u32,
            )
        }
        11 => {
            c.attention_logit_shift = input.pick(&[97, 255]);
            bad("attention_logit_shift", u32::from(c.attention_logit_shift))
        }
        _ => {
            // Two fields at once: the first in validation order is reported.
            c.type_vocab_size = 0;
            c.vocab_size = 0;
            bad("vocab_size", 0)
        }
    }
}

/// Raises dimensions to (or near) their limits without changing the tensors, which then
/// no longer match: the blob must be rejected, whatever the sizes multiply to.
fn enlarge_config(input: &mut Input<'_>, c: &mut Config) {
    for _ in 0..=input.below(3) {
        match input.byte() % 6 {
            0 => c.vocab_size = input.pick(&[1 << 22, (1 << 22) - 1, c.vocab_size + 1]),
            1 => {
                c.hidden_size = input.pick(&[8192, 8190, c.hidden_size + c.num_attention_heads]);
                c.num_attention_heads = 1;
            }
            2 => c.intermediate_size = input.pick(&[65_536, c.intermediate_size + 1]),
            3 => c.max_position_embeddings = input.pick(&[65_536, c.max_position_embeddings + 1]),
            4 => c.type_vocab_size = input.pick(&[1024, c.type_vocab_size + 1]),
            _ => c.num_hidden_layers = input.pick(&[256, c.num_hidden_layers + 1]),
        }
    }
    // Repeated steps stay within the limits.
    c.vocab_size = c.vocab_size.min(1 << 22);
    c.hidden_size = c.hidden_size.min(8192);
    c.intermediate_size = c.intermediate_size.min(65_536);
    c.max_position_embeddings = c.max_position_embeddings.min(65_536);
    c.type_vocab_size = c.type_vocab_size.min(1024);
    c.num_hidden_layers = c.num_hidden_layers.min(256);
}

/// Builds a blob from the input (see the module docs).
pub fn build(input: &mut Input<'_>) -> Built {
    let mut config = small_config(input);
    // Tensors and vocabulary are always built for these dimensions.
    let dims = config;
    let mut expect = Expect::Valid;
    match input.byte() % 16 {
        0 => expect = Expect::Exact(break_config(input, &mut config)),
        1 => {
            enlarge_config(input, &mut config);
            // The FFN width sizes no tensor of a model without layers (and the head count
            // none at all): only the other dimensions make the tensors disagree.
            let sized = |c: &Config| {
                let ffn = if c.num_hidden_layers > 0 {
                    c.intermediate_size
                } else {
                    0
                };
                let dims = oracle::dims(c);
                (dims[0], dims[1], dims[2], ffn, dims[5], dims[6])
            };
            if sized(&config) != sized(&dims) {
                expect = Expect::Mismatch;
            }
        }
        _ => {}
    }
    let (d, ffn, vocab_size) = (dims.hidden_size, dims.intermediate_size, dims.vocab_size);

    // Vocabulary: the harness tokens from a seeded start (specials first or not).
    let pool = harness_tokens();
    let keep_specials = !input.chance(1, 4);
    let start = input.below(pool.len() as u64) as usize;
    let list: Vec<&str> = if keep_specials {
        pool[..5]
            .iter()
            .chain(pool[5..].iter().cycle().skip(start % (pool.len() - 5)))
            .take(vocab_size as usize)
            .map(String::as_str)
            .collect()
    } else {
        pool.iter()
            .cycle()
            .skip(start)
            .take(vocab_size as usize)
            .map(String::as_str)
            .collect()
    };
    let vocab = Vocab::new(list);
    assert_eq!(
        vocab.len(),
        vocab_size,
        "the harness pool has enough distinct tokens"
    );
    let mut section = vocab.section();
    section.lowercase = input.chance(3, 4);
    section.strip_accents = input.chance(3, 4);
    section.clean_text = input.chance(3, 4);
    section.handle_chinese_chars = input.chance(3, 4);
    section.max_input_chars_per_word = match input.byte() % 4 {
        0..=1 => 100,
        2 => input.range_u32(1, 8),
        _ => input.range_u32(1, u32::MAX),
    };
    section.continuing_subword_prefix = input.pick(&["##", "", "@@", "▁"]);
    if !keep_specials || input.chance(1, 8) {
        for id in [
            &mut section.unk_id,
            &mut section.cls_id,
            &mut section.sep_id,
            &mut section.pad_id,
            &mut section.mask_id,
        ] {
            *id = input.below(u64::from(vocab_size)) as u32;
        }
    }

    // At most one defect, unless the config already is one.
    let mut vocab_defect = None;
    let mut defect = None;
    let mut framing = None;
    let mut numerics_defect = false;
    if expect == Expect::Valid {
        match input.byte() % 8 {
            0 => vocab_defect = Some(input.byte() % 6),
            1 | 2 => {
                let kinds = [
                    Defect::WeightMin,
                    Defect::ShiftTooLarge,
                    Defect::NegativeMultiplier,
                    Defect::WrongDType,
                    Defect::WrongRows,
                    Defect::ExtraByte,
                    Defect::MissingByte,
                ];
                defect = Some((input.pick(&kinds), input.below(64) as usize));
            }
            3 => {
                framing = Some(input.pick(&[
                    Framing::ConfigTrailingByte,
                    Framing::MissingEmbeddings,
                    Framing::MissingLayer,
                    Framing::DuplicateConfig,
                    Framing::ReservedFlag,
                    Framing::UnknownAncillary,
                    Framing::UnknownRequired,
                ]))
            }
            4 => numerics_defect = true,
            _ => {}
        }
    }
    let mut tokens_owned = section.tokens.to_vec();
    let mut offsets_owned = section.offsets.to_vec();
    let mut sorted_owned = section.sorted_ids.to_vec();
    if let Some(which) = vocab_defect {
        let applied = match which {
            0 => {
                offsets_owned.truncate(offsets_owned.len() - 4);
                true
            }
            1 => {
                sorted_owned.truncate(sorted_owned.len() - 4);
                true
            }
            2 if !tokens_owned.is_empty() => {
                let at = input.below(tokens_owned.len() as u64) as usize;
                tokens_owned[at] = 0xff;
                true
            }
            3 if vocab_size >= 2 => {
                // The sorted index names one id twice.
                let first = sorted_owned[..4].to_vec();
                sorted_owned[4..8].copy_from_slice(&first);
                true
            }
            4 => {
                section.max_input_chars_per_word = 0;
                true
            }
            5 => {
                section.sep_id = vocab_size + input.below(1 << 16) as u32;
                true
            }
            _ => false,
        };
        if applied {
            expect = Expect::Variant(BlobError::BadVocab { reason: "" });
        }
    }
    section.tokens = &tokens_owned;
    section.offsets = &offsets_owned;
    section.sorted_ids = &sorted_owned;

    let mut body = Vec::new();
    let mut config_payload = payload(&config);
    if framing == Some(Framing::ConfigTrailingByte) {
        config_payload.push(input.byte());
        expect = Expect::Exact(BlobError::SectionTrailingBytes {
            section: SectionKind::Config.name(),
            count: 1,
        });
    }
    push(&mut body, SectionKind::Config, &config_payload);
    if framing == Some(Framing::DuplicateConfig) {
        expect = Expect::Exact(BlobError::DuplicateSection {
            section: SectionKind::Config.name(),
            offset: HEADER_LEN + body.len(),
        });
        push(&mut body, SectionKind::Config, &config_payload);
    }
    let tokenizer_at = body.len();
    push(
        &mut body,
        SectionKind::WordPieceTokenizer,
        &payload(&section),
    );
    if framing == Some(Framing::ReservedFlag) {
        let flags = FLAG_REQUIRED | 1 << (1 + input.below(15));
        body[tokenizer_at + 2..tokenizer_at + 4].copy_from_slice(&flags.to_le_bytes());
        expect = Expect::Exact(BlobError::BadSectionFlags {
            kind: SectionKind::WordPieceTokenizer.code(),
            flags,
            offset: HEADER_LEN + tokenizer_at,
        });
    }

    let mut g = Gen {
        rng: Rng(input.u64()),
        input,
        ordinal: 0,
        defect,
        injected: None,
    };
    let word = g.table(vocab_size, d);
    let position = g.table(dims.max_position_embeddings, d);
    let token_type = g.table(dims.type_vocab_size, d);
    let ln = g.layer_norm(d);
    let embeddings = payload(&EmbeddingsSection {
        word: table_view(&word),
        position: table_view(&position),
        token_type: table_view(&token_type),
        layer_norm: ln_view(&ln),
    });
    if framing == Some(Framing::MissingEmbeddings) {
        expect = Expect::Exact(BlobError::MissingSection {
            section: SectionKind::Embeddings.name(),
        });
    } else {
        push(&mut body, SectionKind::Embeddings, &embeddings);
    }
    for l in 0..dims.num_hidden_layers {
        let q = g.dense(d, d);
        let k = g.dense(d, d);
        let v = g.dense(d, d);
        let o = g.dense(d, d);
        let ln1 = g.layer_norm(d);
        let inter = g.dense(ffn, d);
        let out = g.dense(d, ffn);
        let ln2 = g.layer_norm(d);
        let layer = payload(&LayerSection {
            query: dense_view(&q),
            key: dense_view(&k),
            value: dense_view(&v),
            attention_output: dense_view(&o),
            attention_layer_norm: ln_view(&ln1),
            intermediate: dense_view(&inter),
            output: dense_view(&out),
            output_layer_norm: ln_view(&ln2),
        });
        if framing == Some(Framing::MissingLayer) && l + 1 == dims.num_hidden_layers {
            expect = Expect::Exact(BlobError::SectionCount {
                section: SectionKind::EncoderLayer.name(),
                found: l,
                expected: dims.num_hidden_layers,
            });
        } else {
            push(&mut body, SectionKind::EncoderLayer, &layer);
        }
    }
    let with_mlm = g.input.chance(1, 2);
    if with_mlm {
        let transform = g.dense(d, d);
        let ln = g.layer_norm(d);
        let m = g.tensor(Kind::Multiplier, vocab_size, 1);
        let s = g.tensor(Kind::Shift, vocab_size, 1);
        let b = g.tensor(Kind::Plain, vocab_size, 1);
        let head = payload(&MlmHead {
            transform: dense_view(&transform),
            layer_norm: ln_view(&ln),
            decoder_multiplier: m.view(),
            decoder_shift: s.view(),
            decoder_bias: b.view(),
        });
        push(&mut body, SectionKind::MlmHead, &head);
    }
    if let Some(injected) = g.injected.take() {
        expect = injected;
    }
    let input = g.input;
    if numerics_defect || input.chance(1, 2) {
        let (entries, error) = numerics(input, dims.num_hidden_layers, numerics_defect);
        push(
            &mut body,
            SectionKind::Numerics,
            &payload(&NumericsSection { inputs: &entries }),
        );
        if let Some(error) = error {
            expect = Expect::Exact(error);
        }
    }
    if let Some(f @ (Framing::UnknownAncillary | Framing::UnknownRequired)) = framing {
        // After every known kind (codes increase), so the order holds: above the largest
        // known code, whatever kinds later formats add.
        let last = SectionKind::ALL
            .map(SectionKind::code)
            .into_iter()
            .max()
            .unwrap_or(0);
        let kind = last + 1 + input.below(u64::from(u16::MAX - last)) as u16;
        let required = f == Framing::UnknownRequired;
        let len = input.byte() as usize;
        let header = SectionHeader {
            kind,
            flags: if required { FLAG_REQUIRED } else { 0 },
            len: len as u32,
        };
        if required {
            expect = Expect::Exact(BlobError::UnknownRequiredSection {
                kind,
                offset: HEADER_LEN + body.len(),
            });
        }
        body.extend_from_slice(&header.to_bytes());
        let bytes = input.take(len).to_vec();
        body.extend_from_slice(&bytes);
        body.resize(body.len() + len - bytes.len(), 0);
    }
    Built {
        blob: crate::seal(&body),
        config,
        expect,
    }
}

/// Checks `result` (of parsing a [`Built`] blob) against its expectation.
pub fn check(built: &Built, result: &Result<microbert::ModelView<'_>, BlobError>) {
    match (&built.expect, result) {
        (Expect::Valid, Ok(model)) => {
            assert_eq!(model.config, built.config, "config round trip");
        }
        (Expect::Valid, Err(e)) => panic!("a valid synthesised blob was rejected: {e:?}"),
        (Expect::Exact(want), got) => {
            assert_eq!(
                got.as_ref().err(),
                Some(want),
                "synthesised blob with a known defect"
            )
        }
        (Expect::Variant(want), Err(got)) => {
            assert!(same_variant(want, got), "expected a {want:?}, got {got:?}");
        }
        (Expect::BadValueAt(want), Err(got)) => assert!(
            matches!(got, BlobError::BadValue { index, .. } if index == want),
            "expected BadValue at element {want}, got {got:?}"
        ),
        (Expect::BadValueAt(want), Ok(_)) => {
            panic!("a blob with a bad value at element {want} parsed")
        }
        (Expect::Variant(want), Ok(_)) => panic!("a blob with a {want:?} defect parsed"),
        (Expect::Mismatch, Err(e)) => assert!(
            !crate::header::is_header_error(e) && !matches!(e, BlobError::BadConfig { .. }),
            "enlarged dimensions gave {e:?}"
        ),
        (Expect::Mismatch, Ok(m)) => panic!(
            "a config whose sizes do not match its tensors parsed: {:?}",
            m.config
        ),
    }
}
