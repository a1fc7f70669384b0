//! Validation of decoded sections against the config: every dtype, shape, byte length and
//! value range that inference relies on. After this, indexing a tensor by the config's
//! dimensions cannot go out of bounds.

use super::format::{
    Config, DType, Dense, EmbeddingTable, EmbeddingsSection, HeadSection, LayerNorm, LayerSection,
    MAX_SHIFT, NUMERICS_ENTRY_LEN, NumericsSection, Provenance, QuantizedInput, TEMPLATE_PIECE_LEN,
    TaskHeads, TemplateSection, Tensor, TokenizerSection, UnigramSection,
};
use crate::error::BlobError;

/// Upper bounds that keep every size computation far from overflow on 32-bit targets.
const MAX_HIDDEN: u32 = 8192;
const MAX_INTERMEDIATE: u32 = 65_536;
const MAX_LAYERS: u32 = 256;
const MAX_VOCAB: u32 = 1 << 22;
const MAX_POSITIONS: u32 = 65_536;
const MAX_TYPES: u32 = 1024;

fn bad(field: &'static str, value: u32) -> BlobError {
    BlobError::BadConfig { field, value }
}

fn in_range(field: &'static str, value: u32, lo: u32, hi: u32) -> Result<(), BlobError> {
    if value < lo || value > hi {
        return Err(bad(field, value));
    }
    Ok(())
}

pub(super) fn config(c: &Config) -> Result<(), BlobError> {
    in_range("vocab_size", c.vocab_size, 1, MAX_VOCAB)?;
    in_range("hidden_size", c.hidden_size, 1, MAX_HIDDEN)?;
    in_range("num_hidden_layers", c.num_hidden_layers, 0, MAX_LAYERS)?;
    in_range(
        "num_attention_heads",
        c.num_attention_heads,
        1,
        c.hidden_size,
    )?;
    if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        return Err(bad("num_attention_heads", c.num_attention_heads));
    }
    in_range(
        "intermediate_size",
        c.intermediate_size,
        1,
        MAX_INTERMEDIATE,
    )?;
    in_range(
        "max_position_embeddings",
        c.max_position_embeddings,
        1,
        MAX_POSITIONS,
    )?;
    in_range("type_vocab_size", c.type_vocab_size, 1, MAX_TYPES)?;
    if c.layer_norm_eps_q32 == 0 || c.layer_norm_eps_q32 > u64::from(u32::MAX) {
        return Err(bad(
            "layer_norm_eps_q32",
            u32::try_from(c.layer_norm_eps_q32).unwrap_or(u32::MAX),
        ));
    }
    // alpha in (0, 1) and beta = alpha / (1 - alpha) below 2^8 in Q.16.
    if c.position_alpha_q16 <= 0 || c.position_alpha_q16 >= 1 << 16 {
        return Err(bad("position_alpha_q16", c.position_alpha_q16 as u32));
    }
    if c.position_beta_q16 < 0 || c.position_beta_q16 >= 1 << 24 {
        return Err(bad("position_beta_q16", c.position_beta_q16 as u32));
    }
    if c.attention_logit_multiplier < 0 {
        return Err(bad(
            "attention_logit_multiplier",
            c.attention_logit_multiplier as u32,
        ));
    }
    if c.attention_logit_shift > MAX_SHIFT {
        return Err(bad(
            "attention_logit_shift",
            u32::from(c.attention_logit_shift),
        ));
    }
    Ok(())
}

/// Checks dtype and shape, and that the bytes hold exactly `rows * cols` elements.
fn tensor(
    t: &Tensor<'_>,
    role: &'static str,
    dtype: DType,
    rows: u32,
    cols: u32,
) -> Result<(), BlobError> {
    if t.dtype != dtype {
        return Err(BlobError::WrongDType { tensor: role });
    }
    let expected = (rows as usize)
        .checked_mul(cols as usize)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or(BlobError::BadConfig {
            field: role,
            value: rows,
        })?;
    if t.shape != [rows, cols] || t.data.len() != expected {
        return Err(BlobError::WrongShape {
            tensor: role,
            expected,
            found: t.data.len(),
        });
    }
    Ok(())
}

