//! The `microbert` command: sentence embeddings, tokenization and blob inspection on the
//! host, with the integer-only runtime.
//!
//! ```text
//! microbert embed --model minilm.blob < texts.txt      # one JSON object per input line
//! microbert tokenize --model minilm.blob < texts.txt   # {"ids": [...]} per line
//! microbert inspect minilm.blob                        # config, tensors, checksum
//! microbert inspect minilm.blob --fit --tokens 128      # flash and RAM a device needs
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microbert::blob::{self, ModelView, Pooling, PositionMode};
use microbert::{EmbedOptions, Encoder, Progress, Tokenizer};
use microbert_host::HostKernels;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "microbert",
    version,
    about = "Integer-only int8 BERT inference: embeddings, tokenization, blob inspection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts: reads UTF-8 texts, one per line, on stdin (or one document with
    /// --file) and prints one JSON object per text: tokens, truncated, embedding.
    Embed(EmbedArgs),
    /// Tokenize texts (one per line on stdin) and print {"ids": [...]} per line, with
    /// [CLS] and [SEP], never truncated.
    Tokenize {
        /// The model blob (`cargo xtask convert` writes one).
        #[arg(long)]
        model: PathBuf,
    },
    /// Print a blob's sections, config, tokenizer settings, provenance (where the model
    /// came from, how it was converted, its licence), its tensor table with sizes, and
    /// whether its checksum holds.
    Inspect {
        /// The model blob.
        blob: PathBuf,
        /// Also print what a device needs to run this blob at --tokens N: flash for the
        /// blob, RAM for the scratch arena (embeddings, and MLM logits when the blob has an
        /// MLM head) and for the prepared weights of each backend.
        #[arg(long, requires = "tokens")]
        fit: bool,
        /// The sequence length --fit sizes the arena for ([CLS] and [SEP] included).
        #[arg(long, value_name = "N", requires = "fit")]
        tokens: Option<usize>,
    },
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// The model blob (`cargo xtask convert` writes one).
    #[arg(long)]
    model: PathBuf,
    /// Embed the whole file as one text instead of reading lines from stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Truncate each text to at most N tokens, [CLS] and [SEP] included (at least 2).
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Pooling; defaults to the one stored in the blob.
    #[arg(long)]
    pooling: Option<PoolingArg>,
    /// Position mode; defaults to the blob's. `hierarchical` reads up to 512 x 512 tokens
    /// with a 512-position model; `absolute` truncates at the trained table.
    #[arg(long)]
    positions: Option<PositionsArg>,
    /// Add "hash": FNV-1a 64 of the pooled fixed-point vector's little-endian bytes.
    #[arg(long)]
    hash: bool,
    /// Kernels: `auto` picks AVX2 when the CPU has it (else scalar); `scalar` forces the
    /// reference. Both give bit-identical results.
    #[arg(long, value_enum, default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}

#[derive(Clone, Copy, ValueEnum)]
enum KernelsArg {
    Auto,
    Scalar,
}

#[derive(Clone, Copy, ValueEnum)]
enum PositionsArg {
    Absolute,
    Hierarchical,
}

fn read_blob(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read blob {}", path.display()))
}

