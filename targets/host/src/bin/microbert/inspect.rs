//! `microbert inspect`: a blob's config, its tensor table with sizes, and whether its
//! checksum holds.

use crate::batch::{Outcome, Output, Report};
use crate::{Finish, parse_model, read_blob};
use anyhow::{Result, bail};
use core::fmt::Write as _;
use microbert::blob;
use microbert::kernels::Kernels as _;
use microbert::model::parallel::Parallel as _;
use microbert_host::{HostKernels, Threads, Tier};
use std::path::Path;

/// `microbert inspect [BLOB] [--cpu]`.
pub(crate) fn run(path: Option<&Path>, cpu: bool, fit_tokens: Option<usize>) -> Result<Finish> {
    let mut o = String::new();
    if cpu {
        describe_cpu(&mut o)?;
    }
    let corrupt = match path {
        Some(path) => {
            let bytes = read_blob(path)?;
            describe(path, &bytes, fit_tokens, &mut o)
        }
        None => Ok(()),
    };
    // What was found is printed before the error (a checksum that does not hold).
    let mut out = Output::new(std::io::stdout().lock());
    if out.text(&o)?.is_err() || out.flush()?.is_err() {
        return Ok(Finish::Closed);
    }
    corrupt?;
    Ok(Finish::from(Outcome::Done(Report::default())))
}

/// The CPU, its features, the tiers it runs and the one `--kernels auto` picks.
fn describe_cpu(o: &mut String) -> Result<()> {
    writeln!(o, "cpu: {}", microbert_host::cpu::model_name())?;
    writeln!(o, "features: {}", microbert_host::cpu::features_line())?;
    writeln!(o, "tiers:")?;
    for tier in Tier::ALL {
        let geometry = tier.geometry().map_or(String::from("reference"), |g| {
            format!("{} x {} tiles, {} depths per step", g.mr, g.nr, g.ku)
        });
        writeln!(
            o,
            "  {:<12} {:<13} needs {:<36} {geometry}",
            tier.name(),
            if tier.supported() {
                "runs here"
            } else {
                "not this CPU"
            },
            if tier.features().is_empty() {
                "nothing".to_owned()
            } else {
                tier.features().join(" ")
            },
        )?;
    }
    writeln!(
        o,
        "chosen (--kernels auto): {}",
        HostKernels::detect().tier()
    )?;
    Ok(())
}