/// int8 weights must stay in [-127, 127] (symmetric quantisation never produces -128).
fn weights(t: &Tensor<'_>, role: &'static str, rows: u32, cols: u32) -> Result<(), BlobError> {
    tensor(t, role, DType::I8, rows, cols)?;
    match t.data.iter().position(|&b| b == 0x80) {
        Some(index) => Err(BlobError::BadValue {
            tensor: role,
            index,
        }),
        None => Ok(()),
    }
}

fn shifts(t: &Tensor<'_>, role: &'static str, rows: u32) -> Result<(), BlobError> {
    tensor(t, role, DType::U8, rows, 1)?;
    match t.data.iter().position(|&s| s > MAX_SHIFT) {
        Some(index) => Err(BlobError::BadValue {
            tensor: role,
            index,
        }),
        None => Ok(()),
    }
}

fn multipliers(t: &Tensor<'_>, role: &'static str, rows: u32) -> Result<(), BlobError> {
    tensor(t, role, DType::I32, rows, 1)?;
    let negative = t
        .data
        .chunks_exact(4)
        .position(|c| c.last().is_some_and(|&hi| hi & 0x80 != 0));
    match negative {
        Some(index) => Err(BlobError::BadValue {
            tensor: role,
            index,
        }),
        None => Ok(()),
    }
}

fn table(
    t: &EmbeddingTable<'_>,
    role: &'static str,
    rows: u32,
    c: &Config,
) -> Result<(), BlobError> {
    weights(&t.weight, role, rows, c.hidden_size)?;
    multipliers(&t.row_multiplier, role, rows)?;
    shifts(&t.row_shift, role, rows)
}

fn layer_norm(ln: &LayerNorm<'_>, role: &'static str, c: &Config) -> Result<(), BlobError> {
    tensor(&ln.gamma, role, DType::I32, c.hidden_size, 1)?;
    tensor(&ln.beta, role, DType::I32, c.hidden_size, 1)
}

fn dense(d: &Dense<'_>, role: &'static str, out: u32, input: u32) -> Result<(), BlobError> {
    weights(&d.weight, role, out, input)?;
    multipliers(&d.multiplier, role, out)?;
    shifts(&d.shift, role, out)?;
    tensor(&d.bias, role, DType::I32, out, 1)?;
    if let Some(s) = &d.input_smoothing {
        multipliers(s, role, input)?;
    }
    Ok(())
}

pub(super) fn embeddings(e: &EmbeddingsSection<'_>, c: &Config) -> Result<(), BlobError> {
    table(&e.word, "embeddings.word_embeddings", c.vocab_size, c)?;
    table(
        &e.position,
        "embeddings.position_embeddings",
        c.max_position_embeddings,
        c,
    )?;
    table(
        &e.token_type,
        "embeddings.token_type_embeddings",
        c.type_vocab_size,
        c,
    )?;
    layer_norm(&e.layer_norm, "embeddings.LayerNorm", c)
}

pub(super) fn layer(l: &LayerSection<'_>, c: &Config) -> Result<(), BlobError> {
    let (d, ff) = (c.hidden_size, c.intermediate_size);
    dense(&l.query, "attention.self.query", d, d)?;
    dense(&l.key, "attention.self.key", d, d)?;
    dense(&l.value, "attention.self.value", d, d)?;
    dense(&l.attention_output, "attention.output.dense", d, d)?;
    layer_norm(&l.attention_layer_norm, "attention.output.LayerNorm", c)?;
    dense(&l.intermediate, "intermediate.dense", ff, d)?;
    dense(&l.output, "output.dense", d, ff)?;
    layer_norm(&l.output_layer_norm, "output.LayerNorm", c)
}

pub(super) fn head(h: &HeadSection<'_>, c: &Config) -> Result<(), BlobError> {
    if let Some(m) = &h.mlm {
        let d = c.hidden_size;
        dense(&m.transform, "cls.predictions.transform.dense", d, d)?;
        layer_norm(&m.layer_norm, "cls.predictions.transform.LayerNorm", c)?;
        multipliers(
            &m.decoder_multiplier,
            "cls.predictions.decoder",
            c.vocab_size,
        )?;
        shifts(&m.decoder_shift, "cls.predictions.decoder", c.vocab_size)?;
        tensor(
            &m.decoder_bias,
            "cls.predictions.bias",
            DType::I32,
            c.vocab_size,
            1,
        )?;
    }
    Ok(())
}