fn parse_model<'a>(path: &Path, bytes: &'a [u8]) -> Result<ModelView<'a>> {
    blob::parse(bytes).with_context(|| format!("{} is not a valid model blob", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => embed(&args),
        Command::Tokenize { model } => tokenize(&model),
        Command::Inspect { blob, fit, tokens } => inspect(&blob, tokens.filter(|_| fit)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("microbert: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the texts to process: the file as one text, or stdin line by line.
fn for_each_text(file: Option<&Path>, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
        return f(1, &text);
    }
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.with_context(|| format!("stdin line {} is not UTF-8 text", i + 1))?;
        f(i + 1, &line)?;
    }
    Ok(())
}

fn embed(args: &EmbedArgs) -> Result<()> {
    let bytes = read_blob(&args.model)?;
    let model = parse_model(&args.model, &bytes)?;
    let tokenizer = Tokenizer::new(&model);
    let kernels = match args.kernels {
        // The dense weights packed once for the AVX2 GEMM (no-op on the scalar backend).
        KernelsArg::Auto => HostKernels::detect().pack_model(&model),
        KernelsArg::Scalar => HostKernels::scalar(),
    };
    let mut encoder = Encoder::new(&model, kernels);
    match args.positions {
        Some(PositionsArg::Absolute) => encoder = encoder.with_positions(PositionMode::Absolute),
        Some(PositionsArg::Hierarchical) => {
            encoder = encoder.with_positions(PositionMode::Hierarchical);
        }
        None => {}
    }
    let model_max = encoder.max_tokens();
    let limit = match args.max_tokens {
        Some(n) if n < 2 => bail!("--max-tokens must be at least 2 ([CLS] and [SEP])"),
        Some(n) => n.min(model_max),
        None => model_max,
    };
    let pooling = match args.pooling {
        Some(PoolingArg::Mean) => Pooling::Mean,
        Some(PoolingArg::Cls) => Pooling::Cls,
        None => model.config.pooling,
    };
    let d = model.config.hidden_size as usize;
    let mut ids = vec![0u32; limit];
    let mut arena: Vec<u32> = Vec::new();
    let mut pooled = vec![0i32; d];
    let mut embedding = vec![0f32; d];
    let mut out = BufWriter::new(std::io::stdout().lock());
    for_each_text(args.file.as_deref(), |line, text| {
        let enc = tokenizer.encode(text, &mut ids)?;
        if enc.truncated {
            let why = if args.max_tokens.is_some_and(|n| n < model_max) {
                "--max-tokens"
            } else if matches!(args.positions, Some(PositionsArg::Absolute)) {
                "--positions absolute reads only the trained position table"
            } else {
                "the model's position limit"
            };
            eprintln!(
                "microbert: note: text {line} has {} tokens, truncated to {} ({why})",
                enc.total, enc.len
            );
        }
        let needed = microbert::scratch_bytes(&model, enc.len).div_ceil(4);
        if arena.len() < needed {
            arena.resize(needed, 0);
        }
        let ids = ids.get(..enc.len).unwrap_or_default();
        let mut bar = LazyBar::new();
        let options = EmbedOptions {
            pooling: Some(pooling),
            progress: Some(&mut |p| bar.update(p)),
            ..EmbedOptions::default()
        };
        encoder
            .embed_with(ids, options, microbert::arena(&mut arena), &mut pooled)
            .with_context(|| format!("text {line}"))?;
        bar.finish();
        microbert::output::normalize(&pooled, &mut embedding);
        let line = EmbedLine {
            tokens: enc.len,
            truncated: enc.truncated,
            hash: args
                .hash
                .then(|| format!("{:016x}", microbert::output::hash(&pooled))),
            embedding: &embedding,
        };
        serde_json::to_writer(&mut out, &line)?;
        writeln!(out)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// A progress bar on stderr that appears only once a text has taken more than a second.
struct LazyBar {
    start: Instant,
    bar: Option<ProgressBar>,
}

impl LazyBar {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            bar: None,
        }
    }

    fn update(&mut self, p: Progress) {
        if self.bar.is_none() && self.start.elapsed() > Duration::from_secs(1) {
            let bar =
                ProgressBar::with_draw_target(Some(p.total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} [{bar:40}] {percent:>3}% eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(p.done as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One line of `embed` output. f32 values print in their shortest round-trip form.
#[derive(serde::Serialize)]
struct EmbedLine<'a> {
    tokens: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    embedding: &'a [f32],
}

fn tokenize(model_path: &Path) -> Result<()> {
    let bytes = read_blob(model_path)?;
    let model = parse_model(model_path, &bytes)?;
    let tokenizer = Tokenizer::new(&model);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut ids = Vec::new();
    for_each_text(None, |_, text| {
        ids.resize(tokenizer.count(text), 0);
        let enc = tokenizer.encode(text, &mut ids)?;
        let ids = ids.get(..enc.len).unwrap_or_default();
        writeln!(out, "{}", serde_json::json!({ "ids": ids }))?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

fn inspect(path: &Path, fit_tokens: Option<usize>) -> Result<()> {
    let bytes = read_blob(path)?;
    match blob::parse_header(&bytes) {
        Ok(h) => println!(
            "blob: {} ({} bytes), format version {}, checksum {:#018x}: holds",
            path.display(),
            h.total_len,
            h.version,
            h.checksum
        ),
        Err(microbert::BlobError::ChecksumMismatch { expected, actual }) => {
            println!(
                "blob: {} ({} bytes), checksum {expected:#018x}: DOES NOT HOLD (computed {actual:#018x})",
                path.display(),
                bytes.len()
            );
            bail!("{} is corrupt (checksum mismatch)", path.display());
        }
        Err(e) => bail!("{} is not a valid model blob: {e}", path.display()),
    }
    let model = parse_model(path, &bytes)?;
    if model.header.version >= 2 {
        println!("sections:");
        println!(
            "  {:>5} {:<20} {:<9} {:>10} {:>10}",
            "kind", "name", "flags", "offset", "bytes"
        );
        for section in blob::sections(&bytes) {
            let s = section?;
            println!(
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
            );
        }
    }
    let c = &model.config;
    let t = &model.tokenizer;
    println!("config:");
    println!("  vocab_size               {}", c.vocab_size);
    println!("  hidden_size              {}", c.hidden_size);
    println!("  num_hidden_layers        {}", c.num_hidden_layers);
    println!("  num_attention_heads      {}", c.num_attention_heads);
    println!("  intermediate_size        {}", c.intermediate_size);
    println!("  max_position_embeddings  {}", c.max_position_embeddings);
    println!("  type_vocab_size          {}", c.type_vocab_size);
    println!("  pooling                  {:?}", c.pooling);
    println!(
        "  position_mode            {:?} (alpha {:.4}, max tokens {})",
        c.position_mode,
        f64::from(c.position_alpha_q16) / 65536.0,
        model.max_tokens()
    );
    println!(
        "  layer_norm_eps           {:e}",
        c.layer_norm_eps_q32 as f64 / 4_294_967_296.0
    );
    println!(
        "  mlm head                 {}",
        if model.head.mlm.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    println!("tokenizer:");
    println!(
        "  lowercase {} strip_accents {} clean_text {} chinese_chars {} max_chars/word {} subword prefix {:?}",
        t.lowercase,
        t.strip_accents,
        t.clean_text,
        t.handle_chinese_chars,
        t.max_input_chars_per_word,
        t.continuing_subword_prefix
    );
    println!(
        "  special ids: [UNK] {} [CLS] {} [SEP] {} [PAD] {} [MASK] {}",
        t.unk_id, t.cls_id, t.sep_id, t.pad_id, t.mask_id
    );
    match &model.provenance {
        Some(p) => println!("provenance:\n{p}"),
        None if model.header.version == 1 => {
            println!("provenance: none (format 1 blobs have no provenance section)");
        }
        None => println!("provenance: none (the blob has no provenance section)"),
    }
    println!("tensors:");
    println!(
        "  {:<58} {:>5} {:>14} {:>10}",
        "name", "type", "shape", "bytes"
    );
    let (mut count, mut total) = (0usize, 0usize);
    model.for_each_tensor(|tensor| {
        count += 1;
        total += tensor.data.len();
        println!(
            "  {:<58} {:>5} {:>14} {:>10}",
            tensor.name,
            tensor.dtype.name(),
            format!("{}x{}", tensor.shape[0], tensor.shape[1]),
            tensor.data.len()
        );
    });
    println!("{count} tensors, {total} bytes of tensor data");
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
    let packed = avx2_prepared_weight_bytes(&model);
    let row = |what: &str, bytes: usize, note: &str| {
        println!(
            "  {what:<42} {bytes:>12} B {:>9.2} MiB  {note}",
            bytes as f64 / f64::from(1 << 20)
        );
    };
    println!("fit at {n} tokens (the blob reads up to {max}):");
    row("flash: blob", bytes.len(), "read in place");
    row(
        "RAM: scratch arena, embed",
        embed_arena,
        "microbert::scratch_bytes",
    );
    if let Some(m) = mlm_arena {
        row(
            "RAM: scratch arena, MLM logits",
            m,
            "mlm_scratch_bytes (the blob has an MLM head)",
        );
    }
    row(
        "RAM: prepared weights, scalar/NEON/RVV",
        0,
        "they read the weights in the blob",
    );
    row(
        "RAM: prepared weights, host AVX2",
        packed,
        "int8 dense weights in panels of 16 channels x even depth",
    );
    row("RAM: total, scalar/NEON/RVV", arena, "the larger arena");
    row(
        "RAM: total, host AVX2",
        arena.saturating_add(packed),
        "the larger arena + prepared weights",
    );
    Ok(())
}

/// Bytes of the packed weight copy `HostKernels::pack_model` makes for the AVX2 GEMM: every
/// dense weight of the encoder (and, with an MLM head, its transform and the word table the
/// decoder reads), each `n` channels x `depth` int8 rounded up to whole panels of 16
/// channels and an even depth (`avx2/packed.rs`). Scalar, NEON and RVV prepare nothing.
fn avx2_prepared_weight_bytes(model: &ModelView<'_>) -> usize {
    const PANEL_CHANNELS: usize = 16;
    let packed = |t: &blob::Tensor<'_>| {
        let [n, depth] = t.shape.map(|x| x as usize);
        n.div_ceil(PANEL_CHANNELS) * PANEL_CHANNELS * depth.div_ceil(2) * 2
    };
    let mut total = 0usize;
    for layer in model.layers() {
        for dense in [
            &layer.query,
            &layer.key,
            &layer.value,
            &layer.attention_output,
            &layer.intermediate,
            &layer.output,
        ] {
            total += packed(&dense.weight);
        }
    }
    if let Some(mlm) = &model.head.mlm {
        total += packed(&mlm.transform.weight) + packed(&model.embeddings.word.weight);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_prepared_weights_of_the_tiny_fixture() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures/tiny/model.blob");
        let bytes = std::fs::read(path).unwrap();
        let model = blob::parse(&bytes).unwrap();
        // Hidden 32, FFN 64, 2 layers, MLM head, 222 tokens. Per layer: Q, K, V and the
        // attention output 32 x 32 (2 panels x 32 depth), FFN1 64 x 32 (4 x 32), FFN2 32 x 64
        // (2 x 64); the MLM transform 32 x 32 and the word table 222 x 32 (14 panels x 32).
        let layer = 4 * 2 * 16 * 32 + 4 * 16 * 32 + 2 * 16 * 64;
        let want = 2 * layer + 2 * 16 * 32 + 14 * 16 * 32;
        assert_eq!(avx2_prepared_weight_bytes(&model), want);
    }
}
