//! The `microbert` command: sentence embeddings, tokenization and blob inspection on the
//! host, with the integer-only runtime.
//!
//! ```text
//! microbert embed --model minilm.blob < texts.txt      # one JSON object per input line
//! microbert tokenize --model minilm.blob < texts.txt   # {"ids": [...]} per line
//! microbert inspect minilm.blob                        # config, tensors, checksum
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use core::ops::ControlFlow;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microbert::blob::{self, ModelView, Pooling, PositionMode};
use microbert::{EmbedOptions, Progress, Tokenizer};
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
    /// Print a blob's config, its tensor table with sizes, and whether its checksum holds.
    Inspect {
        /// The model blob.
        blob: PathBuf,
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
        Command::Inspect { blob } => inspect(&blob),
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
        KernelsArg::Auto => HostKernels::detect(),
        KernelsArg::Scalar => HostKernels::scalar(),
    };
    // The dense weights prepared once for the AVX2 GEMM (nothing on the scalar backend).
    let prepared = kernels.prepare_model(&model);
    let mut encoder = prepared.encoder(&model)?;
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
    let mut arena: Vec<u8> = Vec::new();
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
        let needed = microbert::scratch_bytes(&model, enc.len);
        if arena.len() < needed {
            arena.resize(needed, 0);
        }
        let ids = ids.get(..enc.len).unwrap_or_default();
        let mut bar = LazyBar::new();
        let options = EmbedOptions {
            pooling: Some(pooling),
            progress: Some(&mut |p| {
                bar.update(p);
                ControlFlow::Continue(())
            }),
            ..EmbedOptions::default()
        };
        encoder
            .embed_with(ids, options, &mut arena, &mut pooled)
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

fn inspect(path: &Path) -> Result<()> {
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
    Ok(())
}