/// Writes the description of the blob to `o` (with what a device needs at `fit_tokens`);
/// an error when it is not a valid blob.
fn describe(path: &Path, bytes: &[u8], fit_tokens: Option<usize>, o: &mut String) -> Result<()> {
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
    if model.header.version >= 2 {
        writeln!(o, "sections:")?;
        writeln!(
            o,
            "  {:>5} {:<20} {:<9} {:>10} {:>10}",
            "kind", "name", "flags", "offset", "bytes"
        )?;
        for section in blob::sections(bytes) {
            let s = section?;
            writeln!(
                o,
                "  {:>5} {:<20} {:<9} {:>10} {:>10}",
                s.header.kind,
                s.kind().map_or("(unknown, skipped)", |k| k.name()),
                if s.header.required() {
                    "required"
                } else {
                    "optional"
                },
                s.offset,
                s.payload.len()
            )?;
        }
    }
    let c = &model.config;
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
    if let Some(t) = &model.tokenizer {
        writeln!(
            o,
            "  WordPiece: lowercase {} strip_accents {} clean_text {} chinese_chars {} max_chars/word {} subword prefix {:?}",
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
    }
    if let Some(u) = &model.unigram {
        writeln!(
            o,
            "  SentencePiece Unigram: {} pieces, charsmap {} bytes",
            (u.offsets.len() / 4).saturating_sub(1),
            u.charsmap.len()
        )?;
        writeln!(
            o,
            "  special ids: <unk> {} <s> {} </s> {} <pad> {} <mask> {}",
            u.unk_id, u.bos_id, u.eos_id, u.pad_id, u.mask_id
        )?;
    }
    match &model.provenance {
        Some(p) => writeln!(o, "provenance:\n{p}")?,
        None if model.header.version == 1 => {
            writeln!(
                o,
                "provenance: none (format 1 blobs have no provenance section)"
            )?;
        }
        None => writeln!(o, "provenance: none (the blob has no provenance section)")?,
    }
    writeln!(o, "tensors:")?;
    writeln!(
        o,
        "  {:<58} {:>5} {:>14} {:>10}",
        "name", "type", "shape", "bytes"
    )?;
    let (mut count, mut total) = (0usize, 0usize);
    model.for_each_tensor(|tensor| {
        count += 1;
        total += tensor.data.len();
        writeln!(
            o,
            "  {:<58} {:>5} {:>14} {:>10}",
            tensor.name,
            tensor.dtype.name(),
            format!("{}x{}", tensor.shape[0], tensor.shape[1]),
            tensor.data.len()
        )
        .ok();
    });
    writeln!(o, "{count} tensors, {total} bytes of tensor data")?;
    let Some(n) = fit_tokens else {
        return Ok(());
    };
    let max = model.max_tokens();
    if n == 0 || n > max {
        bail!(
            "--tokens {n}: the blob reads 1 to {max} tokens (position mode {:?})",
            c.position_mode
        );
    }
    let embed_arena = microbert::scratch_bytes(&model, n);
    let mlm_arena = model
        .head
        .mlm
        .map(|_| microbert::model::scratch::mlm_scratch_bytes(&model, n));
    if embed_arena == usize::MAX || mlm_arena == Some(usize::MAX) {
        bail!("--tokens {n}: the scratch arena size overflows");
    }
    let arena = embed_arena.max(mlm_arena.unwrap_or(0));
    // The host AVX2 backend prepares panels of its GEMM (`microbert::prepared_bytes`); the
    // scalar, NEON and RVV backends read the blob's weights in place.
    let packed = HostKernels::avx2().map(|k| microbert::prepared_bytes(&k, &model));
    let mut rows: Vec<(&str, Option<usize>, &str)> = vec![
        ("flash: blob", Some(bytes.len()), "read in place"),
        (
            "RAM: scratch arena, embed, one thread",
            Some(embed_arena),
            "microbert::scratch_bytes",
        ),
    ];
    if let Some(m) = mlm_arena {
        rows.push((
            "RAM: scratch arena, MLM logits",
            Some(m),
            "mlm_scratch_bytes (the blob has an MLM head)",
        ));
    }
    rows.extend([
        (
            "RAM: prepared weights, scalar/NEON/RVV",
            Some(0),
            "they read the weights in the blob",
        ),
        (
            "RAM: prepared weights, host AVX2",
            packed,
            "panels of 16 channels x even depth (microbert::prepared_bytes)",
        ),
        (
            "RAM: total, scalar/NEON/RVV",
            Some(arena),
            "the larger arena",
        ),
        (
            "RAM: total, host AVX2",
            packed.map(|p| arena.saturating_add(p)),
            "the larger arena + prepared weights",
        ),
    ]);
    // What `microbert embed` allocates here: the detected tier's prepared weights, and
    // its arena with a block's buffers per thread and each head's keys and values packed
    // once per layer (`Encoder::plan`), which `scratch_bytes` (one worker) leaves out.
    let host = HostKernels::detect();
    let threads = Threads::available();
    let workers = threads.workers();
    let host_arena = microbert::Encoder::new(&model, host)
        .with_parallel(threads)
        .plan(n)
        .arena_bytes();
    let host_prepared = microbert::prepared_bytes(&host, &model);
    let host_total = (host_arena != usize::MAX && host_prepared != usize::MAX)
        .then(|| host_arena.saturating_add(host_prepared));
    let host_rows = [
        (
            format!("RAM: arena, this host ({}, {workers} threads)", host.name()),
            Some(host_arena).filter(|&b| b != usize::MAX),
            "Encoder::plan: per-thread blocks, packed keys and values",
        ),
        (
            format!("RAM: prepared weights, this host ({})", host.name()),
            Some(host_prepared).filter(|&b| b != usize::MAX),
            "microbert::prepared_bytes",
        ),
        (
            "RAM: total, this host".to_string(),
            host_total,
            "what `microbert embed` allocates (peak RSS adds the binary and the blob pages read)",
        ),
    ];
    let rows = rows
        .into_iter()
        .map(|(what, bytes, note)| (what.to_string(), bytes, note))
        .chain(host_rows);
    writeln!(o, "fit at {n} tokens (the blob reads up to {max}):")?;
    for (what, bytes, note) in rows {
        match bytes {
            Some(b) => writeln!(
                o,
                "  {what:<42} {b:>12} B {:>9.2} MiB  {note}",
                b as f64 / f64::from(1 << 20)
            )?,
            None => writeln!(o, "  {what:<42} {:>12}    (this CPU has no AVX2)", "-")?,
        }
    }
    Ok(())
}
