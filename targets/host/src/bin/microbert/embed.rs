//! `microbert embed`: one JSON object per text (tokens, truncated, optional hash,
//! the pooled L2-normalised embedding). Texts are tokenized with the blob's tokenizer:
//! WordPiece (BERT), or SentencePiece Unigram (XLM-R models such as multilingual-e5-small,
//! which also want `--prefix "query: "` or `"passage: "`).

use crate::batch::{self, BatchArgs, Outcome, Output, Report};
use crate::{Finish, read_blob};
use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use core::ops::ControlFlow;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use microbert::blob::{ModelView, Pooling, PositionMode};
use microbert::{
    EmbedOptions, Encoder, Encoding, Progress, TokenizeError, Tokenizer, UnigramTokenizer,
};
use microbert_host::{BlobFile, HostKernels, PreparedModel, Threads, Tier};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
#[command(after_help = batch::HELP)]
pub(crate) struct EmbedArgs {
    /// The model blob (`cargo xtask convert` writes one).
    #[arg(long)]
    model: PathBuf,
    /// Embed the whole file as one text instead of reading lines from stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Truncate each text to at most N tokens, [CLS] and [SEP] included (at least 2).
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Text prepended to every input text before tokenizing (and counted in its tokens):
    /// multilingual-e5 expects `--prefix "query: "` for queries and `--prefix "passage: "`
    /// for documents.
    #[arg(long, value_name = "TEXT", default_value = "")]
    prefix: String,
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
    /// Add "token_embeddings": each token's last hidden state ([CLS] and [SEP] included;
    /// not normalised), from the same pass as the sentence embedding. Texts then run one
    /// by one (no packing).
    #[arg(long)]
    tokens: bool,
    /// Kernels: `auto` picks the best tier this CPU has (`microbert inspect --cpu` shows
    /// which); a tier's name forces it (an error when the CPU lacks it). Every tier gives
    /// bit-identical results.
    #[arg(long, value_enum, default_value_t = KernelsArg::Auto)]
    kernels: KernelsArg,
    /// Threads per text (the calling one included); default: the cores this process may
    /// use. Every count gives bit-identical results.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Lines read before embedding: the texts of up to N lines (each of at most 128 tokens;
    /// longer ones run alone) are packed into one pass, which fills the dense layers'
    /// products with short texts; identical results. Output waits for the group: use
    /// `--batch 1` to stream line by line (the default when stdin is a terminal).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    batch_lines: Option<u16>,
    #[command(flatten)]
    batch: BatchArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum KernelsArg {
    /// The best tier this CPU has.
    Auto,
    /// The portable scalar reference.
    Scalar,
    /// AVX2 (`vpmaddwd`).
    Avx2,
    /// AVX-VNNI (`vpdpbusd` on ymm).
    #[value(name = "avx-vnni")]
    AvxVnni,
    /// AVX-512 VNNI (`vpdpbusd` on zmm).
    #[value(name = "avx512-vnni")]
    Avx512Vnni,
    /// AMX-INT8 (`tdpbusd` on tiles) for the int8 GEMM, AVX-512 VNNI for the rest.
    Amx,
}

impl KernelsArg {
    /// The kernels, or an error naming what this CPU lacks.
    pub(crate) fn kernels(self) -> Result<HostKernels> {
        let tier = match self {
            Self::Auto => return Ok(HostKernels::detect()),
            Self::Scalar => Tier::Scalar,
            Self::Avx2 => Tier::Avx2,
            Self::AvxVnni => Tier::AvxVnni,
            Self::Avx512Vnni => Tier::Avx512Vnni,
            Self::Amx => Tier::Amx,
        };
        HostKernels::with_tier(tier).with_context(|| {
            format!(
                "--kernels {tier}: this CPU ({}) lacks one of {}",
                microbert_host::cpu::model_name(),
                tier.features().join(", ")
            )
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PositionsArg {
    Absolute,
    Hierarchical,
}

/// One line of `embed` output. f32 values print in their shortest round-trip form.
#[derive(serde::Serialize)]
struct EmbedLine<'a> {
    tokens: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    embedding: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    token_embeddings: Option<Vec<&'a [f32]>>,
}

/// Lines per group of `--batch-lines` when stdin is not a terminal.
const DEFAULT_BATCH_LINES: usize = 32;

/// Texts of more tokens than this run alone, not packed with others: they fill the row
/// blocks themselves (and show progress).
const PACK_MAX_TOKENS: usize = 128;

/// Texts that were cut to the token limit: how many, and the first.
#[derive(Default)]
struct Truncations {
    count: u64,
    /// Line, tokens in the text, tokens kept.
    first: Option<(u64, usize, usize)>,
}

/// `microbert embed`.
pub(crate) fn run(args: &EmbedArgs) -> Result<Finish> {
    let bytes = read_blob(&args.model)?;
    let model = crate::parse_model(&args.model, &bytes)?;
    let kernels = args.kernels.kernels()?;
    // The dense weights prepared once for the tier's GEMM (nothing on the scalar backend).
    let prepared = kernels.prepare_model(&model);
    bytes.release_pages();
    let mut embedder = Embedder::new(args, &model, &prepared, &bytes)?;
    let mut truncations = Truncations::default();
    let mut note = |n: u64, cut: Option<(usize, usize)>| {
        if let Some((total, kept)) = cut {
            truncations.count += 1;
            truncations.first.get_or_insert((n, total, kept));
        }
    };
    let outcome = if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
        let mut buf = Vec::new();
        let line = embedder
            .embed(&text)
            .with_context(|| format!("{}", path.display()))?;
        note(1, line.cut);
        serde_json::to_writer(&mut buf, &line.json(args.hash))?;
        let mut out = Output::new(std::io::stdout().lock());
        if out.line(&buf)?.is_err() || out.flush()?.is_err() {
            Outcome::Closed
        } else {
            Outcome::Done(Report {
                lines: 1,
                ..Report::default()
            })
        }
    } else {
        let stdin = std::io::stdin();
        let group = match args.batch_lines {
            Some(n) => n.into(),
            None if std::io::IsTerminal::is_terminal(&stdin) => 1,
            None => DEFAULT_BATCH_LINES,
        };
        batch::run_groups(
            stdin.lock(),
            std::io::stdout().lock(),
            args.batch,
            group,
            |lines, results| {
                embedder.embed_group(lines, args.hash, &mut note, results);
            },
        )?
    };
    let mut finish = Finish::from(outcome);
    if let (Some((line, total, kept)), Finish::Done { notes, .. }) =
        (truncations.first, &mut finish)
    {
        let why = embedder.truncation_reason(args);
        notes.push(format!(
            "note: {} {} truncated to the token limit ({why}; first: line {line}, {total} tokens cut to {kept})",
            truncations.count,
            if truncations.count == 1 { "text" } else { "texts" },
        ));
    }
    Ok(finish)
}

/// The blob's tokenizer, with the `--prefix` text and the Unigram tokenizer's scratch.
struct TextTokenizer<'a> {
    wordpiece: Tokenizer<'a>,
    /// Used when the blob has no WordPiece vocabulary.
    unigram: Option<UnigramTokenizer<'a>>,
    prefix: String,
    /// `prefix` + the text being tokenized.
    text: String,
    /// The Unigram tokenizer's scratch (grown to each text's need).
    scratch: Vec<u8>,
}

impl<'a> TextTokenizer<'a> {
    fn new(model: &ModelView<'a>, prefix: &str) -> Self {
        let wordpiece = Tokenizer::new(model);
        let unigram = UnigramTokenizer::new(model).filter(|_| !wordpiece.is_wordpiece());
        Self {
            wordpiece,
            unigram,
            prefix: prefix.to_owned(),
            text: String::new(),
            scratch: Vec::new(),
        }
    }