fn u32_at(bytes: &[u8], i: usize) -> Option<u32> {
    let start = i.checked_mul(4)?;
    let b = bytes.get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn vocab_err(reason: &'static str) -> BlobError {
    BlobError::BadVocab { reason }
}

pub(super) fn tokenizer(t: &TokenizerSection<'_>, c: &Config) -> Result<(), BlobError> {
    let n = c.vocab_size as usize;
    if t.offsets.len() != (n + 1) * 4 {
        return Err(vocab_err("offset table length is not vocab_size + 1"));
    }
    if t.sorted_ids.len() != n * 4 {
        return Err(vocab_err("sorted index length is not vocab_size"));
    }
    let text = core::str::from_utf8(t.tokens).map_err(|_| vocab_err("tokens are not UTF-8"))?;
    let mut prev = 0usize;
    for i in 0..=n {
        let off = u32_at(t.offsets, i).ok_or(vocab_err("offset table truncated"))? as usize;
        if off < prev || off > text.len() || !text.is_char_boundary(off) {
            return Err(vocab_err("offsets are not increasing UTF-8 boundaries"));
        }
        if i == 0 && off != 0 {
            return Err(vocab_err("first offset is not 0"));
        }
        prev = off;
    }
    if prev != text.len() {
        return Err(vocab_err("last offset is not the end of the token bytes"));
    }
    let token = |id: u32| -> Option<&[u8]> {
        let a = u32_at(t.offsets, id as usize)? as usize;
        let b = u32_at(t.offsets, id as usize + 1)? as usize;
        t.tokens.get(a..b)
    };
    // Strictly increasing token bytes over n in-range ids means the index is a permutation.
    let mut last: Option<&[u8]> = None;
    for i in 0..n {
        let id = u32_at(t.sorted_ids, i).ok_or(vocab_err("sorted index truncated"))?;
        if id >= c.vocab_size {
            return Err(vocab_err("sorted index holds an id past the vocabulary"));
        }
        let tok = token(id).ok_or(vocab_err("sorted index holds a bad id"))?;
        if last.is_some_and(|l| l >= tok) {
            return Err(vocab_err(
                "sorted index is not strictly increasing (duplicate token?)",
            ));
        }
        last = Some(tok);
    }
    for id in [t.unk_id, t.cls_id, t.sep_id, t.pad_id, t.mask_id] {
        if id >= c.vocab_size {
            return Err(vocab_err("a special token id is past the vocabulary"));
        }
    }
    if t.max_input_chars_per_word == 0 {
        return Err(vocab_err("max_input_chars_per_word is 0"));
    }
    Ok(())
}

/// A Unigram section: pieces indexed like a WordPiece vocabulary (offsets, strictly sorted
/// index), one score per piece, the special ids in range, and a charsmap whose trie length
/// fits and whose replacement pool is UTF-8 (lookups are bounds-checked, so a bad trie gives
/// wrong text, never a panic). `vocab_size` bounds the number of pieces (the embedding table
/// may have more rows than the tokenizer has pieces).
pub(super) fn unigram(u: &UnigramSection<'_>, vocab_size: u32) -> Result<(), BlobError> {
    let n = (u.offsets.len() / 4).saturating_sub(1);
    if !u.offsets.len().is_multiple_of(4) || n == 0 || n > vocab_size as usize {
        return Err(vocab_err(
            "unigram offset table length is not pieces + 1 (<= vocab_size + 1)",
        ));
    }
    if u.sorted_ids.len() != n * 4 {
        return Err(vocab_err(
            "unigram sorted index length is not the number of pieces",
        ));
    }
    if u.scores.len() != n * 4 {
        return Err(vocab_err(
            "unigram score table length is not the number of pieces",
        ));
    }
    let text =
        core::str::from_utf8(u.pieces).map_err(|_| vocab_err("unigram pieces are not UTF-8"))?;
    let mut prev = 0usize;
    for i in 0..=n {
        let off = u32_at(u.offsets, i).ok_or(vocab_err("offset table truncated"))? as usize;
        if off < prev || off > text.len() || !text.is_char_boundary(off) || (i == 0 && off != 0) {
            return Err(vocab_err(
                "unigram offsets are not increasing UTF-8 boundaries from 0",
            ));
        }
        prev = off;
    }
    if prev != text.len() {
        return Err(vocab_err(
            "last unigram offset is not the end of the piece bytes",
        ));
    }
    let piece = |id: u32| -> Option<&[u8]> {
        let a = u32_at(u.offsets, id as usize)? as usize;
        let b = u32_at(u.offsets, id as usize + 1)? as usize;
        u.pieces.get(a..b)
    };
    let mut last: Option<&[u8]> = None;
    for i in 0..n {
        let id = u32_at(u.sorted_ids, i).ok_or(vocab_err("sorted index truncated"))?;
        let p = piece(id).ok_or(vocab_err("unigram sorted index holds a bad id"))?;
        if p.is_empty() || last.is_some_and(|l| l >= p) {
            return Err(vocab_err(
                "unigram sorted index is not strictly increasing non-empty pieces",
            ));
        }
        last = Some(p);
    }
    for id in [u.unk_id, u.bos_id, u.eos_id, u.pad_id, u.mask_id] {
        if id as usize >= n {
            return Err(vocab_err("a unigram special id is past the pieces"));
        }
    }
    let trie_len = u32_at(u.charsmap, 0).ok_or(vocab_err("charsmap has no trie length"))? as usize;
    let pool = u
        .charsmap
        .get(4..)
        .and_then(|r| r.get(trie_len..))
        .filter(|_| trie_len.is_multiple_of(4))
        .ok_or(vocab_err(
            "charsmap trie length is not a multiple of 4 inside the section",
        ))?;
    core::str::from_utf8(pool).map_err(|_| vocab_err("charsmap replacements are not UTF-8"))?;
    Ok(())
}

fn provenance_err(reason: &'static str) -> BlobError {
    BlobError::BadProvenance { reason }
}

/// A non-empty string without control characters.
fn printable(s: &str, reason: &'static str) -> Result<(), BlobError> {
    if s.is_empty() || s.chars().any(char::is_control) {
        return Err(provenance_err(reason));
    }
    Ok(())
}

/// One entry per layer and quantised input, each a known format code with an offset only
/// for the unsigned format (non-negative, below 2^24 in Q.16, i.e. 256).
pub(super) fn numerics(n: &NumericsSection<'_>, c: &Config) -> Result<(), BlobError> {
    let entries = (c.num_hidden_layers as usize) * QuantizedInput::ALL.len();
    let expected = entries * NUMERICS_ENTRY_LEN;
    if n.inputs.len() != expected {
        return Err(BlobError::WrongShape {
            tensor: "numerics",
            expected,
            found: n.inputs.len(),
        });
    }
    for (index, e) in n.inputs.chunks_exact(NUMERICS_ENTRY_LEN).enumerate() {
        let offset = i32::from_le_bytes([e[1], e[2], e[3], e[4]]);
        let ok = match e[0] {
            0 | 1 => offset == 0,
            2 => (0..1 << 24).contains(&offset),
            _ => false,
        };
        if !ok {
            return Err(BlobError::BadValue {
                tensor: "numerics",
                index,
            });
        }
    }
    Ok(())
}

/// Provenance strings are non-empty and printable (so reports can show them as they are),
/// and every settings line is `key=value` with a key of lower-case ASCII letters, digits
/// and `_`.
pub(super) fn provenance(p: &Provenance<'_>) -> Result<(), BlobError> {
    if let Some(pkg) = &p.package {
        printable(pkg.registry, "package registry is empty or unprintable")?;
        printable(pkg.name, "package name is empty or unprintable")?;
        printable(pkg.version, "package version is empty or unprintable")?;
    }
    printable(p.checkpoint, "checkpoint is empty or unprintable")?;
    printable(p.converter, "converter is empty or unprintable")?;
    printable(
        p.converter_version,
        "converter version is empty or unprintable",
    )?;
    if let Some(commit) = p.converter_commit {
        printable(commit, "converter commit is empty or unprintable")?;
    }
    if let Some(l) = &p.licence {
        printable(l.name, "licence is empty or unprintable")?;
        printable(l.source, "licence source is empty or unprintable")?;
    }
    for line in p.settings.split('\n') {
        let Some((key, value)) = line.split_once('=') else {
            return Err(provenance_err("a settings line is not `key=value`"));
        };
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(provenance_err(
                "a settings key is not lower-case ASCII letters, digits and `_`",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(provenance_err("a settings value is unprintable"));
        }
    }
    Ok(())
}

fn bad_head(reason: &'static str) -> BlobError {
    BlobError::BadHead { reason }
}

/// The pooler is hidden x hidden; a classifier has `1..=hidden` rows of `hidden` inputs; a
/// sequence classifier has a pooler; labels name every classifier row, each non-empty and
/// printable.
pub(super) fn task_heads(h: &TaskHeads<'_>, c: &Config) -> Result<(), BlobError> {
    let d = c.hidden_size;
    if let Some(p) = &h.pooler {
        dense(p, "pooler.dense", d, d)?;
    }
    let Some((kind, classifier)) = &h.classifier else {
        if h.labels.is_some() {
            return Err(bad_head("labels without a classifier"));
        }
        return Ok(());
    };
    let labels = classifier.weight.shape[0];
    if labels == 0 || labels > d {
        return Err(bad_head("a classifier needs 1 to hidden_size labels"));
    }
    dense(classifier, "classifier", labels, d)?;
    if *kind == super::format::ClassifierKind::Sequence && h.pooler.is_none() {
        return Err(bad_head("a sequence classifier needs the pooler section"));
    }
    if let Some(names) = h.labels {
        if names.split('\n').count() != labels as usize {
            return Err(bad_head(
                "the number of labels differs from the classifier's rows",
            ));
        }
        if names
            .split('\n')
            .any(|n| n.is_empty() || n.chars().any(char::is_control))
        {
            return Err(bad_head("a label is empty or holds a control character"));
        }
    }
    Ok(())
}

/// The pieces decode into a valid [`Template`](crate::tokenizer::Template) whose special
/// ids are in the vocabulary.
pub(super) fn template(
    t: &TemplateSection<'_>,
    c: &Config,
) -> Result<crate::tokenizer::Template, BlobError> {
    use crate::tokenizer::{MAX_TEMPLATE_PIECES, Piece, Template, TemplatePiece};
    let bad = |reason| BlobError::BadVocab { reason };
    if !t.pieces.len().is_multiple_of(TEMPLATE_PIECE_LEN)
        || t.pieces.len() > MAX_TEMPLATE_PIECES * TEMPLATE_PIECE_LEN
    {
        return Err(bad(
            "pair template length is not a whole number of pieces (at most 8)",
        ));
    }
    let filler = TemplatePiece {
        piece: Piece::First,
        type_id: 0,
    };
    let mut pieces = [filler; MAX_TEMPLATE_PIECES];
    let mut n = 0;
    for (slot, raw) in pieces
        .iter_mut()
        .zip(t.pieces.chunks_exact(TEMPLATE_PIECE_LEN))
    {
        let &[kind, type_id, a, b, c0, d] = raw else {
            return Err(bad("pair template piece is cut short"));
        };
        let id = u32::from_le_bytes([a, b, c0, d]);
        let piece = match kind {
            0 if id == 0 => Piece::First,
            1 if id == 0 => Piece::Second,
            2 if id < c.vocab_size => Piece::Special(id),
            _ => return Err(bad("pair template piece has a bad kind or id")),
        };
        if u32::from(type_id) >= c.type_vocab_size {
            return Err(bad("pair template token type is not below type_vocab_size"));
        }
        *slot = TemplatePiece {
            piece,
            type_id: u32::from(type_id),
        };
        n += 1;
    }
    Template::new(pieces.get(..n).unwrap_or_default())
        .map_err(|_| bad("pair template needs each sequence once, the first one first"))
}
