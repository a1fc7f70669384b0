//! `microbert inspect`: a blob's config, its tensor table with sizes, and whether its
//! checksum holds.

use crate::batch::{Outcome, Output, Report};
use crate::{Finish, parse_model, read_blob};
use anyhow::{Result, bail};
use core::fmt::Write as _;
use microbert::blob;
use std::path::Path;

/// `microbert inspect BLOB`.
pub(crate) fn run(path: &Path) -> Result<Finish> {
    let bytes = read_blob(path)?;
    let mut o = String::new();
    let corrupt = describe(path, &bytes, &mut o);
    // What was found is printed before the error (a checksum that does not hold).
    let mut out = Output::new(std::io::stdout().lock());
    if out.text(&o)?.is_err() || out.flush()?.is_err() {
        return Ok(Finish::Closed);
    }
    corrupt?;
    Ok(Finish::from(Outcome::Done(Report::default())))
}

/// Writes the description of the blob to `o`; an error when it is not a valid blob.
fn describe(path: &Path, bytes: &[u8], o: &mut String) -> Result<()> {
    match blob::parse_header(bytes) {
        Ok(h) => writeln!(
            o,
            "blob: {} ({} bytes), format version {}, checksum {:#018x}: holds",
            path.display(),
            h.total_len,
            h.version,
            h.checksum
        )?,
        Err(microbert::BlobError::ChecksumMismatch { expected, actual }) => {
            writeln!(
                o,
                "blob: {} ({} bytes), checksum {expected:#018x}: DOES NOT HOLD (computed {actual:#018x})",
                path.display(),
                bytes.len()
            )?;
            bail!("{} is corrupt (checksum mismatch)", path.display());
        }
        Err(e) => bail!("{} is not a valid model blob: {e}", path.display()),
    }
    let model = parse_model(path, bytes)?;
    let c = &model.config;
    let t = &model.tokenizer;
    writeln!(o, "config:")?;
    writeln!(o, "  vocab_size               {}", c.vocab_size)?;
    writeln!(o, "  hidden_size              {}", c.hidden_size)?;
    writeln!(o, "  num_hidden_layers        {}", c.num_hidden_layers)?;
    writeln!(o, "  num_attention_heads      {}", c.num_attention_heads)?;
    writeln!(o, "  intermediate_size        {}", c.intermediate_size)?;
    writeln!(
        o,
        "  max_position_embeddings  {}",
        c.max_position_embeddings
    )?;
    writeln!(o, "  type_vocab_size          {}", c.type_vocab_size)?;
    writeln!(o, "  pooling                  {:?}", c.pooling)?;
    writeln!(
        o,
        "  position_mode            {:?} (alpha {:.4}, max tokens {})",
        c.position_mode,
        f64::from(c.position_alpha_q16) / 65536.0,
        model.max_tokens()
    )?;
    writeln!(
        o,
        "  layer_norm_eps           {:e}",
        c.layer_norm_eps_q32 as f64 / 4_294_967_296.0
    )?;
    writeln!(
        o,
        "  mlm head                 {}",
        if model.head.mlm.is_some() {
            "yes"
        } else {
            "no"
        }
    )?;
    writeln!(o, "tokenizer:")?;
    writeln!(
        o,
        "  lowercase {} strip_accents {} clean_text {} chinese_chars {} max_chars/word {} subword prefix {:?}",
        t.lowercase,
        t.strip_accents,
        t.clean_text,
        t.handle_chinese_chars,
        t.max_input_chars_per_word,
        t.continuing_subword_prefix
    )?;
    writeln!(
        o,
        "  special ids: [UNK] {} [CLS] {} [SEP] {} [PAD] {} [MASK] {}",
        t.unk_id, t.cls_id, t.sep_id, t.pad_id, t.mask_id
    )?;
    writeln!(o, "tensors:")?;
    writeln!(
        o,
        "  {:<58} {:>5} {:>14} {:>10}",
        "name", "type", "shape", "bytes"
    )?;
    let (mut count, mut total) = (0usize, 0usize);
    let mut written = Ok(());
    model.for_each_tensor(|tensor| {
        count += 1;
        total += tensor.data.len();
        let row = writeln!(
            o,
            "  {:<58} {:>5} {:>14} {:>10}",
            tensor.name,
            tensor.dtype.name(),
            format!("{}x{}", tensor.shape[0], tensor.shape[1]),
            tensor.data.len()
        );
        written = written.and(row);
    });
    written?;
    writeln!(o, "{count} tensors, {total} bytes of tensor data")?;
    Ok(())
}