    /// The ids of `--prefix` + `text` (the model's template around them), truncated to `out`.
    fn encode(&mut self, text: &str, out: &mut [u32]) -> Result<Encoding, TokenizeError> {
        let text = if self.prefix.is_empty() {
            text
        } else {
            self.text.clear();
            self.text.push_str(&self.prefix);
            self.text.push_str(text);
            &self.text
        };
        match &self.unigram {
            None => self.wordpiece.encode(text, out),
            Some(u) => {
                let needed = u.scratch_bytes(text);
                if self.scratch.len() < needed {
                    self.scratch.resize(needed, 0);
                }
                u.encode(text, &mut self.scratch, out)
            }
        }
    }
}

/// The model, kernels and buffers of one run.
struct Embedder<'m, 'a> {
    tokenizer: TextTokenizer<'a>,
    encoder: Encoder<'m, 'a, HostKernels, Threads>,
    pooling: Pooling,
    model_max: usize,
    ids: Vec<u32>,
    arena: Vec<u8>,
    pooled: Vec<i32>,
    embedding: Vec<f32>,
    /// With `--tokens`: the last hidden states of the text, `[n, d]`.
    token_states: Option<Vec<f32>>,
    /// A group's short texts (ids), their lines' places in the group, and their vectors.
    packed: Vec<Vec<u32>>,
    packed_at: Vec<(usize, Option<(usize, usize)>)>,
    packed_pooled: Vec<i32>,
    /// The blob's pages, handed back to the kernel during long texts
    /// ([`RELEASE_PAGES_FROM`]).
    blob: &'a BlobFile,
}

/// Texts of at least this many tokens hand the blob's pages back to the kernel once per
/// layer ([`BlobFile::release_pages`]) while they are encoded. The embedding lookup at the
/// start touches the rows of every distinct token, and each fault maps the 64 KiB around
/// it from the page cache (the kernel's fault-around): at 16,384 tokens of prose that is
/// 10.7 of the table's 11.5 MiB, which would otherwise stay resident through every layer,
/// beside the arena. Shorter texts keep them (the next text reads the same rows).
const RELEASE_PAGES_FROM: usize = 2048;

/// Makes `arena` at least `needed` bytes. A larger arena is a fresh zeroed allocation (the
/// old one freed first), not `resize`: the allocator's zeroed pages cost no memory until
/// the encoder writes them, where `resize` would write (and so make resident) every byte
/// at once, before the embedding lookup. The encoder needs no particular contents.
fn grow_arena(arena: &mut Vec<u8>, needed: usize) {
    if arena.len() < needed {
        *arena = Vec::new();
        *arena = vec![0u8; needed];
    }
}

/// One embedded text.
struct Embedded<'a> {
    tokens: usize,
    /// `(tokens in the text, tokens kept)` when it was truncated.
    cut: Option<(usize, usize)>,
    pooled: &'a [i32],
    embedding: &'a [f32],
    /// `[n, d]` token states (`--tokens`).
    token_states: Option<&'a [f32]>,
}

impl Embedded<'_> {
    fn json(&self, hash: bool) -> EmbedLine<'_> {
        let d = self.embedding.len().max(1);
        EmbedLine {
            tokens: self.tokens,
            truncated: self.cut.is_some(),
            hash: hash.then(|| format!("{:016x}", microbert::output::hash(self.pooled))),
            embedding: self.embedding,
            token_embeddings: self.token_states.map(|t| t.chunks_exact(d).collect()),
        }
    }
}

impl<'m, 'a> Embedder<'m, 'a> {
    fn new(
        args: &EmbedArgs,
        model: &'m ModelView<'a>,
        prepared: &'m PreparedModel,
        blob: &'a BlobFile,
    ) -> Result<Self> {
        let threads = args
            .threads
            .map_or_else(Threads::available, |n| Threads::new(n.into()));
        let mut encoder = prepared.encoder(model)?.with_parallel(threads);
        match args.positions {
            Some(PositionsArg::Absolute) => {
                encoder = encoder.with_positions(PositionMode::Absolute);
            }
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
        Ok(Self {
            tokenizer: TextTokenizer::new(model, &args.prefix),
            encoder,
            pooling,
            model_max,
            ids: vec![0u32; limit],
            arena: Vec::new(),
            pooled: vec![0i32; d],
            embedding: vec![0f32; d],
            token_states: args.tokens.then(Vec::new),
            packed: Vec::new(),
            packed_at: Vec::new(),
            packed_pooled: Vec::new(),
            blob,
        })
    }

    /// Why texts are cut, for the truncation note.
    fn truncation_reason(&self, args: &EmbedArgs) -> &'static str {
        if args.max_tokens.is_some_and(|n| n < self.model_max) {
            "--max-tokens"
        } else if matches!(args.positions, Some(PositionsArg::Absolute)) {
            "--positions absolute reads only the trained position table"
        } else {
            "the model's position limit"
        }
    }

    /// Embeds a group of lines, pushing one JSON line (or error) per line: texts of at most
    /// [`PACK_MAX_TOKENS`] tokens in one packed pass, longer ones alone. `note(line, cut)`
    /// hears of each truncation.
    fn embed_group(
        &mut self,
        lines: &[(u64, &str)],
        hash: bool,
        note: &mut impl FnMut(u64, Option<(usize, usize)>),
        results: &mut Vec<Result<Vec<u8>>>,
    ) {
        let start = results.len();
        self.packed.clear();
        self.packed_at.clear();
        for (i, &(n, text)) in lines.iter().enumerate() {
            let enc = self.tokenizer.encode(text, &mut self.ids);
            let result = match enc {
                Ok(enc)
                    if enc.len <= PACK_MAX_TOKENS
                        && lines.len() > 1
                        && self.token_states.is_none() =>
                {
                    let cut = enc.truncated.then_some((enc.total, enc.len));
                    note(n, cut);
                    self.packed
                        .push(self.ids.get(..enc.len).unwrap_or_default().to_vec());
                    self.packed_at.push((i, cut));
                    Ok(Vec::new())
                }
                Ok(_) => self.embed(text).and_then(|line| {
                    note(n, line.cut);
                    Ok(serde_json::to_vec(&line.json(hash))?)
                }),
                Err(e) => Err(e.into()),
            };
            results.push(result);
        }
        if self.packed.is_empty() {
            return;
        }
        let d = self.pooled.len();
        let texts: Vec<&[u32]> = self.packed.iter().map(Vec::as_slice).collect();
        grow_arena(
            &mut self.arena,
            self.encoder.batch_plan(&texts).arena_bytes(),
        );
        self.packed_pooled.resize(texts.len() * d, 0);
        let batch = self
            .encoder
            .embed_batch(&texts, &mut self.arena, &mut self.packed_pooled);
        for (k, &(i, cut)) in self.packed_at.iter().enumerate() {
            let pooled = self
                .packed_pooled
                .get(k * d..(k + 1) * d)
                .unwrap_or_default();
            let line = match batch {
                Ok(()) => {
                    microbert::output::normalize(pooled, &mut self.embedding);
                    let ids = texts.get(k).copied().unwrap_or_default();
                    let line = Embedded {
                        tokens: ids.len(),
                        cut,
                        pooled,
                        embedding: &self.embedding,
                        token_states: None,
                    };
                    serde_json::to_vec(&line.json(hash)).map_err(Into::into)
                }
                Err(e) => Err(e.into()),
            };
            if let Some(slot) = results.get_mut(start + i) {
                *slot = line;
            }
        }
    }

    fn embed(&mut self, text: &str) -> Result<Embedded<'_>> {
        let enc = self.tokenizer.encode(text, &mut self.ids)?;
        grow_arena(&mut self.arena, self.encoder.plan(enc.len).arena_bytes());
        let ids = self.ids.get(..enc.len).unwrap_or_default();
        let mut bar = LazyBar::new();
        let (blob, layers) = (self.blob, self.encoder.model().config.num_hidden_layers);
        let release = enc.len >= RELEASE_PAGES_FROM;
        let mut released = None;
        let options = EmbedOptions {
            pooling: Some(self.pooling),
            progress: Some(&mut |p| {
                bar.update(p);
                // Once per layer: the lookup's pages at the first report (`done` 0), then the
                // pages the previous layer's parameters brought back.
                let layer = p.done * layers as usize / p.total.max(1);
                if release && released != Some(layer) {
                    blob.release_pages();
                    released = Some(layer);
                }
                ControlFlow::Continue(())
            }),
            ..EmbedOptions::default()
        };
        let hidden = self
            .encoder
            .embed_tokens(ids, options, &mut self.arena, &mut self.pooled)?;
        if let Some(states) = &mut self.token_states {
            states.clear();
            states.extend(hidden.iter().map(|&x| x as f32 / 65536.0));
        }
        bar.finish();
        microbert::output::normalize(&self.pooled, &mut self.embedding);
        Ok(Embedded {
            tokens: enc.len,
            cut: enc.truncated.then_some((enc.total, enc.len)),
            pooled: &self.pooled,
            embedding: &self.embedding,
            token_states: self.token_states.as_deref(),
        })
    }
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
